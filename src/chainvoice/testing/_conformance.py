"""Conformance checks: does a stage keep its protocol's contract?

An adapter author runs one check on their own stage, sync or async::

    from chainvoice.testing import check_synthesizer

    def test_my_tts_keeps_the_contract():
        check_synthesizer(MyTTS())

Each check calls the stage a few times with small inputs (or with the inputs you pass),
the way a chain calls it: it consumes streams fully and also closes one early, calls the
stage again afterwards, and (for synthesizers) calls it from two threads or two tasks at
once. It raises :class:`ConformanceError` listing every violation it found, each with
what was expected, what came back, and how to fix it; on success it returns a
:class:`ConformanceReport`.

An async stage runs on a private event loop, so the checks are plain functions that also
work inside a running event loop (a notebook, an async test): there they run in a
worker thread and block the caller until they finish.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import difflib
import functools
import inspect
import itertools
import math
import re
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any, Literal, TypeVar

import attrs
import numpy as np

from chainvoice import (
    Audio,
    ConfigurationError,
    Conversation,
    Message,
    Segment,
    Transcript,
    Usage,
    Word,
)

__all__ = [
    "ConformanceError",
    "ConformanceReport",
    "Violation",
    "check_responder",
    "check_synthesizer",
    "check_transcriber",
]

R = TypeVar("R")

_MAX_ITEMS = 10_000  # a stream longer than this for a short input is treated as endless
_TICK = 0.02  # seconds between the loop-lag ticker's wake-ups
_MIN_RATE, _MAX_RATE = 8000, 192000

Kind = Literal["value", "awaitable", "sync", "async"]

# A call as the checks name it in messages, e.g. "synthesize('Hi.')" or
# "transcribe(Audio(duration=1.000s, rate=16000, channels=1))"; and any number.
_CALL = re.compile(
    r"\b(?:transcribe_stream|transcribe|respond|synthesize)\((?:[^()]|\([^()]*\))*\)"
)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


# --------------------------------------------------------------------------- public results


@attrs.frozen
class Violation:
    """One way a stage breaks its protocol's contract.

    Attributes:
        check: The short name of the check, e.g. ``"items"`` or ``"early close"``.
        problem: What was expected and what came back.
        fix: How to fix it.
    """

    check: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.problem}\n   Fix: {self.fix}"


@attrs.frozen(kw_only=True)
class ConformanceReport:
    """What a conformance check found about a stage that keeps its contract.

    Attributes:
        protocol: The protocol the stage keeps, as named in chainvoice:
            ``"Transcriber"``, ``"StreamingTranscriber"``, ``"Responder"``,
            ``"Synthesizer"``, or one of these with ``"Async"`` in front.
        stage: A short description of the stage.
        asynchronous: True for an async stage.
        streaming: True when the stage streams: a transcriber with ``transcribe_stream``,
            a responder that yields text deltas rather than one ``str``, a synthesizer
            that yielded more than one chunk for one text.
        calls: How many calls the check made.
        passed: The checks that ran and found nothing wrong, in order.
        warnings: Things that keep the contract but are likely mistakes or slow.
        notes: What the stage produced, for a human reader.
        max_loop_lag: For an async stage, the longest time in seconds the event loop was
            blocked while the stage ran; ``None`` for a sync stage.
    """

    protocol: str
    stage: str
    asynchronous: bool
    streaming: bool
    calls: int
    passed: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    max_loop_lag: float | None = None

    def __str__(self) -> str:
        mode = "async" if self.asynchronous else "sync"
        lines = [
            f"{self.stage} keeps the {self.protocol} contract ({mode}, {self.calls} calls).",
            "Passed: " + ", ".join(self.passed) + ".",
        ]
        if self.max_loop_lag is not None:
            lines.append(f"Longest event-loop block: {self.max_loop_lag:.3f} s.")
        lines.extend(f"Note: {n}" for n in self.notes)
        lines.extend(f"Warning: {w}" for w in self.warnings)
        return "\n".join(lines)


class ConformanceError(AssertionError):
    """A stage breaks its protocol's contract; the message lists every violation found.

    Attributes:
        violations: Each violation, with what was expected and how to fix it.
        report: What the check found besides the violations (passed checks, warnings).
    """

    def __init__(self, violations: Sequence[Violation], report: ConformanceReport) -> None:
        self.violations = tuple(violations)
        self.report = report
        lines = [
            f"{report.stage} does not keep the {report.protocol} contract: "
            f"{len(self.violations)} violation(s)."
        ]
        lines.extend(f"{i}. {v}" for i, v in enumerate(self.violations, 1))
        lines.extend(f"Warning: {w}" for w in report.warnings)
        super().__init__("\n".join(lines))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.violations, self.report))


# --------------------------------------------------------------------------- calling a stage


@attrs.define
class _Outcome:
    """What one call of a stage did."""

    kind: Kind = "value"
    value: Any = None
    items: list[Any] = attrs.Factory(list)
    error: BaseException | None = None
    close_error: BaseException | None = None
    closed_early: bool = False
    endless: bool = False
    timed_out: bool = False
    lag: float = 0.0
    awaited: bool = False  # the call returned an awaitable; ``kind`` is that of its result
    all_at_once: bool = False  # ... and that awaitable gave a ready list or tuple

    @property
    def streamed(self) -> bool:
        return self.kind in ("sync", "async")


_NOT_STREAMS = (str, bytes, bytearray, memoryview, Mapping, np.ndarray, Audio, Transcript, Usage)


def _kind(value: object) -> Kind:
    if inspect.isawaitable(value):
        return "awaitable"
    if hasattr(value, "__aiter__"):
        return "async"
    if isinstance(value, _NOT_STREAMS) or not isinstance(value, Iterable):
        return "value"
    return "sync"


def _declared_async(fn: object) -> bool:
    targets = [fn, getattr(fn, "__call__", None)]  # noqa: B004 - a callable object's method
    return any(inspect.iscoroutinefunction(t) or inspect.isasyncgenfunction(t) for t in targets)


def _consume_sync(result: Any, out: _Outcome, stop_after: int | None) -> None:
    it = iter(result)
    stopped = False
    try:
        for item in it:
            out.items.append(item)
            if stop_after is not None and len(out.items) >= stop_after:
                stopped = True
                break
            if len(out.items) >= _MAX_ITEMS:
                out.endless = stopped = True
                break
    except Exception as exc:
        out.error = exc
        return
    close = getattr(it, "close", None)
    if stopped and callable(close):
        out.closed_early = not out.endless
        try:
            close()
        except Exception as exc:
            out.close_error = exc
            with contextlib.suppress(Exception, GeneratorExit):  # finish what ignored close()
                for _ in itertools.islice(it, _MAX_ITEMS):
                    pass


async def _consume_async(result: Any, out: _Outcome, stop_after: int | None) -> None:
    ait = result.__aiter__()
    stopped = False
    try:
        while True:
            try:
                item = await ait.__anext__()
            except StopAsyncIteration:
                break
            out.items.append(item)
            if stop_after is not None and len(out.items) >= stop_after:
                stopped = True
                break
            if len(out.items) >= _MAX_ITEMS:
                out.endless = stopped = True
                break
    except Exception as exc:
        out.error = exc
        return
    aclose = getattr(ait, "aclose", None)
    if stopped and callable(aclose):
        out.closed_early = not out.endless
        try:
            await aclose()
        except Exception as exc:
            out.close_error = exc
            with contextlib.suppress(Exception, GeneratorExit):  # finish what ignored close()
                for _ in range(_MAX_ITEMS):
                    await ait.__anext__()


async def _in_daemon_thread(fn: Callable[[], object]) -> None:
    """Run ``fn`` in a daemon thread; unlike ``asyncio.to_thread`` a hung ``fn`` is left behind."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if done.done():
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

    def target() -> None:
        error: BaseException | None = None
        try:
            fn()
        except BaseException as exc:  # handed to the waiting task
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop was closed after a timeout
            loop.call_soon_threadsafe(settle, error)

    threading.Thread(target=target, daemon=True, name="chainvoice-conformance").start()
    await done


