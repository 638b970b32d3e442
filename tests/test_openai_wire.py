"""The OpenAI stages through the real ``openai`` client against FakeOpenAI (no network).

Every request the fake receives is checked against OpenAI's OpenAPI spec (the committed
subset in ``tests/openapi``); a test fails on any violation it did not expect.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterable, Callable, Iterable
from typing import Any

import numpy as np
import pytest

import chainvoice as cv
from chainvoice.openai import (
    FRAGMENT_GUARD,
    AsyncOpenAIResponder,
    AsyncOpenAISynthesizer,
    AsyncOpenAITranscriber,
    OpenAIResponder,
    OpenAISynthesizer,
    OpenAITranscriber,
    _models,
    stages,
)
from chainvoice.testing import FakeOpenAI

OFFICIAL = "https://api.openai.com/v1"  # the fake answers it; OpenAI's prices then apply
KEY = "sk-wire-test-key-0123456789SECRET"


@pytest.fixture(autouse=True)
def _before_any_shutdown(monkeypatch: pytest.MonkeyPatch) -> None:
    # Shutdown warnings depend on today's date; these tests name retiring models freely.
    monkeypatch.setattr(_models, "_today", lambda: dt.date(2026, 1, 1))


MakeFake = Callable[..., FakeOpenAI]


@pytest.fixture
def fake(make_fake_openai: MakeFake) -> FakeOpenAI:
    # Spec-checked (see conftest): any request the real API would refuse fails the test.
    return make_fake_openai(base_url=OFFICIAL, transcripts=["Hello there, how are you?"])


@pytest.fixture(params=[False, True], ids=["sync", "async"])
def asynchronous(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


CLASSES = {
    ("t", False): OpenAITranscriber,
    ("t", True): AsyncOpenAITranscriber,
    ("r", False): OpenAIResponder,
    ("r", True): AsyncOpenAIResponder,
    ("s", False): OpenAISynthesizer,
    ("s", True): AsyncOpenAISynthesizer,
}


def make(kind: str, asynchronous: bool, fake: FakeOpenAI, *args: Any, **kwargs: Any) -> Any:
    client_options = {
        k: kwargs.pop(k) for k in ("max_retries", "timeout", "api_key") if k in kwargs
    }
    client = (fake.async_client if asynchronous else fake.client)(**client_options)
    return CLASSES[(kind, asynchronous)](*args, client=client, **kwargs)


async def _acollect(items: AsyncIterable[Any]) -> list[Any]:
    return [item async for item in items]


def collect(items: Iterable[Any] | AsyncIterable[Any]) -> list[Any]:
    if isinstance(items, AsyncIterable):
        return asyncio.run(_acollect(items))
    return list(items)


def transcribe(stage: Any, audio: cv.Audio) -> cv.Transcript:
    result = stage.transcribe(audio)
    return asyncio.run(result) if asyncio.iscoroutine(result) else result  # type: ignore[no-any-return]


def collect_until_error(items: Iterable[Any] | AsyncIterable[Any]) -> tuple[list[Any], Exception]:
    got: list[Any] = []

    async def run_async() -> None:
        async for item in items:  # type: ignore[union-attr]
            got.append(item)

    try:
        if isinstance(items, AsyncIterable):
            asyncio.run(run_async())
        else:
            for item in items:
                got.append(item)
    except Exception as exc:
        return got, exc
    raise AssertionError(f"no error; got {got!r}")


def speech(seconds: float = 1.0, rate: int = 16000) -> cv.Audio:
    rng = np.random.default_rng(1)
    return cv.Audio(rng.normal(0, 0.1, int(seconds * rate)).astype(np.float32), rate)


def texts(items: list[Any]) -> str:
    return "".join(i for i in items if isinstance(i, str))


def usages(items: list[Any]) -> list[cv.Usage]:
    return [i for i in items if isinstance(i, cv.Usage)]


def audio_of(items: list[Any]) -> cv.Audio:
    return cv.Audio.concat(i for i in items if isinstance(i, cv.Audio))


# ----------------------------------------------------------------------------- transcriber


def test_transcribe_streams_deltas_then_transcript(fake: FakeOpenAI, asynchronous: bool) -> None:
    t = make("t", asynchronous, fake, language="en", keywords=["Chainvoice"], languages=["en"])
    items = collect(t.transcribe_stream(speech(2.0, 48000)))
    final = items[-1]
    assert isinstance(final, cv.Transcript) and final.text == "Hello there, how are you?"
    assert texts(items[:-1]) == final.text and len(items) > 2
    assert final.usage is not None and final.usage.cost_usd == pytest.approx(0.0045 * 2 / 60)
    sent = fake.last_request("transcriptions")
    assert sent.stream and sent.params["model"] == "gpt-transcribe"
    assert sent.params["keywords"] == ["Chainvoice"] and sent.params["language"] == "en"
    assert sent.file is not None
    assert (sent.file.filename, sent.file.content_type) == ("audio.wav", "audio/wav")
    uploaded = cv.Audio.from_bytes(sent.file.data)
    assert (uploaded.rate, uploaded.channels, uploaded.duration) == (16000, 1, 2.0)


def test_transcribe_collects_a_stream(fake: FakeOpenAI, asynchronous: bool) -> None:
    t = make("t", asynchronous, fake, prompt="A friendly greeting.", temperature=0.0)
    tr = transcribe(t, speech())
    assert tr.text == "Hello there, how are you?" and tr.model == "gpt-transcribe"
    assert fake.last_request("transcriptions").params["prompt"] == "A friendly greeting."


def test_transcribe_without_streaming(fake: FakeOpenAI, asynchronous: bool) -> None:
    t = make("t", asynchronous, fake, "gpt-4o-mini-transcribe", stream=False, include=["logprobs"])
    assert not hasattr(t, "transcribe_stream")
    tr = transcribe(t, speech())
    assert tr.text == "Hello there, how are you?"
    assert tr.logprobs and all(isinstance(lp, cv.Logprob) for lp in tr.logprobs)
    assert tr.usage is not None and tr.usage.input_audio_tokens > 0
    assert tr.usage.cost_usd is not None and tr.usage.cost_usd > 0
    sent = fake.last_request("transcriptions")
    assert not sent.stream and sent.params["include"] == ["logprobs"]


def test_transcribe_streamed_logprobs(fake: FakeOpenAI) -> None:
    t = make("t", False, fake, "gpt-4o-transcribe", include=["logprobs"])
    final = collect(t.transcribe_stream(speech()))[-1]
    assert final.logprobs and final.logprobs[0].token


def test_whisper_word_and_segment_timestamps(fake: FakeOpenAI, asynchronous: bool) -> None:
    t = make(
        "t",
        asynchronous,
        fake,
        "whisper-1",
        timestamp_granularities=["word", "segment"],
        language="en",
    )
    tr = transcribe(t, speech(2.0))
    assert tr.words and tr.segments and tr.language
    assert all(0 <= w.start <= w.end <= 2.0 for w in tr.words)
    assert [w.text for s in tr.segments for w in s.words] == [w.text for w in tr.words]
    sent = fake.last_request("transcriptions")
    assert sent.params["response_format"] == "verbose_json"
    assert sent.params["timestamp_granularities"] == ["word", "segment"]
    assert tr.usage is not None and tr.usage.cost_usd == pytest.approx(0.006 * 2 / 60)


def test_every_model_reports_the_language_as_a_code(fake: FakeOpenAI, asynchronous: bool) -> None:
    """``whisper-1`` names the language (``"french"``); the transcript has ``"fr"`` as others."""
    for model, options in [
        ("whisper-1", {"response_format": "verbose_json"}),
        ("gpt-transcribe", {}),
        ("gpt-transcribe", {"stream": False}),
    ]:
        t = make("t", asynchronous, fake, model, language="fr", **options)
        assert transcribe(t, speech()).language == "fr", model
    raw = fake.last_request("transcriptions")
    assert raw.params["language"] == "fr"


def test_diarization(fake: FakeOpenAI, asynchronous: bool) -> None:
    ref = speech(3.0)
    t = make(
        "t",
        asynchronous,
        fake,
        "gpt-4o-transcribe-diarize",
        known_speakers={"agent": ref, "customer": ref},
    )
    fake.add_transcripts("Hi, I am calling about my bill. Sure, let me check that.")
    items = collect(t.transcribe_stream(speech(31.0, 8000)))
    final = items[-1]
    assert final.speakers and all(s.speaker for s in final.segments)
    sent = fake.last_request("transcriptions")
    assert sent.params["response_format"] == "diarized_json"
    assert sent.params["chunking_strategy"] == "auto"
    assert sent.params["known_speaker_names"] == ["agent", "customer"]
    plain = make("t", asynchronous, fake, "gpt-4o-transcribe-diarize", stream=False)
    assert transcribe(plain, speech(2.0)).segments


def test_compatible_server_without_usage(make_fake_openai: MakeFake, asynchronous: bool) -> None:
    fake = make_fake_openai(compatible=True, transcripts=["Hola."])
    t = make("t", asynchronous, fake, "Systran/faster-whisper-small", language="es")
    tr = transcribe(t, speech())
    assert tr.text == "Hola." and tr.duration == 1.0
    assert tr.usage is not None and tr.usage.cost_usd is None
    assert tr.usage.unpriced == ("Systran/faster-whisper-small",)
    assert "unknown" in tr.usage.cost_note
    mine = make(
        "t",
        asynchronous,
        fake,
        "Systran/faster-whisper-small",
        prices={"Systran/faster-whisper-small": cv.openai.Price(per_minute=0.001)},
    )
    assert transcribe(mine, speech(6.0)).usage.cost_usd == pytest.approx(0.0001)  # type: ignore[union-attr]


def test_transcriber_faults(fake: FakeOpenAI, asynchronous: bool) -> None:
    t = make("t", asynchronous, fake, max_retries=0)
    fake.fail("transcriptions", 429, retry_after=3)
    with pytest.raises(cv.RateLimitError) as limited:
        transcribe(t, speech())
    assert limited.value.retry_after == 3.0 and limited.value.__cause__ is not None
    fake.fail("transcriptions", 500)
    with pytest.raises(cv.ServerError):
        transcribe(t, speech())
    fake.fail("transcriptions", 404)
    with pytest.raises(cv.NotFoundError, match="'gpt-transcribe'"):
        transcribe(t, speech())
    fake.fail("transcriptions", 400, message="Audio file might be corrupted or unsupported")
    with pytest.raises(cv.BadRequestError, match="corrupted"):
        transcribe(t, speech())


def test_stream_cut_before_any_text_is_sent_again(fake: FakeOpenAI, asynchronous: bool) -> None:
    t = make("t", asynchronous, fake, max_retries=1)
    fake.cut("transcriptions", after_bytes=0)
    items = collect(t.transcribe_stream(speech()))
    assert isinstance(items[-1], cv.Transcript) and items[-1].text  # the fake's next script
    assert texts(items[:-1]) == items[-1].text
    assert len(fake.requests_to("transcriptions")) == 2


SAID = "Hello there, how are you today?"


def test_stream_cut_after_text_resumes_without_repeating(
    make_fake_openai: MakeFake, asynchronous: bool
) -> None:
    """Transcription is idempotent: sent again, only the text not yet delivered comes out."""
    fake = make_fake_openai(base_url=OFFICIAL)  # nothing queued: only the scripts below
    t = make("t", asynchronous, fake, max_retries=3)
    fake.add_transcripts(SAID, SAID, SAID)
    fake.cut("transcriptions", after_events=2)
    fake.cut("transcriptions", after_events=4)  # the replay is cut too, further on
    items = collect(t.transcribe_stream(speech()))
    deltas = items[:-1]
    assert all(isinstance(d, str) and d for d in deltas)
    assert "".join(deltas) == SAID == items[-1].text
    assert len(fake.requests_to("transcriptions")) == 3


def test_stream_cut_after_text_and_a_different_retry_stops(
    make_fake_openai: MakeFake, asynchronous: bool
) -> None:
    fake = make_fake_openai(base_url=OFFICIAL)  # nothing queued: only the scripts below
    t = make("t", asynchronous, fake, max_retries=3)
    fake.add_transcripts(SAID, "Goodbye now, my friend.")
    fake.cut("transcriptions", after_events=2)
    got, error = collect_until_error(t.transcribe_stream(speech()))
    assert isinstance(error, cv.StreamInterruptedError) and isinstance(error, ConnectionError)
    assert "does not repeat the text delivered" in str(error)
    assert error.__cause__ is not None  # the cut that made it send again
    assert "".join(got) == "Hello" and len(fake.requests_to("transcriptions")) == 2
    # A retry whose text ends short of what was shown stops too, before its transcript.
    fake.add_transcripts(SAID, "Hello")
    fake.cut("transcriptions", after_events=3)
    got, error = collect_until_error(t.transcribe_stream(speech()))
    assert isinstance(error, cv.StreamInterruptedError) and "".join(got) == "Hello the"
    assert not any(isinstance(g, cv.Transcript) for g in got)


def test_stream_cut_after_text_with_no_retries_left(fake: FakeOpenAI, asynchronous: bool) -> None:
    t = make("t", asynchronous, fake, max_retries=0)
    fake.cut("transcriptions", after_events=2)
    got, error = collect_until_error(t.transcribe_stream(speech()))
    assert isinstance(error, cv.StreamInterruptedError) and isinstance(error, ConnectionError)
    assert len(got) == 2 and all(isinstance(g, str) for g in got)
    assert len(fake.requests_to("transcriptions")) == 1
    # Sent again after text, then cut again with the retries spent: says how it went.
    t = make("t", asynchronous, fake, max_retries=1)
    fake.add_transcripts(SAID, SAID)
    fake.cut("transcriptions", after_events=2, times=2)
    got, error = collect_until_error(t.transcribe_stream(speech()))
    assert isinstance(error, cv.StreamInterruptedError)
    assert "sent again 1 time(s)" in str(error) and "retries (max_retries=1) are spent" in str(
        error
    )
    assert "".join(got) == "Hello"  # the replay's first two deltas repeat what was shown


def test_transcribe_collecting_may_retry_after_text(fake: FakeOpenAI) -> None:
    # transcribe() shows nothing until the end, so a cut mid-stream can be sent again.
    t = make("t", False, fake, max_retries=1)
    fake.cut("transcriptions", after_events=2)
    assert transcribe(t, speech()).text
    assert len(fake.requests_to("transcriptions")) == 2


def test_transcription_stall_times_out(fake: FakeOpenAI, asynchronous: bool) -> None:
    t = make("t", asynchronous, fake, stream=False, timeout=0.2, max_retries=0)
    fake.stall("transcriptions")
    with pytest.raises(cv.APITimeoutError) as info:
        transcribe(t, speech())
    assert isinstance(info.value, TimeoutError)


# -------------------------------------------------------------------------------- responder


CONVERSATION = (
    cv.Conversation(instructions="You are a clinic's booking assistant.")
    .add("user", "Hi")
    .add("assistant", "Hello! How can I help?")
    .add("user", "I need an appointment.")
)


@pytest.mark.parametrize("api", ["responses", "chat"])
def test_respond_streams_text_and_usage(fake: FakeOpenAI, asynchronous: bool, api: str) -> None:
    fake.add_replies("Sure. When would you like to come in?")
    r = make("r", asynchronous, fake, api=api, max_output_tokens=200)
    items = collect(r.respond(CONVERSATION))
    assert texts(items) == "Sure. When would you like to come in?"
    (usage,) = usages(items)
    assert usage.stage == "respond" and usage.model == "gpt-6-luna"
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    expected = (usage.input_tokens * 0.10 + usage.output_tokens * 0.50) / 1e6
    assert usage.cost_usd == pytest.approx(expected)
    assert isinstance(items[-1], cv.Usage)
    sent = fake.last_request(api)
    if api == "responses":
        assert sent.params["instructions"] == "You are a clinic's booking assistant."
        assert [m["role"] for m in sent.params["input"]] == ["user", "assistant", "user"]
        assert sent.params["store"] is False
        assert sent.params["reasoning"] == {"effort": "none"}
    else:
        assert sent.params["messages"][0] == {
            "role": "system",
            "content": "You are a clinic's booking assistant.",
        }
        assert sent.params["stream_options"] == {"include_usage": True}
        assert sent.params["max_completion_tokens"] == 200


@pytest.mark.parametrize("api", ["responses", "chat"])
def test_respond_error_event_mid_stream(fake: FakeOpenAI, asynchronous: bool, api: str) -> None:
    """An error event after text was delivered: the text stays delivered, the error is
    the server's own message, and the request is not sent again."""
    fake.add_replies("Sure. When would you like to come in?")
    fake.fail(api, 500, after_events=6, message="The server had an error")
    r = make("r", asynchronous, fake, api=api)
    got: list[Any] = []

    async def drain_async() -> None:
        async for item in r.respond(CONVERSATION):
            got.append(item)

    with pytest.raises(cv.ServerError, match="The server had an error"):
        if asynchronous:
            asyncio.run(drain_async())
        else:
            for item in r.respond(CONVERSATION):
                got.append(item)
    assert texts(got) and not usages(got)
    assert len(fake.requests_to(api)) == 1


