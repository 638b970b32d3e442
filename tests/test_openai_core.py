"""The I/O-free cores of the OpenAI stages: options, requests, parsing, decoding, errors."""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

import httpx2
import numpy as np
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chainvoice as cv
from chainvoice.openai import (
    FRAGMENT_GUARD,
    AsyncOpenAIResponder,
    AsyncOpenAISynthesizer,
    AsyncOpenAITranscriber,
    OpenAIResponder,
    OpenAIStreamingTranscriber,
    OpenAISynthesizer,
    OpenAITranscriber,
    _common,
    _errors,
    _models,
    _synthesizer,
    split_for_speech,
)
from chainvoice.openai._client import redact

KEY = "sk-test-0123456789abcdefSECRET"


@pytest.fixture(autouse=True)
def _before_any_shutdown(monkeypatch: pytest.MonkeyPatch) -> None:
    # Shutdown warnings depend on today's date; these tests name retiring models freely.
    monkeypatch.setattr(_models, "_today", lambda: __import__("datetime").date(2026, 1, 1))


@pytest.fixture
def client() -> openai.OpenAI:
    # A client whose transport refuses to send: these tests never reach the network.
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise AssertionError(f"unexpected request to {request.url}")

    return openai.OpenAI(
        api_key=KEY, http_client=httpx2.Client(transport=httpx2.MockTransport(refuse))
    )


def tone(seconds: float = 1.0, rate: int = 48000, channels: int = 1) -> cv.Audio:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 440 * t)
    return cv.Audio(np.repeat(wave[:, None], channels, axis=1).astype(np.float32), rate)


# ----------------------------------------------------------------------------- transcriber


def test_transcriber_class_depends_on_streaming(client: openai.OpenAI) -> None:
    streaming = OpenAITranscriber(client=client)
    assert isinstance(streaming, OpenAIStreamingTranscriber)
    assert isinstance(streaming, cv.StreamingTranscriber)
    off = OpenAITranscriber(client=client, stream=False)
    assert type(off) is OpenAITranscriber and not hasattr(off, "transcribe_stream")
    assert isinstance(off, cv.Transcriber) and not isinstance(off, cv.StreamingTranscriber)
    whisper = OpenAITranscriber("whisper-1", client=client)
    assert not hasattr(whisper, "transcribe_stream")
    unknown = OpenAITranscriber("Systran/faster-whisper-small", client=client)
    assert not hasattr(unknown, "transcribe_stream")
    forced = OpenAITranscriber("Systran/faster-whisper-small", client=client, stream=True)
    assert hasattr(forced, "transcribe_stream")
    with pytest.raises(cv.UnsupportedParameterError, match=r"does not stream.*gpt-transcribe"):
        OpenAITranscriber("whisper-1", client=client, stream=True)
    with pytest.raises(cv.ConfigurationError, match="does not stream"):
        OpenAIStreamingTranscriber("gpt-transcribe", client=client, stream=False)


def test_transcriber_request_upload_is_16k_mono_wav(client: openai.OpenAI) -> None:
    t = OpenAITranscriber(client=client, stream=False, language="en")
    kwargs = t._core.request(tone(1.0, 48000, channels=2), stream=False)
    name, data, ctype = kwargs["file"]
    assert (name, ctype) == ("audio.wav", "audio/wav")
    decoded = cv.Audio.from_bytes(data)
    assert (decoded.rate, decoded.channels, decoded.frames) == (16000, 1, 16000)
    assert kwargs["model"] == "gpt-transcribe"
    assert kwargs["language"] == "en" and kwargs["response_format"] == "json"
    assert "stream" not in kwargs
    low = t._core.request(tone(0.5, 8000), stream=True)
    assert cv.Audio.from_bytes(low["file"][1]).rate == 8000  # not upsampled
    assert low["stream"] is True


def test_transcriber_rejects_empty_and_too_long_audio(client: openai.OpenAI) -> None:
    t = OpenAITranscriber(client=client)
    with pytest.raises(cv.EmptyAudioError):
        t._core.request(cv.Audio(np.zeros((0, 1), np.float32), 16000), stream=True)
    with pytest.raises(TypeError, match="Audio"):
        t._core.request(b"RIFF", stream=True)  # type: ignore[arg-type]
    long = OpenAITranscriber("gpt-4o-transcribe", client=client)
    with pytest.raises(cv.AudioError, match="1500 s"):
        long._core.request(cv.Audio.silence(1501, rate=8000), stream=True)