async def _finish_async(
    result: Any, out: _Outcome, want_items: bool, stop_after: int | None
) -> None:
    try:
        while inspect.isawaitable(result):  # as a chain does: await, then use the result
            out.awaited = True
            result = await result
        out.kind = _kind(result)
        out.all_at_once = out.awaited and isinstance(result, (list, tuple))
        if want_items and out.kind == "async":
            await _consume_async(result, out, stop_after)
        elif want_items and out.kind == "sync":  # stepped off the loop, as a chain does
            await _in_daemon_thread(functools.partial(_consume_sync, result, out, stop_after))
        else:
            out.value = result
    except Exception as exc:
        out.error = exc


def _start_sync(
    fn: Callable[[], object], want_items: bool, stop_after: int | None
) -> tuple[_Outcome, Any]:
    """Call ``fn`` and, for a sync stream, consume it; return what is left for the loop."""
    out = _Outcome()
    try:
        result = fn()
    except Exception as exc:
        out.error = exc
        return out, None
    out.kind = _kind(result)
    if out.kind in ("awaitable", "async"):
        return out, result
    if out.kind == "sync" and want_items:
        _consume_sync(result, out, stop_after)
    else:
        out.value = result
    return out, None


class _Ticker:
    """Measures how long the event loop goes without running other tasks."""

    def __init__(self) -> None:
        self.max_lag = 0.0
        self._last: float | None = None

    def read(self, loop: asyncio.AbstractEventLoop) -> None:
        """Take a reading now: the time since the last one, less the tick it slept for."""
        now = loop.time()
        if self._last is not None:
            self.max_lag = max(self.max_lag, now - self._last - _TICK)
        self._last = now

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.read(loop)
        while True:
            await asyncio.sleep(_TICK)
            self.read(loop)