def test_respond_every_option(fake: FakeOpenAI, asynchronous: bool) -> None:
    r = make(
        "r",
        asynchronous,
        fake,
        "gpt-4.1-mini",
        instructions="Answer in one sentence.",
        temperature=0.4,
        store=True,
        extra_body={"top_p": 0.9},
    )
    collect(r.respond(CONVERSATION))
    sent = fake.last_request("responses").params
    assert sent["temperature"] == 0.4 and sent["store"] is True and sent["top_p"] == 0.9
    assert sent["instructions"].endswith("\n\nAnswer in one sentence.")
    assert "reasoning" not in sent
    effort = make("r", asynchronous, fake, "gpt-5.6-terra", reasoning_effort="high", api="chat")
    collect(effort.respond(CONVERSATION))
    assert fake.last_request("chat").params["reasoning_effort"] == "high"


@pytest.mark.parametrize("api", ["responses", "chat"])
def test_respond_compatible_server_without_usage(
    make_fake_openai: MakeFake, asynchronous: bool, api: str
) -> None:
    fake = make_fake_openai(compatible=True, replies=["Okay."])
    r = make("r", asynchronous, fake, "qwen2.5:7b", api=api)
    items = collect(r.respond(CONVERSATION))
    assert texts(items) == "Okay."
    (usage,) = usages(items)
    assert usage.cost_usd is None and usage.unpriced == ("qwen2.5:7b",)


