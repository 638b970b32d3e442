"""Scripted fakes of the three stages, for testing code that drives a chain.

Each fake plays a script, one item per call, records every call it receives as a frozen
snapshot, and checks at the end that the whole script was used::

    responder = ScriptedResponder(["Hello there.", "Goodbye."])
    ...  # run the code under test
    assert responder.calls[0].conversation.last_user_text == "hi"
    responder.assert_complete()

The sync fakes are safe to call from several threads at once; their ``Async`` twins run
on an event loop and honour cancellation promptly.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import Any, Generic, Literal, TypeAlias, TypeVar, overload

import attrs
import numpy as np

from chainvoice import Audio, ConfigurationError, Conversation, Transcript, Usage

__all__ = [
    "AsyncScriptedResponder",
    "AsyncScriptedSynthesizer",
    "AsyncScriptedTranscriber",
    "AsyncStreamingScriptedTranscriber",
    "Pause",
    "ResponderCall",
    "ScriptError",
    "ScriptedResponder",
    "ScriptedSynthesizer",
    "ScriptedTranscriber",
    "StreamingScriptedTranscriber",
    "SynthesizerCall",
    "TranscriberCall",
    "UnconsumedScriptError",
    "UnexpectedCallError",
    "Wait",
    "WaitTimeoutError",
]

CallStatus = Literal["pending", "running", "done", "raised", "closed", "cancelled"]
"""Where a recorded call is: not started, running, finished, or how it ended."""

_POLL = 0.005  # seconds between checks of a Wait step's event in the async fakes


# --------------------------------------------------------------------------- errors


class ScriptError(AssertionError):
    """A scripted fake was used in a way its script did not allow (a test failure)."""


class UnexpectedCallError(ScriptError):
    """A fake was called more times than its script has items.

    Attributes:
        stage: The fake's name, e.g. ``"ScriptedResponder"``.
        call_index: The 0-based index of the call that had no script item.
        scripted: How many items the script had.
    """

    def __init__(self, message: str, *, stage: str, call_index: int, scripted: int) -> None:
        super().__init__(message)
        self.stage = stage
        self.call_index = call_index
        self.scripted = scripted

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {"stage": self.stage, "call_index": self.call_index, "scripted": self.scripted}
        return (_rebuild, (type(self), str(self), kwargs))


class UnconsumedScriptError(ScriptError):
    """``assert_complete()`` found script items that no call used.

    Attributes:
        remaining: How many items were left.
    """

    def __init__(self, message: str, *, remaining: int) -> None:
        super().__init__(message)
        self.remaining = remaining

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), str(self), {"remaining": self.remaining}))


def _rebuild(cls: type[ScriptError], message: str, kwargs: dict[str, Any]) -> ScriptError:
    return cls(message, **kwargs)


class WaitTimeoutError(ScriptError):
    """A :class:`Wait` step's event was not set in time: the test never released the fake."""


# --------------------------------------------------------------------------- script steps


@attrs.frozen
class Wait:
    """A script step that blocks the fake until the test sets ``event``.

    The sync fakes block their thread on the event; the async fakes poll it without
    blocking the event loop, so they can be cancelled while they wait.

    Attributes:
        event: The event the test sets to let the fake go on.
        timeout: Seconds to wait before failing with :class:`WaitTimeoutError`, so that a
            test that never sets the event fails instead of hanging.
    """

    event: threading.Event
    timeout: float = attrs.field(default=5.0, kw_only=True)


@attrs.frozen
class Pause:
    """A script step that sleeps for ``seconds`` before the next step."""

    seconds: float


TranscriberItem: TypeAlias = str | Transcript | BaseException
"""One transcriber call: the text heard, a whole transcript, or an exception to raise."""

ResponderStep: TypeAlias = str | Usage | BaseException | Wait | Pause
"""One step of a responder call: a text delta, a usage report, an exception, a wait."""

ResponderItem: TypeAlias = str | BaseException | Sequence[ResponderStep]
"""One responder call: a reply (streamed word by word), an exception, or explicit steps."""

SynthesizerStep: TypeAlias = Audio | Usage | BaseException | Wait | Pause
"""One step of a synthesizer call: an audio chunk, a usage report, an exception, a wait."""

SynthesizerItem: TypeAlias = BaseException | Sequence[SynthesizerStep]
"""One synthesizer call: an exception to raise, or explicit steps."""

# --------------------------------------------------------------------------- recorded calls


@attrs.frozen(kw_only=True)
class _Call:
    index: int
    status: CallStatus
    error: BaseException | None
    started_at: float
    ended_at: float | None

    @property
    def stopped_early(self) -> bool:
        """True when the caller closed the stream or cancelled the call before it ended."""
        return self.status in ("closed", "cancelled")

    @property
    def finished(self) -> bool:
        """True when the call ran to its end (its whole script item was played)."""
        return self.status == "done"