class _Caller:
    """Calls a stage's method, sync in a worker thread, async on a private event loop."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.calls = 0
        self.asynchronous = False
        self.max_lag: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def close(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()  # does not wait for threads a stage may have left running

    def _run_on_loop(self, make: Callable[[], Coroutine[Any, Any, None]]) -> tuple[bool, float]:
        """Run a coroutine with a deadline and a lag ticker; return (finished, lag)."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        ticker = _Ticker()

        async def main() -> bool:
            tick = asyncio.create_task(ticker.run())
            await asyncio.sleep(0)  # let the ticker take its first reading
            try:
                await asyncio.wait_for(make(), self.timeout)
            except asyncio.TimeoutError:
                return False
            finally:
                # A stage that blocks the loop and then finishes without yielding again leaves
                # the ticker no turn to notice (on 3.12+ wait_for runs the coroutine in this
                # task, so nothing else runs between the block and here): read it once more.
                ticker.read(asyncio.get_running_loop())
                tick.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await tick
            return True

        finished = self._loop.run_until_complete(main())
        self.asynchronous = True
        self.max_lag = max(self.max_lag or 0.0, ticker.max_lag)
        return finished, ticker.max_lag

    def _in_threads(self, jobs: Sequence[Callable[[], R]]) -> list[R | None]:
        """Run jobs in daemon threads started together; ``None`` for a job still running."""
        barrier = threading.Barrier(len(jobs))
        boxes: list[list[tuple[bool, Any]]] = [[] for _ in jobs]

        def target(job: Callable[[], R], box: list[tuple[bool, Any]]) -> None:
            try:
                barrier.wait(self.timeout)
                box.append((True, job()))
            except BaseException as exc:  # handed back to the checking thread
                box.append((False, exc))

        threads = [
            threading.Thread(
                target=target, args=(job, box), daemon=True, name="chainvoice-conformance"
            )
            for job, box in zip(jobs, boxes, strict=True)
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + self.timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        results: list[R | None] = []
        for box in boxes:
            if not box:
                results.append(None)
                continue
            ok, value = box[0]
            if not ok:
                raise value
            results.append(value)
        return results

    def call_many(
        self,
        fns: Sequence[Callable[[], object]],
        *,
        declared_async: bool,
        want_items: bool = True,
        stop_after: int | None = None,
    ) -> list[_Outcome]:
        """Call each of ``fns`` at the same time (threads or tasks) and collect the outcomes."""
        self.calls += len(fns)
        if declared_async:
            outs = [_Outcome() for _ in fns]

            async def one(fn: Callable[[], object], out: _Outcome) -> None:
                try:
                    result = fn()
                except Exception as exc:
                    out.error = exc
                    return
                await _finish_async(result, out, want_items, stop_after)

            async def together() -> None:
                await asyncio.gather(*(one(fn, out) for fn, out in zip(fns, outs, strict=True)))

            finished, lag = self._run_on_loop(together)
            for out in outs:
                out.timed_out, out.lag = not finished, lag
            return outs

        started = self._in_threads(
            [functools.partial(_start_sync, fn, want_items, stop_after) for fn in fns]
        )
        outs = []
        pending: list[tuple[_Outcome, Any]] = []
        for item in started:
            if item is None:
                outs.append(_Outcome(timed_out=True))
                continue
            out, rest = item
            outs.append(out)
            if rest is not None:
                pending.append((out, rest))
        if pending:

            async def finish() -> None:
                await asyncio.gather(
                    *(_finish_async(rest, out, want_items, stop_after) for out, rest in pending)
                )

            finished, lag = self._run_on_loop(finish)
            for out, _ in pending:
                out.timed_out, out.lag = not finished, lag
        return outs

    def call(
        self,
        fn: Callable[[], object],
        *,
        declared_async: bool,
        want_items: bool = True,
        stop_after: int | None = None,
    ) -> _Outcome:
        """Call ``fn`` once and collect the outcome."""
        return self.call_many(
            [fn], declared_async=declared_async, want_items=want_items, stop_after=stop_after
        )[0]


# --------------------------------------------------------------------------- shared checking


def _short(value: object, limit: int = 50) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _describe(stage: object) -> str:
    if inspect.isfunction(stage) or inspect.ismethod(stage):
        return f"function {stage.__qualname__}"
    return type(stage).__qualname__


def _what(value: object) -> str:
    """A short description of an unexpected value, for messages."""
    if value is None:
        return "None"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"{type(value).__name__} ({len(value)} bytes)"
    if isinstance(value, np.ndarray):
        return f"a numpy array shaped {value.shape} of {value.dtype}"
    if isinstance(value, str):
        return f"str {_short(value)}"
    if isinstance(value, Mapping):
        return f"a {type(value).__name__} with keys {_short(list(value)[:5])}"
    return f"a {type(value).__module__}.{type(value).__qualname__}"


def _returned(out: _Outcome) -> str:
    """Say what a call returned (and that it was a coroutine, if it was awaited)."""
    what = _what(out.value)
    return f"is a coroutine that returned {what}" if out.awaited else f"returned {what}"


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _usage_problems(usage: Usage) -> list[str]:
    problems = []
    for field in attrs.fields(Usage):
        value = getattr(usage, field.name)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number and (not math.isfinite(value) or value < 0):
            problems.append(f"{field.name}={value!r}")
    return problems


_ASYNC_GEN_FIX = (
    "make the method an async generator: `async def` that `yield`s each item as it is ready"
)
_CLOSE_FIX = (
    "let GeneratorExit (and asyncio.CancelledError) pass: do not catch BaseException "
    "without re-raising, do not yield in a finally block, and make cleanup in finally "
    "blocks unable to raise"
)
_REUSE_FIX = (
    "release locks, connections and other per-call state in a finally block (or a with "
    "block) around the yields, so that a stream closed early leaves the stage usable"
)
_LOOP_FIX = (
    "do not call blocking code (time.sleep, requests, a sync SDK client, heavy CPU work) "
    "in an async stage: use asyncio-native I/O (e.g. AsyncOpenAI, httpx.AsyncClient) or "
    "move the blocking work to a thread with `await asyncio.to_thread(...)`"
)


class _Stop(Exception):
    """Ends a check early (after a timeout)."""


class _Check:
    """The bookkeeping shared by the three checks."""

    protocol = ""

    def __init__(self, stage: object, *, timeout: float, max_loop_block: float | None) -> None:
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ConfigurationError(
                f"timeout must be a positive number of seconds, not {timeout!r}"
            )
        if max_loop_block is not None and not (
            isinstance(max_loop_block, (int, float)) and max_loop_block > 0
        ):
            raise ConfigurationError(
                f"max_loop_block must be a positive number of seconds or None, "
                f"not {max_loop_block!r}"
            )
        self.stage = stage
        self.name = _describe(stage)
        self.timeout = float(timeout)
        self.max_loop_block = max_loop_block
        self.caller = _Caller(self.timeout)
        self.violations: list[Violation] = []
        self.repeats: dict[tuple[str, str, str], int] = {}
        self.warnings: list[str] = []
        self.notes: list[str] = []
        self.ran: list[str] = []
        self.failed: set[str] = set()
        self.streaming = False

    # -- bookkeeping

    def mark(self, check: str) -> None:
        if check not in self.ran:
            self.ran.append(check)

    def fail(self, check: str, problem: str, fix: str) -> None:
        self.mark(check)
        self.failed.add(check)
        # The same problem on another call (another input, another position) is counted,
        # not listed again.
        key = (check, fix, _NUMBER.sub("#", _CALL.sub("call", problem)))
        if key in self.repeats:
            self.repeats[key] += 1
            return
        self.repeats[key] = 0
        self.violations.append(Violation(check, problem, fix))

    def listed(self) -> list[Violation]:
        out = []
        for violation, repeats in zip(self.violations, self.repeats.values(), strict=True):
            if repeats:
                violation = attrs.evolve(
                    violation,
                    problem=f"{violation.problem} (and the same on {repeats} more "
                    f"call{'s' if repeats > 1 else ''})",
                )
            out.append(violation)
        return out

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def run(self) -> ConformanceReport:
        try:
            self.checks()
        except _Stop:
            pass
        finally:
            self.caller.close()
        asynchronous = self.caller.asynchronous
        protocol = self.protocol
        if protocol == "Transcriber" and self.streaming:
            protocol = "StreamingTranscriber"
        report = ConformanceReport(
            protocol=("Async" if asynchronous else "") + protocol,
            stage=self.name,
            asynchronous=asynchronous,
            streaming=self.streaming,
            calls=self.caller.calls,
            passed=tuple(c for c in self.ran if c not in self.failed),
            warnings=tuple(self.warnings),
            notes=tuple(self.notes),
            max_loop_lag=self.caller.max_lag,
        )
        if self.violations:
            raise ConformanceError(self.listed(), report)
        return report

    def checks(self) -> None:
        raise NotImplementedError

    # -- shared steps

    def method(self, name: str) -> Callable[..., object] | None:
        self.mark("method")
        method = getattr(self.stage, name, None)
        if method is None or not callable(method):
            found = "has none" if method is None else f"has {_what(method)}"
            self.fail(
                "method",
                f"a {self.protocol} needs a callable {name}() method; {self.name} {found}",
                f"add `def {name}(self, ...)` (or `async def`) as the protocol describes",
            )
            return None
        return method  # type: ignore[no-any-return]

    def settled(
        self,
        out: _Outcome,
        label: str,
        *,
        context: str = "",
        error: tuple[str, str, str] | None = None,
    ) -> bool:
        """Report a loop block, a timeout, an endless stream or an error; True if none.

        ``error`` is the check name, the start of the problem and the fix to report if
        the call raised (by default a generic "raises" violation).
        """
        if self.max_loop_block is not None and out.lag > self.max_loop_block:
            self.fail(
                "event loop",
                f"the event loop was blocked for {out.lag:.2f} s while {label} ran "
                f"(allowed: {self.max_loop_block} s)",
                _LOOP_FIX,
            )
        elif self.caller.asynchronous and self.max_loop_block is not None:
            self.mark("event loop")
        self.mark("timeout")
        if out.timed_out:
            self.fail(
                "timeout",
                f"{label} did not finish within {self.timeout} s{context}; the check stopped there",
                "make sure every call ends (no wait on something that never comes); for a "
                "slow stage pass a larger timeout= to the check",
            )
            raise _Stop  # the stage may still be busy: calling it again proves nothing
        if out.endless:
            self.fail(
                "items",
                f"{label} yielded more than {_MAX_ITEMS} items for a short input{context}",
                "make the stream end when the output is complete",
            )
            return False
        if out.error is not None:
            check, lead, fix = error or (
                "raises",
                "",
                "a stage must handle a normal input: fix the cause above (raise chainvoice "
                "errors only for inputs or services that really fail)",
            )
            self.fail(check, f"{lead}{label} raised {_error(out.error)}{context}", fix)
            return False
        return True

    def all_at_once(self, out: _Outcome, method: str) -> None:
        """Warn when a coroutine returned all the output at once (works, but never streams)."""
        if out.all_at_once:
            self.warn(
                f"{method} is a coroutine that returns all its output at once: a chain "
                "accepts that, but nothing streams; make it an async generator (`async def` "
                "with `yield`) for lower latency"
            )

    def check_close(self, out: _Outcome, label: str) -> None:
        if not out.closed_early and out.close_error is None:
            return  # nothing to close: a str, a list, or a stream of one item
        self.mark("early close")
        if out.close_error is not None:
            self.fail(
                "early close",
                f"closing {label} after its first item (as a chain does on barge-in) raised "
                f"{_error(out.close_error)}",
                _CLOSE_FIX,
            )

    def check_usage(self, usage: Usage, label: str, stage_name: str) -> None:
        self.mark("usage")
        bad = _usage_problems(usage)
        if bad:
            self.fail(
                "usage",
                f"{label} reported a Usage with negative or non-finite values: {', '.join(bad)}",
                "report counts, seconds and costs as finite numbers >= 0 (leave cost_usd None "
                "when it is not known)",
            )
        if usage.stage not in (None, stage_name):
            self.warn(
                f"{label} reported a Usage with stage={usage.stage!r}; the chain expects "
                f"{stage_name!r} (or None) from this stage"
            )


# --------------------------------------------------------------------------- transcriber


def _tone(seconds: float, rate: int, channels: int) -> Audio:
    """A quiet, speech-like buzz: harmonics of 150 Hz under a 4 Hz syllable envelope."""
    t = np.arange(round(seconds * rate)) / rate
    voice = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 6))
    envelope = 0.5 - 0.5 * np.cos(2 * np.pi * 4 * t)
    samples = (0.15 * voice * envelope).astype(np.float32)
    return Audio(np.repeat(samples[:, None], channels, axis=1), rate)