@pytest.mark.parametrize("api", ["responses", "chat"])
def test_a_priced_model_on_a_server_without_usage_says_so(
    make_fake_openai: MakeFake, asynchronous: bool, api: str
) -> None:
    """With a price given, the cost is unknown because nothing was counted, not for want of one."""
    fake = make_fake_openai(compatible=True, replies=["Okay."])
    price = cv.openai.Price(input_per_mtok=0.1, output_per_mtok=0.2)
    r = make("r", asynchronous, fake, "qwen2.5:7b", api=api, prices={"qwen2.5:7b": price})
    (usage,) = usages(collect(r.respond(CONVERSATION)))
    assert usage.cost_usd is None
    assert usage.unpriced == ("qwen2.5:7b (the server reported no usage)",)


@pytest.mark.parametrize("api", ["responses", "chat"])
def test_reply_cut_after_text_is_not_repeated(
    fake: FakeOpenAI, asynchronous: bool, api: str
) -> None:
    fake.add_replies("One two three four five six.")
    r = make("r", asynchronous, fake, api=api)
    fake.cut(api, after_events=8)  # past the opening events, inside the text deltas
    got, error = collect_until_error(r.respond(CONVERSATION))
    assert isinstance(error, cv.StreamInterruptedError)
    assert texts(got) and "".join(got) in "One two three four five six."
    assert len(fake.requests_to(api)) == 1


