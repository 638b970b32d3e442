"""Reply text from OpenAI's Responses API (default) or Chat Completions: :class:`OpenAIResponder`.

The conversation is kept on the client side: every call sends the whole
:class:`~chainvoice.Conversation` (its instructions as the system prompt), and nothing is
stored on the server unless ``store=True``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from chainvoice._errors import (
    BadRequestError,
    ConfigurationError,
    ServerError,
    StreamInterruptedError,
)
from chainvoice._pace import gather_hold
from chainvoice._types import Conversation, Usage
from chainvoice.openai._client import ClientSettings, redact
from chainvoice.openai._common import (
    DEFAULT_GATHER,
    OpenAIStage,
    SseDecoder,
    StageSetup,
    TokenCounts,
    astream_with_retries,
    check_gather,
    field,
    int_or_zero,
    make_usage,
    stage_repr,
    stream_with_retries,
)
from chainvoice.openai._direct import json_body
from chainvoice.openai._models import (
    DEFAULT_REPLY_MODEL,
    Price,
    check_effort,
    check_params,
    fastest_effort,
)
from chainvoice.openai._transport import body_chunks

if TYPE_CHECKING:
    from openai import AsyncOpenAI, OpenAI

__all__ = ["AsyncOpenAIResponder", "OpenAIResponder"]

API = Literal["responses", "chat"]
AUTO = "auto"


class _ResponderCore:
    """Options, request building and event reading; no I/O."""

    def __init__(
        self,
        setup: StageSetup,
        *,
        api: API,
        instructions: str | None,
        temperature: float | None,
        max_output_tokens: int | None,
        reasoning_effort: str | None,
        store: bool,
        gather: float,
        extra_body: Mapping[str, Any] | None,
    ) -> None:
        self.setup = setup
        self.gather = check_gather(gather)
        model = setup.model
        if api not in ("responses", "chat"):
            raise ConfigurationError(f"api must be 'responses' or 'chat', not {api!r}")
        self.api: API = api
        if instructions is not None and not isinstance(instructions, str):
            raise ConfigurationError(f"instructions must be a string, not {instructions!r}")
        self.instructions = instructions or None
        used: list[str] = []
        if temperature is not None:
            if not isinstance(temperature, (int, float)) or not 0.0 <= float(temperature) <= 2.0:
                raise ConfigurationError(
                    f"temperature must be between 0 and 2, not {temperature!r}"
                )
            used.append("temperature")
        self.temperature = None if temperature is None else float(temperature)
        if max_output_tokens is not None and (
            isinstance(max_output_tokens, bool)
            or not isinstance(max_output_tokens, int)
            or max_output_tokens < 1
        ):
            raise ConfigurationError(
                f"max_output_tokens must be a positive integer, not {max_output_tokens!r}"
            )
        self.max_output_tokens = max_output_tokens
        check_params(model, "reply", used)
        if reasoning_effort == AUTO:
            reasoning_effort = fastest_effort(model)
        elif reasoning_effort is not None:
            if not isinstance(reasoning_effort, str):
                raise ConfigurationError(
                    f"reasoning_effort must be a string, not {reasoning_effort!r}"
                )
            check_effort(model, reasoning_effort)
        self.reasoning_effort = reasoning_effort
        self.store = bool(store)
        self.extra_body = dict(extra_body) if extra_body else None

    def system_prompt(self, conversation: Conversation) -> str | None:
        """The conversation's instructions, then this stage's own, joined."""
        parts = [p for p in (conversation.instructions, self.instructions) if p]
        return "\n\n".join(parts) if parts else None

    def request(self, conversation: Conversation) -> dict[str, Any]:
        """Keyword arguments for ``responses.create`` or ``chat.completions.create``.

        Raises:
            ConfigurationError: The conversation has no messages.
        """
        if not isinstance(conversation, Conversation):
            raise TypeError(f"respond() takes a Conversation, not {type(conversation).__name__}")
        if not conversation.messages:
            raise ConfigurationError(
                "the conversation has no messages; add the user's message before replying"
            )
        system = self.system_prompt(conversation)
        kwargs: dict[str, Any] = {"model": self.setup.model, "stream": True}
        if self.api == "responses":
            kwargs["input"] = [
                {"role": m.role, "content": m.content} for m in conversation.messages
            ]
            if system is not None:
                kwargs["instructions"] = system
            kwargs["store"] = self.store
            if self.max_output_tokens is not None:
                kwargs["max_output_tokens"] = self.max_output_tokens
            if self.reasoning_effort is not None:
                kwargs["reasoning"] = {"effort": self.reasoning_effort}
        else:
            messages = [] if system is None else [{"role": "system", "content": system}]
            messages += [{"role": m.role, "content": m.content} for m in conversation.messages]
            kwargs["messages"] = messages
            kwargs["stream_options"] = {"include_usage": True}
            if self.store:
                kwargs["store"] = True
            if self.max_output_tokens is not None:
                kwargs["max_completion_tokens"] = self.max_output_tokens
            if self.reasoning_effort is not None:
                kwargs["reasoning_effort"] = self.reasoning_effort
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        if self.extra_body:
            kwargs["extra_body"] = self.extra_body
        return kwargs

    def create(self, client: Any) -> Any:
        """The client method that sends the request and gives the raw streamed response.

        The events are decoded here (:class:`SseDecoder`), not by the SDK: its typed event
        objects cost more CPU than the rest of a reply's handling.
        """
        api = client.responses if self.api == "responses" else client.chat.completions
        return api.with_streaming_response.create

    @property
    def path(self) -> str:
        """The endpoint's path under the base URL (for a request sent direct)."""
        return "responses" if self.api == "responses" else "chat/completions"

    def reader(self) -> _ResponsesReader | _ChatReader:
        """A reader for one streamed response."""
        return _ResponsesReader(self) if self.api == "responses" else _ChatReader(self)

    def usage(self, tokens: TokenCounts | None) -> Usage:
        """The usage item for one request; with no usage reported the cost is unknown."""
        return make_usage(
            stage="respond", model=self.setup.model, price=self.setup.price, tokens=tokens
        )