def _normalize(text: str) -> list[str]:
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def _finite_times(items: Iterable[Segment | Word]) -> bool:
    return all(
        math.isfinite(i.start) and math.isfinite(i.end) and 0 <= i.start <= i.end for i in items
    )


class _TranscriberCheck(_Check):
    protocol = "Transcriber"

    def __init__(
        self,
        stage: object,
        *,
        audio: Audio | None,
        expected_text: str | None,
        timeout: float,
        max_loop_block: float | None,
    ) -> None:
        super().__init__(stage, timeout=timeout, max_loop_block=max_loop_block)
        if audio is not None and not isinstance(audio, Audio):
            raise ConfigurationError(
                f"audio= must be a chainvoice.Audio, not {_what(audio)}; "
                "load it with Audio.from_file(path) or Audio.from_bytes(data)"
            )
        if expected_text is not None and not isinstance(expected_text, str):
            raise ConfigurationError(f"expected_text= must be a str, not {_what(expected_text)}")
        self.audio = audio if audio is not None else _tone(1.0, 16000, 1)
        self.expected_text = expected_text

    def checks(self) -> None:
        transcribe = self.method("transcribe")
        if transcribe is None:
            return
        declared = _declared_async(transcribe)
        audio = self.audio
        label = f"transcribe({audio!r})"
        out = self.caller.call(lambda: transcribe(audio), declared_async=declared, want_items=False)
        transcribe_async = declared or out.awaited
        first = self.transcript(out, label)
        if first is not None:
            self.notes.append(f"{label} -> {_short(first.text, 70)}")
            self.compare(first)
        other = _tone(0.6, 44100, 2)
        label = f"transcribe({other!r})"
        out = self.caller.call(lambda: transcribe(other), declared_async=declared, want_items=False)
        self.mark("any audio")
        self.transcript(
            out,
            label,
            error=(
                "any audio",
                "a chain passes audio at the rate and channel count the user gave, but ",
                "convert inside the stage to what the model needs (e.g. "
                "audio.resample(16000).to_mono())",
            ),
        )
        stream = getattr(self.stage, "transcribe_stream", None)
        if stream is not None:
            self.streaming = True
            self.check_stream(stream, transcribe_async)

    def transcript(
        self, out: _Outcome, label: str, *, error: tuple[str, str, str] | None = None
    ) -> Transcript | None:
        if not self.settled(out, label, error=error):
            return None
        self.mark("return type")
        value = out.value
        if isinstance(value, Transcript):
            self.fields(value, label)
            return value
        if out.kind == "async":
            fix = (
                "transcribe must return one Transcript (from a coroutine, if async); put "
                "streaming in a separate transcribe_stream(audio) method"
            )
        elif out.kind == "sync":
            fix = "return the Transcript itself, not an iterable"
        elif isinstance(value, str):
            fix = "return Transcript(text=...) instead of the bare text"
        elif value is None:
            fix = "return the Transcript (is a `return` missing?)"
        else:
            fix = "build and return a chainvoice.Transcript(text=..., ...)"
        self.fail(
            "return type", f"{label} returned {_what(value)}; expected a chainvoice.Transcript", fix
        )
        return None

    def fields(self, transcript: Transcript, label: str) -> None:
        self.mark("transcript fields")
        t: Any = transcript  # attrs does not enforce the annotated types: check them here
        bad = []
        if not isinstance(t.text, str):
            bad.append(f"text is {_what(t.text)}, not str")
        if t.language is not None and not isinstance(t.language, str):
            bad.append(f"language is {_what(t.language)}")
        if t.duration is not None and not (
            isinstance(t.duration, (int, float)) and math.isfinite(t.duration) and t.duration >= 0
        ):
            bad.append(f"duration is {t.duration!r}")
        if not all(isinstance(s, Segment) for s in t.segments):
            bad.append("segments holds items that are not chainvoice.Segment")
        elif not _finite_times(t.segments):
            bad.append("a segment has a non-finite, negative or reversed start/end")
        if not all(isinstance(w, Word) for w in t.words):
            bad.append("words holds items that are not chainvoice.Word")
        elif not _finite_times(t.words):
            bad.append("a word has a non-finite, negative or reversed start/end")
        if t.usage is not None and not isinstance(t.usage, Usage):
            bad.append(f"usage is {_what(t.usage)}, not chainvoice.Usage")
        if bad:
            self.fail(
                "transcript fields",
                f"{label} returned a Transcript whose " + "; ".join(bad),
                "fill the Transcript with the documented types: text str, times in seconds "
                "(finite, start <= end), usage a chainvoice.Usage or None",
            )
        elif isinstance(transcript.usage, Usage):
            self.check_usage(transcript.usage, label, "transcribe")

    def compare(self, t: Transcript) -> None:
        if self.expected_text is None or not isinstance(t.text, str):
            return
        self.mark("expected text")
        want, got = _normalize(self.expected_text), _normalize(t.text)
        ratio = difflib.SequenceMatcher(None, want, got).ratio() if want or got else 1.0
        if ratio < 0.8:
            self.fail(
                "expected text",
                f"the transcript {_short(t.text, 80)} does not match expected_text "
                f"{_short(self.expected_text, 80)} (word similarity {ratio:.0%}, needed 80%)",
                "check that the audio reaches the model intact (sample rate, channels, "
                "encoding) and that the whole text is returned",
            )

    def check_stream(self, stream: object, transcribe_async: bool) -> None:
        self.mark("stream")
        if not callable(stream):
            self.fail(
                "stream",
                f"{self.name}.transcribe_stream is {_what(stream)}, not a method",
                "remove the attribute, or make it a method that yields deltas then a Transcript",
            )
            return
        audio = self.audio
        declared = _declared_async(stream)
        label = f"transcribe_stream({audio!r})"
        out = self.caller.call(lambda: stream(audio), declared_async=declared)
        ok = self.settled(out, label) and self.stream_items(out, label)
        if ok and (out.kind == "async") != transcribe_async:
            modes = ("async", "sync") if transcribe_async else ("sync", "async")
            self.warn(
                f"transcribe is {modes[0]} but transcribe_stream is {modes[1]}: a chain "
                "copes, but callers of the stage will not expect it; make both sync or "
                "both async"
            )
        early = self.caller.call(lambda: stream(audio), declared_async=declared, stop_after=1)
        if self.settled(early, label, context=" (the call to be closed early)"):
            self.check_close(early, label)
        again = self.caller.call(lambda: stream(audio), declared_async=declared)
        self.mark("reusable")
        reuse = ("reusable", "after a stream was closed early, the next call ", _REUSE_FIX)
        if self.settled(again, label, error=reuse):
            self.stream_items(again, label)

    def stream_items(self, out: _Outcome, label: str) -> bool:
        self.mark("stream items")
        if not out.streamed:
            self.fail(
                "stream items",
                f"{label} {_returned(out)}; expected an iterable (or async iterable) of str "
                "deltas ending with one Transcript",
                _ASYNC_GEN_FIX
                if out.awaited
                else "make it a generator: `yield` each text delta, then `yield` the Transcript",
            )
            return False
        self.all_at_once(out, "transcribe_stream")
        finals = 0
        deltas: list[str] = []
        problems = []
        for i, item in enumerate(out.items):
            if finals:
                problems.append(
                    f"yielded {_what(item)} at position {i}, after the final Transcript"
                )
                break
            if isinstance(item, Transcript):
                finals += 1
                self.fields(item, label)
            elif isinstance(item, str):
                deltas.append(item)
            elif isinstance(item, Usage):
                self.check_usage(item, label, "transcribe")
            else:
                problems.append(
                    f"yielded {_what(item)} at position {i}; expected str deltas, Usage "
                    "items, then one Transcript"
                )
        extra = [x for x in out.items if isinstance(x, Transcript)]
        if len(extra) > 1:
            problems.append(f"yielded {len(extra)} Transcripts; exactly one, last, is allowed")
        if not extra:
            problems.append("ended without a final Transcript")
        if problems:
            self.fail(
                "stream items",
                f"{label} " + "; ".join(problems),
                "yield text deltas (str) as they are recognised, then exactly one final "
                "Transcript, and nothing after it",
            )
            return False
        final = extra[0]
        joined = "".join(deltas)
        if deltas and isinstance(final.text, str) and joined.split() != final.text.split():
            self.warn(
                f"{label}: the deltas joined ({_short(joined, 60)}) differ from the final "
                f"text ({_short(final.text, 60)}); listeners of TranscriptDelta see the deltas"
            )
        return True