@pytest.mark.parametrize("api", ["responses", "chat"])
def test_reply_cut_before_text_is_sent_again(
    fake: FakeOpenAI, asynchronous: bool, api: str
) -> None:
    fake.add_replies("Fine.", "Fine again.")
    r = make("r", asynchronous, fake, api=api)
    fake.cut(api, after_bytes=0)
    items = collect(r.respond(CONVERSATION))
    assert texts(items) in ("Fine.", "Fine again.") and len(usages(items)) == 1
    assert len(fake.requests_to(api)) == 2


def test_reply_retries_429_with_the_clients_policy(fake: FakeOpenAI, asynchronous: bool) -> None:
    fake.add_replies("After the wait.")
    r = make("r", asynchronous, fake, max_retries=2)
    fake.fail("responses", 429, retry_after_ms=10, times=2)
    assert texts(collect(r.respond(CONVERSATION))) in (
        "After the wait.",
        "You said: I need an appointment.",
    )
    assert len(fake.requests_to("responses")) == 3
    fake.fail("responses", 429, retry_after=1.5, times=3)
    with pytest.raises(cv.RateLimitError) as info:
        collect(make("r", asynchronous, fake, max_retries=0).respond(CONVERSATION))
    assert info.value.retry_after == 1.5


@pytest.mark.parametrize("api", ["responses", "chat"])
def test_reply_error_event_mid_stream(fake: FakeOpenAI, asynchronous: bool, api: str) -> None:
    r = make("r", asynchronous, fake, api=api)
    fake.fail(api, 500, after_events=0, message="The server had an error")
    with pytest.raises(cv.ServerError, match="server had an error"):
        collect(r.respond(CONVERSATION))