@attrs.frozen(kw_only=True)
class TranscriberCall(_Call):
    """What one call to a scripted transcriber received and produced.

    Attributes:
        index: 0-based number of the call.
        method: ``"transcribe"`` or ``"transcribe_stream"``.
        audio: The audio the call received.
        deltas: The text deltas it streamed (``transcribe_stream`` only).
        transcript: The transcript it returned or streamed last, if it got that far.
        status: ``"pending"`` (a stream not yet iterated), ``"running"``, ``"done"``,
            ``"raised"`` (the fake raised), ``"closed"`` (the caller closed the stream
            early) or ``"cancelled"`` (the async caller cancelled it).
        error: The exception the call raised, if any.
        started_at: ``time.monotonic()`` when the call was made.
        ended_at: ``time.monotonic()`` when it ended, or ``None`` while it runs.
    """

    method: Literal["transcribe", "transcribe_stream"]
    audio: Audio
    deltas: tuple[str, ...]
    transcript: Transcript | None


@attrs.frozen(kw_only=True)
class ResponderCall(_Call):
    """What one call to a scripted responder received and produced.

    Attributes:
        index: 0-based number of the call.
        conversation: The conversation the call received.
        deltas: The text deltas it yielded, in order.
        usage: The ``Usage`` items it yielded.
        status: ``"pending"`` (not yet iterated), ``"running"``, ``"done"``, ``"raised"``,
            ``"closed"`` (the caller closed the stream early) or ``"cancelled"``.
        error: The exception the call raised, if any.
        started_at: ``time.monotonic()`` when the call was made.
        ended_at: ``time.monotonic()`` when it ended, or ``None`` while it runs.
    """

    conversation: Conversation
    deltas: tuple[str, ...]
    usage: tuple[Usage, ...]

    @property
    def text(self) -> str:
        """The text yielded so far, joined."""
        return "".join(self.deltas)


@attrs.frozen(kw_only=True)
class SynthesizerCall(_Call):
    """What one call to a scripted synthesizer received and produced.

    Attributes:
        index: 0-based number of the call.
        text: The text the call received.
        chunks: The audio chunks it yielded, in order.
        usage: The ``Usage`` items it yielded.
        status: ``"pending"`` (not yet iterated), ``"running"``, ``"done"``, ``"raised"``,
            ``"closed"`` (the caller closed the stream early) or ``"cancelled"``.
        error: The exception the call raised, if any.
        started_at: ``time.monotonic()`` when the call was made.
        ended_at: ``time.monotonic()`` when it ended, or ``None`` while it runs.
    """

    text: str
    chunks: tuple[Audio, ...]
    usage: tuple[Usage, ...]

    @property
    def audio(self) -> Audio | None:
        """The chunks yielded so far, joined (``None`` if there were none)."""
        return Audio.concat(self.chunks) if self.chunks else None


# --------------------------------------------------------------------------- the shared core

T = TypeVar("T")


@attrs.define
class _Record:
    index: int
    method: str
    received: Any
    started_at: float
    outputs: list[Any] = attrs.Factory(list)
    status: CallStatus = "pending"
    error: BaseException | None = None
    ended_at: float | None = None


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _listing(items: Sequence[object], start: int = 0, most: int = 5) -> str:
    """Numbered short reprs of script items, the first ``most`` of them."""
    shown = "; ".join(f"#{start + i} {_short(item)}" for i, item in enumerate(items[:most]))
    more = len(items) - most
    return (shown or "none") + (f"; and {more} more" if more > 0 else "")


