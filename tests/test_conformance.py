"""Conformance checks of chainvoice.testing: they pass good stages and catch broken ones."""

from __future__ import annotations

import asyncio
import pickle
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator

import numpy as np
import pytest

import chainvoice as cv
from chainvoice.testing import (
    AsyncScriptedResponder,
    AsyncScriptedSynthesizer,
    AsyncScriptedTranscriber,
    ConformanceError,
    ConformanceReport,
    FakeOpenAI,
    ScriptedResponder,
    ScriptedSynthesizer,
    ScriptedTranscriber,
    Violation,
    check_responder,
    check_synthesizer,
    check_transcriber,
)

RATE = 24000


def tone(seconds: float = 0.1, rate: int = RATE, channels: int = 1, level: float = 0.1) -> cv.Audio:
    t = np.arange(round(seconds * rate)) / rate
    samples = (level * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return cv.Audio(np.repeat(samples[:, None], channels, axis=1), rate)


def violated(excinfo: pytest.ExceptionInfo[ConformanceError], check: str) -> Violation:
    found = [v for v in excinfo.value.violations if v.check == check]
    assert found, f"no {check!r} violation in:\n{excinfo.value}"
    return found[0]


def assert_caught(run: Callable[[object], object], stage: object, check: str, words: list[str]):
    """``run(stage)`` raises a ConformanceError with a ``check`` violation saying ``words``."""
    with pytest.raises(ConformanceError) as info:
        run(stage)
    v = violated(info, check)
    text = f"{v.problem} {v.fix}"
    for word in words:
        assert word in text, f"{word!r} not in {text!r}"
    message = str(info.value)
    assert f"does not keep the {info.value.report.protocol} contract" in message
    assert f"[{check}] " in message and "Fix: " in message


# --------------------------------------------------------------------------- good stages pass


def test_scripted_synthesizers_pass():
    report = check_synthesizer(ScriptedSynthesizer(usage=True))
    assert isinstance(report, ConformanceReport)
    assert (report.protocol, report.asynchronous, report.streaming) == ("Synthesizer", False, True)
    assert report.calls == 5 and report.max_loop_lag is None
    for name in ("return type", "items", "audio format", "early close", "concurrency", "usage"):
        assert name in report.passed
    assert "24000 Hz" in str(report) and "keeps the Synthesizer contract" in str(report)

    report = check_synthesizer(AsyncScriptedSynthesizer(chunk_delay=0.001))
    assert (report.protocol, report.asynchronous) == ("AsyncSynthesizer", True)
    assert report.max_loop_lag is not None and "event loop" in report.passed


def test_scripted_synthesizer_records_what_the_check_did():
    fake = ScriptedSynthesizer()
    check_synthesizer(fake, text="Custom words here.")
    calls = fake.calls
    assert [c.text for c in calls[:2]] == ["Custom words here."] * 2
    assert calls[0].finished and calls[1].status == "closed"
    assert all(c.finished for c in calls[2:])


def test_scripted_responders_pass():
    script = ["Four. Yes.", "Four!", "It is four.", "Hello!"]
    report = check_responder(ScriptedResponder(script, usage=True))
    assert (report.protocol, report.streaming, report.calls) == ("Responder", True, 4)
    assert {"conversation untouched", "stateless", "early close", "usage"} <= set(report.passed)
    assert not report.warnings

    fake = AsyncScriptedResponder(script)
    report = check_responder(fake)
    assert (report.protocol, report.asynchronous) == ("AsyncResponder", True)
    fake.assert_complete()
    assert fake.calls[1].status == "closed"


def test_function_responders_pass():
    report = check_responder(lambda c: "You said " + c.last_user_text)
    assert report.stage.endswith(".<lambda>") and not report.streaming
    assert any("one str" in w for w in report.warnings)
    assert "early close" not in report.passed  # a str has nothing to close

    async def coroutine(conversation: cv.Conversation) -> str:
        await asyncio.sleep(0)
        return "ok"

    assert check_responder(coroutine).asynchronous

    async def generator(conversation: cv.Conversation) -> AsyncIterator[str | cv.Usage]:
        for word in ("Sure, ", "hello."):
            await asyncio.sleep(0)
            yield word
        yield cv.Usage(stage="respond", output_tokens=2)

    report = check_responder(generator)
    assert report.asynchronous and report.streaming


def test_scripted_transcribers_pass():
    fake = ScriptedTranscriber(["hello", "x"], usage=True)
    report = check_transcriber(fake)
    assert (report.protocol, report.streaming, report.calls) == ("Transcriber", False, 2)
    fake.assert_complete()
    assert fake.calls[1].audio.rate == 44100 and fake.calls[1].audio.channels == 2

    fake = ScriptedTranscriber(["a b", "c", "d e f", "g h", "i"], stream=True)
    report = check_transcriber(fake)
    assert report.protocol == "StreamingTranscriber" and report.streaming
    assert {"stream items", "early close", "reusable"} <= set(report.passed)
    assert not report.warnings
    assert [c.status for c in fake.calls] == ["done", "done", "done", "closed", "done"]

    fake = AsyncScriptedTranscriber(["a b", "c", "d e f", "g h", "i"], stream=True)
    report = check_transcriber(fake)
    assert report.protocol == "AsyncStreamingTranscriber" and report.asynchronous
    fake.assert_complete()


def test_expected_text_is_compared_loosely():
    speech = tone(0.5, 16000)
    fake = ScriptedTranscriber(["Hello, World!", "x"])
    check_transcriber(fake, audio=speech, expected_text="hello world")
    assert fake.calls[0].audio is speech

    with pytest.raises(ConformanceError) as info:
        check_transcriber(
            ScriptedTranscriber(["goodbye moon", "x"]), audio=speech, expected_text="hello world"
        )
    v = violated(info, "expected text")
    assert "'goodbye moon'" in v.problem and "'hello world'" in v.problem
    assert "0%" in v.problem


def test_checks_work_inside_a_running_event_loop():
    async def main() -> ConformanceReport:
        # as in a notebook or an async test: the check must not need this loop
        return check_synthesizer(AsyncScriptedSynthesizer())

    assert asyncio.run(main()).asynchronous


# --------------------------------------------------------------------------- broken synthesizers


class BytesTTS:
    def synthesize(self, text: str) -> Iterator[bytes]:
        yield b"\x00\x01" * 100


class NoneTTS:
    def synthesize(self, text: str) -> Iterator[cv.Audio | None]:
        yield tone()
        yield None


class ArrayTTS:
    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        yield np.zeros(2400, dtype=np.float32)


class OneAudioTTS:
    def synthesize(self, text: str) -> cv.Audio:
        return tone()


class MixedRatesTTS:
    def synthesize(self, text: str) -> Iterator[cv.Audio]:
        yield tone(rate=24000)
        yield tone(rate=22050)


class DriftingTTS:
    """Each call is consistent, but calls differ in rate: replies cannot be joined."""

    def __init__(self) -> None:
        self.n = 0
        self.lock = threading.Lock()

    def synthesize(self, text: str) -> Iterator[cv.Audio]:
        with self.lock:
            self.n += 1
            rate = 24000 if self.n == 1 else 16000
        yield tone(rate=rate)


class KilohertzTTS:
    def synthesize(self, text: str) -> Iterator[cv.Audio]:
        yield cv.Audio(np.zeros(100, dtype=np.float32), 24)


class SilentEmptyTTS:
    def synthesize(self, text: str) -> Iterator[cv.Audio]:
        return iter(())


class RaisesOnCloseTTS:
    def synthesize(self, text: str) -> Iterator[cv.Audio]:
        try:
            yield tone()
            yield tone()
        finally:
            raise RuntimeError("cleanup failed")


class IgnoresCloseTTS:
    def synthesize(self, text: str) -> Iterator[cv.Audio]:
        try:
            yield tone()
            yield tone()
        finally:
            yield tone()  # a generator must not yield while it is being closed


class StuckAfterCloseTTS:
    """Marks itself busy and only clears the flag when a stream runs to its end."""

    def __init__(self) -> None:
        self.busy = False

    def synthesize(self, text: str) -> Iterator[cv.Audio]:
        if self.busy:
            raise RuntimeError("still busy with the previous text")
        self.busy = True
        yield tone()
        yield tone()
        self.busy = False


class NotThreadSafeTTS:
    """Refuses a second call while one runs (as a model that is not thread-safe might)."""

    def __init__(self) -> None:
        self.busy = False
        self.lock = threading.Lock()

    def synthesize(self, text: str) -> Iterator[cv.Audio]:
        with self.lock:
            if self.busy:
                raise RuntimeError("the model is in use")
            self.busy = True
        try:
            time.sleep(0.1)  # the other call, started at the same time, arrives meanwhile
            yield tone()
        finally:
            self.busy = False


class BadUsageTTS:
    def synthesize(self, text: str) -> Iterator[cv.Audio | cv.Usage]:
        yield tone()
        yield cv.Usage(stage="synthesize", characters=-5)


class LoudTTS:
    def synthesize(self, text: str) -> Iterator[cv.Audio]:
        yield tone(level=3.0)


class BlockingAsyncTTS:
    def __init__(self) -> None:
        self.first = True

    async def synthesize(self, text: str) -> AsyncIterator[cv.Audio]:
        if self.first:
            self.first = False
            time.sleep(0.3)  # blocks the event loop  # noqa: ASYNC251
        yield tone()


class CoroutineTTS:
    async def synthesize(self, text: str) -> cv.Audio:
        return tone()


@pytest.mark.parametrize(
    ("stage", "check", "words"),
    [
        (BytesTTS(), "items", ["yielded bytes (200 bytes) at position 0", "Audio.from_pcm16"]),
        (NoneTTS(), "items", ["yielded None at position 1", "instead of yielding None"]),
        (ArrayTTS(), "items", ["numpy array shaped (2400,)", "Audio(samples, rate)"]),
        (OneAudioTTS(), "return type", ["returned a chainvoice.Audio", "return [audio]"]),
        (MixedRatesTTS(), "audio format", ["different sample rates ([22050, 24000] Hz)"]),
        (DriftingTTS(), "audio format", ["16000 Hz", "an earlier call yielded 24000 Hz"]),
        # Audio itself refuses a rate in kHz, so the stage fails as it makes its audio.
        (KilohertzTTS(), "raises", ["SampleRateError", "not kHz: 24 kHz is 24000 Hz"]),
        (SilentEmptyTTS(), "not empty", ["yielded no audio"]),
        (RaisesOnCloseTTS(), "early close", ["raised RuntimeError: cleanup failed", "finally"]),
        (IgnoresCloseTTS(), "early close", ["generator ignored GeneratorExit"]),
        (StuckAfterCloseTTS(), "reusable", ["after a stream was closed early", "still busy"]),
        (NotThreadSafeTTS(), "concurrency", ["two threads", "the model is in use", "lock"]),
        (BadUsageTTS(), "usage", ["characters=-5"]),
        (CoroutineTTS(), "return type", ["is a coroutine that returned a chainvoice.Audio"]),
    ],
    ids=lambda value: None if isinstance(value, (str, list)) else type(value).__name__,
)
def test_broken_synthesizers_are_caught(stage: object, check: str, words: list[str]) -> None:
    assert_caught(check_synthesizer, stage, check, words)


def test_an_async_stage_that_blocks_the_loop_is_caught():
    with pytest.raises(ConformanceError) as info:
        check_synthesizer(BlockingAsyncTTS(), max_loop_block=0.1)
    v = violated(info, "event loop")
    assert "blocked for 0." in v.problem and "asyncio.to_thread" in v.fix
    # with the loop check off, the same stage passes
    report = check_synthesizer(BlockingAsyncTTS(), max_loop_block=None)
    assert "event loop" not in report.passed and report.max_loop_lag is not None


def test_a_stage_that_never_finishes_times_out():
    release = threading.Event()

    class HangingTTS:
        def synthesize(self, text: str) -> Iterator[cv.Audio]:
            release.wait(10)
            yield tone()

    try:
        with pytest.raises(ConformanceError) as info:
            check_synthesizer(HangingTTS(), timeout=0.1)
    finally:
        release.set()
    assert "did not finish within 0.1 s" in violated(info, "timeout").problem
    assert info.value.report.calls == 1  # no point calling a stage that may still be busy


def test_an_async_stage_may_return_a_sync_generator():
    release = threading.Event()

    class LazyTTS:
        def __init__(self, hang: bool = False) -> None:
            self.hang = hang

        async def synthesize(self, text: str) -> Iterator[cv.Audio]:
            return self.chunks()

        def chunks(self) -> Iterator[cv.Audio]:
            if self.hang:
                release.wait(10)
            yield tone()
            yield tone()

    report = check_synthesizer(LazyTTS())
    assert report.asynchronous and report.streaming and not report.warnings

    # stepped in a thread, so a hang is cut by the timeout instead of hanging the check
    start = time.monotonic()
    try:
        with pytest.raises(ConformanceError) as info:
            check_synthesizer(LazyTTS(hang=True), timeout=0.1)
    finally:
        release.set()
    assert time.monotonic() - start < 5
    assert "did not finish within 0.1 s" in violated(info, "timeout").problem


def test_every_violation_is_listed():
    class TwiceBrokenTTS:
        def synthesize(self, text: str) -> Iterator[cv.Audio]:
            try:
                yield tone(rate=24000)
                yield tone(rate=16000)
            except GeneratorExit:
                raise ValueError("oops") from None

    with pytest.raises(ConformanceError) as info:
        check_synthesizer(TwiceBrokenTTS())
    assert isinstance(info.value, AssertionError)
    checks = {v.check for v in info.value.violations}
    assert {"audio format", "early close"} <= checks
    message = str(info.value)
    assert "1. [" in message and "2. [" in message
    again = pickle.loads(pickle.dumps(info.value))
    assert again.violations == info.value.violations


def test_warnings_do_not_fail_the_check():
    class AllAtOnceTTS:
        async def synthesize(self, text: str) -> list[cv.Audio]:
            return [tone(), tone()]  # a chain accepts this, but nothing streams

    report = check_synthesizer(AllAtOnceTTS())
    assert report.asynchronous and not report.streaming
    assert any("returns all its output at once" in w for w in report.warnings)

    report = check_synthesizer(LoudTTS())
    assert any("outside [-1, 1]" in w for w in report.warnings)

    class SilentTTS:
        def synthesize(self, text: str) -> Iterator[cv.Audio]:
            yield cv.Audio.silence(0.5, rate=RATE)

    assert any("only silence" in w for w in check_synthesizer(SilentTTS()).warnings)


def test_usage_for_another_stage_only_warns():
    def responder(conversation: cv.Conversation) -> Iterator[str | cv.Usage]:
        yield "Hi."
        yield cv.Usage(stage="synthesize", output_tokens=1)

    report = check_responder(responder)
    assert any("stage='synthesize'" in w and "'respond'" in w for w in report.warnings)


def test_a_stage_without_the_method_is_caught():
    with pytest.raises(ConformanceError) as info:
        check_synthesizer(object())
    assert "needs a callable synthesize() method; object has none" in str(info.value)


# --------------------------------------------------------------------------- broken responders


class DictResponder:
    def respond(self, conversation: cv.Conversation) -> dict[str, str]:
        return {"text": "hi"}


class NoneDeltaResponder:
    def respond(self, conversation: cv.Conversation) -> Iterator[str | None]:
        yield "Hello"
        yield None


class ChunkObjectResponder:
    class Chunk:
        text = "hi"

    def respond(self, conversation: cv.Conversation) -> Iterator[object]:
        yield self.Chunk()


class NoneResponder:
    def respond(self, conversation: cv.Conversation) -> None:
        return None


class BytesResponder:
    def respond(self, conversation: cv.Conversation) -> bytes:
        return b"hello"


class EmptyResponder:
    def respond(self, conversation: cv.Conversation) -> Iterator[str]:
        yield ""
        yield "  "


class MutatingResponder:
    def respond(self, conversation: cv.Conversation) -> str:
        object.__setattr__(conversation, "messages", conversation.messages[:-1])
        return "ok"


class IncrementalResponder:
    """Keeps how many messages it has seen and only reads the new ones: breaks on reset."""

    def __init__(self) -> None:
        self.seen = 0

    def respond(self, conversation: cv.Conversation) -> Iterator[str]:
        new = conversation.messages[self.seen :]
        if not new:
            raise IndexError("no new messages since the last call")
        self.seen = len(conversation.messages)
        yield "Got " + new[-1].content


class AsyncRaisesOnCloseResponder:
    async def respond(self, conversation: cv.Conversation) -> AsyncIterator[str]:
        try:
            yield "one "
            yield "two"
        finally:
            raise RuntimeError("connection cleanup failed")


@pytest.mark.parametrize(
    ("stage", "check", "words"),
    [
        (DictResponder(), "return type", ["returned a dict with keys ['text']", "gives its keys"]),
        (NoneDeltaResponder(), "items", ["yielded None at position 1", "skip None deltas"]),
        (ChunkObjectResponder(), "items", ["Chunk at position 0", "delta.content"]),
        (NoneResponder(), "return type", ["returned None"]),
        (BytesResponder(), "return type", ["returned bytes (5 bytes)", "decode"]),
        (EmptyResponder(), "not empty", ["produced an empty reply ('  ')"]),
        (MutatingResponder(), "conversation untouched", ["changed the Conversation"]),
        (IncrementalResponder(), "stateless", ["IndexError: no new messages", "state kept"]),
        (AsyncRaisesOnCloseResponder(), "early close", ["connection cleanup failed"]),
    ],
    ids=lambda value: None if isinstance(value, (str, list)) else type(value).__name__,
)
def test_broken_responders_are_caught(stage: object, check: str, words: list[str]) -> None:
    assert_caught(check_responder, stage, check, words)


def test_an_async_responder_that_blocks_the_loop_is_caught():
    calls = []

    async def blocking(conversation: cv.Conversation) -> AsyncIterator[str]:
        calls.append(conversation)
        if len(calls) == 1:
            time.sleep(0.25)  # noqa: ASYNC251
        yield "late"

    with pytest.raises(ConformanceError) as info:
        check_responder(blocking, max_loop_block=0.1)
    assert "event loop was blocked" in violated(info, "event loop").problem


def test_responder_uses_the_given_conversation():
    fake = ScriptedResponder(["a", "b", "c", "d"])
    start = cv.Conversation(instructions="Talk like a pirate.").add("user", "Ahoy?")
    check_responder(fake, conversation=start)
    assert fake.calls[0].conversation == start
    follow = fake.calls[2].conversation
    assert follow.messages[:1] == start.messages and follow.messages[1].content == "a"
    assert fake.calls[3].conversation.instructions is None


# --------------------------------------------------------------------------- broken transcribers

SPEECH = tone(0.5, 16000)


class StrTranscriber:
    def transcribe(self, audio: cv.Audio) -> str:
        return "hello"


class DictTranscriber:
    def transcribe(self, audio: cv.Audio) -> dict[str, str]:
        return {"text": "hello"}


class Only16kTranscriber:
    def transcribe(self, audio: cv.Audio) -> cv.Transcript:
        if audio.rate != 16000:
            raise cv.SampleRateError(f"expected 16000 Hz, got {audio.rate}")
        return cv.Transcript("ok")


class BadFieldsTranscriber:
    def transcribe(self, audio: cv.Audio) -> cv.Transcript:
        segment = cv.Segment(text="x", start=2.0, end=1.0)
        return cv.Transcript(None, duration=float("nan"), segments=[segment])  # type: ignore[arg-type]


class StreamTranscriber:
    items: tuple[object, ...] = ()

    def transcribe(self, audio: cv.Audio) -> cv.Transcript:
        return cv.Transcript("a b")

    def transcribe_stream(self, audio: cv.Audio) -> Iterator[object]:
        yield from self.items


class TwoFinals(StreamTranscriber):
    items = ("a ", cv.Transcript("a"), cv.Transcript("a b"))


class DeltaAfterFinal(StreamTranscriber):
    items = ("a ", cv.Transcript("a b"), "b")


class NoFinal(StreamTranscriber):
    items = ("a ", "b")


class BytesInStream(StreamTranscriber):
    items = (b"a", cv.Transcript("a"))


class TranscriptNotStream(StreamTranscriber):
    def transcribe_stream(self, audio: cv.Audio) -> cv.Transcript:  # type: ignore[override]
        return cv.Transcript("a b")


class MixedModeTranscriber(StreamTranscriber):
    async def transcribe_stream(self, audio: cv.Audio) -> AsyncIterator[object]:  # type: ignore[override]
        yield "a b"
        yield cv.Transcript("a b")


@pytest.mark.parametrize(
    ("stage", "check", "words"),
    [
        (StrTranscriber(), "return type", ["returned str 'hello'", "Transcript(text=...)"]),
        (DictTranscriber(), "return type", ["returned a dict", "chainvoice.Transcript"]),
        (Only16kTranscriber(), "any audio", ["SampleRateError", "44100", "resample"]),
        (
            BadFieldsTranscriber(),
            "transcript fields",
            ["text is None", "duration is nan", "reversed start/end"],
        ),
        (TwoFinals(), "stream items", ["yielded 2 Transcripts"]),
        (DeltaAfterFinal(), "stream items", ["yielded str 'b' at position 2, after the final"]),
        (NoFinal(), "stream items", ["ended without a final Transcript"]),
        (BytesInStream(), "stream items", ["yielded bytes (1 bytes) at position 0"]),
        (
            TranscriptNotStream(),
            "stream items",
            ["returned a chainvoice.Transcript", "make it a generator"],
        ),
    ],
    ids=lambda value: None if isinstance(value, (str, list)) else type(value).__name__,
)
def test_broken_transcribers_are_caught(stage: object, check: str, words: list[str]) -> None:
    assert_caught(check_transcriber, stage, check, words)


def test_mixed_sync_and_async_transcriber_methods_only_warn():
    report = check_transcriber(MixedModeTranscriber())
    assert any("transcribe is sync but transcribe_stream is async" in w for w in report.warnings)


def test_stream_deltas_that_differ_from_the_final_text_only_warn():
    class Revising(StreamTranscriber):
        items = ("helo ", "wrld", cv.Transcript("hello world"))

    report = check_transcriber(Revising())
    assert any("differ from the final text" in w for w in report.warnings)


# --------------------------------------------------------------------------- bad arguments


def test_bad_arguments_to_the_checks():
    with pytest.raises(cv.ConfigurationError, match="timeout must be"):
        check_synthesizer(ScriptedSynthesizer(), timeout=0)
    with pytest.raises(cv.ConfigurationError, match="max_loop_block must be"):
        check_synthesizer(ScriptedSynthesizer(), max_loop_block=-1)
    with pytest.raises(cv.ConfigurationError, match="text= must be a non-blank str"):
        check_synthesizer(ScriptedSynthesizer(), text="  ")
    with pytest.raises(cv.ConfigurationError, match=r"Audio\.from_bytes"):
        check_transcriber(ScriptedTranscriber(), audio=b"RIFF")  # type: ignore[arg-type]
    with pytest.raises(cv.ConfigurationError, match="must end with a user message"):
        check_responder(ScriptedResponder(), conversation=cv.Conversation())


# --------------------------------------------------------------------------- real adapters


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_the_openai_stages_pass_against_the_fake_server(
    asynchronous: bool, fake_openai: FakeOpenAI
) -> None:
    """No false alarms on real adapters: the OpenAI stages over the wire-level fake.

    The fake is the spec-checked fixture: every request the checks make must be one the
    real API accepts (violations fail the test at teardown).
    """
    import chainvoice.openai as co

    fake = fake_openai
    client = fake.async_client() if asynchronous else fake.client()
    prefix = "Async" if asynchronous else ""
    stages = {
        "transcriber": getattr(co, prefix + "OpenAITranscriber")(client=client),
        "responder": getattr(co, prefix + "OpenAIResponder")(client=client),
        "synthesizer": getattr(co, prefix + "OpenAISynthesizer")(client=client),
    }
    reports = [
        check_transcriber(stages["transcriber"]),
        check_responder(stages["responder"]),
        check_synthesizer(stages["synthesizer"]),
    ]
    assert [r.asynchronous for r in reports] == [asynchronous] * 3
    assert all(r.streaming for r in reports)
    assert all(not r.warnings for r in reports), [r.warnings for r in reports]