def test_transcriber_upload_limit(client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    t = OpenAITranscriber(client=client, upload_format="wav")
    t._core.limit = 10_000
    with pytest.raises(cv.AudioError, match="upload limit"):
        t._core.request(tone(1.0, 16000), stream=True)
    auto = OpenAITranscriber(client=client)
    auto._core.limit = 10_000

    def no_ffmpeg(self: cv.Audio, fmt: str = "wav", **_: Any) -> bytes:
        raise cv.FFmpegNotFoundError("no ffmpeg here")

    monkeypatch.setattr(cv.Audio, "encode", no_ffmpeg)
    with pytest.raises(cv.AudioError, match="FLAC needs ffmpeg"):
        auto._core.request(tone(1.0, 16000), stream=True)


def test_transcriber_auto_falls_back_to_flac(client: openai.OpenAI) -> None:
    pytest.importorskip("imageio_ffmpeg")
    t = OpenAITranscriber(client=client)
    audio = tone(2.0, 16000)
    t._core.limit = len(audio.to_wav()) - 1
    name, data, ctype = t._core.request(audio, stream=True)["file"]
    assert (name, ctype) == ("audio.flac", "audio/flac")
    assert data[:4] == b"fLaC" and len(data) < t._core.limit


def test_transcriber_options_checked_against_the_model(client: openai.OpenAI) -> None:
    with pytest.raises(cv.UnsupportedParameterError, match=r"keywords.*gpt-transcribe"):
        OpenAITranscriber("gpt-4o-transcribe", client=client, keywords=["chainvoice"])
    with pytest.raises(cv.UnsupportedParameterError, match=r"logprobs.*gpt-4o-transcribe"):
        OpenAITranscriber(client=client, include=["logprobs"])
    with pytest.raises(cv.UnsupportedParameterError, match=r"timestamp_granularities.*whisper-1"):
        OpenAITranscriber("gpt-4o-transcribe", client=client, timestamp_granularities=["word"])
    with pytest.raises(cv.UnsupportedParameterError, match="prompt"):
        OpenAITranscriber("gpt-4o-transcribe-diarize", client=client, prompt="x")
    with pytest.raises(cv.UnsupportedParameterError, match="known speakers"):
        OpenAITranscriber("gpt-4o-transcribe", client=client, known_speakers={"a": "data:x"})
    with pytest.raises(cv.ConfigurationError, match="between 0 and 1"):
        OpenAITranscriber(client=client, temperature=1.5)
    with pytest.raises(cv.ConfigurationError, match="list of strings"):
        OpenAITranscriber(client=client, keywords="chainvoice")  # type: ignore[arg-type]
    with pytest.raises(cv.ConfigurationError, match="at least 1"):
        OpenAITranscriber(client=client, languages=[])
    with pytest.raises(cv.ConfigurationError, match="only 'logprobs'"):
        OpenAITranscriber("gpt-4o-transcribe", client=client, include=["segments"])
    with pytest.raises(cv.ConfigurationError, match="'word' and/or 'segment'"):
        OpenAITranscriber("whisper-1", client=client, timestamp_granularities=["char"])  # type: ignore[list-item]
    with pytest.raises(cv.ConfigurationError, match="subtitles"):
        OpenAITranscriber("whisper-1", client=client, response_format="srt")  # type: ignore[arg-type]
    with pytest.raises(cv.ConfigurationError, match="verbose_json"):
        OpenAITranscriber("x", client=client, timestamp_granularities=["word"], stream=True)
    with pytest.raises(cv.UnsupportedParameterError, match="verbose_json"):
        OpenAITranscriber("gpt-4o-transcribe", client=client, response_format="verbose_json")
    with pytest.raises(cv.ConfigurationError, match="chunking_strategy"):
        OpenAITranscriber(client=client, chunking_strategy="manual")
    with pytest.raises(cv.ConfigurationError, match="upload_format"):
        OpenAITranscriber(client=client, upload_format="mp3")  # type: ignore[arg-type]
    # Any option goes to a model the table does not know.
    OpenAITranscriber("my-model", client=client, keywords=["a"], include=["logprobs"])


def test_transcriber_every_option_reaches_the_request(client: openai.OpenAI) -> None:
    t = OpenAITranscriber(
        client=client,
        language="de",
        languages=["de", "en"],
        prompt="Chainvoice, OpenAI",
        temperature=0.2,
        keywords=["chainvoice"],
        chunking_strategy={"type": "server_vad", "threshold": 0.4},
        extra_body={"future_option": 1},
    )
    kwargs = t._core.request(tone(0.2), stream=True)
    assert kwargs["languages"] == ["de", "en"] and kwargs["keywords"] == ["chainvoice"]
    assert kwargs["prompt"] == "Chainvoice, OpenAI" and kwargs["temperature"] == 0.2
    assert kwargs["chunking_strategy"] == {"type": "server_vad", "threshold": 0.4}
    assert kwargs["extra_body"] == {"future_option": 1}
    w = OpenAITranscriber("whisper-1", client=client, timestamp_granularities=["word", "segment"])
    kw = w._core.request(tone(0.2), stream=False)
    assert kw["response_format"] == "verbose_json"
    assert kw["timestamp_granularities"] == ["word", "segment"]


def test_diarization_request(client: openai.OpenAI) -> None:
    ref = tone(3.0, 16000)
    t = OpenAITranscriber(
        "gpt-4o-transcribe-diarize", client=client, known_speakers={"agent": ref, "customer": ref}
    )
    short = t._core.request(tone(1.0), stream=True)
    assert short["response_format"] == "diarized_json"
    assert "chunking_strategy" not in short
    assert short["known_speaker_names"] == ["agent", "customer"]
    url = short["known_speaker_references"][0]
    assert url.startswith("data:audio/wav;base64,")
    assert cv.Audio.from_bytes(base64.b64decode(url.split(",", 1)[1])).duration == 3.0
    long = t._core.request(cv.Audio.silence(31.0, rate=8000), stream=True)
    assert long["chunking_strategy"] == "auto"  # required by OpenAI beyond 30 s
    with pytest.raises(cv.ConfigurationError, match="2 to 10 seconds"):
        OpenAITranscriber("gpt-4o-transcribe-diarize", client=client, known_speakers={"a": tone(1)})
    with pytest.raises(cv.ConfigurationError, match="at most 4"):
        OpenAITranscriber(
            "gpt-4o-transcribe-diarize",
            client=client,
            known_speakers={str(i): "data:audio/wav;base64,AA" for i in range(5)},
        )
    with pytest.raises(cv.ConfigurationError, match="data URL"):
        OpenAITranscriber(
            "gpt-4o-transcribe-diarize", client=client, known_speakers={"a": "agent.wav"}
        )


def test_parse_verbose_json_words_land_in_their_segments(client: openai.OpenAI) -> None:
    t = OpenAITranscriber("whisper-1", client=client, timestamp_granularities=["word", "segment"])
    audio = tone(2.0)
    response = {
        "text": " Hello there. Bye.",
        "language": "english",
        "duration": 2.0,
        "usage": {"type": "duration", "seconds": 2.0},
        "segments": [
            {"id": 0, "start": 0.0, "end": 1.0, "text": " Hello there."},
            {"id": 1, "start": 1.0, "end": 2.0, "text": " Bye."},
        ],
        "words": [
            {"word": "Hello", "start": 0.0, "end": 0.4},
            {"word": "there", "start": 0.5, "end": 0.9},
            {"word": "Bye", "start": 1.2, "end": 1.5},
        ],
    }
    tr = t._core.parse(response, audio)
    assert tr.text == "Hello there. Bye." and tr.language == "en" and tr.duration == 2.0
    assert [w.text for w in tr.segments[0].words] == ["Hello", "there"]
    assert [w.text for w in tr.segments[1].words] == ["Bye"]
    assert tr.usage is not None
    assert tr.usage.audio_seconds == 2.0
    assert tr.usage.cost_usd == pytest.approx(0.006 * 2 / 60)


def test_parse_diarized_and_tokens(client: openai.OpenAI) -> None:
    t = OpenAITranscriber("gpt-4o-transcribe-diarize", client=client, stream=False)
    response = {
        "task": "transcribe",
        "duration": 4.0,
        "text": "Hi. Hello.",
        "segments": [
            {
                "id": "s1",
                "type": "transcript.text.segment",
                "start": 0,
                "end": 1,
                "text": "Hi.",
                "speaker": "A",
            },
            {
                "id": "s2",
                "type": "transcript.text.segment",
                "start": 1,
                "end": 4,
                "text": "Hello.",
                "speaker": "B",
            },
        ],
        "usage": {
            "type": "tokens",
            "input_tokens": 100,
            "output_tokens": 10,
            "total_tokens": 110,
            "input_token_details": {"audio_tokens": 90, "text_tokens": 10},
        },
    }
    tr = t._core.parse(response, tone(4.0))
    assert tr.speakers == ("A", "B")
    assert tr.usage is not None
    assert (tr.usage.input_audio_tokens, tr.usage.input_text_tokens) == (90, 10)
    assert tr.usage.output_text_tokens == 10
    assert tr.usage.cost_usd == pytest.approx((90 * 6 + 10 * 2.5 + 10 * 10) / 1e6)


def test_parse_plain_text_and_missing_usage(client: openai.OpenAI) -> None:
    t = OpenAITranscriber("local-whisper", client=client, response_format="text")
    tr = t._core.parse("  hello \n", tone(1.0))
    assert tr.text == "hello" and tr.duration == 1.0
    assert tr.usage is not None and tr.usage.cost_usd is None
    assert tr.usage.unpriced == ("local-whisper",)


def test_stream_reader_logprobs_and_premature_end(client: openai.OpenAI) -> None:
    t = OpenAITranscriber("gpt-4o-mini-transcribe", client=client, include=["logprobs"])
    reader = t._core.reader(tone(1.0))
    lp = [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105]}]
    assert reader.feed({"type": "transcript.text.delta", "delta": "Hi", "logprobs": lp}) == ["Hi"]
    assert reader.feed({"type": "transcript.text.delta", "delta": ""}) == []
    with pytest.raises(cv.StreamInterruptedError, match=r"transcript\.text\.done"):
        reader.finish()
    (final,) = reader.feed({"type": "transcript.text.done", "text": "Hi"})
    assert isinstance(final, cv.Transcript)
    assert final.logprobs == (cv.Logprob(token="Hi", logprob=-0.1, bytes=(72, 105)),)
    reader.finish()