# --------------------------------------------------------------------------- responder

_RESPONDER_RESULT_FIXES: list[tuple[type | tuple[type, ...], str]] = [
    (Mapping, "return the reply text (e.g. result['text']); iterating a dict gives its keys"),
    ((bytes, bytearray, memoryview), "decode it first: data.decode('utf-8')"),
    (Message, "return message.content"),
]


class _ResponderCheck(_Check):
    protocol = "Responder"

    def __init__(
        self,
        stage: object,
        *,
        conversation: Conversation | None,
        timeout: float,
        max_loop_block: float | None,
    ) -> None:
        super().__init__(stage, timeout=timeout, max_loop_block=max_loop_block)
        if conversation is not None and not isinstance(conversation, Conversation):
            raise ConfigurationError(
                f"conversation= must be a chainvoice.Conversation, not {_what(conversation)}"
            )
        if conversation is not None and not conversation.last_user_text.strip():
            raise ConfigurationError(
                "conversation= must end with a user message to answer; add one with "
                ".add('user', text)"
            )
        self.conversation = conversation or Conversation(
            instructions="You are a helpful assistant. Answer in one short sentence."
        ).add("user", "Hello! What is two plus two?")

    def checks(self) -> None:
        if hasattr(self.stage, "respond"):
            respond = self.method("respond")
        elif callable(self.stage):
            self.mark("method")
            respond = self.stage
        else:
            respond = self.method("respond")
        if respond is None:
            return
        declared = _declared_async(respond)
        first = self.conversation
        kept = _copy(first)
        label = f"respond(conversation ending {_short(first.last_user_text, 40)})"
        out = self.caller.call(lambda: respond(first), declared_async=declared)
        text = self.reply(out, label)
        self.mark("conversation untouched")
        if first != kept:
            self.fail(
                "conversation untouched",
                f"{label} changed the Conversation it was given",
                "treat the conversation as read-only; build new values with "
                "conversation.add(...) instead of changing it",
            )
        early = self.caller.call(lambda: respond(first), declared_async=declared, stop_after=1)
        if self.settled(early, label, context=" (the call to be closed early)"):
            self.check_close(early, label)
        longer = first.add("assistant", text or "Four.").add(
            "user", "Thank you. Now say it again in other words."
        )
        label = f"respond(conversation of {len(longer)} messages)"
        out = self.caller.call(lambda: respond(longer), declared_async=declared)
        self.mark("reusable")
        self.reply(out, label, error=("reusable", "after a stream was closed early, ", _REUSE_FIX))
        fresh = Conversation().add("user", "Please say hello.")
        label = "respond(a new conversation of 1 message, no instructions)"
        out = self.caller.call(lambda: respond(fresh), declared_async=declared)
        self.mark("stateless")
        stateless = (
            "stateless",
            "after a longer conversation, ",
            "answer from the conversation given to each call, not from state kept between "
            "calls (a chain can reset or replace its conversation)",
        )
        self.reply(out, label, error=stateless)

    def reply(
        self, out: _Outcome, label: str, *, error: tuple[str, str, str] | None = None
    ) -> str | None:
        if not self.settled(out, label, error=error):
            return None
        self.mark("return type")
        value = out.value
        if not out.streamed:
            if isinstance(value, str):
                self.warn(
                    "respond returns the whole reply as one str: a chain cannot start "
                    "speaking before the reply is complete; yield text deltas as they come "
                    "for lower latency"
                )
                text = value
            else:
                fix = next(
                    (f for t, f in _RESPONDER_RESULT_FIXES if isinstance(value, t)),
                    "return the reply as a str, or yield str text deltas",
                )
                self.fail(
                    "return type",
                    f"{label} {_returned(out)}; expected a str or an iterable of str deltas "
                    "(and Usage items)",
                    fix,
                )
                return None
        else:
            self.streaming = not out.all_at_once
            self.all_at_once(out, "respond")
            self.mark("items")
            parts = []
            for i, item in enumerate(out.items):
                if isinstance(item, str):
                    parts.append(item)
                elif isinstance(item, Usage):
                    self.check_usage(item, label, "respond")
                else:
                    hint = (
                        "skip None deltas (a streaming API's empty delta is often None)"
                        if item is None
                        else "decode bytes before yielding"
                        if isinstance(item, (bytes, bytearray))
                        else "yield the text of each chunk (e.g. "
                        "chunk.choices[0].delta.content), not the chunk object"
                    )
                    self.fail(
                        "items",
                        f"{label} yielded {_what(item)} at position {i}; expected str text "
                        "deltas and Usage items only",
                        hint,
                    )
                    return None
            text = "".join(parts)
        self.mark("not empty")
        if not text.strip():
            self.fail(
                "not empty",
                f"{label} produced an empty reply ({text!r})",
                "return the model's text; check that the request succeeded and that the "
                "text is read from the right field of the response",
            )
            return None
        self.notes.append(f"{label} -> {_short(text, 70)}")
        return text