def test_reply_stall_mid_stream(fake: FakeOpenAI, asynchronous: bool) -> None:
    fake.add_replies("A long reply that stalls.")
    r = make("r", asynchronous, fake, timeout=0.2, max_retries=0)
    fake.stall("responses", after_events=8)
    got, error = collect_until_error(r.respond(CONVERSATION))
    assert isinstance(error, cv.StreamInterruptedError) and texts(got)
    assert isinstance(error, TimeoutError)
    # Stalled before any text, with no retries left: a timeout.
    fake.stall("responses", after_events=1)
    got, error = collect_until_error(r.respond(CONVERSATION))
    assert isinstance(error, cv.APITimeoutError) and not texts(got)


def test_authentication_error_never_shows_the_key(
    make_fake_openai: MakeFake, asynchronous: bool
) -> None:
    fake = make_fake_openai(base_url=OFFICIAL, api_key="sk-the-right-key-000000")
    stages_ = [
        make("t", asynchronous, fake, api_key=KEY, stream=False),
        make("r", asynchronous, fake, api_key=KEY),
        make("s", asynchronous, fake, api_key=KEY),
    ]
    runs = [
        lambda: transcribe(stages_[0], speech()),
        lambda: collect(stages_[1].respond(CONVERSATION)),
        lambda: collect(stages_[2].synthesize("Hello.")),
    ]
    for stage, run in zip(stages_, runs, strict=True):
        assert KEY not in repr(stage)
        with pytest.raises(cv.AuthenticationError) as info:
            run()
        assert isinstance(info.value, PermissionError) and info.value.status_code == 401
        text = str(info.value) + repr(info.value)
        assert KEY not in text and "SECRET" not in text
        assert "api_key" in str(info.value)
    for request in fake.requests:
        assert KEY not in str(dict(request.headers))