class _Script(Generic[T]):
    """The script, the call records and the lock that guards them (shared by sync and async)."""

    def __init__(self, owner: str, items: Iterable[T] | None) -> None:
        self.owner = owner
        self.unlimited = items is None
        self.scripted: tuple[T, ...] = () if items is None else tuple(items)
        self._left: deque[T] = deque(self.scripted)
        self._lock = threading.Lock()
        self.records: list[_Record] = []
        self.unexpected: list[UnexpectedCallError] = []

    def begin(self, method: str, received: Any, shown: str) -> tuple[_Record, T | None]:
        """Record a call and take its script item (``None`` for an unlimited script)."""
        with self._lock:
            record = _Record(len(self.records), method, received, time.monotonic())
            self.records.append(record)
            if self.unlimited:
                return record, None
            if self._left:
                return record, self._left.popleft()
            error = UnexpectedCallError(
                f"{self.owner} got call #{record.index} {method}({shown}), but its script "
                f"has only {len(self.scripted)} item(s), all used ({_listing(self.scripted)}). "
                "Add an item for this call, or find why the code under test calls the stage "
                "again.",
                stage=self.owner,
                call_index=record.index,
                scripted=len(self.scripted),
            )
            self.unexpected.append(error)
            record.status, record.error, record.ended_at = "raised", error, time.monotonic()
        raise error

    def start(self, record: _Record) -> None:
        with self._lock:
            record.status = "running"

    def emit(self, record: _Record, output: Any) -> None:
        with self._lock:
            record.outputs.append(output)

    def finish(
        self, record: _Record, status: CallStatus, error: BaseException | None = None
    ) -> None:
        with self._lock:
            record.status, record.error, record.ended_at = status, error, time.monotonic()

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self._left)

    def snapshot(self) -> list[_Record]:
        with self._lock:
            return [attrs.evolve(r, outputs=list(r.outputs)) for r in self.records]

    def assert_complete(self) -> None:
        with self._lock:
            left = list(self._left)
            calls = len(self.records)
            unexpected = list(self.unexpected)
        if unexpected:
            first = unexpected[0]
            raise UnexpectedCallError(
                f"{len(unexpected)} call(s) had no script item; the first was: {first}",
                stage=self.owner,
                call_index=first.call_index,
                scripted=len(self.scripted),
            )
        if left:
            used = len(self.scripted) - len(left)
            listed = _listing(left, start=used)
            raise UnconsumedScriptError(
                f"{self.owner}: {len(left)} of {len(self.scripted)} script item(s) were never "
                f"used (it received {calls} call(s)); unused: {listed}",
                remaining=len(left),
            )


def _outputs(record: _Record, kind: type[T]) -> tuple[T, ...]:
    return tuple(o for o in record.outputs if isinstance(o, kind))


def _check_delay(name: str, value: float) -> float:
    if not value >= 0:  # also rejects NaN
        raise ConfigurationError(f"{name} must be a number of seconds >= 0, not {value!r}")
    return float(value)


def _words(text: str) -> list[str]:
    """Cut text into word-ish deltas that keep every whitespace character."""
    return re.findall(r"\S+\s*|\s+", text)


def _sleep_sync(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)


def _wait_sync(owner: str, step: Wait) -> None:
    if not step.event.wait(step.timeout):
        raise WaitTimeoutError(
            f"{owner}: a Wait step's event was not set within {step.timeout} s; "
            "set the event in the test, or raise Wait(timeout=...)"
        )


async def _wait_async(owner: str, step: Wait) -> None:
    deadline = time.monotonic() + step.timeout
    while not step.event.is_set():
        if time.monotonic() >= deadline:
            raise WaitTimeoutError(
                f"{owner}: a Wait step's event was not set within {step.timeout} s; "
                "set the event in the test, or raise Wait(timeout=...)"
            )
        await asyncio.sleep(_POLL)


class _Player:
    """Plays a call's steps with the fake's delays, recording what it yields."""

    def __init__(self, script: _Script[Any], delay: float, chunk_delay: float) -> None:
        self.script = script
        self.delay = delay
        self.chunk_delay = chunk_delay

    def _gap(self, step: object, emitted: int) -> float:
        return self.chunk_delay if emitted and not isinstance(step, Usage) else 0.0

    def play_sync(self, record: _Record, steps: Sequence[object]) -> Iterator[Any]:
        script = self.script
        script.start(record)
        try:
            _sleep_sync(self.delay)
            emitted = 0
            for step in steps:
                if isinstance(step, Pause):
                    _sleep_sync(step.seconds)
                elif isinstance(step, Wait):
                    _wait_sync(script.owner, step)
                elif isinstance(step, BaseException):
                    raise step
                else:
                    _sleep_sync(self._gap(step, emitted))
                    emitted += 1
                    script.emit(record, step)
                    yield step
        except GeneratorExit:
            script.finish(record, "closed")
            raise
        except BaseException as exc:
            script.finish(record, "raised", exc)
            raise
        script.finish(record, "done")

    async def play_async(self, record: _Record, steps: Sequence[object]) -> AsyncIterator[Any]:
        script = self.script
        script.start(record)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            emitted = 0
            for step in steps:
                if isinstance(step, Pause):
                    await asyncio.sleep(step.seconds)
                elif isinstance(step, Wait):
                    await _wait_async(script.owner, step)
                elif isinstance(step, BaseException):
                    raise step
                else:
                    gap = self._gap(step, emitted)
                    if gap:
                        await asyncio.sleep(gap)
                    emitted += 1
                    script.emit(record, step)
                    yield step
        except GeneratorExit:
            script.finish(record, "closed")
            raise
        except asyncio.CancelledError as exc:
            script.finish(record, "cancelled", exc)
            raise
        except BaseException as exc:
            script.finish(record, "raised", exc)
            raise
        script.finish(record, "done")

    def run_sync(self, record: _Record, result: Transcript | BaseException) -> Transcript:
        self.script.start(record)
        try:
            _sleep_sync(self.delay)
            if isinstance(result, BaseException):
                raise result
        except BaseException as exc:
            self.script.finish(record, "raised", exc)
            raise
        self.script.emit(record, result)
        self.script.finish(record, "done")
        return result

    async def run_async(self, record: _Record, result: Transcript | BaseException) -> Transcript:
        self.script.start(record)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if isinstance(result, BaseException):
                raise result
        except asyncio.CancelledError as exc:
            self.script.finish(record, "cancelled", exc)
            raise
        except BaseException as exc:
            self.script.finish(record, "raised", exc)
            raise
        self.script.emit(record, result)
        self.script.finish(record, "done")
        return result