def _copy(conversation: Conversation) -> Conversation:
    return Conversation(
        [Message(m.role, m.content, interrupted=m.interrupted) for m in conversation.messages],
        instructions=conversation.instructions,
    )


# --------------------------------------------------------------------------- synthesizer


class _SynthesizerCheck(_Check):
    protocol = "Synthesizer"

    def __init__(
        self, stage: object, *, text: str | None, timeout: float, max_loop_block: float | None
    ) -> None:
        super().__init__(stage, timeout=timeout, max_loop_block=max_loop_block)
        if text is not None and (not isinstance(text, str) or not text.strip()):
            raise ConfigurationError(f"text= must be a non-blank str, not {_short(text)}")
        self.text = text or "Hello there. This is a short test of speech synthesis."
        self.format: tuple[int, int] | None = None

    def checks(self) -> None:
        synthesize = self.method("synthesize")
        if synthesize is None:
            return
        declared = _declared_async(synthesize)
        text = self.text
        label = f"synthesize({_short(text)})"
        out = self.caller.call(lambda: synthesize(text), declared_async=declared)
        self.audio(out, label)
        early = self.caller.call(lambda: synthesize(text), declared_async=declared, stop_after=1)
        if self.settled(early, label, context=" (the call to be closed early)"):
            self.check_close(early, label)
        second = "A second, different sentence."
        label = f"synthesize({second!r})"
        out = self.caller.call(lambda: synthesize(second), declared_async=declared)
        self.mark("reusable")
        self.audio(out, label, error=("reusable", "after a stream was closed early, ", _REUSE_FIX))
        texts = ("One, two, three.", "Four, five, six.")
        how = "two tasks" if self.caller.asynchronous or declared else "two threads"
        outs = self.caller.call_many(
            [functools.partial(synthesize, t) for t in texts], declared_async=declared
        )
        self.mark("concurrency")
        concurrency = (
            "concurrency",
            "",
            "the chain synthesizes the pieces of a reply concurrently: keep per-call state "
            "local to the call, not on self, and guard shared resources (a model, a "
            "connection) with a lock",
        )
        for t, o in zip(texts, outs, strict=True):
            context = f" (called at the same time as another call, from {how})"
            self.audio(o, f"synthesize({t!r})", context=context, error=concurrency)

    def audio(
        self,
        out: _Outcome,
        label: str,
        *,
        context: str = "",
        error: tuple[str, str, str] | None = None,
    ) -> None:
        if not self.settled(out, label, context=context, error=error):
            return
        self.mark("return type")
        if not out.streamed:
            self.fail(
                "return type",
                f"{label} {_returned(out)}; expected an iterable (or async iterable) of Audio "
                "chunks",
                _ASYNC_GEN_FIX if out.awaited else _audio_fix(out.value, whole=True),
            )
            return
        self.all_at_once(out, "synthesize")
        self.mark("items")
        chunks: list[Audio] = []
        for i, item in enumerate(out.items):
            if isinstance(item, Audio):
                chunks.append(item)
            elif isinstance(item, Usage):
                self.check_usage(item, label, "synthesize")
            else:
                self.fail(
                    "items",
                    f"{label} yielded {_what(item)} at position {i}{context}; expected "
                    "chainvoice.Audio chunks and Usage items only",
                    _audio_fix(item, whole=False),
                )
                return
        self.mark("not empty")
        if not chunks or sum(c.frames for c in chunks) == 0:
            self.fail(
                "not empty",
                f"{label} yielded no audio{context}",
                "yield the synthesized speech as Audio chunks with at least one frame",
            )
            return
        if len(chunks) > 1 and not out.all_at_once:
            self.streaming = True
        self.check_format(chunks, label, context)

    def check_format(self, chunks: list[Audio], label: str, context: str) -> None:
        self.mark("audio format")
        rates = sorted({c.rate for c in chunks})
        channels = sorted({c.channels for c in chunks})
        if len(rates) > 1:
            self.fail(
                "audio format",
                f"{label} yielded chunks at different sample rates ({rates} Hz) in one "
                f"call{context}",
                "yield every chunk at one rate (resample the odd ones with "
                "audio.resample(rate)); a player cannot switch rates mid-stream",
            )
        if len(channels) > 1:
            self.fail(
                "audio format",
                f"{label} yielded chunks with different channel counts ({channels}) in one "
                f"call{context}",
                "yield every chunk with the same channel count (e.g. audio.to_mono())",
            )
        rate, count = rates[0], channels[0]
        if not _MIN_RATE <= rate <= _MAX_RATE:
            hint = " (a rate given in kHz instead of Hz?)" if rate < 1000 else ""
            self.fail(
                "audio format",
                f"{label} yielded audio at {rate} Hz{hint}; expected {_MIN_RATE} to {_MAX_RATE} Hz",
                "give Audio the rate the samples were produced at, in Hz (OpenAI PCM is "
                "24000 Hz mono)",
            )
        if count > 2:
            self.warn(f"{label} yielded {count}-channel audio; speech is usually mono")
        if self.format is None:
            self.format = (rate, count)
            total = sum(c.duration for c in chunks)
            self.notes.append(
                f"{label} -> {len(chunks)} chunk(s), {total:.2f} s at {rate} Hz, {count} channel(s)"
            )
        elif self.format != (rate, count) and len(rates) == 1 and len(channels) == 1:
            self.fail(
                "audio format",
                f"{label} yielded {rate} Hz, {count}-channel audio, but an earlier call "
                f"yielded {self.format[0]} Hz, {self.format[1]}-channel audio",
                "use one output format for every call: a chain joins the pieces of a reply "
                "into one Audio",
            )
        bad = [
            i
            for i, c in enumerate(chunks)
            if not (
                isinstance(c.samples, np.ndarray)
                and c.samples.dtype == np.float32
                and c.samples.ndim == 2
                and np.isfinite(c.samples).all()
            )
        ]
        if bad:
            self.fail(
                "audio format",
                f"{label} yielded chunks {bad} whose samples are not finite float32 "
                "(frames, channels) arrays",
                "build chunks with chainvoice.Audio(samples, rate), which converts and checks "
                "the samples",
            )
            return
        if any(c.frames == 0 for c in chunks):
            self.warn(f"{label} yielded empty (zero-frame) chunks; skip them")
        peak = max(float(np.abs(c.samples).max()) if c.frames else 0.0 for c in chunks)
        total = sum(c.duration for c in chunks)
        if peak < 1e-4:
            self.warn(f"{label} yielded only silence ({total:.2f} s)")
        elif peak > 1.0:
            self.warn(
                f"{label} yielded samples up to {peak:.2f}, outside [-1, 1]; they will clip "
                "when encoded (integer PCM given as floats must be scaled, e.g. / 32768)"
            )
        if total < 0.1:
            self.warn(f"{label} yielded only {total * 1000:.0f} ms of audio for a sentence")