def test_a_key_the_server_echoes_is_redacted_from_the_whole_traceback(
    fake: FakeOpenAI, asynchronous: bool
) -> None:
    """Also the chained openai exception: tracebacks and ``logging.exception`` print it."""
    import logging
    import traceback

    runs = {
        "transcriptions": lambda stage: transcribe(stage, speech()),
        "responses": lambda stage: collect(stage.respond(CONVERSATION)),
        "speech": lambda stage: collect(stage.synthesize("Hello.")),
    }
    cases = [  # (endpoint, stage, whether the error comes as an event inside a stream)
        (
            "transcriptions",
            make("t", asynchronous, fake, api_key=KEY, stream=False, max_retries=0),
            False,
        ),
        ("transcriptions", make("t", asynchronous, fake, api_key=KEY, max_retries=0), True),
        ("responses", make("r", asynchronous, fake, api_key=KEY, max_retries=0), True),
        ("speech", make("s", asynchronous, fake, api_key=KEY, max_retries=0), False),
    ]
    for endpoint, stage, streamed in cases:
        run = runs[endpoint]
        for status, after in ((400, None), (500, 0 if streamed else None)):
            fake.fail(endpoint, status, message=f"bad token {KEY}", after_events=after)
            with pytest.raises(cv.APIError) as info:
                run(stage)
            shown = "".join(traceback.format_exception(info.value))
            assert info.value.__cause__ is not None and "bad token" in shown
            assert KEY not in shown and "SECRET" not in shown, shown
            cause = info.value.__cause__
            assert KEY not in repr(cause.args) + repr(getattr(cause, "body", None))
            record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", None, None)
            record.exc_info = (type(info.value), info.value, info.value.__traceback__)
            assert KEY not in logging.Formatter().format(record)


def test_permission_denied(fake: FakeOpenAI) -> None:
    fake.fail("responses", 403)
    with pytest.raises(cv.AuthenticationError, match="not permitted"):
        collect(make("r", False, fake).respond(CONVERSATION))


# ------------------------------------------------------------------------------ synthesizer


def test_synthesize_pcm_chunk_by_chunk(make_fake_openai: MakeFake, asynchronous: bool) -> None:
    fake = make_fake_openai(base_url=OFFICIAL, chunk_size=333)  # odd: samples split across chunks
    s = make(
        "s", asynchronous, fake, voice="marin", instructions="Speak like a warm doctor.", speed=1.1
    )
    items = collect(s.synthesize("Hello there, how are you today?"))
    chunks = [i for i in items if isinstance(i, cv.Audio)]
    assert len(chunks) > 5 and all(c.rate == 24000 and c.channels == 1 for c in chunks)
    (usage,) = usages(items)
    assert isinstance(items[-1], cv.Usage)
    total = audio_of(items)
    assert usage.audio_seconds == pytest.approx(total.duration)
    assert usage.characters == len("Hello there, how are you today?")
    assert usage.cost_usd == pytest.approx(0.015 * total.duration / 60)
    sent = fake.last_request("speech").params
    assert sent["instructions"] == "Speak like a warm doctor.\n\n" + FRAGMENT_GUARD
    assert sent["voice"] == "marin" and sent["speed"] == 1.1
    assert sent["response_format"] == "pcm" and "stream_format" not in sent
    # Nothing lost at the odd chunk boundaries: the same audio as one unchunked answer.
    whole = make_fake_openai(base_url=OFFICIAL, chunk_size=1 << 20)
    single = collect(
        make(
            "s",
            asynchronous,
            whole,
            voice="marin",
            instructions="Speak like a warm doctor.",
            speed=1.1,
        ).synthesize("Hello there, how are you today?")
    )
    assert audio_of(single) == total


@pytest.mark.parametrize("fmt", ["wav", "mp3", "flac", "opus", "aac"])
def test_synthesize_other_formats(fake: FakeOpenAI, fmt: str) -> None:
    if fmt != "wav":
        pytest.importorskip("imageio_ffmpeg")
    s = make("s", False, fake, response_format=fmt)
    audio = audio_of(collect(s.synthesize("Testing formats.")))
    assert 0.5 < audio.duration < 2.0
    assert fake.last_request("speech").params["response_format"] == fmt