# -------------------------------------------------------------------------------- responder


def test_responses_request(client: openai.OpenAI) -> None:
    r = OpenAIResponder(client=client, instructions="Speak plainly.", max_output_tokens=50)
    conv = cv.Conversation(instructions="You are a clinic's assistant.").add("user", "Hi")
    conv = conv.add("assistant", "Hello!", interrupted=True).add("user", "Book me in.")
    kwargs = r._core.request(conv)
    assert kwargs["instructions"] == "You are a clinic's assistant.\n\nSpeak plainly."
    assert kwargs["input"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Book me in."},
    ]
    assert kwargs["store"] is False and kwargs["stream"] is True
    assert kwargs["reasoning"] == {"effort": "none"}  # the fastest effort, for speech
    assert kwargs["max_output_tokens"] == 50 and "temperature" not in kwargs
    with pytest.raises(cv.ConfigurationError, match="no messages"):
        r._core.request(cv.Conversation(instructions="x"))


def test_chat_request(client: openai.OpenAI) -> None:
    r = OpenAIResponder(
        "gpt-4o-mini",
        api="chat",
        client=client,
        temperature=0.3,
        max_output_tokens=20,
        store=True,
        extra_body={"seed": 7},
    )
    kwargs = r._core.request(cv.Conversation(instructions="Be brief.").add("user", "Hi"))
    assert kwargs["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert kwargs["stream_options"] == {"include_usage": True}
    assert kwargs["max_completion_tokens"] == 20 and kwargs["temperature"] == 0.3
    assert kwargs["store"] is True and kwargs["extra_body"] == {"seed": 7}
    assert "reasoning_effort" not in kwargs  # gpt-4o-mini does not reason
    high = OpenAIResponder("gpt-5-mini", api="chat", client=client, reasoning_effort="high")
    assert high._core.request(cv.Conversation().add("user", "x"))["reasoning_effort"] == "high"
    none = OpenAIResponder("gpt-6-luna", client=client, reasoning_effort=None)
    assert "reasoning" not in none._core.request(cv.Conversation().add("user", "x"))


def test_responder_option_errors(client: openai.OpenAI) -> None:
    with pytest.raises(cv.UnsupportedParameterError, match="temperature"):
        OpenAIResponder("gpt-5-mini", client=client, temperature=0.5)
    with pytest.raises(cv.UnsupportedParameterError, match="reasoning_effort"):
        OpenAIResponder("gpt-4o-mini", client=client, reasoning_effort="low")
    with pytest.raises(cv.ConfigurationError, match="api"):
        OpenAIResponder(client=client, api="completions")  # type: ignore[arg-type]
    with pytest.raises(cv.ConfigurationError, match="positive integer"):
        OpenAIResponder(client=client, max_output_tokens=0)
    with pytest.raises(cv.ConfigurationError, match="between 0 and 2"):
        OpenAIResponder(client=client, temperature=3)
    with pytest.raises(cv.ConfigurationError, match="model"):
        OpenAIResponder("", client=client)


def test_responses_reader(client: openai.OpenAI) -> None:
    r = OpenAIResponder(client=client)
    reader = r._core.reader()
    assert reader.feed({"type": "response.created"}) == []
    assert reader.feed({"type": "response.output_text.delta", "delta": "Hi"}) == ["Hi"]
    assert reader.feed({"type": "response.refusal.delta", "delta": "No."}) == ["No."]
    with pytest.raises(cv.StreamInterruptedError, match=r"response.completed"):
        reader.finish()
    usage = {
        "input_tokens": 1000,
        "output_tokens": 100,
        "total_tokens": 1100,
        "input_tokens_details": {"cached_tokens": 400},
    }
    (item,) = reader.feed({"type": "response.completed", "response": {"usage": usage}})
    assert isinstance(item, cv.Usage)
    assert item.cost_usd == pytest.approx((600 * 0.10 + 400 * 0.01 + 100 * 0.50) / 1e6)
    assert reader.finish() == []
    failed = r._core.reader()
    with pytest.raises(cv.ServerError, match="overloaded"):
        failed.feed(
            {
                "type": "response.failed",
                "response": {"error": {"code": "server_error", "message": "overloaded"}},
            }
        )
    with pytest.raises(cv.BadRequestError, match="too long"):
        r._core.reader().feed(
            {"type": "error", "code": "context_length_exceeded", "message": "too long"}
        )


def test_chat_reader_without_usage(client: openai.OpenAI) -> None:
    r = OpenAIResponder("llama3", api="chat", client=client)
    reader = r._core.reader()
    assert reader.feed({"choices": [{"delta": {"role": "assistant"}}]}) == []
    assert reader.feed({"choices": [{"delta": {"content": "Hi"}}]}) == ["Hi"]
    with pytest.raises(cv.StreamInterruptedError, match="finish reason"):
        reader.finish()
    reader.feed({"choices": [{"delta": {}, "finish_reason": "stop"}]})
    (usage,) = reader.finish()
    assert usage.cost_usd is None and usage.unpriced == ("llama3",) and usage.requests == 1


def test_chat_reader_error_chunk(client: openai.OpenAI) -> None:
    r = OpenAIResponder("llama3", api="chat", client=client)
    reader = r._core.reader()
    assert reader.feed({"choices": [{"delta": {"content": "Hi"}}]}) == ["Hi"]
    with pytest.raises(cv.ServerError, match="overloaded"):
        reader.feed({"error": {"message": "the model is overloaded", "code": "server_error"}})
    with pytest.raises(cv.BadRequestError, match="too long"):
        r._core.reader().feed({"error": {"message": "too long", "code": "context_length_exceeded"}})


def test_unpriced_says_why_the_cost_is_unknown() -> None:
    from chainvoice.openai._common import TokenCounts, make_usage

    tokens = TokenCounts(input_text=10, input_audio=90, output_text=5)
    text_only = cv.openai.Price(input_per_mtok=1.0, output_per_mtok=2.0)

    def unpriced(price: cv.openai.Price | None, counted: TokenCounts | None) -> tuple[str, ...]:
        usage = make_usage(stage="transcribe", model="m", price=price, tokens=counted)
        assert usage.cost_usd is None
        return usage.unpriced

    assert unpriced(None, tokens) == ("m",)  # no price: the bare model name
    assert unpriced(None, None) == ("m",)
    assert unpriced(text_only, None) == ("m (the server reported no usage)",)
    assert unpriced(text_only, TokenCounts()) == ("m (the server reported no usage)",)
    assert unpriced(text_only, tokens) == ("m (its price has no rate for input audio tokens)",)
    no_output = cv.openai.Price(input_per_mtok=1.0)
    assert unpriced(no_output, TokenCounts(input_text=10, output_audio=3, output_text=1)) == (
        "m (its price has no rate for output text or output audio tokens)",
    )
    # A price per minute still prices audio when the tokens are missing: no entry at all.
    per_minute = make_usage(
        stage="transcribe",
        model="m",
        price=cv.openai.Price(per_minute=0.006),
        audio_seconds=30.0,
        minutes_billed=True,
    )
    assert per_minute.cost_usd == pytest.approx(0.003) and per_minute.unpriced == ()


# ------------------------------------------------------------------------------ synthesizer


@given(st.text(alphabet=st.sampled_from("ab1 .!?\n。"), max_size=300), st.integers(1, 40))
@settings(max_examples=150, deadline=None)
def test_split_for_speech_keeps_text_and_limit(text: str, limit: int) -> None:
    pieces = split_for_speech(text, limit)
    assert all(len(p) <= limit and p.strip() for p in pieces)
    # The pieces are the text in order; only whitespace falls between them.
    pos = 0
    for piece in pieces:
        start = text.index(piece, pos)
        assert not text[pos:start].strip()
        pos = start + len(piece)
    assert not text[pos:].strip()


def test_split_for_speech_prefers_sentence_ends() -> None:
    text = "First sentence here. Second one! Third?"
    assert split_for_speech(text, 25) == ["First sentence here.", " Second one! Third?"]
    assert split_for_speech("   \n ", 10) == []
    assert split_for_speech("short", 4096) == ["short"]
    assert split_for_speech("abcdefghij", 4) == ["abcd", "efgh", "ij"]
    # A "." at the edge of the limit is not a sentence end when a digit follows.
    assert split_for_speech("Pi is 3.14", 8) == ["Pi is", " 3.14"]


def test_synthesizer_request_and_guard(client: openai.OpenAI) -> None:
    s = OpenAISynthesizer(client=client, voice="marin", instructions="Warm doctor.", speed=1.2)
    kwargs = s._core.request("Hello.")
    assert kwargs == {
        "model": "gpt-4o-mini-tts",
        "voice": "marin",
        "input": "Hello.",
        "response_format": "pcm",
        "instructions": "Warm doctor.\n\n" + FRAGMENT_GUARD,
        "speed": 1.2,
    }
    plain = OpenAISynthesizer(client=client, fragment_guard=False)
    assert "instructions" not in plain._core.request("x")
    guard_only = OpenAISynthesizer(client=client)
    assert guard_only._core.request("x")["instructions"] == FRAGMENT_GUARD
    old = OpenAISynthesizer("tts-1", client=client, voice={"id": "voice_123"})
    assert "instructions" not in old._core.request("x")  # tts-1 takes none: no guard
    assert old._core.request("x")["voice"] == {"id": "voice_123"}
    kokoro = OpenAISynthesizer("kokoro", client=client, voice="af_bella")
    assert "instructions" not in kokoro._core.request("x")
    sse = OpenAISynthesizer(client=client, stream_format="sse", response_format="wav")
    assert sse._core.request("x")["stream_format"] == "sse"


def test_synthesizer_option_errors(client: openai.OpenAI) -> None:
    with pytest.raises(cv.UnsupportedParameterError, match=r"instructions.*gpt-4o-mini-tts"):
        OpenAISynthesizer("tts-1", client=client, instructions="Be warm.")
    with pytest.raises(cv.UnsupportedParameterError, match="sse"):
        OpenAISynthesizer("tts-1-hd", client=client, stream_format="sse")
    with pytest.raises(cv.ConfigurationError, match=r"0.25 and 4.0"):
        OpenAISynthesizer(client=client, speed=5)
    with pytest.raises(cv.ConfigurationError, match="response_format"):
        OpenAISynthesizer(client=client, response_format="ogg")  # type: ignore[arg-type]
    with pytest.raises(cv.ConfigurationError, match="stream_format"):
        OpenAISynthesizer(client=client, stream_format="chunks")  # type: ignore[arg-type]
    with pytest.raises(cv.ConfigurationError, match="voice"):
        OpenAISynthesizer(client=client, voice={"name": "x"})
    with pytest.raises(cv.ConfigurationError, match="voice"):
        OpenAISynthesizer(client=client, voice=" ")
    with pytest.raises(cv.ConfigurationError, match="4096"):
        OpenAISynthesizer(client=client, instructions="x" * 4090)
    with pytest.raises(cv.ConfigurationError, match="pcm_rate"):
        OpenAISynthesizer(client=client, pcm_rate=0)
    with pytest.raises(cv.ConfigurationError, match="chunk_size"):
        OpenAISynthesizer(client=client, chunk_size=1)


def pcm_bytes(frames: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    return rng.integers(-30000, 30000, frames, dtype=np.int16).astype("<i2").tobytes()


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


@given(st.lists(st.integers(0, 2000), max_size=12))
@settings(max_examples=60, deadline=None)
def test_pcm_reader_carries_odd_bytes_across_any_boundaries(cuts: list[int]) -> None:
    data = pcm_bytes(900)
    reader = _synthesizer._AudioReader("audio/pcm", "pcm", 24000)
    chunks = [a for part in cut(data, cuts) for a in reader.feed(part)] + reader.finish()
    joined = cv.Audio.concat(chunks)
    assert joined.rate == 24000 and joined.to_pcm16() == data
    assert reader.seconds == pytest.approx(900 / 24000)


@given(st.lists(st.integers(0, 3000), max_size=12))
@settings(max_examples=60, deadline=None)
def test_wav_stream_reader_any_boundaries(cuts: list[int]) -> None:
    audio = cv.Audio.from_pcm16(pcm_bytes(1000, 1), rate=22050)
    wav = audio.to_wav()
    # A streamed WAV does not know its length: the data size is 0xFFFFFFFF.
    streamed = wav[:40] + b"\xff\xff\xff\xff" + wav[44:]
    reader = _synthesizer._AudioReader("audio/wav", "pcm", 24000)
    chunks = [a for part in cut(streamed, cuts) for a in reader.feed(part)] + reader.finish()
    joined = cv.Audio.concat(chunks)
    assert joined.rate == 22050 and joined == audio


def test_audio_reader_trusts_content_type_and_bytes() -> None:
    wav = cv.Audio.from_pcm16(pcm_bytes(100), rate=16000).to_wav()
    # Asked for pcm, told nothing useful, got WAV: the bytes say so.
    reader = _synthesizer._AudioReader("application/octet-stream", "pcm", 24000)
    (chunk,) = reader.feed(wav)
    assert chunk.rate == 16000
    # Labelled raw PCM but carrying a WAV header: the header wins.
    (chunk,) = _synthesizer._AudioReader("audio/pcm", "pcm", 24000).feed(wav)
    assert chunk.rate == 16000 and chunk.frames == 100
    # Rate and channels from the Content-Type's parameters.
    stereo = _synthesizer._AudioReader("audio/L16; rate=8000; channels=2", "pcm", 24000)
    (chunk,) = stereo.feed(pcm_bytes(100))
    assert (chunk.rate, chunk.channels, chunk.frames) == (8000, 2, 50)
    # Fewer than 12 bytes in all: decided at the end.
    tiny = _synthesizer._AudioReader(None, "pcm", 24000)
    assert tiny.feed(b"\x01\x00") == []
    (chunk,) = tiny.finish()
    assert chunk.frames == 1


def test_audio_reader_compressed_formats_arrive_whole() -> None:
    pytest.importorskip("imageio_ffmpeg")
    mp3 = tone(0.5, 24000).encode("mp3")
    reader = _synthesizer._AudioReader("audio/mpeg", "pcm", 24000)
    assert reader.feed(mp3[:100]) == [] and reader.feed(mp3[100:]) == []
    (chunk,) = reader.finish()
    assert 0.4 < chunk.duration < 0.7


def test_synthesizer_rejects_json_answers(client: openai.OpenAI) -> None:
    s = OpenAISynthesizer(client=client)
    with pytest.raises(cv.ServerError, match="application/json"):
        s._core.reader("application/json")


def test_sse_reader(client: openai.OpenAI) -> None:
    s = OpenAISynthesizer(client=client, stream_format="sse")
    reader = s._core.reader("text/event-stream")
    assert isinstance(reader, _synthesizer._SseReader)
    data = pcm_bytes(300)
    events = [
        {"type": "speech.audio.delta", "audio": base64.b64encode(data[:301]).decode()},
        {"type": "speech.audio.delta", "audio": base64.b64encode(data[301:]).decode()},
        {
            "type": "speech.audio.done",
            "usage": {"input_tokens": 5, "output_tokens": 50, "total_tokens": 55},
        },
    ]
    out: list[cv.Audio] = []
    for e in events:
        out += reader.feed(f"event: {e['type']}\r\ndata: {json.dumps(e)}\r\n\r\n".encode())
    out += reader.finish()
    assert cv.Audio.concat(out).to_pcm16() == data
    usage = s._core.usage("Hello", reader)
    assert (usage.input_text_tokens, usage.output_audio_tokens) == (5, 50)
    assert usage.cost_usd == pytest.approx((5 * 0.60 + 50 * 12.0) / 1e6)
    assert usage.characters == 5 and usage.audio_seconds == pytest.approx(300 / 24000)
    cut_short = s._core.reader("text/event-stream")
    with pytest.raises(cv.StreamInterruptedError, match=r"speech.audio.done"):
        cut_short.finish()
    bad = s._core.reader("text/event-stream")
    bad.feed(b'data: {"type": "speech.audio.delta", "audio": "***"}\n')
    with pytest.raises(cv.ServerError, match="base64"):
        bad.feed(b"\n")


SSE_BODY = (
    b": a comment\r\n"
    b"event: response.output_text.delta\r\n"
    b'data: {"type": "d", "delta": "Hi"}\r\n'
    b"\r\n"
    b"id: 7\n"
    b'data: {"type": "m",\n'
    b'data: "n": 2}\n'
    b"\n"
    b'data:{"type": "cr"}\r'
    b"\r"
    b"data: [DONE]\n\n"
)


@pytest.mark.parametrize("cut", ["whole", "bytewise", "pairs"])
def test_sse_decoder_splits_events_wherever_the_bytes_are_cut(cut: str) -> None:
    decoder = _common.SseDecoder("the reply stream")
    if cut == "whole":
        pieces = [SSE_BODY]
    else:
        step = 1 if cut == "bytewise" else 2
        pieces = [SSE_BODY[i : i + step] for i in range(0, len(SSE_BODY), step)]
    events = [e for piece in pieces for e in decoder.feed(piece)] + decoder.finish()
    assert events == [{"type": "d", "delta": "Hi"}, {"type": "m", "n": 2}, {"type": "cr"}]
    assert decoder.ended


def test_sse_decoder_last_event_without_blank_line_and_bad_json() -> None:
    decoder = _common.SseDecoder("the reply stream")
    assert decoder.feed(b'data: {"a": 1}') == []
    assert decoder.finish() == [{"a": 1}] and not decoder.ended
    with pytest.raises(cv.ServerError, match="the reply stream sent an event that is not JSON"):
        _common.SseDecoder("the reply stream").feed(b"data: {oops\n\n")


def test_speech_usage_costs(client: openai.OpenAI) -> None:
    s = OpenAISynthesizer(client=client)
    reader = s._core.reader("audio/pcm")
    reader.feed(pcm_bytes(24000 * 2))
    usage = s._core.usage("Hi there", reader)  # no tokens without SSE: per-minute estimate
    assert usage.cost_usd == pytest.approx(0.015 * 2 / 60)
    old = OpenAISynthesizer("tts-1", client=client)
    assert old._core.usage("x" * 1000, old._core.reader("audio/pcm")).cost_usd == pytest.approx(
        0.015
    )


# ----------------------------------------------------------------------- clients and errors


def test_reprs_never_show_the_key(client: openai.OpenAI) -> None:
    stages = [
        OpenAITranscriber(client=client),
        OpenAIResponder(client=client),
        OpenAISynthesizer(client=client),
        OpenAITranscriber(api_key=KEY, stream=False),
        OpenAIResponder(api_key=KEY, base_url="http://localhost:8000/v1"),
        AsyncOpenAISynthesizer(api_key=KEY),
    ]
    for stage in stages:
        assert KEY not in repr(stage) and "SECRET" not in repr(stage)
        assert "base_url=" in repr(stage)


def test_environment_and_missing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(cv.AuthenticationError, match="OPENAI_API_KEY"):
        OpenAIResponder()
    # A compatible server may need no key at all.
    local = OpenAIResponder("llama3", api="chat", base_url="http://localhost:11434/v1")
    assert local._setup.base_url == "http://localhost:11434/v1"
    assert not local._setup.official
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    env = OpenAISynthesizer("kokoro")
    assert env._setup.base_url == "http://127.0.0.1:9/v1"
    assert env._setup.client.api_key == KEY and env._setup.price is None


def test_client_kinds_and_settings(client: openai.OpenAI) -> None:
    with pytest.raises(cv.ConfigurationError, match="AsyncOpenAI"):
        AsyncOpenAIResponder(client=client)  # type: ignore[arg-type]
    aclient = openai.AsyncOpenAI(api_key=KEY)
    with pytest.raises(cv.ConfigurationError, match="sync OpenAI client"):
        OpenAIResponder(client=aclient)  # type: ignore[arg-type]
    with pytest.raises(cv.ConfigurationError, match="api_key"):
        OpenAIResponder(client=client, api_key="sk-other")
    tuned = OpenAIResponder(client=client, timeout=3.0, max_retries=0)
    assert tuned._setup.client.timeout == 3.0 and tuned._setup.max_retries == 0
    assert client.max_retries == 2  # the caller's client is left alone
    t = AsyncOpenAITranscriber(client=aclient)
    assert hasattr(t, "transcribe_stream")


def _status_error(
    cls: type[openai.APIStatusError], status: int, body: Any, headers: dict[str, str] | None = None
) -> openai.APIStatusError:
    request = httpx2.Request("POST", "https://api.openai.com/v1/responses")
    response = httpx2.Response(status, headers=headers or {}, request=request, json=body)
    return cls(str(body), response=response, body=body)


CTX = _errors.ErrorContext(
    stage="reply", model="gpt-6-luna", base_url="https://api.openai.com/v1", secrets=(KEY,)
)


@pytest.mark.parametrize(
    ("cls", "status", "expected"),
    [
        (openai.AuthenticationError, 401, cv.AuthenticationError),
        (openai.PermissionDeniedError, 403, cv.AuthenticationError),
        (openai.NotFoundError, 404, cv.NotFoundError),
        (openai.BadRequestError, 400, cv.BadRequestError),
        (openai.UnprocessableEntityError, 422, cv.BadRequestError),
        (openai.RateLimitError, 429, cv.RateLimitError),
        (openai.InternalServerError, 500, cv.ServerError),
        (openai.InternalServerError, 503, cv.ServerError),
    ],
)
def test_status_errors_map(
    cls: type[openai.APIStatusError], status: int, expected: type[Exception]
) -> None:
    body = {"error": {"message": f"Incorrect API key provided: {KEY}", "type": "x"}}
    exc = _status_error(cls, status, body)
    err = _errors.translate(exc, CTX)
    assert type(err) is expected
    assert isinstance(err, cv.APIError) and err.status_code == status
    assert KEY not in str(err) and "Incorrect API key provided" in str(err)
    if expected is cv.NotFoundError:
        assert "'gpt-6-luna'" in str(err)


def test_rate_limit_retry_after() -> None:
    for headers, expected in [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "7"}, 7.0),
        ({"Retry-After": "2.5"}, 2.5),
        ({}, None),
        ({"retry-after": "soon"}, None),
    ]:
        exc = _status_error(openai.RateLimitError, 429, {"error": {"message": "slow"}}, headers)
        err = _errors.translate(exc, CTX)
        assert isinstance(err, cv.RateLimitError) and err.retry_after == expected
    dated = _errors.parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert dated == 0.0