def _audio_fix(value: object, *, whole: bool) -> str:
    if isinstance(value, Audio):
        return "return [audio], or `yield audio` from a generator (a generator streams)"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return (
            "wrap the data: Audio.from_pcm16(data, rate=24000) for raw 16-bit PCM, or "
            "Audio.from_bytes(data) for an encoded file (WAV, MP3, ...)"
        )
    if isinstance(value, np.ndarray):
        return "wrap the samples with their rate: Audio(samples, rate)"
    if value is None:
        if whole:
            return "return or yield the audio chunks (is a `return` or `yield` missing?)"
        return "skip empty chunks instead of yielding None"
    if isinstance(value, str):
        return "a synthesizer yields audio, not text: yield chainvoice.Audio chunks"
    return "yield chainvoice.Audio chunks (build them with Audio(samples, rate))"


# --------------------------------------------------------------------------- entry points


def _outside_loop(fn: Callable[[], R]) -> R:
    """Run ``fn`` here, or in a worker thread if this thread is running an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn()
    with concurrent.futures.ThreadPoolExecutor(
        1, thread_name_prefix="chainvoice-conformance"
    ) as pool:
        return pool.submit(fn).result()


def check_transcriber(
    stage: object,
    *,
    audio: Audio | None = None,
    expected_text: str | None = None,
    timeout: float = 60.0,
    max_loop_block: float | None = 0.5,
) -> ConformanceReport:
    """Check that a transcriber, sync or async, keeps the ``Transcriber`` contract.

    The check calls ``transcribe`` on ``audio`` and on 44.1 kHz stereo audio and checks
    that each call returns a well-formed ``Transcript``. If the stage has
    ``transcribe_stream``, it also checks that a stream yields ``str`` deltas (and
    ``Usage`` items) then exactly one final ``Transcript``, that closing a stream after
    its first item does not raise, and that the stage still works afterwards. It makes
    2 calls, or 5 with ``transcribe_stream``.

    Args:
        stage: The transcriber to check.
        audio: Audio to transcribe; by default one second of a quiet tone, for which any
            text (also an empty one) is accepted. Pass speech with ``expected_text`` to
            check what the stage hears.
        expected_text: What ``audio`` says; the transcript must match it word for word at
            80 % or better, ignoring case and punctuation.
        timeout: Seconds each call may take.
        max_loop_block: For an async stage, the longest the event loop may be blocked, in
            seconds; ``None`` not to check.

    Returns:
        What the check found, when the stage keeps the contract.

    Raises:
        ConformanceError: The stage breaks the contract; the message lists every
            violation with how to fix it.
        ConfigurationError: A bad argument to the check itself.
    """
    check = _TranscriberCheck(
        stage,
        audio=audio,
        expected_text=expected_text,
        timeout=timeout,
        max_loop_block=max_loop_block,
    )
    return _outside_loop(check.run)


def check_responder(
    stage: object,
    *,
    conversation: Conversation | None = None,
    timeout: float = 60.0,
    max_loop_block: float | None = 0.5,
) -> ConformanceReport:
    """Check that a responder, sync or async (or a plain function), keeps its contract.

    The check calls the responder on ``conversation``, then again closing the stream
    after the first delta, then on a longer conversation that follows from the first,
    then on a new, shorter one. It checks that each call returns a ``str`` or yields
    ``str`` deltas (and ``Usage`` items) making up a non-empty reply, that closing early
    does not raise, that the stage keeps working, and that the conversation it is given
    is left as it was. It makes 4 calls.

    Args:
        stage: The responder to check: an object with ``respond`` or a function.
        conversation: The first conversation to answer; it must end with a user message.
            By default a short question with brief instructions.
        timeout: Seconds each call may take.
        max_loop_block: For an async stage, the longest the event loop may be blocked, in
            seconds; ``None`` not to check.

    Returns:
        What the check found, when the stage keeps the contract.

    Raises:
        ConformanceError: The stage breaks the contract; the message lists every
            violation with how to fix it.
        ConfigurationError: A bad argument to the check itself.
    """
    check = _ResponderCheck(
        stage, conversation=conversation, timeout=timeout, max_loop_block=max_loop_block
    )
    return _outside_loop(check.run)


def check_synthesizer(
    stage: object,
    *,
    text: str | None = None,
    timeout: float = 60.0,
    max_loop_block: float | None = 0.5,
) -> ConformanceReport:
    """Check that a synthesizer, sync or async, keeps the ``Synthesizer`` contract.

    The check calls ``synthesize`` on ``text``, then again closing the stream after the
    first chunk, then on another text, then twice at the same time (from two threads,
    or two tasks for an async stage), as a chain does. It checks that each call yields
    ``Audio`` chunks (and ``Usage`` items) only, with some audio, one plausible sample
    rate and one channel count across all calls and finite samples, that closing early
    does not raise, and that the stage keeps working. It makes 5 calls.

    Args:
        stage: The synthesizer to check.
        text: The first text to speak; by default two short sentences.
        timeout: Seconds each call may take.
        max_loop_block: For an async stage, the longest the event loop may be blocked, in
            seconds; ``None`` not to check.

    Returns:
        What the check found, when the stage keeps the contract.

    Raises:
        ConformanceError: The stage breaks the contract; the message lists every
            violation with how to fix it.
        ConfigurationError: A bad argument to the check itself.
    """
    check = _SynthesizerCheck(stage, text=text, timeout=timeout, max_loop_block=max_loop_block)
    return _outside_loop(check.run)
