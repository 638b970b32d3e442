"""What the OpenAI stages share: client and settings, usage items, and the retry rule for streams.

Each stage is a sync class and an async twin over one *core* that builds requests and
reads responses without doing any I/O; the twins only move bytes and events between the
``openai`` client and the core, so the two cannot drift apart.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import anyio
import attrs

from chainvoice._errors import (
    APIConnectionError,
    APITimeoutError,
    ChainvoiceError,
    ConfigurationError,
    ServerError,
    StreamInterruptedError,
)
from chainvoice._types import Usage
from chainvoice.openai._client import (
    ClientSettings,
    base_url_of,
    is_official,
    make_client,
    secrets_of,
)
from chainvoice.openai._direct import DirectSender, direct_sender
from chainvoice.openai._errors import ErrorContext, StreamTimeoutError, translate
from chainvoice.openai._models import Kind, Price, price_for, warn_if_retiring

if TYPE_CHECKING:
    from openai import AsyncOpenAI, OpenAI

__all__ = [
    "Attempts",
    "OpenAIStage",
    "SseDecoder",
    "StageSetup",
    "astream_with_retries",
    "make_usage",
    "stream_with_retries",
]

log = logging.getLogger("chainvoice.openai")


@attrs.frozen(kw_only=True)
class TokenCounts:
    """Token counts as a response reported them."""

    input_text: int = 0
    cached_input: int = 0
    input_audio: int = 0
    output_text: int = 0
    output_audio: int = 0

    @property
    def input(self) -> int:
        """All input tokens."""
        return self.input_text + self.input_audio

    @property
    def output(self) -> int:
        """All output tokens."""
        return self.output_text + self.output_audio


def make_usage(
    *,
    stage: str,
    model: str,
    price: Price | None,
    tokens: TokenCounts | None = None,
    audio_seconds: float = 0.0,
    characters: int = 0,
    minutes_billed: bool = False,
) -> Usage:
    """A usage item with its cost, or with ``cost_usd=None`` and why in ``unpriced``.

    The cost comes from tokens when the response reported them and the price has a rate
    for each kind of token used; otherwise from characters (``per_mchar``); otherwise from
    minutes of audio (``per_minute``) when ``minutes_billed``.

    When the cost is unknown, ``unpriced`` holds one entry that says why: the bare model
    name when there is no price for it; ``"<model> (the server reported no usage)"`` when
    there is a price but the response counted nothing it applies to (a compatible server
    that sends no ``usage``); ``"<model> (its price has no rate for <kinds> tokens)"`` when
    the response counted tokens of a kind the price leaves out.
    """
    cost: float | None = None
    if price is not None:
        if tokens is not None and (tokens.input or tokens.output):
            cost = price.tokens_cost(
                input_text=tokens.input_text,
                cached_input=tokens.cached_input,
                output_text=tokens.output_text,
                input_audio=tokens.input_audio,
                output_audio=tokens.output_audio,
            )
        if cost is None and price.per_mchar is not None and characters:
            cost = price.per_mchar * characters / 1_000_000
        if cost is None and minutes_billed and price.per_minute is not None and audio_seconds:
            cost = price.per_minute * audio_seconds / 60.0
    t = tokens or TokenCounts()
    return Usage(
        stage=stage,
        model=model,
        input_tokens=t.input,
        output_tokens=t.output,
        input_text_tokens=t.input_text,
        input_audio_tokens=t.input_audio,
        output_text_tokens=t.output_text,
        output_audio_tokens=t.output_audio,
        audio_seconds=audio_seconds,
        characters=characters,
        requests=1,
        cost_usd=cost,
        unpriced=() if cost is not None else (_unpriced(model, price, tokens),),
    )


def _unpriced(model: str, price: Price | None, tokens: TokenCounts | None) -> str:
    """Why ``make_usage`` could not price ``model``: the ``unpriced`` entry."""
    if price is None:
        return model
    if tokens is None or not (tokens.input or tokens.output):
        return f"{model} (the server reported no usage)"
    uncached = max(tokens.input_text - tokens.cached_input, 0)
    cached_rate = (
        price.cached_input_per_mtok
        if price.cached_input_per_mtok is not None
        else price.input_per_mtok
    )
    missing = [
        kind
        for kind, count, rate in (
            ("input text", uncached, price.input_per_mtok),
            ("cached input", min(tokens.cached_input, tokens.input_text), cached_rate),
            ("output text", tokens.output_text, price.output_per_mtok),
            ("input audio", tokens.input_audio, price.audio_input_per_mtok),
            ("output audio", tokens.output_audio, price.audio_output_per_mtok),
        )
        if count and rate is None
    ]
    if not missing:
        return f"{model} (its price does not cover what the server reported)"
    return f"{model} (its price has no rate for {' or '.join(missing)} tokens)"


#: Seconds a network read may wait once the listener has speech in hand (``gather``).
DEFAULT_GATHER = 0.2
_MAX_GATHER = 2.0


def check_gather(gather: object) -> float:
    """``gather`` as seconds, or a ``ConfigurationError`` that says what is accepted."""
    if (
        isinstance(gather, bool)
        or not isinstance(gather, (int, float))
        or not 0 <= gather <= _MAX_GATHER
    ):
        raise ConfigurationError(
            f"gather must be a number of seconds from 0 to {_MAX_GATHER} (0 turns waiting "
            f"off), not {gather!r}"
        )
    return float(gather)


def int_or_zero(value: object) -> int:
    """An integer count from a response field that may be missing or ``None``."""
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


class SseDecoder:
    """Server-sent events from bytes as they arrive: each event's ``data``, JSON-decoded.

    Lines end with CR, LF or CRLF; an event ends at a blank line; ``data:`` lines are
    joined; other fields (``event:``, ``id:``) and comments are skipped, since OpenAI's
    events carry their ``type`` in the data. ``data: [DONE]`` sets :attr:`ended`, and
    nothing after it is decoded.

    Args:
        what: The stream, for errors ("the reply stream").
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.ended = False
        self._partial = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[Any]:
        """The events completed by ``chunk``.

        Raises:
            ServerError: An event's data is not JSON.
        """
        if self._partial:
            chunk = self._partial + chunk
        lines = chunk.splitlines(keepends=True)
        last = lines[-1] if lines else b""
        # A line is complete at its end-of-line, except a CR at the very end (an LF may follow).
        if last and (last[-1:] not in (b"\n", b"\r") or last.endswith(b"\r")):
            self._partial = lines.pop()
        else:
            self._partial = b""
        events: list[Any] = []
        for line in lines:
            self._line(line.rstrip(b"\r\n"), events)
        return events

    def finish(self) -> list[Any]:
        """The events still pending when the body ended (one with no blank line after)."""
        events: list[Any] = []
        if self._partial:
            self._line(self._partial.rstrip(b"\r\n"), events)
            self._partial = b""
        self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[Any]) -> None:
        if self.ended:  # nothing after [DONE] counts (as in the SDK's streams)
            return
        if line.startswith(b"data:"):
            self._data.append(line[6:] if line[5:6] == b" " else line[5:])
        elif not line and self._data:
            payload = b"\n".join(self._data)
            self._data = []
            if payload.strip() == b"[DONE]":
                self.ended = True
                return
            try:
                events.append(json.loads(payload))
            except ValueError as exc:
                raise ServerError(f"{self.what} sent an event that is not JSON: {exc}") from None