def _check_steps(owner: str, index: int, steps: Sequence[object], kinds: tuple[type, ...]) -> None:
    for j, step in enumerate(steps):
        if not isinstance(step, (*kinds, BaseException, Wait, Pause)):
            allowed = ", ".join(k.__name__ for k in kinds)
            raise ConfigurationError(
                f"{owner}: step {j} of script item {index} is {_short(step)}; a step must be "
                f"one of {allowed}, an exception to raise, Wait(...) or Pause(...)"
            )


# --------------------------------------------------------------------------- transcriber


class _TranscriberBase:
    """Shared state and behaviour of the scripted transcribers."""

    def __init__(
        self,
        script: Iterable[TranscriberItem] = (),
        *,
        stream: bool = False,
        delay: float = 0.0,
        chunk_delay: float = 0.0,
        usage: bool | Usage = False,
        model: str = "scripted-stt",
        language: str | None = None,
    ) -> None:
        owner = type(self).__name__
        items = list(script)
        for i, item in enumerate(items):
            if not isinstance(item, (str, Transcript, BaseException)):
                raise ConfigurationError(
                    f"{owner}: script item {i} is {_short(item)}; a transcriber item must be "
                    "the text heard (str), a Transcript, or an exception to raise"
                )
        self._script: _Script[TranscriberItem] = _Script(owner, items)
        self._player = _Player(
            self._script, _check_delay("delay", delay), _check_delay("chunk_delay", chunk_delay)
        )
        self._usage = usage
        self._model = model
        self._language = language

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(calls={len(self._script.records)}, "
            f"remaining={self._script.remaining})"
        )

    @property
    def calls(self) -> tuple[TranscriberCall, ...]:
        """Snapshots of every call received so far, in call order."""
        out = []
        for r in self._script.snapshot():
            finals = _outputs(r, Transcript)
            out.append(
                TranscriberCall(
                    index=r.index,
                    method="transcribe_stream" if r.method == "transcribe_stream" else "transcribe",
                    audio=r.received,
                    deltas=_outputs(r, str),
                    transcript=finals[-1] if finals else None,
                    status=r.status,
                    error=r.error,
                    started_at=r.started_at,
                    ended_at=r.ended_at,
                )
            )
        return tuple(out)

    @property
    def remaining(self) -> int:
        """How many script items are left."""
        return self._script.remaining

    def assert_complete(self) -> None:
        """Check that every script item was used and no call went beyond the script.

        Raises:
            UnconsumedScriptError: Script items are left.
            UnexpectedCallError: A call came after the script was used up.
        """
        self._script.assert_complete()

    def _begin(self, method: str, audio: Audio) -> tuple[_Record, Transcript | BaseException]:
        if not isinstance(audio, Audio):
            raise TypeError(
                f"{type(self).__name__}.{method}() expects chainvoice.Audio, "
                f"got {type(audio).__name__}"
            )
        record, item = self._script.begin(method, audio, repr(audio))
        assert item is not None
        return record, self._final(item, audio)

    def _final(self, item: TranscriberItem, audio: Audio) -> Transcript | BaseException:
        if isinstance(item, BaseException):
            return item
        transcript = (
            Transcript(item, language=self._language, duration=audio.duration, model=self._model)
            if isinstance(item, str)
            else item
        )
        if self._usage is not False and transcript.usage is None:
            usage = (
                self._usage
                if isinstance(self._usage, Usage)
                else Usage(
                    stage="transcribe",
                    model=self._model,
                    audio_seconds=audio.duration,
                    requests=1,
                    cost_usd=audio.duration * 0.0001,
                )
            )
            transcript = attrs.evolve(transcript, usage=usage)
        return transcript

    @staticmethod
    def _stream_steps(final: Transcript | BaseException) -> list[object]:
        if isinstance(final, BaseException):
            return [final]
        return [*_words(final.text), final]