def _failure(core: _ResponderCore, error: object, what: str) -> Exception:
    message = redact(str(field(error, "message", "") or what), core.setup.context.secrets)
    code = field(error, "code")
    text = f"the reply with model {core.setup.model!r} failed: {message}" + (
        f" ({code})" if code else ""
    )
    if code in {"invalid_prompt", "invalid_request_error", "context_length_exceeded"}:
        return BadRequestError(text)
    return ServerError(text)


class _ResponsesReader:
    """Reads Responses API stream events."""

    def __init__(self, core: _ResponderCore) -> None:
        self.core = core
        self.done = False
        self.deltas = 0

    def feed(self, event: object) -> list[str | Usage]:
        """Text deltas and the final usage in one event."""
        kind = field(event, "type")
        if kind in ("response.output_text.delta", "response.refusal.delta"):
            delta = field(event, "delta") or ""
            if delta:
                self.deltas += 1
                return [str(delta)]
            return []
        if kind in ("response.completed", "response.incomplete"):
            self.done = True
            usage = field(field(event, "response"), "usage")
            return [self.core.usage(_response_tokens(usage))]
        if kind == "response.failed":
            error = field(field(event, "response"), "error")
            raise _failure(self.core, error, "the server reported response.failed")
        if kind == "error":
            raise _failure(self.core, event, "the server reported an error event")
        return []

    def finish(self) -> list[Usage]:
        """Nothing more to yield, after checking the stream ended with its final event.

        Raises:
            StreamInterruptedError: It did not.
        """
        if not self.done:
            raise StreamInterruptedError(
                f"the reply stream from {self.core.setup.base_url} ended before "
                f"response.completed, after {self.deltas} text deltas"
            )
        return []


def _response_tokens(usage: object) -> TokenCounts | None:
    if usage is None:
        return None
    details = field(usage, "input_tokens_details")
    return TokenCounts(
        input_text=int_or_zero(field(usage, "input_tokens")),
        cached_input=int_or_zero(field(details, "cached_tokens")) if details is not None else 0,
        output_text=int_or_zero(field(usage, "output_tokens")),
    )