def field(obj: object, name: str, default: Any = None) -> Any:
    """``obj.name`` or ``obj[name]``, tolerating servers that leave fields out."""
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


class OpenAIStage:
    """Base of the OpenAI stages: one constructor for both twins, which differ only in I/O.

    Subclasses set the class attributes; ``_asynchronous`` picks the client kind.
    """

    _stage: ClassVar[str]
    _kind: ClassVar[Kind]
    _default_model: ClassVar[str]
    _asynchronous: ClassVar[bool]
    _setup: StageSetup

    def _make_setup(
        self,
        model: str | None,
        client: OpenAI | AsyncOpenAI | None,
        settings: ClientSettings,
        prices: Mapping[str, Price] | None,
    ) -> StageSetup:
        return StageSetup(
            stage=self._stage,
            cls_name=type(self).__name__,
            kind=self._kind,
            model=model,
            default_model=self._default_model,
            client=client,
            asynchronous=self._asynchronous,
            settings=settings,
            prices=prices,
        )

    @property
    def model(self) -> str:
        """The model this stage uses."""
        return self._setup.model

    def _built(self) -> None:
        """Call last in ``__init__``: warn of a retiring model once the stage is valid.

        A stage whose options fail does not use up the once-per-process warning.
        """
        if self._setup.model_given:
            warn_if_retiring(self._setup.model)