def test_synthesize_sse_usage(fake: FakeOpenAI, asynchronous: bool) -> None:
    s = make("s", asynchronous, fake, stream_format="sse", voice={"id": "voice_1234"})
    items = collect(s.synthesize("Hello over server-sent events."))
    (usage,) = usages(items)
    assert usage.input_text_tokens > 0 and usage.output_audio_tokens > 0
    assert usage.cost_usd == pytest.approx(
        (usage.input_text_tokens * 0.60 + usage.output_audio_tokens * 12.0) / 1e6
    )
    assert audio_of(items).rate == 24000
    sent = fake.last_request("speech").params
    assert sent["stream_format"] == "sse" and sent["voice"] == {"id": "voice_1234"}


def test_compatible_server_answers_wav_for_pcm(
    make_fake_openai: MakeFake, asynchronous: bool
) -> None:
    fake = make_fake_openai(compatible=True, speech_format="wav", chunk_size=101)
    s = make("s", asynchronous, fake, "kokoro", voice="af_bella")
    items = collect(s.synthesize("Hello from a compatible server."))
    audio = audio_of(items)
    assert audio.duration > 0.5
    (usage,) = usages(items)
    assert usage.cost_usd is None and usage.unpriced == ("kokoro",)
    assert "instructions" not in fake.last_request("speech").params


def test_blank_text_sends_nothing(fake: FakeOpenAI, asynchronous: bool) -> None:
    s = make("s", asynchronous, fake)
    assert collect(s.synthesize("  \n\t ")) == []
    assert collect(s.synthesize("")) == []
    assert fake.requests_to("speech") == ()


def test_long_text_is_split_at_sentences(fake: FakeOpenAI, asynchronous: bool) -> None:
    sentence = "This sentence is part of a very long reply. "
    text = sentence * 120  # about 5300 characters
    s = make("s", asynchronous, fake, fragment_guard=False)
    items = collect(s.synthesize(text))
    sent = [r.params["input"] for r in fake.requests_to("speech")]
    assert len(sent) == 2 and all(len(p) <= 4096 for p in sent)
    assert "".join(sent) == text.rstrip() or "".join(sent) == text
    assert sent[0].endswith("reply.")
    assert len(usages(items)) == 2


def test_speech_cut_after_audio_is_not_repeated(fake: FakeOpenAI, asynchronous: bool) -> None:
    s = make("s", asynchronous, fake, max_retries=3)
    fake.cut("speech", after_bytes=5001)
    got, error = collect_until_error(s.synthesize("A sentence that gets cut."))
    assert isinstance(error, cv.StreamInterruptedError)
    assert sum(g.frames for g in got) == 2500  # the odd last byte is not half a sample
    assert len(fake.requests_to("speech")) == 1


def test_speech_stalled_after_audio_is_a_timeout(fake: FakeOpenAI, asynchronous: bool) -> None:
    """A read timeout mid-body: kept audio, not retried, and ``except TimeoutError`` sees it."""
    s = make("s", asynchronous, fake, max_retries=3, timeout=0.2)
    fake.stall("speech", after_bytes=5000)
    got, error = collect_until_error(s.synthesize("A sentence that stalls."))
    assert isinstance(error, TimeoutError) and isinstance(error, cv.StreamInterruptedError)
    assert "timed out" in str(error) and "timeout=" in str(error)
    assert sum(g.frames for g in got) == 2500
    assert len(fake.requests_to("speech")) == 1
    # A cut (not a timeout) after audio stays a plain StreamInterruptedError.
    fake.cut("speech", after_bytes=5000)
    got, error = collect_until_error(s.synthesize("A sentence that gets cut."))
    assert isinstance(error, cv.StreamInterruptedError) and not isinstance(error, TimeoutError)


def test_speech_cut_before_audio_is_sent_again(fake: FakeOpenAI, asynchronous: bool) -> None:
    s = make("s", asynchronous, fake, max_retries=1)
    fake.cut("speech", after_bytes=0)
    assert audio_of(collect(s.synthesize("Again."))).duration > 0
    assert len(fake.requests_to("speech")) == 2


def test_speech_faults(fake: FakeOpenAI, asynchronous: bool) -> None:
    s = make("s", asynchronous, fake, max_retries=0, timeout=0.2)
    fake.fail("speech", 500)
    with pytest.raises(cv.ServerError):
        collect(s.synthesize("x"))
    fake.fail("speech", 429, retry_after_ms=2500)
    with pytest.raises(cv.RateLimitError) as info:
        collect(s.synthesize("x"))
    assert info.value.retry_after == 2.5
    fake.stall("speech")
    with pytest.raises(cv.APITimeoutError):
        collect(s.synthesize("x"))
    fake.fail("speech", 400, message="Input text is invalid")
    with pytest.raises(cv.BadRequestError, match="invalid"):
        collect(s.synthesize("x"))