def test_transport_errors_map() -> None:
    request = httpx2.Request("POST", "https://api.openai.com/v1/responses")
    assert isinstance(
        _errors.translate(openai.APITimeoutError(request=request), CTX), cv.APITimeoutError
    )
    conn = _errors.translate(openai.APIConnectionError(request=request), CTX)
    assert isinstance(conn, cv.APIConnectionError) and isinstance(conn, ConnectionError)
    cut_ = _errors.translate(httpx2.RemoteProtocolError("peer closed"), CTX)
    assert isinstance(cut_, cv.StreamInterruptedError)
    late = _errors.translate(openai.APIConnectionError(request=request), CTX, delivered=True)
    assert isinstance(late, cv.StreamInterruptedError) and "not retried" in str(late)
    assert not isinstance(late, TimeoutError)
    for timeout in (openai.APITimeoutError(request=request), httpx2.ReadTimeout("slow")):
        stalled = _errors.translate(timeout, CTX, delivered=True)
        assert isinstance(stalled, cv.StreamInterruptedError) and isinstance(stalled, TimeoutError)
        assert "not retried" in str(stalled)
    event = openai.APIError("boom " + KEY, request, body={"message": "boom"})
    assert isinstance(_errors.translate(event, CTX), cv.ServerError)


def test_translate_scrubs_the_original_exception_and_its_chain() -> None:
    import traceback

    request = httpx2.Request("POST", "https://api.openai.com/v1/responses")
    secret = "hunter" + "2-xyz"  # made at run time: the traceback's source lines show no value
    secret_ctx = _errors.ErrorContext(
        stage="respond", model="m", base_url="https://api.openai.com/v1", secrets=(secret,)
    )
    try:
        try:
            raise httpx2.ConnectError(f"refused for key {secret} and {KEY}")
        except httpx2.ConnectError as low:
            raise openai.APIConnectionError(message=f"lost {KEY}", request=request) from low
    except openai.APIConnectionError as exc:
        if hasattr(exc, "add_note"):  # Python 3.11+
            exc.add_note(f"note with {secret}")
        error = _errors.translate(exc, secret_ctx)
        try:
            raise error from exc
        except cv.APIError as raised:
            shown = "".join(traceback.format_exception(raised))
    assert secret not in shown and KEY not in shown, shown
    assert "refused for key [redacted]" in shown and "lost sk-[redacted]" in shown
    assert not hasattr(error, "add_note") or "note with [redacted]" in shown


def test_language_names_become_codes() -> None:
    from chainvoice.openai._transcriber import language_code

    assert language_code("english") == "en" and language_code("English") == "en"
    assert language_code(" french ") == "fr"
    assert language_code("castilian") == "es" and language_code("haitian creole") == "ht"
    assert language_code("cantonese") == "yue" and language_code("jw") == "jv"
    assert language_code("en") == "en"  # a code stays as it is
    assert language_code("klingon") == "klingon"  # an unknown name is kept as the server sent it
    t = OpenAITranscriber("whisper-1", client=openai.OpenAI(api_key="sk-x"), stream=False)
    assert t._core.parse({"text": "Bonjour", "language": "french"}, tone(1.0)).language == "fr"
    assert t._core.parse({"text": "x", "languages": [{"code": "de"}]}, tone(1.0)).language == "de"


def test_redact() -> None:
    assert redact("key sk-proj-abcdefghijklmnop here") == "key sk-[redacted] here"
    assert redact("mine is hunter2hunter2", ["hunter2hunter2"]) == "mine is [redacted]"