class StageSetup:
    """The parts every OpenAI stage has: its client, the model, where errors point, prices."""

    def __init__(
        self,
        *,
        stage: str,
        cls_name: str,
        kind: Kind,
        model: str | None,
        default_model: str,
        client: OpenAI | AsyncOpenAI | None,
        asynchronous: bool,
        settings: ClientSettings,
        prices: Mapping[str, Price] | None,
    ) -> None:
        if model is not None and (not isinstance(model, str) or not model.strip()):
            raise ConfigurationError(f"{cls_name}: model must be a non-empty string, not {model!r}")
        self.stage = stage
        self.kind = kind
        self.model = model if model is not None else default_model
        self.model_given = model is not None
        self.client: Any = make_client(client, settings, cls_name, asynchronous=asynchronous)
        self.base_url = base_url_of(self.client)
        self.official = is_official(self.client)
        self.prices = dict(prices) if prices is not None else None
        self.context = ErrorContext(
            stage=stage, model=self.model, base_url=self.base_url, secrets=secrets_of(self.client)
        )
        retries = getattr(self.client, "max_retries", 2)
        self.max_retries = retries if isinstance(retries, int) else 2

    @property
    def direct(self) -> DirectSender | None:
        """The sender of this stage's streamed requests straight to chainvoice's transport.

        None unless chainvoice built the (async) client itself (see ``_direct``).
        """
        return direct_sender(self.client)

    @property
    def price(self) -> Price | None:
        """The price of this stage's model, or ``None`` when unknown."""
        return price_for(self.model, overrides=self.prices, official=self.official)

    def error(self, exc: BaseException, *, delivered: bool = False) -> ChainvoiceError:
        """``exc`` as a chainvoice error naming this stage."""
        return translate(exc, self.context, delivered=delivered)


#: What :meth:`Attempts.admit` returns for an item a replayed stream must not pass on.
_HELD: Any = object()


class Attempts:
    """The retry rule for a streamed request.

    A request whose stream fails before it delivered any output (text or audio) to the
    user is sent again, up to the client's ``max_retries``, with a short backoff; the
    ``openai`` client itself already retried the opening of the request (429, 5xx,
    connection errors, honouring ``Retry-After``). Once output was delivered, a failure is
    raised as :class:`~chainvoice.StreamInterruptedError` and never retried, so nothing the
    user already heard is repeated.

    With ``replay`` (an idempotent request whose output is text, as a transcription is),
    a stream cut after text was delivered is sent again too: the new stream's text must
    start with the text already delivered, and only what comes after it is passed on. If
    the new text departs from what was delivered, a
    :class:`~chainvoice.StreamInterruptedError` says so and nothing more is passed on.
    """

    def __init__(self, setup: StageSetup, *, replay: bool = False) -> None:
        self.setup = setup
        self.retries_left = setup.max_retries
        self.attempt = 0
        self.delivered = False
        self.replay = replay
        self.delivered_text = ""  # with replay: all text passed on, over every attempt
        self.attempt_text = ""  # with replay: the text of the current attempt so far
        self.cut_by: BaseException | None = None  # with replay: the failure retried
        self.replays = 0  # with replay: attempts sent again after text was delivered

    def opening_failed(self, exc: BaseException) -> ChainvoiceError:
        """The error to raise when the request could not be opened (already retried)."""
        return self.setup.error(exc)

    def stream_failed(self, exc: BaseException) -> float:
        """Seconds to wait before sending again, or raise the error for ``exc``.

        Raises:
            ChainvoiceError: The failure is not retryable, output was delivered (and the
                request cannot be replayed), or the retries are spent.
        """
        error = self.setup.error(exc, delivered=self.delivered)
        fresh = self.setup.error(exc) if self.delivered and self.replay else error
        retryable = isinstance(fresh, (APIConnectionError, APITimeoutError)) or (
            isinstance(fresh, StreamInterruptedError) and (not self.delivered or self.replay)
        )
        if not retryable or self.retries_left <= 0:
            if retryable and self.replays:  # sent again after text was delivered, then spent
                kind = (
                    StreamTimeoutError
                    if isinstance(fresh, TimeoutError)
                    else StreamInterruptedError
                )
                raise kind(
                    f"the {self.setup.stage} stream with model {self.setup.model!r} was cut "
                    f"after text had been delivered, sent again {self.replays} time(s), and "
                    f"failed again ({fresh}); the retries (max_retries="
                    f"{self.setup.max_retries}) are spent; what arrived is kept"
                ) from exc
            raise error from exc
        self.retries_left -= 1
        self.attempt += 1
        self.replays += self.delivered
        self.attempt_text = ""
        self.cut_by = exc
        delay = min(0.25 * 2.0 ** (self.attempt - 1), 4.0)
        log.info(
            "%s stream failed %s (%s); sending again in %.2f s",
            self.setup.stage,
            "after text was delivered, which the new one must repeat"
            if self.delivered
            else "before any output",
            type(fresh).__name__,
            delay,
        )
        return delay

    def pass_on(self, text: str) -> str | None:
        """With replay: the part of a text delta not delivered yet, or ``None`` for none.

        Raises:
            _Diverged: The text of a replayed stream departs from the text delivered.
        """
        self.attempt_text += text
        done, now = self.delivered_text, self.attempt_text
        if not (done.startswith(now) if len(now) <= len(done) else now.startswith(done)):
            raise self._diverged()
        if len(now) <= len(done):
            return None
        self.delivered_text = now
        return now[len(done) :]

    def admit(self, item: T, shows: Callable[[T], bool]) -> T | Any:
        """What to yield for ``item``, or ``_HELD`` when a replayed stream must not repeat it.

        Output the user sees (``shows``) marks the request as delivered; on a replayed
        stream, text already shown is held back and only what is new passes on.
        """
        if shows(item):
            if self.replay and isinstance(item, str):
                new = self.pass_on(item)
                if new is None:
                    return _HELD
                item = new  # type: ignore[assignment]  # a str, as T is here
            self.delivered = True
        elif self.replay:
            self.caught_up()
        return item

    def caught_up(self) -> None:
        """With replay: check a replayed stream repeated all the text delivered.

        Called before an item that is not text (the final transcript), which must not
        come before the new stream caught up with what the user saw.

        Raises:
            _Diverged: The replayed stream ended its text short of what was delivered.
        """
        if len(self.attempt_text) < len(self.delivered_text):
            raise self._diverged()

    def _diverged(self) -> _Diverged:
        done, now = self.delivered_text, self.attempt_text
        return _Diverged(
            StreamInterruptedError(
                f"the {self.setup.stage} stream with model {self.setup.model!r} was cut "
                f"after text had been delivered and sent again, but the new text "
                f"({_excerpt(now)}) does not repeat the text delivered ({_excerpt(done)}); "
                "stopped here, so as not to contradict what was shown"
            ),
            self.cut_by,
        )