class _ChatReader:
    """Reads Chat Completions stream chunks."""

    def __init__(self, core: _ResponderCore) -> None:
        self.core = core
        self.finished = False
        self.usage_seen = False
        self.deltas = 0

    def feed(self, chunk: object) -> list[str | Usage]:
        """Text deltas, and the usage when the chunk carries it."""
        error = field(chunk, "error")
        if error:
            raise _failure(self.core, error, "the server reported an error in the stream")
        out: list[str | Usage] = []
        choices = field(chunk, "choices") or []
        for choice in choices[:1]:
            delta = field(choice, "delta")
            for name in ("content", "refusal"):
                text = field(delta, name) if delta is not None else None
                if text:
                    self.deltas += 1
                    out.append(str(text))
            if field(choice, "finish_reason"):
                self.finished = True
        usage = field(chunk, "usage")
        if usage is not None and not self.usage_seen:
            self.usage_seen = True
            details = field(usage, "prompt_tokens_details")
            out.append(
                self.core.usage(
                    TokenCounts(
                        input_text=int_or_zero(field(usage, "prompt_tokens")),
                        cached_input=int_or_zero(field(details, "cached_tokens"))
                        if details is not None
                        else 0,
                        output_text=int_or_zero(field(usage, "completion_tokens")),
                    )
                )
            )
        return out

    def finish(self) -> list[Usage]:
        """The usage item if none came (a server that sends none), after checking the end.

        Raises:
            StreamInterruptedError: The stream ended before a finish reason.
        """
        if not self.finished:
            raise StreamInterruptedError(
                f"the reply stream from {self.core.setup.base_url} ended before a finish "
                f"reason, after {self.deltas} text deltas"
            )
        return [] if self.usage_seen else [self.core.usage(None)]


