"""Chain and AsyncChain: audio in, spoken reply out, whole-turn or event by event.

Both faces share one streaming core written with asyncio (:class:`_Core`):

- ``AsyncChain`` runs it on the caller's event loop; sync stages run in worker threads.
- ``Chain`` runs it on a private event loop in a background thread, so it works the
  same in a script, in a thread, and inside a running event loop (a notebook); async
  stages run on that private loop.

Within a turn the reply is cut into speakable pieces as it streams; each piece goes to the
synthesizer at once, pieces are synthesized concurrently (bounded) and their audio is
emitted strictly in text order, each chunk as soon as it arrives.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import difflib
import functools
import inspect
import os
import queue
import sys
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any, Protocol, TypeVar

import attrs

from chainvoice._audio import Audio, _Joined
from chainvoice._errors import (
    ChainBusyError,
    ChainClosedError,
    ConfigurationError,
    EmptyAudioError,
    PartialTranscriptionError,
    ProtocolError,
    StageError,
)
from chainvoice._events import (
    AudioChunk,
    Event,
    ReplyDelta,
    ReplyDone,
    TranscriptDelta,
    TranscriptDone,
    TurnDone,
)
from chainvoice._pace import AHEAD, CHARACTERS_PER_SECOND
from chainvoice._splitter import SentenceSplitter
from chainvoice._types import (
    Conversation,
    Reply,
    StageTiming,
    Timings,
    Transcript,
    Turn,
    Usage,
)

__all__ = ["AsyncChain", "Chain", "Splitter"]

T = TypeVar("T")
_C = TypeVar("_C", bound="_ChainBase")

_STOP: Any = object()
_END: Any = object()

#: How long a new async turn waits for an abandoned stream to be closed by the event loop.
_BUSY_GRACE = 1.0

#: How long closing a stream waits for the turn's tasks to wind down before giving up.
_CLOSE_TIMEOUT = 10.0


class Splitter(Protocol):
    """What a chain needs from a text splitter (see :class:`SentenceSplitter`)."""

    def push(self, delta: str) -> list[str]:
        """Add a text delta; return the pieces that are now complete."""
        ...

    def flush(self) -> list[str]:
        """Return the rest of the text as final pieces."""
        ...


# --------------------------------------------------------------------------------------
# Driving stages from the event loop


class _SyncStepper:
    """Steps a sync iterator in worker threads and closes it safely when asked.

    A generator cannot be closed while a ``next()`` is running in another thread, so a
    close requested mid-step is carried out by that step's thread as soon as it returns:
    a sync stage stops at its next yield.
    """

    def __init__(self, it: Iterator[Any]) -> None:
        self._it = it
        self._lock = threading.Lock()
        self._running = False
        self._close_requested = False
        self._closed = False

    def step(self) -> Any:
        with self._lock:
            stop = self._close_requested
            if not stop:
                self._running = True
        if stop:
            return _STOP
        try:
            return next(self._it, _STOP)
        finally:
            with self._lock:
                self._running = False
                close_now = self._close_requested
            if close_now:
                self.close_now()

    def request_close(self) -> bool:
        """Ask for a close; True when the caller must close now (no step is running)."""
        with self._lock:
            self._close_requested = True
            return not self._running

    def close_now(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        close = getattr(self._it, "close", None)
        if close is not None:
            close()


class _Runtime:
    """Runs blocking stage code in a chain-owned pool of worker threads."""

    def __init__(self, max_workers: int) -> None:
        self._max_workers = max_workers
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def pool(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self._max_workers, thread_name_prefix="chainvoice-stage"
                )
            return self._pool

    def shutdown(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.wrap_future(self.pool().submit(fn, *args))

    async def iterate(self, obj: Any, what: str) -> AsyncGenerator[Any, None]:
        """Iterate over a stage's output, whatever its kind, from the event loop.

        Accepts an async iterable, an awaitable (its result is iterated), a ``str`` (one
        item), a list or tuple (iterated in place), or any other iterable (stepped in
        worker threads, one ``next()`` at a time).
        """
        while inspect.isawaitable(obj):
            obj = await obj
        if isinstance(obj, str):
            yield obj
            return
        if hasattr(obj, "__aiter__"):
            agen = obj.__aiter__()
            try:
                async for item in agen:
                    yield item
            finally:
                aclose = getattr(agen, "aclose", None)
                if aclose is not None:
                    await aclose()
            return
        if isinstance(obj, (list, tuple)):
            for item in obj:
                yield item
            return
        try:
            it = iter(obj)
        except TypeError:
            raise ProtocolError(
                f"{what} returned {type(obj).__name__}, which is neither iterable nor "
                "async iterable; return (or yield) the items instead"
            ) from None
        stepper = _SyncStepper(it)
        inflight: concurrent.futures.Future[Any] | None = None
        try:
            while True:
                inflight = self.pool().submit(stepper.step)
                item = await asyncio.wrap_future(inflight)
                inflight = None
                if item is _STOP:
                    return
                yield item
        finally:
            if stepper.request_close():
                await self.call(stepper.close_now)
            elif inflight is not None:
                # A step is running in a worker thread and closes the iterator when it
                # returns: the stage stops at its next yield. Wait for that, so that a
                # closed stream really has stopped its stages.
                with contextlib.suppress(Exception):
                    await asyncio.wrap_future(inflight)

    async def invoke(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call a stage method: coroutine functions on the loop, the rest in a thread."""
        if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
            return fn(*args)
        return await self.call(fn, *args)