class _Diverged(Exception):
    """A replayed stream's text departed from what was delivered: raise ``error``, final."""

    def __init__(self, error: ChainvoiceError, cut_by: BaseException | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.cut_by = cut_by


def _excerpt(text: str, size: int = 60) -> str:
    return repr(text if len(text) <= size else "..." + text[-size:])


T = TypeVar("T")


def stream_with_retries(
    setup: StageSetup,
    open_stream: Callable[[], Any],
    consume: Callable[[Any], Iterable[T]],
    *,
    shows: Callable[[T], bool],
    replay: bool = False,
) -> Iterator[T]:
    """Open a streamed request and pass on what ``consume`` reads from it, with the retry rule.

    Args:
        setup: The stage (for errors and the retry count).
        open_stream: Sends the request; returns a context manager (an SDK stream, or a
            ``with_streaming_response`` call) whose ``__enter__`` gives the response.
        consume: Reads the response, yielding items for the user.
        shows: Whether an item is output the user sees (text or audio, not usage); after
            one, a failure is raised and the request is never sent again (unless
            ``replay``).
        replay: The request is idempotent, the items ``shows`` picks are text deltas, and
            the other items come after all the text: after a cut, send it again and pass
            on only the new text (see :class:`Attempts`).

    Raises:
        ChainvoiceError: What the request or the stream failed with (see :class:`Attempts`).
    """
    attempts = Attempts(setup, replay=replay)
    while True:
        try:
            opened = open_stream()
            response = opened.__enter__()
        except Exception as exc:
            raise attempts.opening_failed(exc) from exc
        items = iter(consume(response))
        try:
            for item in items:
                passed = attempts.admit(item, shows)
                if passed is not _HELD:
                    yield passed
            return
        except _Diverged as diverged:
            raise diverged.error from diverged.cut_by
        except Exception as exc:
            delay = attempts.stream_failed(exc)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
            opened.__exit__(None, None, None)
        time.sleep(delay)


async def astream_with_retries(
    setup: StageSetup,
    open_stream: Callable[[], Awaitable[Any]],
    consume: Callable[[Any], AsyncIterator[T]],
    *,
    shows: Callable[[T], bool],
    replay: bool = False,
) -> AsyncIterator[T]:
    """The async twin of :func:`stream_with_retries` (``open_stream`` is awaited, then entered)."""
    attempts = Attempts(setup, replay=replay)
    while True:
        try:
            opened = await open_stream()
            response = await opened.__aenter__()
        except Exception as exc:
            raise attempts.opening_failed(exc) from exc
        items = consume(response)
        try:
            async for item in items:
                passed = attempts.admit(item, shows)
                if passed is not _HELD:
                    yield passed
            return
        except _Diverged as diverged:
            raise diverged.error from diverged.cut_by
        except Exception as exc:
            delay = attempts.stream_failed(exc)
        finally:
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                await aclose()
            await opened.__aexit__(None, None, None)
        await anyio.sleep(delay)


def stage_repr(name: str, setup: StageSetup, **extra: object) -> str:
    """``Name(model=..., base_url=..., ...)`` without any secret."""
    parts = [f"model={setup.model!r}"]
    parts += [f"{k}={v!r}" for k, v in extra.items() if v is not None]
    parts.append(f"base_url={setup.base_url!r}")
    return f"{name}({', '.join(parts)})"