class ScriptedTranscriber(_TranscriberBase):
    """A transcriber that returns scripted transcripts, one per call, and records its calls.

    Args:
        script: One item per call, used in order: the text heard (``str``), a whole
            ``Transcript``, or an exception that the call raises.
        stream: Also offer ``transcribe_stream(audio)``, which yields the text word by word
            and then the final ``Transcript``. Without it the fake has no
            ``transcribe_stream`` attribute at all.
        delay: Seconds to wait before the result (or the first delta).
        chunk_delay: Seconds to wait between streamed outputs.
        usage: ``True`` to attach a ``Usage`` to each transcript (stage ``"transcribe"``,
            the audio's duration, one request, a made-up price of $0.006 a minute), or the
            ``Usage`` to attach. A scripted ``Transcript`` keeps its own usage.
        model: The model name put on transcripts and usage.
        language: The language put on transcripts made from ``str`` items.

    Raises:
        ConfigurationError: A script item of the wrong type, or a negative delay.

    Example:
        >>> import chainvoice as cv
        >>> fake = ScriptedTranscriber(["hello"])
        >>> fake.transcribe(cv.Audio.silence(0.5)).text
        'hello'
        >>> fake.assert_complete()
    """

    @overload
    def __new__(
        cls,
        script: Iterable[TranscriberItem] = ...,
        *,
        stream: Literal[False] = ...,
        delay: float = ...,
        chunk_delay: float = ...,
        usage: bool | Usage = ...,
        model: str = ...,
        language: str | None = ...,
    ) -> ScriptedTranscriber: ...

    @overload
    def __new__(
        cls,
        script: Iterable[TranscriberItem] = ...,
        *,
        stream: Literal[True],
        delay: float = ...,
        chunk_delay: float = ...,
        usage: bool | Usage = ...,
        model: str = ...,
        language: str | None = ...,
    ) -> StreamingScriptedTranscriber: ...

    @overload
    def __new__(
        cls,
        script: Iterable[TranscriberItem] = ...,
        *,
        stream: bool,
        delay: float = ...,
        chunk_delay: float = ...,
        usage: bool | Usage = ...,
        model: str = ...,
        language: str | None = ...,
    ) -> ScriptedTranscriber: ...

    def __new__(cls, *args: Any, stream: bool = False, **kwargs: Any) -> ScriptedTranscriber:
        if stream and not issubclass(cls, StreamingScriptedTranscriber):
            cls = StreamingScriptedTranscriber
        return super().__new__(cls)

    def transcribe(self, audio: Audio) -> Transcript:
        """Play the next script item: return its transcript or raise its exception."""
        record, final = self._begin("transcribe", audio)
        return self._player.run_sync(record, final)


class StreamingScriptedTranscriber(ScriptedTranscriber):
    """A :class:`ScriptedTranscriber` that also streams; ``ScriptedTranscriber(stream=True)``."""

    def transcribe_stream(self, audio: Audio) -> Iterator[str | Transcript]:
        """Play the next script item as word deltas, then the final transcript."""
        record, final = self._begin("transcribe_stream", audio)
        return self._player.play_sync(record, self._stream_steps(final))


class AsyncScriptedTranscriber(_TranscriberBase):
    """The async twin of :class:`ScriptedTranscriber`, with the same arguments.

    ``transcribe`` is a coroutine and ``transcribe_stream`` (with ``stream=True``) an async
    iterator; delays use ``asyncio.sleep`` and :class:`Wait` steps poll, so a cancelled
    call stops at once.
    """

    @overload
    def __new__(
        cls,
        script: Iterable[TranscriberItem] = ...,
        *,
        stream: Literal[False] = ...,
        delay: float = ...,
        chunk_delay: float = ...,
        usage: bool | Usage = ...,
        model: str = ...,
        language: str | None = ...,
    ) -> AsyncScriptedTranscriber: ...

    @overload
    def __new__(
        cls,
        script: Iterable[TranscriberItem] = ...,
        *,
        stream: Literal[True],
        delay: float = ...,
        chunk_delay: float = ...,
        usage: bool | Usage = ...,
        model: str = ...,
        language: str | None = ...,
    ) -> AsyncStreamingScriptedTranscriber: ...

    @overload
    def __new__(
        cls,
        script: Iterable[TranscriberItem] = ...,
        *,
        stream: bool,
        delay: float = ...,
        chunk_delay: float = ...,
        usage: bool | Usage = ...,
        model: str = ...,
        language: str | None = ...,
    ) -> AsyncScriptedTranscriber: ...

    def __new__(cls, *args: Any, stream: bool = False, **kwargs: Any) -> AsyncScriptedTranscriber:
        if stream and not issubclass(cls, AsyncStreamingScriptedTranscriber):
            cls = AsyncStreamingScriptedTranscriber
        return super().__new__(cls)

    async def transcribe(self, audio: Audio) -> Transcript:
        """Play the next script item: return its transcript or raise its exception."""
        record, final = self._begin("transcribe", audio)
        return await self._player.run_async(record, final)