def _stage_label(stage: object) -> str:
    name = getattr(stage, "__qualname__", None) or type(stage).__qualname__
    return str(name)


def _speakable(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


def _check_usage(item: Usage, stage: str) -> Usage:
    return item if item.stage is not None else attrs.evolve(item, stage=stage)


def _join_audio(chunks: list[Audio]) -> Audio | None:
    if not chunks:
        return None
    first = chunks[0]
    same = [
        c
        if (c.rate, c.channels) == (first.rate, first.channels)
        else _conform(c, first.rate, first.channels)
        for c in chunks
    ]
    return _Joined.of(same)  # joined when first used: a streaming listener has the parts


def _conform(chunk: Audio, rate: int, channels: int) -> Audio:
    out = chunk.to_channels(channels) if chunk.channels != channels else chunk
    return out.resample(rate) if out.rate != rate else out


# --------------------------------------------------------------------------------------
# One turn's record, from which the Turn (whole or partial) is built


@attrs.define
class _TurnRecord:
    clock: Callable[[], float]
    t0: float
    input_audio: Audio | None = None
    user_text: str = ""
    transcript: Transcript | None = None
    transcript_parts: list[str] = attrs.Factory(list)
    reply_parts: list[str] = attrs.Factory(list)
    #: The reply text up to the end of the last piece whose audio reached the caller.
    spoken_end: int = 0
    audio_chunks: list[Audio] = attrs.Factory(list)
    usage_items: list[Usage] = attrs.Factory(list)
    transcribe: StageTiming | None = None
    respond: StageTiming | None = None
    synthesize: StageTiming | None = None
    first_audio: float | None = None

    def now(self) -> float:
        return self.clock() - self.t0

    @property
    def reply_text(self) -> str:
        return "".join(self.reply_parts)

    def total_usage(self) -> Usage:
        """The usage summed; a stage that ran but reported nothing makes the cost unknown."""
        total = Usage.total(self.usage_items)
        reported = {item.stage for item in self.usage_items}
        ran = {
            "transcribe": self.transcribe,
            "respond": self.respond,
            "synthesize": self.synthesize,
        }
        silent = tuple(
            f"the {stage} stage (it reported no usage)"
            for stage, timing in ran.items()
            if timing is not None and stage not in reported
        )
        if silent:
            total = attrs.evolve(total, cost_usd=None, unpriced=total.unpriced + silent)
        return total

    def build(self, *, interrupted: bool) -> Turn:
        return Turn(
            user_text=self.user_text,
            transcript=self.transcript,
            reply=Reply(self.reply_text, _join_audio(self.audio_chunks)),
            timings=Timings(
                transcribe=self.transcribe,
                respond=self.respond,
                synthesize=self.synthesize,
                first_audio=self.first_audio,
                total=self.now(),
            ),
            usage=self.total_usage(),
            usage_items=tuple(self.usage_items),
            input_audio=self.input_audio,
            interrupted=interrupted,
        )


def _started(rec: _TurnRecord) -> StageTiming:
    return StageTiming(start=rec.now())


def _first(timing: StageTiming | None, rec: _TurnRecord) -> StageTiming | None:
    if timing is None or timing.first_output is not None:
        return timing
    return attrs.evolve(timing, first_output=rec.now())


def _ended(timing: StageTiming | None, rec: _TurnRecord) -> StageTiming | None:
    return None if timing is None else attrs.evolve(timing, end=rec.now())


@attrs.define
class _Piece:
    index: int
    text: str
    #: Where the piece ends in the reply text (the splitter's pieces join to the reply).
    end: int
    chunks: asyncio.Queue[Any] = attrs.Factory(asyncio.Queue)
    task: asyncio.Task[None] | None = None
    #: Seconds of audio received for the piece so far.
    seconds: float = 0.0


@attrs.define
class _ReplyState:
    pieces: list[_Piece] = attrs.Factory(list)
    changed: asyncio.Event = attrs.Factory(asyncio.Event)
    text_done: bool = False
    synth_failed: BaseException | None = None
    #: How much of the reply text the splitter has cut into pieces so far.
    cut_to: int = 0
    #: The piece whose audio is being played out now (its chunks may skip its queue).
    playing: _Piece | None = None


@attrs.frozen
class _TaskDone:
    stage: str
    task: asyncio.Task[None]


# --------------------------------------------------------------------------------------
# The core shared by Chain and AsyncChain


class _Core:
    def __init__(
        self,
        transcriber: Any,
        responder: Any,
        synthesizer: Any,
        *,
        instructions: str | None,
        conversation: Conversation | None,
        splitter: Callable[[], Splitter] | None,
        max_concurrent_synthesis: int,
        skip_empty_transcripts: bool,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if responder is None:
            raise ConfigurationError("a chain needs a responder (a stage or a plain function)")
        if not (hasattr(responder, "respond") or callable(responder)):
            raise ConfigurationError(
                f"the responder must have a respond(conversation) method or be callable; "
                f"got {type(responder).__name__}"
            )
        if transcriber is not None and not hasattr(transcriber, "transcribe"):
            raise ConfigurationError(
                f"the transcriber must have a transcribe(audio) method; "
                f"got {type(transcriber).__name__}"
            )
        if synthesizer is not None and not hasattr(synthesizer, "synthesize"):
            raise ConfigurationError(
                f"the synthesizer must have a synthesize(text) method; "
                f"got {type(synthesizer).__name__}"
            )
        if max_concurrent_synthesis < 1:
            raise ConfigurationError("max_concurrent_synthesis must be at least 1")
        if conversation is not None and instructions is not None:
            conversation = attrs.evolve(conversation, instructions=instructions)
        self.transcriber = transcriber
        self.responder = responder
        self.synthesizer = synthesizer
        if conversation is None:
            conversation = Conversation(instructions=instructions)
        elif not isinstance(conversation, Conversation):
            raise ConfigurationError(
                f"conversation must be a chainvoice.Conversation, not {type(conversation).__name__}"
            )
        self.conversation = conversation
        self.new_splitter: Callable[[], Splitter] = splitter or SentenceSplitter
        self.max_concurrent_synthesis = max_concurrent_synthesis
        self.skip_empty_transcripts = skip_empty_transcripts
        self.clock = clock
        self.runtime = _Runtime(max_workers=max_concurrent_synthesis + 3)
        self.turn_usage: list[Usage] = []
        self.turns = 0
        self._busy = False

    # -- the turn --------------------------------------------------------------------

    def check_input(self, audio: Any, text: str | None) -> Audio | None:
        if (audio is None) == (text is None):
            raise ConfigurationError(
                "give a turn either audio (run(audio)) or text (run(text=...)), not both or neither"
            )
        if text is not None:
            if not isinstance(text, str):
                raise ConfigurationError(f"text must be a str, not {type(text).__name__}")
            return None
        if self.transcriber is None:
            raise ConfigurationError(
                "this chain has no transcriber, so it cannot take audio; pass text=... "
                "or build the chain with a transcriber"
            )
        checked = _coerce_audio(audio)
        if checked.frames == 0:
            raise EmptyAudioError(
                "the audio has no frames, so there is nothing to transcribe; record some "
                "speech, or pass text=... instead"
            )
        return checked

    async def events(
        self,
        audio: Audio | None,
        text: str | None,
        *,
        busy_grace: float = 0.0,
        sink: Callable[[Event], None] | None = None,
    ) -> AsyncGenerator[Event, None]:
        # ``sink``, if given, is handed the reply's events (text deltas, audio chunks, the
        # reply's end) in the task that makes them, in order, instead of their being
        # yielded here: the sync chain batches them without a step of this generator each.
        # An async stream left with a plain ``break`` is closed by the event loop a moment
        # later; a new turn waits that moment (``busy_grace``) before calling the chain busy.
        deadline = self.clock() + busy_grace
        # Polled rather than awaited on an asyncio.Event: a chain's turns may run on
        # different event loops over its life, and an Event binds to one loop.
        while self._busy and self.clock() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        if self._busy:
            raise ChainBusyError(
                "this chain is already running a turn; wait for it to finish (or close its "
                "stream: in async code, iterate inside contextlib.aclosing(chain.stream(...)) "
                "or call aclose()), or use a separate Chain for concurrent conversations"
            )
        self._busy = True
        rec = _TurnRecord(clock=self.clock, t0=self.clock(), input_audio=audio)
        committed_user = False
        finished = False
        failed = False
        try:
            if audio is not None:
                async with contextlib.aclosing(self._transcribe(audio, rec)) as stream:
                    async for ev in stream:
                        yield ev
                assert rec.transcript is not None
                yield TranscriptDone(rec.transcript)
                rec.user_text = rec.transcript.text
                if self.skip_empty_transcripts and not rec.user_text.strip():
                    finished = True
                    turn = self._finish(rec, interrupted=False)
                    yield TurnDone(turn)
                    return
            else:
                assert text is not None
                rec.user_text = text
            self.conversation = self.conversation.add("user", rec.user_text)
            committed_user = True
            async with contextlib.aclosing(self._reply(self.conversation, rec, sink)) as stream:
                async for ev in stream:
                    yield ev
            self.conversation = self.conversation.add("assistant", rec.reply_text)
            finished = True
            turn = self._finish(rec, interrupted=False)
            yield TurnDone(turn)
        except StageError:
            failed = True
            raise
        finally:
            if not finished:
                # Failed, cancelled or closed early: keep only what was actually produced.
                # A failed turn keeps all its reply text; an interrupted one (barge-in)
                # keeps, with a synthesizer, only the text whose audio reached the caller.
                said = rec.reply_text
                if not failed and self.synthesizer is not None:
                    said = said[: rec.spoken_end].rstrip()
                if committed_user and said:
                    self.conversation = self.conversation.add("assistant", said, interrupted=True)
                self._finish(rec, interrupted=True)
            self._busy = False

    def _finish(self, rec: _TurnRecord, *, interrupted: bool) -> Turn:
        turn = rec.build(interrupted=interrupted)
        self.turns += 1
        self.turn_usage.append(turn.usage)
        return turn

    def _fail(self, stage: str, exc: BaseException, rec: _TurnRecord) -> StageError:
        if isinstance(exc, StageError):
            return exc
        return StageError(stage, exc, rec.build(interrupted=True))

    async def _transcribe(self, audio: Audio, rec: _TurnRecord) -> AsyncGenerator[Event, None]:
        stage = self.transcriber
        rec.transcribe = _started(rec)
        final: Transcript | None = None
        try:
            streamer = getattr(stage, "transcribe_stream", None)
            if streamer is not None:
                output = await self.runtime.invoke(streamer, audio)
                async for item in self.runtime.iterate(output, "transcribe_stream()"):
                    if final is not None:
                        raise ProtocolError(
                            "transcribe_stream() yielded more after its final Transcript; "
                            "the Transcript must come last"
                        )
                    if isinstance(item, str):
                        if item:
                            rec.transcribe = _first(rec.transcribe, rec)
                            rec.transcript_parts.append(item)
                            yield TranscriptDelta(item)
                    elif isinstance(item, Usage):
                        rec.usage_items.append(_check_usage(item, "transcribe"))
                    elif isinstance(item, Transcript):
                        final = item
                    else:
                        raise ProtocolError(
                            f"transcribe_stream() yielded {type(item).__name__}; it may yield "
                            "str deltas, Usage items and one final Transcript"
                        )
                if final is None:
                    raise ProtocolError(
                        "transcribe_stream() ended without a final Transcript; yield one last"
                    )
            else:
                result = await self.runtime.invoke(stage.transcribe, audio)
                if inspect.isawaitable(result):
                    result = await result
                if not isinstance(result, Transcript):
                    raise ProtocolError(
                        f"transcribe() returned {type(result).__name__}; return a "
                        "chainvoice.Transcript (e.g. Transcript(text))"
                    )
                final = result
        except Exception as exc:
            # Keep what was heard: the text streamed so far, or the pieces of a long
            # recording that were transcribed.
            if isinstance(exc, PartialTranscriptionError):
                rec.transcript = exc.transcript
            elif rec.transcript_parts:
                rec.transcript = Transcript("".join(rec.transcript_parts))
            if rec.transcript is not None:
                rec.user_text = rec.transcript.text
            raise self._fail("transcribe", exc, rec) from exc
        rec.transcribe = _ended(_first(rec.transcribe, rec), rec)
        rec.transcript = final
        if final.usage is not None:
            rec.usage_items.append(_check_usage(final.usage, "transcribe"))

    async def _respond_items(self, conversation: Conversation) -> AsyncGenerator[Any, None]:
        responder = self.responder
        fn = responder.respond if hasattr(responder, "respond") else responder
        output = await self.runtime.invoke(fn, conversation)
        async for item in self.runtime.iterate(output, "the responder"):
            yield item

    async def _synth_items(self, text: str) -> AsyncGenerator[Any, None]:
        output = await self.runtime.invoke(self.synthesizer.synthesize, text)
        async for item in self.runtime.iterate(output, "synthesize()"):
            yield item

    async def _reply(
        self, conversation: Conversation, rec: _TurnRecord, sink: Callable[[Event], None] | None
    ) -> AsyncGenerator[Event, None]:
        events: asyncio.Queue[Any] = asyncio.Queue()
        emit: Callable[[Event], None] = events.put_nowait if sink is None else sink
        state = _ReplyState()
        speaking = self.synthesizer is not None
        limit = asyncio.Semaphore(self.max_concurrent_synthesis)

        def ahead_of(piece: _Piece | None) -> float:
            """Speech the listener has in hand beyond now (see chainvoice._pace).

            For a piece being synthesized: the audio received for it and the pieces before
            it. For the reply text (``None``): the audio received for every piece, and the
            pieces still without audio at an assumed speaking rate.
            """
            played = 0.0 if rec.first_audio is None else rec.now() - rec.first_audio
            heard = 0.0
            for p in state.pieces:
                if p.seconds:
                    heard += p.seconds
                elif piece is None:
                    heard += len(p.text) / CHARACTERS_PER_SECOND
                if p is piece:
                    break
            return heard - played

        async def run_piece(piece: _Piece) -> None:
            AHEAD.set(functools.partial(ahead_of, piece))  # this task's own context
            try:
                async with limit:
                    if rec.synthesize is None:
                        rec.synthesize = _started(rec)
                    async for item in self._synth_items(piece.text):
                        if isinstance(item, Usage):
                            rec.usage_items.append(_check_usage(item, "synthesize"))
                        elif isinstance(item, Audio):
                            if not item.frames:
                                continue
                            piece.seconds += item.duration
                            if state.playing is piece and piece.chunks.empty():
                                play(piece, item)  # its turn and nothing queued: at once
                            else:
                                piece.chunks.put_nowait(item)
                        else:
                            raise ProtocolError(
                                f"synthesize() yielded {type(item).__name__}; it may yield "
                                "chainvoice.Audio chunks and Usage items"
                            )
            finally:
                piece.chunks.put_nowait(_END)

        def add_piece(text: str) -> None:
            state.cut_to += len(text)
            spoken = text.strip()
            if not _speakable(spoken) or state.synth_failed is not None:
                return
            piece = _Piece(index=len(state.pieces), text=spoken, end=state.cut_to)
            piece.task = asyncio.ensure_future(run_piece(piece))
            state.pieces.append(piece)
            state.changed.set()

        async def run_responder() -> None:
            if speaking:
                AHEAD.set(functools.partial(ahead_of, None))  # this task's own context
            splitter = self.new_splitter() if speaking else None
            rec.respond = _started(rec)
            try:
                async for item in self._respond_items(conversation):
                    if isinstance(item, Usage):
                        rec.usage_items.append(_check_usage(item, "respond"))
                        continue
                    if not isinstance(item, str):
                        raise ProtocolError(
                            f"the responder yielded {type(item).__name__}; it may yield str "
                            "text deltas and Usage items (or return one str)"
                        )
                    if not item:
                        continue
                    rec.respond = _first(rec.respond, rec)
                    rec.reply_parts.append(item)
                    emit(ReplyDelta(item))
                    if splitter is not None:
                        for piece in splitter.push(item):
                            add_piece(piece)
                rec.respond = _ended(rec.respond, rec)
                if splitter is not None:
                    for piece in splitter.flush():
                        add_piece(piece)
                emit(ReplyDone(rec.reply_text))
            finally:
                state.text_done = True
                state.changed.set()

        def play(piece: _Piece, item: Audio) -> None:
            """Hand one chunk of the piece whose turn it is to the listener."""
            if rec.first_audio is None:
                rec.first_audio = rec.now()
                if rec.synthesize is not None:
                    rec.synthesize = attrs.evolve(rec.synthesize, first_output=rec.first_audio)
            rec.audio_chunks.append(item)
            rec.spoken_end = piece.end
            emit(AudioChunk(item, piece.text, piece.index))

        async def run_emitter() -> None:
            index = 0
            while True:
                while index >= len(state.pieces):
                    if state.text_done:
                        return
                    state.changed.clear()
                    await state.changed.wait()
                piece = state.playing = state.pieces[index]
                while (item := await piece.chunks.get()) is not _END:
                    play(piece, item)
                state.playing = None
                assert piece.task is not None
                await piece.task  # raises the piece's failure, if any
                if rec.synthesize is not None:
                    rec.synthesize = attrs.evolve(rec.synthesize, end=rec.now())
                index += 1

        def on_done(stage: str) -> Callable[[asyncio.Task[None]], None]:
            return lambda task: events.put_nowait(_TaskDone(stage, task))

        responder_task = asyncio.ensure_future(run_responder())
        responder_task.add_done_callback(on_done("respond"))
        tasks: list[asyncio.Task[None]] = [responder_task]
        if speaking:
            emitter_task = asyncio.ensure_future(run_emitter())
            emitter_task.add_done_callback(on_done("synthesize"))
            tasks.append(emitter_task)
        pending = len(tasks)
        try:
            while pending:
                ev = await events.get()
                if not isinstance(ev, _TaskDone):
                    yield ev
                    continue
                pending -= 1
                if ev.task.cancelled():
                    raise asyncio.CancelledError
                exc = ev.task.exception()
                if exc is None:
                    continue
                if ev.stage == "respond":
                    raise self._fail("respond", exc, rec) from exc
                # Synthesis failed: stop speaking, but let the reply text finish so that
                # the text survives on the error's partial turn.
                state.synth_failed = exc
                for piece in state.pieces:
                    if piece.task is not None:
                        piece.task.cancel()
            if state.synth_failed is not None:
                exc = state.synth_failed
                raise self._fail("synthesize", exc, rec) from exc
        finally:
            everything = tasks + [p.task for p in state.pieces if p.task is not None]
            for task in everything:
                task.cancel()
            await asyncio.gather(*everything, return_exceptions=True)


def _coerce_audio(audio: Any) -> Audio:
    if isinstance(audio, Audio):
        return audio
    if isinstance(audio, (str, os.PathLike)):
        return Audio.from_file(audio)
    if isinstance(audio, (bytes, bytearray, memoryview)):
        return Audio.from_bytes(bytes(audio))
    raise ConfigurationError(
        f"audio must be a chainvoice.Audio, a file path or encoded bytes, not "
        f"{type(audio).__name__}; for raw PCM use Audio.from_pcm16(data, rate=...)"
    )


# --------------------------------------------------------------------------------------
# The two faces


class _ChainBase:
    def __init__(
        self,
        transcriber: Any,
        responder: Any,
        synthesizer: Any = None,
        *,
        instructions: str | None = None,
        conversation: Conversation | None = None,
        splitter: Callable[[], Splitter] | None = None,
        max_concurrent_synthesis: int = 3,
        skip_empty_transcripts: bool = True,
    ) -> None:
        self._core = _Core(
            transcriber,
            responder,
            synthesizer,
            instructions=instructions,
            conversation=conversation,
            splitter=splitter,
            max_concurrent_synthesis=max_concurrent_synthesis,
            skip_empty_transcripts=skip_empty_transcripts,
        )
        self._finalizer = weakref.finalize(self, _shutdown, self._core.runtime, [None])

    @classmethod
    def _with_stages(
        cls: type[_C],
        backend: str,
        asynchronous: bool,
        instructions: str | None,
        options: dict[str, Any],
    ) -> _C:
        chain_options = {k: v for k, v in options.items() if k in _CHAIN_OPTIONS}
        stage_options = {k: v for k, v in options.items() if k not in _CHAIN_OPTIONS}
        if backend == "openai":
            from chainvoice.openai import stages as openai_stages

            make: Callable[..., Any] = functools.partial(openai_stages, asynchronous=asynchronous)
            known = set(inspect.signature(openai_stages).parameters) - {"asynchronous"}
        else:
            from chainvoice.local import stages as local_stages

            make = local_stages
            known = set(inspect.signature(local_stages).parameters)
        known |= _CHAIN_OPTIONS
        for name in stage_options:
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigurationError(
                    f"{cls.__name__}.{backend}() takes no option {name!r}{hint} "
                    f"(it takes: {', '.join(sorted(known))})"
                )
        t, r, s = make(**stage_options)
        return cls(t, r, s, instructions=instructions, **chain_options)

    @property
    def transcriber(self) -> Any:
        """The transcription stage (``None`` for a text-only chain)."""
        return self._core.transcriber

    @property
    def responder(self) -> Any:
        """The reply stage."""
        return self._core.responder

    @property
    def synthesizer(self) -> Any:
        """The speech stage (``None`` when replies end at text)."""
        return self._core.synthesizer

    @property
    def conversation(self) -> Conversation:
        """The conversation so far: the system instructions and every message."""
        return self._core.conversation

    @conversation.setter
    def conversation(self, value: Conversation) -> None:
        if not isinstance(value, Conversation):
            raise ConfigurationError(
                f"conversation must be a chainvoice.Conversation, not {type(value).__name__}"
            )
        self._core.conversation = value

    @property
    def instructions(self) -> str | None:
        """The system instructions the responder is given."""
        return self._core.conversation.instructions

    @property
    def usage(self) -> Usage:
        """Usage and cost summed over every turn so far (failed and interrupted ones too)."""
        return Usage.total(self._core.turn_usage) if self._core.turn_usage else Usage.zero()

    def reset(self, conversation: Conversation | None = None) -> None:
        """Forget the messages (keeping the instructions), or start from ``conversation``."""
        self.conversation = (
            self._core.conversation.reset() if conversation is None else conversation
        )

    def __repr__(self) -> str:
        core = self._core
        return (
            f"{type(self).__name__}(transcriber={_stage_label(core.transcriber)}, "
            f"responder={_stage_label(core.responder)}, "
            f"synthesizer={_stage_label(core.synthesizer)}, turns={core.turns})"
        )


class Chain(_ChainBase):
    """Pipes audio through a transcriber, a responder and a synthesizer (blocking API).

    Stages may be sync or async. The chain keeps the conversation across turns.
    Async stages run on a private event loop in a background thread, so ``Chain`` works
    inside a running event loop too (e.g. a notebook). Use ``with Chain(...) as chain``
    or call :meth:`close` to stop that thread early; it also stops when the chain is
    garbage-collected.

    Args:
        transcriber: Turns audio into a Transcript (sync or async); ``None`` for a chain
            that only takes text.
        responder: Turns the conversation into reply text: a Responder (sync or async) or
            a plain function of the conversation returning a ``str`` or text deltas.
        synthesizer: Turns reply text into audio (sync or async); ``None`` to end turns at
            text.
        instructions: The system prompt the responder is given.
        conversation: A conversation to continue (its instructions are replaced by
            ``instructions`` when both are given).
        splitter: A factory for the object that cuts the streamed reply into speakable
            pieces (default :class:`SentenceSplitter`; e.g.
            ``lambda: SentenceSplitter(first_min_chars=10)`` for an earlier first cut).
        max_concurrent_synthesis: How many pieces may be synthesized at once.
        skip_empty_transcripts: When the transcript is empty (silence), end the turn
            without asking the responder.

    Example:
        >>> import chainvoice as cv
        >>> chain = cv.Chain(None, lambda c: "Hi! You said " + c.last_user_text)
        >>> chain.run(text="hello").reply.text
        'Hi! You said hello'
    """

    #: The private event loop's thread, started on first use (one per chain).
    _loop: _LoopThread | None = None

    def _lock(self) -> threading.Lock:
        # One lock per chain, made on first use (dict.setdefault is atomic): it keeps a
        # loop from starting while close() is still winding the previous one down.
        lock: threading.Lock = self.__dict__.setdefault("_loop_lock", threading.Lock())
        return lock

    @classmethod
    def openai(cls, *, instructions: str | None = None, **options: Any) -> Chain:
        """A chain of OpenAI's transcription, reply and speech models sharing one client.

        The stages are the async twins (``AsyncOpenAITranscriber``, ...) on the chain's
        private event loop, over chainvoice's lean HTTP transport: no thread per stage,
        a fraction of the CPU. Given a sync ``client=OpenAI(...)``, or with a proxy
        configured in the environment, or ``CHAINVOICE_HTTP=httpx``, they are the sync
        stages (over the SDK's own HTTP stack) instead.

        Args:
            instructions: What the assistant is told (the system prompt).
            **options: Chain options (``conversation``, ``splitter``,
                ``max_concurrent_synthesis``, ``skip_empty_transcripts``) and stage
                options for :func:`chainvoice.openai.stages` (``voice``,
                ``voice_instructions``, ``transcription_model``, ``reply_model``,
                ``speech_model``, ``api_key``, ``base_url``, ``client``, ...).
        """
        return cls._with_stages("openai", _async_openai_stages(options), instructions, options)

    @classmethod
    def local(cls, *, instructions: str | None = None, **options: Any) -> Chain:
        """A chain of the embedded offline models: no key, no network (``chainvoice[local]``).

        Args:
            instructions: What the assistant is told (the system prompt).
            **options: Chain options, and stage options for
                :func:`chainvoice.local.stages`.
        """
        return cls._with_stages("local", False, instructions, options)

    def _runner(self) -> _LoopThread:
        with self._lock():
            if self._loop is None or not self._loop.alive:
                self._loop = _LoopThread()
                self._finalizer.detach()
                self._finalizer = weakref.finalize(
                    self, _shutdown, self._core.runtime, [self._loop]
                )
            return self._loop

    def run(self, audio: Any = None, *, text: str | None = None) -> Turn:
        """Run one whole turn and return it.

        Args:
            audio: The user's speech: an :class:`Audio`, a file path or encoded bytes.
            text: The user's words as text, instead of audio (skips transcription).

        Returns:
            The turn: transcript, reply text and audio, timings and usage.

        Raises:
            StageError: A stage failed; ``.partial`` holds what the turn produced.
            ConfigurationError: Neither or both of ``audio`` and ``text`` were given.
        """
        for event in self.stream(audio, text=text):
            if isinstance(event, TurnDone):
                return event.turn
        raise ChainClosedError("the turn ended before it was done")  # pragma: no cover

    def stream(self, audio: Any = None, *, text: str | None = None) -> Iterator[Event]:
        """Run one turn, yielding events as they happen.

        First come ``TranscriptDelta`` events (from a streaming transcriber) and
        ``TranscriptDone``; then ``ReplyDelta`` and ``AudioChunk`` events interleaved as
        they are produced, with ``ReplyDone`` once the reply text is complete (audio
        usually still follows it); ``TurnDone`` comes last. Closing the iterator early
        (``break``, ``close()``) stops every stage promptly (a sync stage at its next
        yield); the conversation then records only what was produced.

        Args:
            audio: The user's speech: an :class:`Audio`, a file path or encoded bytes.
            text: The user's words as text, instead of audio (skips transcription).

        Returns:
            An iterator of events.

        Raises:
            StageError: A stage failed (raised after every event produced before it).
            ConfigurationError: Neither or both of ``audio`` and ``text`` were given.
        """
        checked = self._core.check_input(audio, text)
        return self._events(checked, text)

    def _events(self, audio: Audio | None, text: str | None) -> Iterator[Event]:
        runner = self._runner()
        out: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()  # (kind, value)
        done = threading.Event()
        core = self._core

        async def pump() -> None:
            # The events of one step of the loop cross to this thread together, at the
            # loop's next step: one wake-up of the listener's thread for a burst (e.g. the
            # audio of several speech streams read at one tick). The reply's events come
            # straight from the tasks that make them (``sink``).
            loop = asyncio.get_running_loop()
            batch: list[Event] = []

            def flush() -> None:
                if batch:
                    out.put((0, batch.copy()))
                    batch.clear()

            def sink(event: Event) -> None:
                if not batch:
                    loop.call_soon(flush)
                batch.append(event)

            try:
                async for event in core.events(audio, text, sink=sink):
                    sink(event)
            except BaseException as exc:
                flush()
                out.put((2, exc))
                if not isinstance(exc, Exception):
                    raise
            else:
                flush()
                out.put((1, None))
            finally:
                done.set()

        future = runner.submit(pump())
        # Ended in any way, even cancelled before it started: the wait below wakes up.
        future.add_done_callback(lambda _: out.put((3, None)))
        try:
            while True:
                try:
                    kind, value = out.get(timeout=_STALL_CHECK)
                except queue.Empty:
                    if runner.thread.is_alive() or done.is_set():
                        continue
                    kind = 3
                if kind == 3:  # the loop ended without running this turn to the end (closed)
                    kind, value = 2, asyncio.CancelledError()
                if kind == 0:
                    yield from value
                elif kind == 1:
                    return
                else:
                    if isinstance(value, asyncio.CancelledError):
                        raise ChainClosedError(
                            "the chain was closed while this turn was running; the turn "
                            "stopped, and the conversation keeps only what was produced"
                        ) from None
                    raise value
        finally:
            if not done.is_set():
                future.cancel()
                done.wait(_CLOSE_TIMEOUT)

    def close(self) -> None:
        """Stop the chain's private event loop and worker threads (idempotent).

        A turn running meanwhile stops and raises :class:`ChainClosedError`; the chain
        can still be used afterwards (it starts a new loop).
        """
        with self._lock():
            self._finalizer()

    def __enter__(self) -> Chain:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncChain(_ChainBase):
    """Pipes audio through a transcriber, a responder and a synthesizer (asyncio API).

    The same surface as :class:`Chain`, with ``await chain.run(...)`` and
    ``async for event in chain.stream(...)``. Sync stages run in worker threads.

    Args:
        transcriber: As for :class:`Chain`.
        responder: As for :class:`Chain`.
        synthesizer: As for :class:`Chain`.
        instructions: As for :class:`Chain`.
        conversation: As for :class:`Chain`.
        splitter: As for :class:`Chain`.
        max_concurrent_synthesis: As for :class:`Chain`.
        skip_empty_transcripts: As for :class:`Chain`.

    Example:
        >>> import asyncio, chainvoice as cv
        >>> chain = cv.AsyncChain(None, lambda c: "Hi")
        >>> asyncio.run(chain.run(text="hello")).reply.text
        'Hi'
    """

    @classmethod
    def openai(cls, *, instructions: str | None = None, **options: Any) -> AsyncChain:
        """The async twin of :meth:`Chain.openai` (async OpenAI client and stages)."""
        return cls._with_stages("openai", True, instructions, options)

    @classmethod
    def local(cls, *, instructions: str | None = None, **options: Any) -> AsyncChain:
        """The async twin of :meth:`Chain.local` (the local stages run in worker threads)."""
        return cls._with_stages("local", False, instructions, options)

    async def run(self, audio: Any = None, *, text: str | None = None) -> Turn:
        """Run one whole turn and return it (see :meth:`Chain.run`).

        Args:
            audio: The user's speech: an :class:`Audio`, a file path or encoded bytes.
            text: The user's words as text, instead of audio (skips transcription).

        Returns:
            The turn: transcript, reply text and audio, timings and usage.

        Raises:
            StageError: A stage failed; ``.partial`` holds what the turn produced.
            ConfigurationError: Neither or both of ``audio`` and ``text`` were given.
        """
        async with contextlib.aclosing(self.stream(audio, text=text)) as events:
            async for event in events:
                if isinstance(event, TurnDone):
                    return event.turn
        raise ChainClosedError("the turn ended before it was done")  # pragma: no cover

    def stream(self, audio: Any = None, *, text: str | None = None) -> AsyncGenerator[Event, None]:
        """Run one turn, yielding events as they happen (see :meth:`Chain.stream`).

        To stop early, close the iterator (``await events.aclose()``, or iterate inside
        ``contextlib.aclosing(chain.stream(...))``) or cancel the task: every stage stops
        promptly and the conversation records only what was produced.

        Args:
            audio: The user's speech: an :class:`Audio`, a file path or encoded bytes.
            text: The user's words as text, instead of audio (skips transcription).

        Returns:
            An async generator of events.

        Raises:
            StageError: A stage failed (raised after every event produced before it).
            ConfigurationError: Neither or both of ``audio`` and ``text`` were given.
        """
        checked = self._core.check_input(audio, text)
        return self._core.events(checked, text, busy_grace=_BUSY_GRACE)

    async def aclose(self) -> None:
        """Release the chain's worker threads and idle connections (idempotent).

        The connections chainvoice's HTTP transport keeps alive on the running loop are
        closed (a new request opens new ones).
        """
        self._finalizer()
        _close_idle_connections()

    async def __aenter__(self) -> AsyncChain:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _close_idle_connections() -> None:
    """Close the running loop's kept-alive connections of chainvoice's HTTP transport."""
    transport = sys.modules.get("chainvoice.openai._transport")
    # Not imported yet, or being imported by another thread right now: no connections.
    close = getattr(transport, "close_idle_connections", None)
    if close is not None:
        close()


def _async_openai_stages(options: dict[str, Any]) -> bool:
    """Whether ``Chain.openai`` builds the async stages.

    It does when it makes the client itself and chainvoice's transport will carry it (its
    connections follow the private loop, which ``close()`` replaces).
    """
    if options.get("client") is not None:
        return False
    from chainvoice.openai._transport import lean_transport_applies

    base_url = options.get("base_url")
    return lean_transport_applies(base_url if isinstance(base_url, str) else None)


#: Seconds between checks, while a sync turn waits for events, that its loop thread lives
#: (a turn that ends in any way wakes the wait at once; this is a backstop).
_STALL_CHECK = 5.0

_CHAIN_OPTIONS = frozenset(
    {"conversation", "splitter", "max_concurrent_synthesis", "skip_empty_transcripts"}
)


class _LoopThread:
    """A private event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.closing = False
        ready = threading.Event()
        self.thread = threading.Thread(
            target=self._main, args=(ready,), name="chainvoice-loop", daemon=True
        )
        self.thread.start()
        ready.wait()

    @property
    def alive(self) -> bool:
        return not self.closing and self.thread.is_alive() and not self.loop.is_closed()

    def _main(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(ready.set)
        try:
            self.loop.run_forever()
        finally:
            try:
                self.loop.run_until_complete(self._wind_down())
            finally:
                self.loop.close()

    async def _wind_down(self) -> None:
        """Cancel every running turn and let it unwind (its stages close), within bounds."""
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=_CLOSE_TIMEOUT)
        await self.loop.shutdown_asyncgens()
        _close_idle_connections()

    def submit(self, coro: Any) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        """Stop the loop after its running turns have wound down (idempotent)."""
        self.closing = True
        if self.loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self.thread:
            self.thread.join(_CLOSE_TIMEOUT)


def _shutdown(runtime: _Runtime, loops: list[_LoopThread | None]) -> None:
    for loop in loops:
        if loop is not None:
            loop.stop()
    runtime.shutdown()
