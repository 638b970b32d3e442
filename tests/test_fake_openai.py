"""FakeOpenAI against the real openai SDK (sync and async), and the spec checks.

Every test that uses ``fake_openai`` / ``make_fake_openai`` also has each request checked
against OpenAI's OpenAPI spec and each answer of the fake against the spec's response
schemas (see conftest.py); tests that send bad requests on purpose take the violations.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import struct
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chainvoice as cv
from chainvoice.testing import FakeOpenAI
from chainvoice.testing._fake_openai import LatencyProfile, RecordedRequest, _tokens
from chainvoice.testing._fake_wire import parse_multipart
from openapi.extract import extract
from openapi.validator import SUBSET, SpecValidator

SECRET = "sk-proj-SECRET-0123456789abcdef"
SPC = 0.06  # the fake's default seconds of speech per character
TTS = "gpt-4o-mini-tts"
STT = "gpt-4o-transcribe"
TEXT = "gpt-4.1-mini"


def wav(seconds: float, rate: int = 16_000) -> bytes:
    t = np.arange(round(seconds * rate)) / rate
    return cv.Audio((0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate).to_wav()


def upload(seconds: float = 1.0) -> tuple[str, bytes, str]:
    return ("speech.wav", wav(seconds), "audio/wav")


def speech_bytes(text: str, speed: float = 1.0) -> int:
    return 2 * len(text) * round(24_000 * SPC / speed)


def kinds(fake: FakeOpenAI) -> list[tuple[str, str]]:
    return [(v.kind, v.message) for v in fake.take_violations()]


# --------------------------------------------------------------------- transcriptions


def test_transcription_json_has_text_and_token_usage(fake_openai: FakeOpenAI) -> None:
    fake_openai.add_transcripts("Book me in for Tuesday.")
    client = fake_openai.client(api_key=SECRET)
    result = client.audio.transcriptions.create(model=STT, file=upload(2.0), language="en")
    assert result.text == "Book me in for Tuesday."
    assert result.usage is not None and result.usage.type == "tokens"
    assert result.usage.input_token_details is not None
    assert result.usage.input_token_details.audio_tokens == 20  # 10 per second of audio
    assert result.usage.total_tokens == result.usage.input_tokens + result.usage.output_tokens
    request = fake_openai.last_request("transcriptions")
    assert request.content_type == "multipart/form-data"
    assert request.file is not None
    assert (request.file.filename, request.file.content_type) == ("speech.wav", "audio/wav")
    assert request.file.data == upload(2.0)[1]
    assert dict(request.form) == {"model": STT, "language": "en"}
    assert request.progress.output_text == "Book me in for Tuesday."


def test_transcription_whisper_reports_duration_usage(fake_openai: FakeOpenAI) -> None:
    result = fake_openai.client().audio.transcriptions.create(model="whisper-1", file=upload(2.5))
    assert result.usage is not None and result.usage.type == "duration"
    assert result.usage.seconds == 3  # whole seconds, rounded up


def test_transcription_default_text_then_queue(fake_openai: FakeOpenAI) -> None:
    client = fake_openai.client()
    first = client.audio.transcriptions.create(model=STT, file=upload())
    fake_openai.add_transcripts("one", "two")
    assert [client.audio.transcriptions.create(model=STT, file=upload()).text for _ in "ab"] == [
        "one",
        "two",
    ]
    assert first.text == fake_openai.default_transcript
    assert fake_openai.pending_transcripts == ()


@pytest.mark.parametrize("fmt", ["text", "srt", "vtt"])
def test_transcription_text_formats(fake_openai: FakeOpenAI, fmt: str) -> None:
    fake_openai.add_transcripts("Hello there. How are you?")
    client = fake_openai.client()
    out = client.audio.transcriptions.create(
        model="whisper-1", file=upload(3.0), response_format=fmt
    )
    assert isinstance(out, str)
    if fmt == "text":
        assert out == "Hello there. How are you?\n"
    elif fmt == "srt":
        assert out.startswith("1\n00:00:00,000 --> 00:00:01,")
        assert "\n\n2\n00:00:01," in out and "How are you?" in out
    else:
        assert out == (
            "WEBVTT\n\n00:00:00.000 --> 00:00:01.385\nHello there.\n\n"
            "00:00:01.500 --> 00:00:02.885\nHow are you?\n\n"
        )


def test_transcription_verbose_json_words_and_segments(fake_openai: FakeOpenAI) -> None:
    fake_openai.add_transcripts("Hello there. How are you today?")
    out = fake_openai.client().audio.transcriptions.create(
        model="whisper-1",
        file=upload(4.0),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
        language="fr",
        temperature=0.3,
    )
    assert out.duration == pytest.approx(4.0)
    assert out.language == "french"
    assert [w.word for w in out.words or []] == ["Hello", "there.", "How", "are", "you", "today?"]
    starts = [w.start for w in out.words or []]
    assert starts == sorted(starts) and (out.words or [])[-1].end <= 4.0
    assert [s.text for s in out.segments or []] == [" Hello there.", " How are you today?"]
    assert (out.segments or [])[0].temperature == pytest.approx(0.3)
    assert out.usage is not None and out.usage.seconds == 4
    request = fake_openai.last_request()
    assert request.params["timestamp_granularities"] == ["word", "segment"]
    assert request.params["temperature"] == "0.3"  # multipart values are strings


def test_transcription_verbose_json_defaults_to_segments_only(fake_openai: FakeOpenAI) -> None:
    out = fake_openai.client().audio.transcriptions.create(
        model="whisper-1", file=upload(), response_format="verbose_json"
    )
    assert out.segments and out.words is None


def test_transcription_diarized_json_with_known_speakers(fake_openai: FakeOpenAI) -> None:
    fake_openai.add_transcripts("Hi, I need an appointment. Sure, when? Tuesday please.")
    ref = "data:audio/wav;base64," + base64.b64encode(wav(2.0)).decode()
    out = fake_openai.client().audio.transcriptions.create(
        model="gpt-4o-transcribe-diarize",
        file=upload(6.0),
        response_format="diarized_json",
        chunking_strategy="auto",
        known_speaker_names=["customer", "agent"],
        known_speaker_references=[ref, ref],
    )
    assert [(s.speaker, s.text) for s in out.segments] == [
        ("customer", "Hi, I need an appointment."),
        ("agent", "Sure, when?"),
        ("customer", "Tuesday please."),
    ]
    assert all(s.type == "transcript.text.segment" for s in out.segments)
    assert out.usage is not None and out.usage.type == "tokens"
    request = fake_openai.last_request()
    assert request.params["known_speaker_names"] == ["customer", "agent"]
    assert request.params["chunking_strategy"] == "auto"


def test_transcription_diarized_speakers_default_to_letters(fake_openai: FakeOpenAI) -> None:
    fake_openai.add_transcripts("One. Two. Three.")
    out = fake_openai.client().audio.transcriptions.create(
        model="gpt-4o-transcribe-diarize", file=upload(3.0), response_format="diarized_json"
    )
    assert [s.speaker for s in out.segments] == ["A", "B", "A"]


def test_transcription_chunking_strategy_object_and_logprobs(fake_openai: FakeOpenAI) -> None:
    fake_openai.add_transcripts("Yes.")
    out = fake_openai.client().audio.transcriptions.create(
        model="gpt-4o-mini-transcribe",
        file=upload(),
        include=["logprobs"],
        chunking_strategy={"type": "server_vad", "threshold": 0.4, "silence_duration_ms": 300},
        prompt="Café names, naïvely",
    )
    assert [lp.token for lp in out.logprobs or []] == ["Yes."]
    assert (out.logprobs or [])[0].bytes == [89.0, 101.0, 115.0, 46.0]
    request = fake_openai.last_request()
    assert request.params["chunking_strategy"] == {
        "type": "server_vad",
        "threshold": "0.4",
        "silence_duration_ms": "300",
    }
    assert request.params["include"] == ["logprobs"]
    assert request.params["prompt"] == "Café names, naïvely"


def test_transcription_gpt_transcribe_keywords_languages(fake_openai: FakeOpenAI) -> None:
    out = fake_openai.client().audio.transcriptions.create(
        model="gpt-transcribe",
        file=upload(),
        keywords=["chainvoice", "Dr. Okafor"],
        languages=["en", "fr"],
        language="fr",
    )
    assert [lang.code for lang in out.languages or []] == ["fr"]
    assert fake_openai.last_request().params["keywords"] == ["chainvoice", "Dr. Okafor"]


def test_transcription_stream_deltas_then_done(fake_openai: FakeOpenAI) -> None:
    fake_openai.add_transcripts("Streaming transcription works nicely.")
    events = list(
        fake_openai.client().audio.transcriptions.create(
            model=STT, file=upload(2.0), stream=True, include=["logprobs"]
        )
    )
    deltas = [e for e in events if e.type == "transcript.text.delta"]
    done = events[-1]
    assert done.type == "transcript.text.done"
    assert "".join(d.delta for d in deltas) == done.text == "Streaming transcription works nicely."
    assert len(deltas) > 5  # sub-word deltas
    assert all(d.logprobs and d.logprobs[0].token == d.delta for d in deltas)
    assert done.usage is not None and done.usage.output_tokens == len(deltas)
    assert fake_openai.last_request().stream


def test_transcription_stream_diarized_has_segment_events(fake_openai: FakeOpenAI) -> None:
    fake_openai.add_transcripts("First speaker. Second speaker.")
    events = list(
        fake_openai.client().audio.transcriptions.create(
            model="gpt-4o-transcribe-diarize",
            file=upload(2.0),
            response_format="diarized_json",
            stream=True,
        )
    )
    segments = [e for e in events if e.type == "transcript.text.segment"]
    assert [(s.speaker, s.text) for s in segments] == [
        ("A", "First speaker."),
        ("B", "Second speaker."),
    ]
    deltas = [e for e in events if e.type == "transcript.text.delta"]
    assert {d.segment_id for d in deltas} == {s.id for s in segments}


def test_transcription_stream_is_ignored_for_whisper(fake_openai: FakeOpenAI) -> None:
    client = fake_openai.client()
    raw = client.audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=upload(), stream=True
    )
    assert raw.headers["content-type"] == "application/json"
    assert json.loads(raw.http_response.read())["text"] == fake_openai.default_transcript


def test_transcription_async_json_and_stream(fake_openai: FakeOpenAI) -> None:
    fake_openai.add_transcripts("async one", "async two")

    async def main() -> tuple[str, str]:
        client = fake_openai.async_client()
        first = await client.audio.transcriptions.create(model=STT, file=upload())
        stream = await client.audio.transcriptions.create(model=STT, file=upload(), stream=True)
        text = ""
        async for event in stream:
            if event.type == "transcript.text.delta":
                text += event.delta
        await client.close()
        return first.text, text

    assert asyncio.run(main()) == ("async one", "async two")
    assert [r.headers["x-stainless-async"] for r in fake_openai.requests] == ["async:asyncio"] * 2


def test_transcription_compatible_server_sends_no_usage(make_fake_openai: Any) -> None:
    fake = make_fake_openai(compatible=True)
    client = fake.client()
    result = client.audio.transcriptions.create(model="Systran/faster-whisper-small", file=upload())
    assert result.usage is None
    done = list(client.audio.transcriptions.create(model="any", file=upload(), stream=True))[-1]
    assert done.type == "transcript.text.done" and done.usage is None
    verbose = client.audio.transcriptions.create(
        model="whisper-1", file=upload(), response_format="verbose_json"
    )
    assert verbose.usage is None
    raw = client.audio.transcriptions.with_raw_response.create(model="x", file=upload())
    assert "x-request-id" not in raw.headers


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "too short"),
        (b"RIFF\x00\x00\x00\x00WAVEjunkjunk", "corrupted or unsupported"),
        (wav(0.05), "too short"),
    ],
)
def test_transcription_bad_audio_is_a_400_not_a_violation(
    fake_openai: FakeOpenAI, data: bytes, fragment: str
) -> None:
    client = fake_openai.client(max_retries=0)
    with pytest.raises(openai.BadRequestError, match=fragment) as caught:
        client.audio.transcriptions.create(model=STT, file=("a.wav", data, "audio/wav"))
    assert caught.value.param == "file"
    assert fake_openai.violations == ()


# -------------------------------------------------------------------------- responses


def test_responses_echo_and_usage(fake_openai: FakeOpenAI) -> None:
    client = fake_openai.client()
    response = client.responses.create(
        model=TEXT,
        instructions="You are terse.",
        input=[
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "input_text", "text": "book Tuesday"}]},
        ],
        temperature=0.2,
        max_output_tokens=200,
        store=False,
    )
    assert response.output_text == "You said: book Tuesday"
    assert response.status == "completed"
    assert response.instructions == "You are terse."
    assert response.usage is not None
    assert response.usage.output_tokens == 7
    assert response.usage.total_tokens == response.usage.input_tokens + 7
    sent = fake_openai.last_request("responses").json
    assert sent["store"] is False and sent["instructions"] == "You are terse."


def test_responses_queue_then_callable_reply(make_fake_openai: Any) -> None:
    fake = make_fake_openai(replies=["scripted"], reply=lambda r: f"model was {r.model}")
    client = fake.client()
    assert client.responses.create(model=TEXT, input="a").output_text == "scripted"
    assert client.responses.create(model="gpt-5-nano", input="b").output_text == (
        "model was gpt-5-nano"
    )


def test_responses_stream_events_in_order(fake_openai: FakeOpenAI) -> None:
    fake_openai.add_replies("Sure, Tuesday at nine works wonderfully.")
    events = list(fake_openai.client().responses.create(model=TEXT, input="hi", stream=True))
    types = [e.type for e in events]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "Sure, Tuesday at nine works wonderfully."
    assert "derf" in deltas  # words are cut across deltas, like real tokens
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.usage is not None
    assert completed.response.usage.output_tokens == len(deltas)
    assert completed.response.output_text == "Sure, Tuesday at nine works wonderfully."
    assert events[0].type == "response.created" and events[0].response.usage is None


def test_responses_max_output_tokens_makes_incomplete(fake_openai: FakeOpenAI) -> None:
    fake_openai.add_replies("one two three four five six seven eight nine ten " * 3, "x " * 40)
    client = fake_openai.client()
    response = client.responses.create(model=TEXT, input="hi", max_output_tokens=16)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None and response.usage.output_tokens == 16
    last = list(client.responses.create(model=TEXT, input="hi", max_output_tokens=16, stream=True))
    assert last[-1].type == "response.incomplete"


def test_responses_async_stream(fake_openai: FakeOpenAI) -> None:
    fake_openai.add_replies("Async reply.")

    async def main() -> str:
        client = fake_openai.async_client()
        text = ""
        async for event in await client.responses.create(model=TEXT, input="hi", stream=True):
            if event.type == "response.output_text.delta":
                text += event.delta
        plain = await client.responses.create(model=TEXT, input="again")
        await client.close()
        return text + " | " + plain.output_text

    assert asyncio.run(main()) == "Async reply. | You said: again"


# ------------------------------------------------------------------------------- chat


def test_chat_completion_plain(fake_openai: FakeOpenAI) -> None:
    completion = fake_openai.client().chat.completions.create(
        model=TEXT,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "hello"}]},
        ],
        max_completion_tokens=None,
        temperature=0.5,
    )
    assert completion.choices[0].message.content == "You said: hello"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 5


def test_chat_stream_with_usage_chunk_and_done(fake_openai: FakeOpenAI) -> None:
    fake_openai.add_replies("Streaming chat reply.")
    client = fake_openai.client()
    chunks = list(
        client.chat.completions.create(
            model=TEXT,
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Streaming chat reply."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert all(c.usage is None for c in chunks[:-1])
    raw = client.chat.completions.with_raw_response.create(
        model=TEXT, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    body = raw.http_response.read().decode()
    assert body.endswith("data: [DONE]\n\n")
    assert '"usage"' not in body  # not asked for


def test_chat_length_limit_and_n(fake_openai: FakeOpenAI) -> None:
    fake_openai.add_replies("a b c d e f g h")
    completion = fake_openai.client().chat.completions.create(
        model=TEXT, messages=[{"role": "user", "content": "hi"}], max_completion_tokens=3, n=2
    )
    assert [c.message.content for c in completion.choices] == ["a b c"] * 2
    assert {c.finish_reason for c in completion.choices} == {"length"}


def test_chat_async_stream(fake_openai: FakeOpenAI) -> None:
    async def main() -> str:
        client = fake_openai.async_client()
        stream = await client.chat.completions.create(
            model=TEXT, messages=[{"role": "user", "content": "yo"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        await client.close()
        return text

    assert asyncio.run(main()) == "You said: yo"


# ----------------------------------------------------------------------------- speech


def test_speech_pcm_length_content_type_and_odd_chunks(make_fake_openai: Any) -> None:
    fake = make_fake_openai(chunk_size=1001)
    text = "Hello there, how are you?"
    client = fake.client()
    with client.audio.speech.with_streaming_response.create(
        model=TTS, voice="coral", input=text, response_format="pcm"
    ) as response:
        assert response.headers["content-type"] == "audio/pcm"
        chunks = list(response.iter_bytes())
    assert sum(map(len, chunks)) == speech_bytes(text)
    assert {len(c) for c in chunks[:-1]} == {1001}  # odd chunks split samples
    audio = cv.Audio.from_pcm16(b"".join(chunks), rate=24_000)
    assert audio.duration == pytest.approx(len(text) * SPC)
    samples = audio.samples[:, 0]
    per_char = round(24_000 * SPC)
    assert np.all(samples[5 * per_char : 6 * per_char] == 0)  # the comma is silence
    assert 0.15 < np.max(np.abs(samples)) < 0.25  # a soft tone


def test_speech_speed_shortens_audio(fake_openai: FakeOpenAI) -> None:
    client = fake_openai.client()
    fast = client.audio.speech.create(
        model=TTS, voice="alloy", input="Quick words", response_format="pcm", speed=2.0
    )
    assert len(fast.content) == speech_bytes("Quick words", speed=2.0)


def test_speech_wav_streaming_header(fake_openai: FakeOpenAI) -> None:
    out = fake_openai.client().audio.speech.create(
        model=TTS, voice={"id": "voice_1234"}, input="Hi there.", response_format="wav"
    )
    data = out.content
    assert out.response.headers["content-type"] == "audio/wav"
    assert data[:4] == b"RIFF" and struct.unpack("<I", data[4:8])[0] == 0xFFFFFFFF
    assert data[36:40] == b"data" and struct.unpack("<I", data[40:44])[0] == 0xFFFFFFFF
    with wave.open(io.BytesIO(data[:40] + struct.pack("<I", len(data) - 44) + data[44:])) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24_000, 1, 2)
    assert len(data) - 44 == speech_bytes("Hi there.")
    assert fake_openai.last_request().json["voice"] == {"id": "voice_1234"}


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [("mp3", "audio/mpeg"), ("opus", "audio/opus"), ("aac", "audio/aac"), ("flac", "audio/flac")],
)
def test_speech_compressed_formats_decode(
    fake_openai: FakeOpenAI, fmt: str, content_type: str
) -> None:
    text = "A compressed reply."
    out = fake_openai.client().audio.speech.create(
        model=TTS, voice="sage", input=text, response_format=fmt, instructions="Warmly."
    )
    assert out.response.headers["content-type"] == content_type
    audio = cv.Audio.from_bytes(out.content)
    assert audio.duration == pytest.approx(len(text) * SPC, abs=0.08)


def test_speech_default_format_is_mp3(fake_openai: FakeOpenAI) -> None:
    out = fake_openai.client().audio.speech.create(model=TTS, voice="ash", input="Default.")
    assert out.response.headers["content-type"] == "audio/mpeg"


def test_speech_sse_deltas_and_usage(make_fake_openai: Any) -> None:
    fake = make_fake_openai(chunk_size=777)
    text = "Server sent speech."
    client = fake.client()
    with client.audio.speech.with_streaming_response.create(
        model=TTS, voice="coral", input=text, response_format="pcm", stream_format="sse"
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    events = [json.loads(line[6:]) for line in lines]
    deltas = [base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta"]
    assert {len(d) for d in deltas[:-1]} == {777}
    assert len(b"".join(deltas)) == speech_bytes(text)
    done = events[-1]
    assert done["type"] == "speech.audio.done"
    usage = done["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0


def test_speech_content_types_can_be_overridden(make_fake_openai: Any) -> None:
    fake = make_fake_openai(speech_content_types={"pcm": "application/octet-stream"})
    out = fake.client().audio.speech.create(
        model=TTS, voice="coral", input="x", response_format="pcm"
    )
    assert out.response.headers["content-type"] == "application/octet-stream"


def test_speech_compatible_server_ignores_format(make_fake_openai: Any) -> None:
    fake = make_fake_openai(compatible=True, speech_format="wav")
    out = fake.client().audio.speech.create(
        model="kokoro", voice="af_bella", input="hi", response_format="mp3", stream_format="sse"
    )
    events = [json.loads(x[6:]) for x in out.text.splitlines() if x.startswith("data: ")]
    assert events[-1] == {"type": "speech.audio.done"}  # no usage
    plain = fake.client().audio.speech.create(
        model="kokoro", voice="af_bella", input="hi", response_format="mp3"
    )
    assert plain.response.headers["content-type"] == "audio/wav"
    assert plain.content[:4] == b"RIFF"


def test_speech_async_streams_chunks(make_fake_openai: Any) -> None:
    fake = make_fake_openai(chunk_size=999)

    async def main() -> list[bytes]:
        client = fake.async_client()
        async with client.audio.speech.with_streaming_response.create(
            model=TTS, voice="coral", input="Async speech.", response_format="pcm"
        ) as response:
            chunks = [c async for c in response.iter_bytes()]
        await client.close()
        return chunks

    chunks = asyncio.run(main())
    assert len(b"".join(chunks)) == speech_bytes("Async speech.")
    assert {len(c) for c in chunks[:-1]} == {999}


# ----------------------------------------------------------------------------- faults


def test_429_retry_after_ms_is_honoured_then_succeeds(fake_openai: FakeOpenAI) -> None:
    fake_openai.fail("speech", 429, retry_after_ms=5, times=2)
    client = fake_openai.client(max_retries=2)
    out = client.audio.speech.create(model=TTS, voice="coral", input="ok", response_format="pcm")
    assert len(out.content) == speech_bytes("ok")
    statuses = [r.progress.status_code for r in fake_openai.requests_to("speech")]
    assert statuses == [429, 429, 200]
    assert [r.headers["x-stainless-retry-count"] for r in fake_openai.requests] == ["0", "1", "2"]
    assert fake_openai.pending_faults == ()


def test_429_carries_retry_after_and_openai_error_body(fake_openai: FakeOpenAI) -> None:
    fake_openai.fail("responses", 429, retry_after=7)
    with pytest.raises(openai.RateLimitError) as caught:
        fake_openai.client(max_retries=0).responses.create(model=TEXT, input="hi")
    error = caught.value
    assert error.response.headers["retry-after"] == "7"
    assert error.code == "rate_limit_exceeded" and error.type == "requests"
    assert error.request_id is not None and error.request_id.startswith("req_")
    assert error.body == {
        "message": "Rate limit reached for requests. Please try again later.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }


@pytest.mark.parametrize(
    ("status", "exception", "code"),
    [
        (400, openai.BadRequestError, None),
        (401, openai.AuthenticationError, "invalid_api_key"),
        (403, openai.PermissionDeniedError, "model_not_allowed"),
        (404, openai.NotFoundError, "model_not_found"),
        (500, openai.InternalServerError, None),
        (503, openai.InternalServerError, None),
    ],
)
def test_error_statuses(
    fake_openai: FakeOpenAI, status: int, exception: type[openai.APIStatusError], code: str | None
) -> None:
    fake_openai.fail("chat", status)
    client = fake_openai.client(max_retries=0)
    with pytest.raises(exception) as caught:
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == status
    assert caught.value.code == code
    assert caught.value.response.headers["x-request-id"].startswith("req_")
    if status == 404:
        assert "`gpt-9` does not exist" in str(caught.value)


def test_fail_custom_error_fields_and_nth(fake_openai: FakeOpenAI) -> None:
    fake_openai.fail(
        "speech", 400, nth=2, message="Input is bad", code="bad_input", param="input", type="x"
    )
    client = fake_openai.client(max_retries=0)
    client.audio.speech.create(model=TTS, voice="coral", input="ok", response_format="pcm")
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.speech.create(model=TTS, voice="coral", input="ok", response_format="pcm")
    assert caught.value.body == {
        "message": "Input is bad",
        "type": "x",
        "param": "input",
        "code": "bad_input",
    }
    client.audio.speech.create(model=TTS, voice="coral", input="ok", response_format="pcm")


def test_fail_any_endpoint_and_500_retried(fake_openai: FakeOpenAI) -> None:
    fake_openai.fail(None, 500, retry_after_ms=1)
    client = fake_openai.client(max_retries=1)
    assert client.responses.create(model=TEXT, input="x").output_text == "You said: x"
    assert [r.progress.status_code for r in fake_openai.requests] == [500, 200]


def test_wrong_api_key_is_401_without_leaking_it(make_fake_openai: Any) -> None:
    fake = make_fake_openai(api_key=SECRET)
    with pytest.raises(openai.AuthenticationError) as caught:
        fake.client(api_key="sk-wrong-key-999", max_retries=0).responses.create(
            model=TEXT, input="x"
        )
    assert "sk-wrong" not in str(caught.value)
    fake.client(api_key=SECRET).responses.create(model=TEXT, input="x")
    everything = repr(fake) + repr(fake.requests) + "".join(str(r.headers) for r in fake.requests)
    assert SECRET not in everything and "sk-wrong" not in everything
    assert fake.requests[0].headers["authorization"] == "Bearer [redacted]"
    assert SECRET not in repr(vars(fake))


def test_cut_after_events_mid_stream(fake_openai: FakeOpenAI) -> None:
    fake_openai.add_replies("This reply will be cut off in the middle.")
    fake_openai.cut("responses", after_events=6)
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        for event in fake_openai.client().responses.create(model=TEXT, input="hi", stream=True):
            received.append(event.type)
    assert received == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
    ]
    request = fake_openai.last_request()
    assert request.progress.status == "cut" and request.progress.events_sent == 6


def test_cut_after_bytes_in_speech_audio(fake_openai: FakeOpenAI) -> None:
    fake_openai.cut("speech", after_bytes=3001, error="read")
    client = fake_openai.client(max_retries=0)
    got = b""
    with (
        pytest.raises(httpx.ReadError),
        client.audio.speech.with_streaming_response.create(
            model=TTS, voice="coral", input="A longer sentence to cut.", response_format="pcm"
        ) as response,
    ):
        for chunk in response.iter_bytes():
            got += chunk
    assert len(got) == 3001
    assert fake_openai.last_request().progress.status == "cut"


def test_cut_non_streamed_body_is_retried_by_the_sdk(fake_openai: FakeOpenAI) -> None:
    fake_openai.cut("transcriptions", after_bytes=5)
    out = fake_openai.client(max_retries=1).audio.transcriptions.create(model=STT, file=upload())
    assert out.text == fake_openai.default_transcript
    assert [r.progress.status for r in fake_openai.requests] == ["cut", "completed"]


def test_stream_error_event_chat_raises(fake_openai: FakeOpenAI) -> None:
    fake_openai.fail("chat", 500, after_events=2, message="The server had an error")
    stream = fake_openai.client().chat.completions.create(
        model=TEXT, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    seen = 0
    with pytest.raises(openai.APIError, match="The server had an error"):
        for _ in stream:
            seen += 1
    assert seen == 2


def test_stream_error_event_responses(fake_openai: FakeOpenAI) -> None:
    fake_openai.fail("responses", 500, after_events=3, code="server_error", message="boom")
    events = list(fake_openai.client().responses.create(model=TEXT, input="hi", stream=True))
    assert [e.type for e in events][-1] == "error"
    assert events[-1].message == "boom" and events[-1].sequence_number == 3


def test_stall_before_headers_hits_the_client_timeout(fake_openai: FakeOpenAI) -> None:
    fake_openai.stall("transcriptions")
    client = fake_openai.client(max_retries=0, timeout=0.2)
    start = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client.audio.transcriptions.create(model=STT, file=upload())
    assert 0.18 < time.monotonic() - start < 2.0
    assert fake_openai.last_request().progress.status == "timed_out"


def test_stall_mid_stream_hits_the_read_timeout(fake_openai: FakeOpenAI) -> None:
    fake_openai.stall("chat", after_events=3, seconds=30)
    client = fake_openai.client(max_retries=0, timeout=0.2)
    got = 0
    start = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        for _ in client.chat.completions.create(
            model=TEXT, messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            got += 1
    assert got == 3 and time.monotonic() - start < 2.0


def test_short_stall_then_continues(fake_openai: FakeOpenAI) -> None:
    fake_openai.stall("speech", after_bytes=100, seconds=0.15)
    client = fake_openai.client(timeout=5)
    start = time.monotonic()
    out = client.audio.speech.create(model=TTS, voice="coral", input="ok", response_format="pcm")
    assert time.monotonic() - start >= 0.15
    assert len(out.content) == speech_bytes("ok")


def test_endless_stall_without_timeout_is_bounded(make_fake_openai: Any) -> None:
    fake = make_fake_openai(max_stall=0.1)
    fake.stall("responses", after_events=1)
    client = fake.client(max_retries=0, timeout=None)
    with pytest.raises(openai.APIConnectionError):
        list(client.responses.create(model=TEXT, input="hi", stream=True))
    assert [k for k, _ in kinds(fake)] == ["stall"]


def test_async_stall_is_cancellable(fake_openai: FakeOpenAI) -> None:
    fake_openai.max_stall = 30.0
    fake_openai.stall("speech")

    async def main() -> float:
        client = fake_openai.async_client(max_retries=0, timeout=None)
        start = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):  # not the built-in TimeoutError before 3.11
            await asyncio.wait_for(
                client.audio.speech.create(model=TTS, voice="coral", input="x"), 0.1
            )
        await client.close()
        return time.monotonic() - start

    assert asyncio.run(main()) < 1.0
    assert fake_openai.last_request().progress.status == "cancelled"


def test_async_cancel_mid_stream_marks_cancelled(make_fake_openai: Any) -> None:
    fake = make_fake_openai(latency=LatencyProfile(text_first_token=0.01, text_per_token=0.5))
    fake.add_replies("many words that arrive slowly over time")

    async def main() -> list[str]:
        client = fake.async_client()
        got: list[str] = []

        async def consume() -> None:
            async for event in await client.responses.create(model=TEXT, input="x", stream=True):
                if event.type == "response.output_text.delta":
                    got.append(event.delta)

        with pytest.raises(asyncio.TimeoutError):  # not the built-in TimeoutError before 3.11
            await asyncio.wait_for(consume(), 0.3)
        await client.close()
        return got

    assert len(asyncio.run(main())) == 1
    assert fake.last_request().progress.status in ("cancelled", "closed")


def test_fault_arguments_are_checked(fake_openai: FakeOpenAI) -> None:
    with pytest.raises(cv.ConfigurationError, match="unknown endpoint"):
        fake_openai.fail("embeddings")
    with pytest.raises(cv.ConfigurationError, match="400 to 599"):
        fake_openai.fail("chat", 200)
    with pytest.raises(cv.ConfigurationError, match="not both"):
        fake_openai.cut("chat", after_events=1, after_bytes=1)
    with pytest.raises(cv.ConfigurationError, match="times"):
        fake_openai.stall("chat", times=0)
    with pytest.raises(cv.ConfigurationError, match="seconds"):
        fake_openai.stall("chat", seconds=-1)
    fake_openai.fail("/v1/audio/speech", 500)
    fake_openai.fail("chat.completions", 500, nth=3)
    assert len(fake_openai.pending_faults) == 2
    fake_openai.clear_faults()
    assert fake_openai.pending_faults == ()


def test_constructor_options_are_checked() -> None:
    with pytest.raises(cv.ConfigurationError, match="chunk_size"):
        FakeOpenAI(chunk_size=0)
    with pytest.raises(cv.ConfigurationError, match="speech_format"):
        FakeOpenAI(speech_format="ogg")
    with pytest.raises(cv.ConfigurationError, match="list of strings"):
        FakeOpenAI(replies="one string")
    with pytest.raises(cv.ConfigurationError, match="text_per_token"):
        LatencyProfile(text_per_token=-1)


# ---------------------------------------------------------------------------- latency


def test_latency_speech_first_byte_and_pacing(make_fake_openai: Any) -> None:
    profile = LatencyProfile(speech_first_byte=0.15, speech_realtime_factor=0.5)
    fake = make_fake_openai(latency=profile, chunk_size=4800)  # 0.1 s of audio per chunk
    text = "abcde"  # 0.3 s of speech: 3 chunks
    client = fake.client()
    start = time.monotonic()
    stamps = []
    with client.audio.speech.with_streaming_response.create(
        model=TTS, voice="coral", input=text, response_format="pcm"
    ) as response:
        for _ in response.iter_bytes():
            stamps.append(time.monotonic() - start)
    assert len(stamps) == 3
    assert stamps[0] >= 0.15
    assert stamps[2] - stamps[0] >= 2 * 0.05 * 0.9  # 0.1 s per chunk at half real time
    progress = fake.last_request().progress
    assert progress.first_byte_at is not None
    assert progress.first_byte_at - progress.received_at >= 0.15


def test_latency_text_tokens_are_paced(make_fake_openai: Any) -> None:
    profile = LatencyProfile(text_first_token=0.1, text_per_token=0.02)
    fake = make_fake_openai(latency=profile, replies=["one two three four five"])
    start = time.monotonic()
    stamps = [
        time.monotonic() - start
        for event in fake.client().responses.create(model=TEXT, input="x", stream=True)
        if event.type == "response.output_text.delta"
    ]
    assert stamps[0] >= 0.1
    assert stamps[-1] - stamps[0] >= 0.02 * (len(stamps) - 1) * 0.9


def test_latency_transcription_and_non_streamed_waits(make_fake_openai: Any) -> None:
    profile = LatencyProfile(transcription_base=0.05, transcription_per_audio_second=0.05)
    fake = make_fake_openai(latency=profile)
    start = time.monotonic()
    fake.client().audio.transcriptions.create(model=STT, file=upload(2.0))
    assert time.monotonic() - start >= 0.15


def test_async_waits_do_not_block_the_event_loop(make_fake_openai: Any) -> None:
    fake = make_fake_openai(latency=LatencyProfile(speech_first_byte=0.3))

    async def main() -> int:
        client = fake.async_client()
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.ensure_future(ticker())
        await client.audio.speech.create(model=TTS, voice="coral", input="x", response_format="pcm")
        done.set()
        await task
        await client.close()
        return ticks

    assert asyncio.run(main()) >= 15


def test_latency_profile_helpers() -> None:
    like = LatencyProfile.openai_like()
    assert like.speech_realtime_factor < 1 and like.text_first_token > 0
    tiny = like.scaled(0.01)
    assert tiny.text_first_token == pytest.approx(like.text_first_token * 0.01)
    assert LatencyProfile() == LatencyProfile(0, 0, 0, 0, 0, 0)


# ---------------------------------------------------------------------------- records


def test_requests_are_recorded_from_many_threads(fake_openai: FakeOpenAI) -> None:
    client = fake_openai.client()

    def speak(i: int) -> None:
        client.audio.speech.create(model=TTS, voice="coral", input=f"n {i}", response_format="pcm")

    threads = [threading.Thread(target=speak, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    requests = fake_openai.requests_to("speech")
    assert sorted(r.index for r in requests) == list(range(1, 9))
    assert sorted(r.endpoint_index for r in requests) == list(range(1, 9))
    assert sorted(r.json["input"] for r in requests) == sorted(f"n {i}" for i in range(8))


def test_record_repr_and_lookup(fake_openai: FakeOpenAI) -> None:
    with pytest.raises(LookupError):
        fake_openai.last_request()
    fake_openai.client().responses.create(model=TEXT, input="hi")
    record = fake_openai.last_request("responses")
    assert isinstance(record, RecordedRequest)
    assert repr(record) == (
        "RecordedRequest(#1 POST /responses endpoint='responses' params=[input, model] "
        "status='completed')"
    )
    assert record.model == TEXT and not record.stream
    assert record.url == "https://fake.openai.test/v1/responses"
    assert (record.path, record.route) == ("/v1/responses", "/responses")


def test_importing_chainvoice_does_not_import_openai_or_httpx() -> None:
    code = (
        "import sys, chainvoice, chainvoice.testing\n"
        "assert 'openai' not in sys.modules and 'httpx2' not in sys.modules, 'eager'\n"
        "chainvoice.testing.FakeOpenAI\n"
        "assert 'openai' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ------------------------------------------------------------------ the spec checking


def test_unknown_speech_parameter_is_caught(fake_openai: FakeOpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="Unknown parameter: 'bogus'"):
        fake_openai.client(max_retries=0).audio.speech.create(
            model=TTS, voice="coral", input="x", extra_body={"bogus": 1}
        )
    found = kinds(fake_openai)
    assert ("spec", "Unknown parameter: 'bogus'.") in found  # the fake's own check
    assert ("spec", "createSpeech: Unknown parameter: 'bogus'.") in found  # the spec's


def test_bad_speech_enum_is_caught(fake_openai: FakeOpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        fake_openai.client(max_retries=0).audio.speech.create(
            model=TTS,
            voice="coral",
            input="x",
            response_format="ogg",  # type: ignore[arg-type]
        )
    messages = [m for _, m in kinds(fake_openai)]
    assert any(m.startswith("createSpeech: response_format: 'ogg' is not one of") for m in messages)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"model": TTS, "input": "x"}, "'voice' is a required property"),
        ({"voice": "coral", "input": "x"}, "'model' is a required property"),
        ({"model": TTS, "voice": "coral"}, "'input' is a required property"),
        ({"model": TTS, "voice": "coral", "input": "x", "speed": 9}, "9 is greater than"),
        ({"model": TTS, "voice": 3, "input": "x"}, "voice: 3 is not valid"),
        ({"model": TTS, "voice": "coral", "input": "x" * 4097}, "is too long"),
    ],
)
def test_spec_catches_bad_speech_bodies(
    fake_openai: FakeOpenAI, body: dict[str, Any], expected: str
) -> None:
    with fake_openai.http_client() as http:
        response = http.post(
            f"{fake_openai.base_url}/audio/speech",
            json=body,
            headers={"Authorization": "Bearer sk-x"},
        )
    assert response.status_code in (400, 413)
    assert response.json()["error"]["type"] == "invalid_request_error"
    messages = [m for _, m in kinds(fake_openai)]
    assert any(expected in m and m.startswith("createSpeech") for m in messages), messages


def test_spec_catches_bad_transcription_fields(fake_openai: FakeOpenAI) -> None:
    client = fake_openai.client(max_retries=0)
    with pytest.raises(openai.BadRequestError):
        client.audio.transcriptions.create(
            model=STT,
            file=upload(),
            response_format="xml",  # type: ignore[arg-type]
            extra_body={"temperature": "hot", "speakers": 2},
        )
    messages = [m for _, m in kinds(fake_openai)]
    assert any("response_format: 'xml' is not one of" in m for m in messages)
    assert any("temperature: 'hot' is not of type 'number'" in m for m in messages)
    assert "createTranscription: Unknown parameter: 'speakers'." in messages
    with pytest.raises(openai.BadRequestError):
        client.audio.transcriptions.create(
            model=STT,
            file=upload(),
            chunking_strategy={"type": "server_vad", "loudness": 1},  # type: ignore[typeddict-unknown-key]
        )
    assert any("'loudness' was unexpected" in m for _, m in kinds(fake_openai))


def test_spec_catches_bad_responses_and_chat(fake_openai: FakeOpenAI) -> None:
    client = fake_openai.client(max_retries=0)
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model=TEXT, input="x", reasoning={"effort": "extreme"})  # type: ignore[typeddict-item]
    assert any("createResponse: reasoning" in m for _, m in kinds(fake_openai))
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model=TEXT, input="x", extra_body={"voice": "coral"})
    assert ("spec", "createResponse: Unknown parameter: 'voice'.") in kinds(fake_openai)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=TEXT, messages=[{"role": "robot", "content": "x"}])  # type: ignore[misc,list-item]
    assert any("createChatCompletion: messages[0]" in m for _, m in kinds(fake_openai))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=TEXT, messages=[])
    assert any("should be non-empty" in m for _, m in kinds(fake_openai))
    # A message whose content is not text (Conversation().add("user", 5) once got this far).
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model=TEXT, input=[{"role": "user", "content": 5}])  # type: ignore[list-item,typeddict-item]
    assert any("createResponse: input[0].content" in m for _, m in kinds(fake_openai))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=TEXT, messages=[{"role": "user", "content": 5}])  # type: ignore[list-item,typeddict-item]
    assert any("createChatCompletion: messages[0]" in m for _, m in kinds(fake_openai))


def test_fake_rules_beyond_the_schema(fake_openai: FakeOpenAI) -> None:
    client = fake_openai.client(max_retries=0)
    with pytest.raises(openai.BadRequestError, match="Invalid file format"):
        client.audio.transcriptions.create(model=STT, file=("audio.xyz", wav(1), "audio/x"))
    assert [k for k, _ in kinds(fake_openai)] == ["api"]
    with pytest.raises(openai.BadRequestError, match="only allowed when 'stream' is enabled"):
        client.chat.completions.create(
            model=TEXT,
            messages=[{"role": "user", "content": "x"}],
            stream_options={"include_usage": True},
        )
    assert [k for k, _ in kinds(fake_openai)] == ["api"]


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (
            lambda c: c.audio.transcriptions.create(
                model=STT, file=upload(), response_format="verbose_json"
            ),
            "not compatible with model 'gpt-4o-transcribe'",
        ),
        (
            lambda c: c.audio.transcriptions.create(
                model="whisper-1", file=upload(), include=["logprobs"]
            ),
            "logprobs is not supported by whisper-1",
        ),
        (
            lambda c: c.audio.transcriptions.create(
                model="whisper-1", file=upload(), timestamp_granularities=["word"]
            ),
            "needs response_format 'verbose_json'",
        ),
        (
            lambda c: c.audio.transcriptions.create(
                model="gpt-4o-transcribe-diarize", file=upload(), prompt="names"
            ),
            "prompt is not supported",
        ),
        (
            lambda c: c.audio.transcriptions.create(
                model="gpt-4o-transcribe-diarize", file=upload(31.0)
            ),
            "chunking_strategy is required",
        ),
        (
            lambda c: c.audio.transcriptions.create(model=STT, file=upload(), keywords=["x"]),
            "gpt-transcribe only",
        ),
        (
            lambda c: c.audio.speech.create(
                model="tts-1", voice="alloy", input="x", instructions="Cheerful."
            ),
            "instructions are not supported by tts-1",
        ),
        (
            lambda c: c.audio.speech.create(
                model="tts-1-hd", voice="alloy", input="x", stream_format="sse"
            ),
            "'sse' is not supported by tts-1-hd",
        ),
        (
            lambda c: c.audio.speech.create(model=TTS, voice="af_bella", input="x"),
            "Invalid value for 'voice'",
        ),
        (
            lambda c: c.audio.transcriptions.create(model=STT, file=upload(), language="english"),
            "ISO-639-1",
        ),
        (
            lambda c: c.responses.create(
                model="gpt-4.1-mini", input="x", reasoning={"effort": "low"}
            ),
            "'reasoning.effort' is not supported",
        ),
        (
            lambda c: c.chat.completions.create(
                model="o4-mini", messages=[{"role": "user", "content": "x"}], temperature=0.2
            ),
            "'temperature' is not supported",
        ),
    ],
)
def test_model_rules(fake_openai: FakeOpenAI, call: Any, fragment: str) -> None:
    with pytest.raises(openai.BadRequestError, match=fragment):
        call(fake_openai.client(max_retries=0))
    assert [k for k, _ in kinds(fake_openai)] == ["model"]


def test_model_rules_off_for_compatible_servers(make_fake_openai: Any) -> None:
    fake = make_fake_openai(compatible=True)
    out = fake.client().audio.transcriptions.create(
        model="whisper-1", file=upload(), response_format="verbose_json", include=["logprobs"]
    )
    assert out.text


def test_unknown_path_and_missing_key(fake_openai: FakeOpenAI) -> None:
    with fake_openai.http_client() as http:
        missing = http.post(f"{fake_openai.base_url}/embeddings", json={"input": "x"})
        no_key = http.post(f"{fake_openai.base_url}/responses", json={"model": TEXT, "input": "x"})
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "Invalid URL (POST /v1/embeddings)"
    assert no_key.status_code == 401 and "didn't provide an API key" in no_key.text
    assert [k for k, _ in kinds(fake_openai)] == ["spec"]  # the unknown path only


def test_malformed_bodies(fake_openai: FakeOpenAI) -> None:
    auth = {"Authorization": "Bearer sk-x"}
    with fake_openai.http_client(headers=auth) as http:
        not_json = http.post(
            f"{fake_openai.base_url}/chat/completions",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        truncated = http.post(
            f"{fake_openai.base_url}/audio/transcriptions",
            content=b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nx\r\n',
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
        as_json = http.post(f"{fake_openai.base_url}/audio/transcriptions", json={"model": STT})
        text_file = http.post(
            f"{fake_openai.base_url}/audio/transcriptions",
            data={"model": STT, "file": "not a file"},
            files={"other": ("a.wav", b"x", "audio/wav")},
        )
    assert {r.status_code for r in (not_json, truncated, as_json, text_file)} == {400}
    messages = [m for _, m in kinds(fake_openai)]
    assert any("not valid JSON" in m for m in messages)
    assert any("no closing delimiter" in m for m in messages)
    assert any("takes multipart/form-data" in m for m in messages)
    assert any("file must be uploaded as a file part" in m for m in messages)
    assert any("other must be a text field" in m for m in messages)


def test_multipart_json_string_fields_are_read_by_type(openai_spec: SpecValidator) -> None:
    fake = FakeOpenAI(check_request=openai_spec.check_request)
    with fake.http_client(headers={"Authorization": "Bearer sk-x"}) as http:
        response = http.post(
            f"{fake.base_url}/audio/transcriptions",
            data={
                "model": "gpt-4o-transcribe-diarize",
                "chunking_strategy": json.dumps({"type": "server_vad", "threshold": 0.3}),
                "response_format": "diarized_json",
                "stream": "false",
                "temperature": "0",
            },
            files={"file": ("a.flac", cv.Audio.silence(1.0).encode("flac"), "audio/flac")},
        )
    assert response.status_code == 200, response.text
    assert fake.violations == ()
    instance, problems = openai_spec.form_instance(
        "CreateTranscriptionRequest", fake.last_request().params
    )
    assert problems == []
    assert instance["chunking_strategy"] == {"type": "server_vad", "threshold": 0.3}
    assert instance["stream"] is False and instance["temperature"] == 0


def test_spec_validator_nullable_and_response_checks(openai_spec: SpecValidator) -> None:
    ok = {
        "model": TEXT,
        "messages": [{"role": "user", "content": "x"}],
        "max_completion_tokens": None,  # nullable: true in the spec
        "n": None,
    }
    assert openai_spec.validate("CreateChatCompletionRequest", ok) == []
    assert openai_spec.validate("CreateChatCompletionRequest", {**ok, "n": "two"}) != []
    broken = {"type": "response.output_text.delta", "delta": "x", "sequence_number": 0}
    problems = openai_spec.check_response("ResponseStreamEvent", broken)
    assert any("'item_id' is a required property" in p for p in problems)
    assert openai_spec.check_response("NoSuchSchema", {}) == [
        "no schema 'NoSuchSchema' in the spec subset"
    ]


def test_subset_is_what_extract_py_makes_from_the_upstream_spec() -> None:
    upstream = Path(__file__).resolve().parents[2] / "shared" / "openai-openapi" / "openapi.yaml"
    if not upstream.exists():
        pytest.skip("the upstream spec is not next to this checkout")
    yaml = pytest.importorskip("yaml")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with upstream.open("rb") as handle:
        spec = yaml.load(handle, Loader=loader)
    committed = json.loads(SUBSET.read_text(encoding="utf-8"))
    fresh = extract(spec)
    assert fresh["operations"] == committed["operations"]
    assert fresh["components"] == committed["components"]
    assert committed["source"]["commit"] == "f85dbe223d40e1a31cba812ab2d755c7e98a92a3"


def test_fake_answers_validate_against_the_spec(fake_openai: FakeOpenAI) -> None:
    """Every answer kind, checked by the fixture's response hook (no violations at teardown)."""
    client = fake_openai.client(max_retries=0)
    for fmt in ("json", "verbose_json"):
        client.audio.transcriptions.create(model="whisper-1", file=upload(), response_format=fmt)
    list(client.audio.transcriptions.create(model=STT, file=upload(), stream=True))
    client.audio.transcriptions.create(
        model="gpt-4o-transcribe-diarize", file=upload(), response_format="diarized_json"
    )
    client.responses.create(model=TEXT, input="x")
    list(client.responses.create(model=TEXT, input="x", stream=True))
    client.chat.completions.create(model=TEXT, messages=[{"role": "user", "content": "x"}])
    list(
        client.chat.completions.create(
            model=TEXT,
            messages=[{"role": "user", "content": "x"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    client.audio.speech.create(model=TTS, voice="coral", input="x", stream_format="sse")
    fake_openai.fail("speech", 429)
    with pytest.raises(openai.RateLimitError):
        client.audio.speech.create(model=TTS, voice="coral", input="x")
    assert fake_openai.violations == ()


def test_the_fixture_fails_a_test_that_sends_a_bad_request(pytester: pytest.Pytester) -> None:
    here = Path(__file__).parent
    pytester.makeconftest((here / "conftest.py").read_text(encoding="utf-8"))
    (pytester.path / "openapi").symlink_to(here / "openapi", target_is_directory=True)
    pytester.makepyfile(
        test_inner="""
        import openai, pytest

        def test_bad(fake_openai):
            client = fake_openai.client(max_retries=0)
            with pytest.raises(openai.BadRequestError):  # the test "handles" the error...
                client.audio.speech.create(
                    model="gpt-4o-mini-tts", voice="coral", input="x", speed=10
                )

        def test_good(fake_openai):
            fake_openai.client().audio.speech.create(
                model="gpt-4o-mini-tts", voice="coral", input="x", response_format="pcm"
            )
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)  # ...but fails at teardown
    result.stdout.fnmatch_lines(["*FakeOpenAI recorded 2 violation(s) in 1 request(s)*"])
    result.stdout.fnmatch_lines(["*createSpeech: speed: 10 is greater than the maximum of 4*"])


# ------------------------------------------------------------------------- properties

_names = st.text(alphabet=st.characters(codec="ascii", categories=["L", "N"]), min_size=1)


@settings(max_examples=60, deadline=None)
@given(
    fields=st.lists(st.tuples(_names, st.text(max_size=40)), max_size=5, unique_by=lambda f: f[0]),
    data=st.binary(max_size=300),
    filename=st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1, max_size=12),
)
def test_multipart_parser_round_trips_what_httpx_sends(
    fields: list[tuple[str, str]], data: bytes, filename: str
) -> None:
    request = httpx.Request(
        "POST",
        "https://x.test/v1/audio/transcriptions",
        data=dict(fields),
        files={"file": (filename + ".wav", data, "audio/wav")},
    )
    body = request.read()
    parsed_fields, files = parse_multipart(body, request.headers["content-type"])
    assert list(parsed_fields) == fields
    assert [(f.field, f.filename, f.content_type, f.data) for f in files] == [
        ("file", filename + ".wav", "audio/wav", data)
    ]


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_reply_tokens_rejoin_exactly(text: str) -> None:
    tokens = _tokens(text)
    assert "".join(tokens) == text
    assert all(0 < len(t) <= 4 for t in tokens)