class AsyncStreamingScriptedTranscriber(AsyncScriptedTranscriber):
    """An :class:`AsyncScriptedTranscriber` that also streams (``stream=True``)."""

    def transcribe_stream(self, audio: Audio) -> AsyncIterator[str | Transcript]:
        """Play the next script item as word deltas, then the final transcript."""
        record, final = self._begin("transcribe_stream", audio)
        return self._player.play_async(record, self._stream_steps(final))


# --------------------------------------------------------------------------- responder


def _conversation_words(conversation: Conversation) -> int:
    words = len((conversation.instructions or "").split())
    return words + sum(len(m.content.split()) for m in conversation.messages)


class _ResponderBase:
    """Shared state and behaviour of the scripted responders."""

    def __init__(
        self,
        script: Iterable[ResponderItem] = (),
        *,
        delay: float = 0.0,
        chunk_delay: float = 0.0,
        usage: bool | Usage = False,
        model: str = "scripted-llm",
    ) -> None:
        owner = type(self).__name__
        items: list[ResponderItem] = []
        for i, item in enumerate(script):
            if isinstance(item, (str, BaseException)):
                items.append(item)
            elif isinstance(item, Sequence):
                _check_steps(owner, i, item, (str, Usage))
                items.append(tuple(item))
            else:
                raise ConfigurationError(
                    f"{owner}: script item {i} is {_short(item)}; a responder item must be a "
                    "reply str, an exception to raise, or a sequence of steps"
                )
        self._script: _Script[ResponderItem] = _Script(owner, items)
        self._player = _Player(
            self._script, _check_delay("delay", delay), _check_delay("chunk_delay", chunk_delay)
        )
        self._usage = usage
        self._model = model

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(calls={len(self._script.records)}, "
            f"remaining={self._script.remaining})"
        )

    @property
    def calls(self) -> tuple[ResponderCall, ...]:
        """Snapshots of every call received so far, in call order."""
        return tuple(
            ResponderCall(
                index=r.index,
                conversation=r.received,
                deltas=_outputs(r, str),
                usage=_outputs(r, Usage),
                status=r.status,
                error=r.error,
                started_at=r.started_at,
                ended_at=r.ended_at,
            )
            for r in self._script.snapshot()
        )

    @property
    def remaining(self) -> int:
        """How many script items are left."""
        return self._script.remaining

    def assert_complete(self) -> None:
        """Check that every script item was used and no call went beyond the script.

        Raises:
            UnconsumedScriptError: Script items are left.
            UnexpectedCallError: A call came after the script was used up.
        """
        self._script.assert_complete()

    def _begin(self, conversation: Conversation) -> tuple[_Record, list[object]]:
        if not isinstance(conversation, Conversation):
            raise TypeError(
                f"{type(self).__name__}.respond() expects chainvoice.Conversation, "
                f"got {type(conversation).__name__}"
            )
        shown = f"conversation ending {_short(conversation.last_user_text, 40)}"
        record, item = self._script.begin("respond", conversation, shown)
        assert item is not None
        if isinstance(item, BaseException):
            return record, [item]
        steps: list[object] = list(_words(item) if isinstance(item, str) else item)
        if self._usage is not False:
            steps.append(self._make_usage(conversation, steps))
        return record, steps

    def _make_usage(self, conversation: Conversation, steps: list[object]) -> Usage:
        if isinstance(self._usage, Usage):
            return self._usage
        deltas = [s for s in steps if isinstance(s, str)]
        words_in = _conversation_words(conversation)
        return Usage(
            stage="respond",
            model=self._model,
            input_tokens=words_in,
            output_tokens=len(deltas),
            characters=sum(len(d) for d in deltas),
            requests=1,
            cost_usd=(words_in + 4 * len(deltas)) * 1e-6,
        )


class ScriptedResponder(_ResponderBase):
    """A responder that streams scripted replies, one per call, and records its calls.

    Args:
        script: One item per call, used in order: a reply ``str`` (yielded word by word,
            whitespace kept), an exception that the call raises before any text, or a
            sequence of steps: ``str`` deltas (yielded as given), ``Usage`` items,
            exceptions (raised at that point), :class:`Wait` and :class:`Pause`.
        delay: Seconds to wait before the first delta.
        chunk_delay: Seconds to wait between deltas.
        usage: ``True`` to yield a ``Usage`` after the text of each call (stage
            ``"respond"``, one input token per word of the conversation, one output token
            per delta, a made-up price of $1 / $4 per million input / output tokens), or
            the ``Usage`` to yield.
        model: The model name put on usage.

    Raises:
        ConfigurationError: A script item or step of the wrong type, or a negative delay.

    Example:
        >>> import chainvoice as cv
        >>> fake = ScriptedResponder(["Hi there!"])
        >>> list(fake.respond(cv.Conversation().add("user", "hello")))
        ['Hi ', 'there!']
    """

    def respond(self, conversation: Conversation) -> Iterator[str | Usage]:
        """Play the next script item as text deltas (and usage)."""
        record, steps = self._begin(conversation)
        return self._player.play_sync(record, steps)