class _ResponderBase(OpenAIStage):
    _stage = "reply"
    _kind = "reply"
    _default_model = DEFAULT_REPLY_MODEL
    _core: _ResponderCore

    def __init__(
        self,
        model: str | None = None,
        *,
        api: API = "responses",
        instructions: str | None = None,
        temperature: float | None = None,
        max_output_tokens: int | None = None,
        reasoning_effort: str | None = AUTO,
        store: bool = False,
        gather: float = DEFAULT_GATHER,
        extra_body: Mapping[str, Any] | None = None,
        prices: Mapping[str, Price] | None = None,
        client: OpenAI | AsyncOpenAI | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        organization: str | None = None,
        project: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> None:
        settings = ClientSettings(
            api_key=api_key,
            base_url=base_url,
            organization=organization,
            project=project,
            timeout=timeout,
            max_retries=max_retries,
        )
        self._setup = self._make_setup(model, client, settings, prices)
        self._core = _ResponderCore(
            self._setup,
            api=api,
            instructions=instructions,
            temperature=temperature,
            max_output_tokens=max_output_tokens,
            reasoning_effort=reasoning_effort,
            store=store,
            gather=gather,
            extra_body=extra_body,
        )
        self._built()

    @property
    def api(self) -> API:
        """``"responses"`` or ``"chat"``."""
        return self._core.api

    def __repr__(self) -> str:
        return stage_repr(
            type(self).__name__,
            self._setup,
            api=self._core.api,
            reasoning_effort=self._core.reasoning_effort,
        )


class OpenAIResponder(_ResponderBase):
    """Reply text from OpenAI (or a compatible server), streamed as text deltas.

    Args:
        model: The model (default ``gpt-6-luna``); any name is sent as is.
        api: ``"responses"`` (the Responses API, default) or ``"chat"`` (Chat Completions,
            which most OpenAI-compatible servers speak).
        instructions: More system instructions, after the conversation's own.
        temperature: Sampling temperature, 0 to 2, for models that take it.
        max_output_tokens: Upper bound on the reply's tokens (reasoning included).
        reasoning_effort: ``"auto"`` (default: the lowest-latency effort a known reasoning
            model takes, e.g. ``"none"``, since a spoken reply should start fast; nothing for
            other models), an effort such as ``"low"`` or ``"high"``, or ``None`` for the
            model's own default.
        store: Let OpenAI store the response (off by default: the conversation lives here).
        gather: Under a chain that speaks, seconds a network read of the reply may wait
            (until the next multiple of ``gather``) once the listener has speech in hand
            to outlast the wait by a margin (as for the synthesizer; counting the audio
            received, and the sentences sent to speech at about 15 characters a second),
            so that the rest of the reply arrives in fewer, larger reads, at less CPU. The
            sentences after it are needed only later, so the listener hears no gap; text
            deltas then come in bursts. ``0`` passes every read on at once. Never outside
            a chain. Used by the async responder on the HTTP transport chainvoice builds
            itself.
        extra_body: More JSON fields to send, for parameters chainvoice does not name.
        prices: Prices by model name that win over :data:`chainvoice.openai.PRICES`.
        client: A ready ``OpenAI`` client (shared by the stages of a chain).
        api_key: API key; default ``OPENAI_API_KEY``. Never shown in a repr or message.
        base_url: Server URL for OpenAI-compatible servers; default ``OPENAI_BASE_URL``.
        organization: OpenAI organization; default ``OPENAI_ORG_ID``.
        project: OpenAI project; default ``OPENAI_PROJECT_ID``.
        timeout: Seconds before a request times out.
        max_retries: Retries of failed requests (the client's policy; 2 by default).

    Raises:
        UnsupportedParameterError: A known model does not take an option given.
        ConfigurationError: An option out of range.
        AuthenticationError: No API key anywhere.
    """

    _asynchronous = False

    def respond(self, conversation: Conversation) -> Iterator[str | Usage]:
        """Yield the reply's text deltas as they arrive, then one ``Usage`` item.

        A stream that fails before any text is sent again (up to the client's
        ``max_retries``); one that fails after text was delivered raises
        :class:`~chainvoice.StreamInterruptedError` and is not repeated.
        """
        core, setup = self._core, self._setup
        kwargs = core.request(conversation)

        def consume(response: Any) -> Iterator[str | Usage]:
            reader, events = core.reader(), SseDecoder("the reply stream")
            for data in response.iter_bytes():
                yield from _joined(reader, events.feed(data))
            yield from _joined(reader, events.finish())
            yield from reader.finish()

        return stream_with_retries(
            setup, lambda: core.create(setup.client)(**kwargs), consume, shows=_is_text
        )


class AsyncOpenAIResponder(_ResponderBase):
    """The async twin of :class:`OpenAIResponder` (over an ``AsyncOpenAI`` client).

    Takes the same arguments; ``client`` is an ``AsyncOpenAI``.
    """

    _asynchronous = True

    def respond(self, conversation: Conversation) -> AsyncIterator[str | Usage]:
        """Yield the reply's text deltas as they arrive, then one ``Usage`` item."""
        core, setup = self._core, self._setup
        kwargs = core.request(conversation)

        async def open_stream() -> Any:
            direct = setup.direct
            if direct is not None:
                return direct.post(core.path, json_data=json_body(kwargs))
            return core.create(setup.client)(**kwargs)

        hold = gather_hold(core.gather) if core.gather else None

        async def consume(response: Any) -> AsyncIterator[str | Usage]:
            reader, events = core.reader(), SseDecoder("the reply stream")
            async for data in body_chunks(response, hold=hold):
                for item in _joined(reader, events.feed(data)):
                    yield item
            for item in _joined(reader, events.finish()):
                yield item
            for item in reader.finish():
                yield item

        return astream_with_retries(setup, open_stream, consume, shows=_is_text)


def _joined(reader: _ResponsesReader | _ChatReader, events: list[Any]) -> Iterator[str | Usage]:
    """What ``reader`` makes of ``events`` (one network read's), text deltas joined.

    Text that arrives together is passed on as one delta (one per read, not per token);
    the text read before an event that fails is passed on before the failure.
    """
    text: list[str] = []
    try:
        for event in events:
            for item in reader.feed(event):
                if isinstance(item, str):
                    text.append(item)
                    continue
                if text:
                    yield "".join(text)
                    text = []
                yield item
    except Exception:
        if text:
            yield "".join(text)
        raise
    if text:
        yield "".join(text)


def _is_text(item: object) -> bool:
    return isinstance(item, str)