def test_speech_sse_cut(fake: FakeOpenAI) -> None:
    s = make("s", False, fake, stream_format="sse")
    fake.cut("speech", after_events=2)
    got, error = collect_until_error(s.synthesize("Cut in the middle of the events."))
    assert isinstance(error, cv.StreamInterruptedError) and got


# ------------------------------------------------------------------------------------ chain


def test_stages_share_one_client(fake: FakeOpenAI) -> None:
    client = fake.client()
    t, r, s = stages(
        asynchronous=False,
        client=client,
        voice="sage",
        voice_instructions="Calm.",
        reply_model="gpt-5.6-luna",
    )
    assert t._setup.client is r._setup.client is s._setup.client is client
    assert s._core.voice == "sage" and s.instructions.startswith("Calm.")
    assert r.model == "gpt-5.6-luna"
    with pytest.raises(cv.ConfigurationError, match="share one client"):
        stages(asynchronous=False, client=client, responder_options={"api_key": "x"})
    with pytest.raises(cv.ConfigurationError, match="given twice"):
        stages(asynchronous=False, client=client, voice="a", synthesizer_options={"voice": "b"})
    at, ar, as_ = stages(asynchronous=True, api_key=KEY, base_url=OFFICIAL)
    assert at._setup.client is ar._setup.client is as_._setup.client
    assert isinstance(ar, AsyncOpenAIResponder)


def test_a_whole_turn_through_chain_openai(fake: FakeOpenAI) -> None:
    fake.add_replies("Of course. Tuesday at ten works.")
    chain = cv.Chain.openai(
        instructions="You are a clinic's booking assistant.",
        client=fake.client(),
        voice="coral",
        voice_instructions="Speak like a warm, caring doctor.",
    )
    turn = chain.run(speech(1.5))
    assert turn.transcript is not None and turn.transcript.text == "Hello there, how are you?"
    assert turn.reply.text == "Of course. Tuesday at ten works."
    assert turn.reply.audio is not None and turn.reply.audio.rate == 24000
    assert turn.usage.cost_usd is not None and turn.usage.cost_usd > 0
    assert set(turn.usage_by_stage) == {"transcribe", "respond", "synthesize"}
    sent = fake.last_request("responses").params
    assert sent["instructions"] == "You are a clinic's booking assistant."


def test_a_whole_turn_through_async_chain_openai(fake: FakeOpenAI) -> None:
    fake.add_replies("Yes.")

    async def main() -> cv.Turn:
        chain = cv.AsyncChain.openai(client=fake.async_client())
        return await chain.run(speech())

    turn = asyncio.run(main())
    assert turn.reply.text == "Yes." and turn.reply.audio is not None


def test_extra_body_reaches_the_wire_and_the_spec_check_sees_it(fake: FakeOpenAI) -> None:
    r = make("r", False, fake, extra_body={"not_a_parameter": 1})
    with pytest.raises(cv.BadRequestError, match="not_a_parameter"):
        collect(r.respond(CONVERSATION))
    violations = fake.take_violations()
    assert violations and any("not_a_parameter" in v.message for v in violations)


def _first_then_stop(items: Iterable[Any] | AsyncIterable[Any], kind: type) -> Any:
    """Take the first item of ``kind`` and close the stream there (a barge-in)."""

    async def run_async() -> Any:
        agen = items.__aiter__()  # type: ignore[union-attr]
        try:
            async for item in agen:
                if isinstance(item, kind):
                    return item
        finally:
            await agen.aclose()
        return None

    if isinstance(items, AsyncIterable):
        return asyncio.run(run_async())
    gen = iter(items)
    try:
        for item in gen:
            if isinstance(item, kind):
                return item
    finally:
        gen.close()  # type: ignore[attr-defined]
    return None


def test_closing_a_stream_early_closes_the_response(fake: FakeOpenAI, asynchronous: bool) -> None:
    fake.add_replies("One. Two. Three. Four. Five. Six. Seven.")
    r = make("r", asynchronous, fake)
    assert isinstance(_first_then_stop(r.respond(CONVERSATION), str), str)
    s = make("s", asynchronous, fake)
    text = "A long sentence that makes plenty of audio for the test to stop early."
    assert isinstance(_first_then_stop(s.synthesize(text), cv.Audio), cv.Audio)
    t = make("t", asynchronous, fake)
    assert isinstance(_first_then_stop(t.transcribe_stream(speech()), str), str)
    for request in fake.requests:
        assert request.progress.status == "closed", request