class AsyncScriptedResponder(_ResponderBase):
    """The async twin of :class:`ScriptedResponder`, with the same arguments.

    ``respond`` returns an async iterator; delays use ``asyncio.sleep`` and :class:`Wait`
    steps poll, so a cancelled call stops at once.
    """

    def respond(self, conversation: Conversation) -> AsyncIterator[str | Usage]:
        """Play the next script item as text deltas (and usage)."""
        record, steps = self._begin(conversation)
        return self._player.play_async(record, steps)


# --------------------------------------------------------------------------- synthesizer

FailOn: TypeAlias = str | int | Sequence[str | int] | None


class _SynthesizerBase:
    """Shared state and behaviour of the scripted synthesizers."""

    def __init__(
        self,
        script: Iterable[SynthesizerItem] | None = None,
        *,
        rate: int = 24000,
        channels: int = 1,
        chunks: int = 3,
        seconds_per_char: float = 0.01,
        fail_on: FailOn = None,
        error: BaseException | None = None,
        fail_after: int = 0,
        delay: float = 0.0,
        chunk_delay: float = 0.0,
        usage: bool | Usage = False,
        model: str = "scripted-tts",
    ) -> None:
        owner = type(self).__name__
        items: list[SynthesizerItem] | None = None
        if script is not None:
            items = []
            for i, item in enumerate(script):
                if isinstance(item, BaseException):
                    items.append(item)
                elif isinstance(item, (list, tuple)):
                    _check_steps(owner, i, item, (Audio, Usage))
                    items.append(tuple(item))
                else:
                    raise ConfigurationError(
                        f"{owner}: script item {i} is {_short(item)}; a synthesizer item must "
                        "be an exception to raise or a sequence of steps (Audio chunks, ...)"
                    )
        for name, value in (("rate", rate), ("channels", channels), ("chunks", chunks)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be a positive integer, not {value!r}")
        if not seconds_per_char > 0:
            raise ConfigurationError(
                f"seconds_per_char must be a positive number, not {seconds_per_char!r}"
            )
        if isinstance(fail_after, bool) or not isinstance(fail_after, int) or fail_after < 0:
            raise ConfigurationError(f"fail_after must be an integer >= 0, not {fail_after!r}")
        self._fail_on: tuple[str | int, ...] = (
            ()
            if fail_on is None
            else (fail_on,)
            if isinstance(fail_on, (str, int))
            else tuple(fail_on)
        )
        for target in self._fail_on:
            if isinstance(target, bool) or not isinstance(target, (str, int)):
                raise ConfigurationError(
                    f"fail_on takes texts (str) and call indexes (int), not {target!r}"
                )
        self._script: _Script[SynthesizerItem] = _Script(owner, items)
        self._player = _Player(
            self._script, _check_delay("delay", delay), _check_delay("chunk_delay", chunk_delay)
        )
        self._rate = rate
        self._channels = channels
        self._chunks = chunks
        self._seconds_per_char = float(seconds_per_char)
        self._error = error
        self._fail_after = fail_after
        self._usage = usage
        self._model = model

    def __repr__(self) -> str:
        left = "unlimited" if self._script.unlimited else str(self._script.remaining)
        return f"{type(self).__name__}(calls={len(self._script.records)}, remaining={left})"

    @property
    def calls(self) -> tuple[SynthesizerCall, ...]:
        """Snapshots of every call received so far, in call order."""
        return tuple(
            SynthesizerCall(
                index=r.index,
                text=r.received,
                chunks=_outputs(r, Audio),
                usage=_outputs(r, Usage),
                status=r.status,
                error=r.error,
                started_at=r.started_at,
                ended_at=r.ended_at,
            )
            for r in self._script.snapshot()
        )

    @property
    def remaining(self) -> int | None:
        """How many script items are left (``None`` without a script: unlimited)."""
        return None if self._script.unlimited else self._script.remaining

    def assert_complete(self) -> None:
        """Check that every script item was used and no call went beyond the script.

        Without a script there is nothing to use up, and this always passes.

        Raises:
            UnconsumedScriptError: Script items are left.
            UnexpectedCallError: A call came after the script was used up.
        """
        self._script.assert_complete()

    def chunks_for(self, text: str) -> list[Audio]:
        """The chunks this fake generates for ``text`` when it has no script.

        Blank text gives no chunks.
        """
        spoken = len(text.strip())
        if not spoken:
            return []
        frames = max(1, round(spoken * self._seconds_per_char * self._rate))
        pitch = 220.0 + zlib.crc32(text.encode("utf-8")) % 660
        t = np.arange(frames, dtype=np.float64) / self._rate
        tone = (0.1 * np.sin(2 * np.pi * pitch * t)).astype(np.float32)
        samples = np.repeat(tone[:, None], self._channels, axis=1)
        parts = np.array_split(samples, min(self._chunks, frames))
        return [Audio(part, self._rate) for part in parts]

    def audio_for(self, text: str) -> Audio | None:
        """The audio this fake generates for ``text`` when it has no script, joined.

        Returns:
            The audio, or ``None`` for blank text (which gives no chunks).
        """
        parts = self.chunks_for(text)
        return Audio.concat(parts) if parts else None

    def _fails(self, index: int, text: str) -> bool:
        return any(
            target == index if isinstance(target, int) else target in text
            for target in self._fail_on
        )

    def _begin(self, text: str) -> tuple[_Record, list[object]]:
        if not isinstance(text, str):
            raise TypeError(
                f"{type(self).__name__}.synthesize() expects str, got {type(text).__name__}"
            )
        record, item = self._script.begin("synthesize", text, _short(text, 40))
        if isinstance(item, BaseException):
            return record, [item]
        steps: list[object] = list(self.chunks_for(text)) if item is None else list(item)
        if self._fails(record.index, text):
            error = self._error or RuntimeError(
                f"scripted synthesis failure on call #{record.index} ({_short(text, 40)})"
            )
            chunks = [s for s in steps if isinstance(s, Audio)][: self._fail_after]
            return record, [*chunks, error]
        if self._usage is not False:
            steps.append(self._make_usage(text, steps))
        return record, steps

    def _make_usage(self, text: str, steps: list[object]) -> Usage:
        if isinstance(self._usage, Usage):
            return self._usage
        seconds = sum(s.duration for s in steps if isinstance(s, Audio))
        return Usage(
            stage="synthesize",
            model=self._model,
            characters=len(text),
            audio_seconds=seconds,
            requests=1,
            cost_usd=len(text) * 15e-6,
        )


class ScriptedSynthesizer(_SynthesizerBase):
    """A synthesizer that speaks any text as a deterministic tone, or plays a script.

    Without a script, every call speaks: it yields a quiet sine tone whose length is
    proportional to the text (``seconds_per_char`` per non-blank character) and whose
    pitch depends on the text, split into ``chunks`` chunks. :meth:`audio_for` gives the
    audio a text produces, so tests can compare output with what was expected.

    Args:
        script: ``None`` to speak any text as above, or one item per call, used in order:
            an exception that the call raises before any audio, or a sequence of steps:
            ``Audio`` chunks, ``Usage`` items, exceptions (raised at that point),
            :class:`Wait` and :class:`Pause`.
        rate: Sample rate of the generated audio, in Hz.
        channels: Channel count of the generated audio.
        chunks: How many chunks each generated reply is split into (fewer for very short
            text).
        seconds_per_char: Seconds of generated audio per non-blank character.
        fail_on: Calls that fail instead: a ``str`` fails every call whose text contains
            it, an ``int`` the call with that 0-based index; a sequence mixes both.
        error: The exception a failing call raises (default: a ``RuntimeError`` naming
            the text).
        fail_after: How many chunks a failing call yields before it raises.
        delay: Seconds to wait before the first chunk.
        chunk_delay: Seconds to wait between chunks.
        usage: ``True`` to yield a ``Usage`` after each call's audio (stage
            ``"synthesize"``, the text's characters, the audio's seconds, one request, a
            made-up price of $15 per million characters), or the ``Usage`` to yield.
        model: The model name put on usage.

    Raises:
        ConfigurationError: A script item or step of the wrong type, or an impossible
            option (a negative delay, ``chunks < 1``, a non-positive rate).

    Example:
        >>> fake = ScriptedSynthesizer(chunks=2)
        >>> [chunk.rate for chunk in fake.synthesize("Hello.")]
        [24000, 24000]
    """

    def synthesize(self, text: str) -> Iterator[Audio | Usage]:
        """Yield the audio chunks (and usage) for ``text``."""
        record, steps = self._begin(text)
        return self._player.play_sync(record, steps)


class AsyncScriptedSynthesizer(_SynthesizerBase):
    """The async twin of :class:`ScriptedSynthesizer`, with the same arguments.

    ``synthesize`` returns an async iterator; delays use ``asyncio.sleep`` and
    :class:`Wait` steps poll, so a cancelled call stops at once.
    """

    def synthesize(self, text: str) -> AsyncIterator[Audio | Usage]:
        """Yield the audio chunks (and usage) for ``text``."""
        record, steps = self._begin(text)
        return self._player.play_async(record, steps)
