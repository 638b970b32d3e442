"""FakeOpenAI: a wire-level fake of OpenAI's HTTP API, for testing without a network.

It is an httpx transport (sync and async, like ``httpx.MockTransport``) that answers the
four endpoints chainvoice uses in OpenAI's own wire formats::

    POST /v1/audio/transcriptions   multipart upload; json, text, srt, vtt, verbose_json,
                                    diarized_json; SSE transcript.text.* events
    POST /v1/responses              Response object; SSE response.* events
    POST /v1/chat/completions       chat.completion; SSE chat.completion.chunk + [DONE]
    POST /v1/audio/speech           chunked audio bytes (pcm, wav, mp3, opus, aac, flac);
                                    SSE speech.audio.delta / speech.audio.done

Use it through the real ``openai`` client::

    fake = FakeOpenAI(replies=["Hello there."])
    client = fake.client()                      # openai.OpenAI over the fake
    reply = client.responses.create(model="gpt-4.1-mini", input="hi")
    assert fake.requests[0].json["input"] == "hi"

Texts are scripted (queues, or a default: the transcriber says ``default_transcript``, the
responder echoes the last user message); speech is a deterministic tone per word whose
length is proportional to the text. Delays follow a :class:`LatencyProfile`; faults are
scripted per endpoint and request (:meth:`FakeOpenAI.fail`, :meth:`FakeOpenAI.cut`,
:meth:`FakeOpenAI.stall`). Every request is recorded (:attr:`FakeOpenAI.requests`, with the
API key redacted) and checked: malformed or unknown parameters, values the real API
refuses, and whatever an optional ``check_request`` hook reports (chainvoice's own tests
plug in OpenAI's OpenAPI spec there) become :attr:`FakeOpenAI.violations` and an HTTP 400
like the real API's.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal

import anyio
import anyio.to_thread
import attrs

from chainvoice import AudioError, ConfigurationError
from chainvoice.testing._fake_audio import (
    SPEECH_CONTENT_TYPES,
    SPEECH_RATE,
    UploadProblem,
    encode_speech,
    speech_pcm,
    upload_duration,
)
from chainvoice.testing._fake_latency import LatencyProfile
from chainvoice.testing._fake_rules import (
    Endpoint,
    ModelProblem,
    ViolationKind,
    as_list,
    builtin_problems,
    model_rules,
    truthy,
)
from chainvoice.testing._fake_wire import (
    MultipartError,
    RecordedFile,
    form_params,
    parse_multipart,
    sse,
)

if TYPE_CHECKING:
    import httpx2 as httpx
    import openai

    from chainvoice.testing._fake_server import FakeOpenAIServer


if not TYPE_CHECKING:
    from chainvoice.openai._httpx import httpx

__all__ = [
    "Endpoint",
    "FakeOpenAI",
    "LatencyProfile",
    "RecordedFile",
    "RecordedRequest",
    "ResponseProgress",
    "RequestViolation",
]

_ROUTES: Final[dict[str, Endpoint]] = {
    "/audio/transcriptions": "transcriptions",
    "/responses": "responses",
    "/chat/completions": "chat",
    "/audio/speech": "speech",
}
_ALIASES: Final[dict[str, Endpoint]] = {
    "transcriptions": "transcriptions",
    "transcription": "transcriptions",
    "audio.transcriptions": "transcriptions",
    "/audio/transcriptions": "transcriptions",
    "responses": "responses",
    "response": "responses",
    "/responses": "responses",
    "chat": "chat",
    "chat.completions": "chat",
    "/chat/completions": "chat",
    "speech": "speech",
    "audio.speech": "speech",
    "/audio/speech": "speech",
}

_AUDIO_TOKENS_PER_SECOND: Final = 10  # transcription input audio tokens (fake's own rate)
_SPEECH_TOKENS_PER_SECOND: Final = 20  # speech output audio tokens (fake's own rate)
_CHARS_PER_TOKEN: Final = 4
_LANGUAGE_NAMES: Final = {
    "en": "english",
    "fr": "french",
    "de": "german",
    "es": "spanish",
    "it": "italian",
    "pt": "portuguese",
    "nl": "dutch",
    "ja": "japanese",
    "zh": "chinese",
    "ru": "russian",
}
_DEFAULT_TRANSCRIPT: Final = "Hello, this is a test of the fake transcriber."


# ------------------------------------------------------------------------ public values


ProgressStatus = Literal[
    "pending", "streaming", "completed", "cut", "timed_out", "closed", "cancelled"
]
"""Where the answer to a request is: not sent yet, being sent, or how it ended."""


@attrs.define(eq=False)
class ResponseProgress:
    """What the fake has sent back for one request so far (updated live).

    Attributes:
        status: ``"pending"`` until the headers go out, ``"streaming"`` while the body
            flows, then ``"completed"``, ``"cut"`` (a scripted cut), ``"timed_out"`` (the
            client's read timeout fired), ``"closed"`` (the client closed the response
            before the end) or ``"cancelled"`` (the async task was cancelled).
        status_code: The HTTP status sent, once the headers are out.
        bytes_sent: Body bytes handed to the client.
        events_sent: SSE events (or audio chunks, or JSON bodies) handed to the client.
        output_text: The text the answer carries: the transcript, the reply, or the
            input of the speech.
        received_at: ``time.monotonic()`` when the request arrived.
        first_byte_at: ``time.monotonic()`` of the first body byte, if any.
        finished_at: ``time.monotonic()`` when the answer ended, however it ended.
    """

    status: ProgressStatus = "pending"
    status_code: int | None = None
    bytes_sent: int = 0
    events_sent: int = 0
    output_text: str | None = None
    received_at: float = attrs.field(factory=time.monotonic)
    first_byte_at: float | None = None
    finished_at: float | None = None


def _freeze_headers(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


@attrs.frozen(repr=False, eq=False)
class RecordedRequest:
    """One request the fake received, parsed; the API key is never kept.

    Records compare by identity. The live :attr:`progress` is the only part that changes.

    Attributes:
        index: 1-based position among all requests the fake received.
        endpoint: Which endpoint it hit, or None for a path the fake does not serve.
        endpoint_index: 1-based position among the requests to that endpoint (what
            ``nth`` in the fault methods counts); 0 for an unknown path.
        method: The HTTP method.
        url: The full URL.
        route: The path below the API base, e.g. ``"/audio/speech"``.
        headers: Lower-case header names to values; ``authorization`` and other
            credential headers read ``"[redacted]"``.
        content_type: The media type of the body, without parameters.
        json: The parsed JSON body, or None.
        form: A multipart body's text fields as ``(name, value)`` pairs, in order.
        files: A multipart body's file parts.
        params: The request's parameters: the JSON object, or the multipart fields decoded
            (``key[]`` as lists, ``key[sub]`` as objects, values as the strings sent, file
            parts as :class:`RecordedFile`); empty if the body could not be parsed.
        parse_error: Why the body could not be parsed, or None.
        progress: What the fake has sent back so far (live).
    """

    index: int
    endpoint: Endpoint | None
    endpoint_index: int
    method: str
    url: str
    route: str
    headers: Mapping[str, str] = attrs.field(converter=_freeze_headers)
    content_type: str | None
    json: Any
    form: tuple[tuple[str, str], ...]
    files: tuple[RecordedFile, ...]
    params: Mapping[str, Any]
    parse_error: str | None
    progress: ResponseProgress = attrs.field(factory=ResponseProgress, eq=False)

    @property
    def path(self) -> str:
        """The URL path as sent, e.g. ``"/v1/audio/speech"``."""
        return _url_path(self.url) or "/"

    @property
    def model(self) -> str | None:
        """The ``model`` parameter, if it is a string."""
        model = self.params.get("model")
        return model if isinstance(model, str) else None

    @property
    def stream(self) -> bool:
        """Whether the request asked for a stream (``stream=true`` or ``stream_format=sse``)."""
        return truthy(self.params.get("stream")) or self.params.get("stream_format") == "sse"

    @property
    def file(self) -> RecordedFile | None:
        """The uploaded ``file`` part, if any."""
        return next((part for part in self.files if part.field == "file"), None)

    def __repr__(self) -> str:
        keys = ", ".join(sorted(self.params)) if self.params else ""
        return (
            f"RecordedRequest(#{self.index} {self.method} {self.route} "
            f"endpoint={self.endpoint!r} params=[{keys}] status={self.progress.status!r})"
        )


@attrs.frozen
class RequestViolation:
    """A request (or an answer of the fake) that the real API would not accept.

    Attributes:
        request_index: The :attr:`RecordedRequest.index` it concerns.
        endpoint: The endpoint, or None for an unknown path.
        kind: See :data:`ViolationKind`.
        message: What is wrong, naming the parameter.
    """

    request_index: int
    endpoint: Endpoint | None
    kind: ViolationKind
    message: str

    def __str__(self) -> str:
        return f"request #{self.request_index} ({self.endpoint}): [{self.kind}] {self.message}"


# ------------------------------------------------------------------------------ faults


FaultKind = Literal["status", "stream_error", "cut", "stall"]


@attrs.define
class _Fault:
    kind: FaultKind
    endpoint: Endpoint | None
    remaining: int
    nth: int | None
    status: int = 500
    error: dict[str, Any] = attrs.field(factory=dict)
    headers: dict[str, str] = attrs.field(factory=dict)
    after_events: int | None = None
    after_bytes: int | None = None
    seconds: float = math.inf
    cut_error: Literal["remote_protocol", "read"] = "remote_protocol"

    def matches(self, endpoint: Endpoint | None, endpoint_index: int) -> bool:
        if self.remaining <= 0 or (self.endpoint is not None and self.endpoint != endpoint):
            return False
        return self.nth is None or endpoint_index >= self.nth

    def describe(self) -> str:
        where = self.endpoint or "any endpoint"
        start = f" from request #{self.nth}" if self.nth else ""
        return f"{self.kind} on {where}{start}, {self.remaining} left"


# ------------------------------------------------------------------------------- plans


@attrs.define
class _Plan:
    """An answer: status, headers, when the headers go out, and the body's pieces.

    Each piece is ``(delay before it, bytes)`` and is one event (an SSE event, an audio
    chunk, or a whole JSON body). ``end`` says how the body ends.
    """

    status: int
    headers: dict[str, str]
    pieces: list[tuple[float, bytes]]
    headers_delay: float = 0.0
    tail_delay: float = 0.0
    end: Literal["ok", "remote_protocol", "read"] = "ok"
    sse_errors: Callable[[int, dict[str, Any]], bytes] | None = None


_READ_ERRORS: Final = {
    "remote_protocol": "peer closed connection without sending complete message body "
    "(incomplete chunked read)",
    "read": "[Errno 104] Connection reset by peer",
}


class _Body(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body that really arrives over time, and fails like a network does."""

    def __init__(
        self, fake: FakeOpenAI, plan: _Plan, request: httpx.Request, record: RecordedRequest
    ) -> None:
        self._fake = fake
        self._plan = plan
        self._request = request
        self._record = record
        self._read_timeout = _read_timeout(request)
        self._delivered = False  # every piece handed over (only the clean end is left)

    # Delays honour the client's read timeout, as a real socket read would.
    def limit(self, delay: float) -> tuple[float, bool]:
        """Seconds to wait and whether the wait ends in a read timeout."""
        limit = self._read_timeout
        if limit is not None and delay > limit:
            return limit, True
        if math.isinf(delay):
            return self._fake.max_stall, False
        return delay, False

    def after_wait(self, delay: float, timed_out: bool) -> None:
        progress = self._record.progress
        if timed_out:
            progress.status = "timed_out"
            progress.finished_at = time.monotonic()
            raise httpx.ReadTimeout(
                f"The read operation timed out (the fake server stalled; client read "
                f"timeout {self._read_timeout} s)",
                request=self._request,
            )
        if math.isinf(delay):
            self._fake._add_violation(
                self._record,
                "stall",
                f"the client waited {self._fake.max_stall} s on a stalled stream without "
                "timing out; give the client a read timeout",
            )
            self._fail("remote_protocol")

    def _fail(self, how: Literal["remote_protocol", "read"]) -> None:
        progress = self._record.progress
        progress.status = "cut"
        progress.finished_at = time.monotonic()
        error = httpx.RemoteProtocolError if how == "remote_protocol" else httpx.ReadError
        raise error(_READ_ERRORS[how], request=self._request)

    def _sent(self, data: bytes, last: bool) -> None:
        progress = self._record.progress
        if progress.first_byte_at is None and data:
            progress.first_byte_at = time.monotonic()
        progress.bytes_sent += len(data)
        progress.events_sent += 1
        plan = self._plan
        self._delivered = last and plan.end == "ok" and plan.tail_delay == 0

    def _finish(self) -> None:
        if self._plan.end != "ok":
            self._fail(self._plan.end)
        progress = self._record.progress
        progress.status = "completed"
        progress.finished_at = time.monotonic()

    def __iter__(self) -> Iterator[bytes]:
        pieces = self._plan.pieces
        for index, (delay, data) in enumerate(pieces):
            self._pause(delay)
            self._sent(data, index == len(pieces) - 1)
            if data:
                yield data
        self._pause(self._plan.tail_delay)
        self._finish()

    def _pause(self, delay: float) -> None:
        if delay > 0:
            wait, timed_out = self.limit(delay)
            time.sleep(wait)
            self.after_wait(delay, timed_out)

    async def _apause(self, delay: float) -> None:
        if delay > 0:
            wait, timed_out = self.limit(delay)
            await anyio.sleep(wait)
            self.after_wait(delay, timed_out)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        pieces = self._plan.pieces
        try:
            for index, (delay, data) in enumerate(pieces):
                await self._apause(delay)
                self._sent(data, index == len(pieces) - 1)
                if data:
                    yield data
            await self._apause(self._plan.tail_delay)
            self._finish()
        except anyio.get_cancelled_exc_class():
            self.ended("cancelled")
            raise

    def ended(self, status: ProgressStatus) -> None:
        """Record that the client stopped reading (closed or cancelled) before the end."""
        progress = self._record.progress
        if progress.status in ("pending", "streaming"):
            progress.status = "completed" if self._delivered else status
            progress.finished_at = time.monotonic()

    def close(self) -> None:
        self.ended("closed")

    async def aclose(self) -> None:
        self.ended("closed")


def _read_timeout(request: httpx.Request) -> float | None:
    timeout = request.extensions.get("timeout")
    if isinstance(timeout, Mapping):
        read = timeout.get("read")
        if isinstance(read, (int, float)):
            return float(read)
    return None


# --------------------------------------------------------------------------- the fake


class FakeOpenAI(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """A fake of OpenAI's HTTP API, used as the transport of a real ``openai`` client.

    Safe to share between threads and between a sync and an async client. See the module
    docstring for what it serves; :meth:`compatible` makes a fake of an OpenAI-compatible
    server (no usage, no model rules, no OpenAI headers).

    Args:
        transcripts: Texts the transcription endpoint returns, one per successful request,
            in order; then ``default_transcript``.
        replies: Texts the responses and chat endpoints return, one per successful
            request, in order; then ``reply``.
        default_transcript: The transcript once ``transcripts`` is used up.
        reply: The reply once ``replies`` is used up: a fixed string, a function of the
            request, or None to echo the last user message (``"You said: ..."``).
        latency: Delays to simulate; none by default.
        usage: Whether answers carry usage (False: a compatible server that sends none).
        model_rules: Whether to refuse, as OpenAI does, parameters a known OpenAI model
            does not take (e.g. ``verbose_json`` with ``gpt-4o-transcribe``), voices that
            are not OpenAI's, and languages that are not ISO-639-1 codes.
        openai_headers: Whether to send ``x-request-id`` and ``openai-*`` headers.
        chunk_size: Bytes per chunk of streamed speech audio (and per SSE audio delta);
            any positive size, odd ones included.
        seconds_per_character: Length of synthesized speech per input character at
            speed 1.0.
        speech_format: Always answer speech in this format whatever the request asks
            (a compatible server that ignores ``response_format``); None to obey.
        speech_content_types: Content-Type headers to send for speech formats, over the
            defaults (``audio/mpeg`` for mp3, ``audio/opus``, ``audio/aac``,
            ``audio/flac``, ``audio/wav``, ``audio/pcm``); e.g. ``{"pcm":
            "application/octet-stream"}`` for a server that labels raw audio that way.
        api_key: If given, only this key is accepted (others get HTTP 401); only a hash of
            it is kept. Any non-empty key is accepted otherwise.
        base_url: The API base URL the clients made by :meth:`client` use.
        check_request: Called with every parsed request; each string it returns is
            recorded as a ``spec`` violation and the request is answered with HTTP 400.
        check_response: Called with each JSON payload the fake sends, and the name of the
            OpenAPI component schema it should match; each string it returns is recorded as
            a ``response`` violation.
        max_stall: The longest a stall without an end (:meth:`stall` with no
            ``seconds``) waits for a client that has no read timeout before dropping the
            connection; keeps a wrong test from hanging.

    Raises:
        ConfigurationError: An option out of range (e.g. ``chunk_size=0``).
    """

    def __init__(
        self,
        *,
        transcripts: Iterable[str] = (),
        replies: Iterable[str] = (),
        default_transcript: str = _DEFAULT_TRANSCRIPT,
        reply: str | Callable[[RecordedRequest], str] | None = None,
        latency: LatencyProfile | None = None,
        usage: bool = True,
        model_rules: bool = True,
        openai_headers: bool = True,
        chunk_size: int = 4096,
        seconds_per_character: float = 0.06,
        speech_format: str | None = None,
        speech_content_types: Mapping[str, str] | None = None,
        api_key: str | None = None,
        base_url: str = "https://fake.openai.test/v1",
        check_request: Callable[[RecordedRequest], Iterable[str]] | None = None,
        check_response: Callable[[str, Any], Iterable[str]] | None = None,
        max_stall: float = 5.0,
    ) -> None:
        if not (isinstance(chunk_size, int) and chunk_size > 0):
            raise ConfigurationError(f"chunk_size must be a positive int, not {chunk_size!r}")
        if not (math.isfinite(seconds_per_character) and seconds_per_character > 0):
            raise ConfigurationError(
                f"seconds_per_character must be > 0, not {seconds_per_character!r}"
            )
        if speech_format is not None and speech_format not in SPEECH_CONTENT_TYPES:
            raise ConfigurationError(
                f"speech_format must be one of {', '.join(SPEECH_CONTENT_TYPES)}, "
                f"not {speech_format!r}"
            )
        if not (math.isfinite(max_stall) and max_stall >= 0):
            raise ConfigurationError(f"max_stall must be >= 0 seconds, not {max_stall!r}")
        self._lock = threading.RLock()
        self._transcripts: deque[str] = deque(_texts(transcripts, "transcripts"))
        self._replies: deque[str] = deque(_texts(replies, "replies"))
        self.default_transcript = default_transcript
        self.reply = reply
        self.latency = latency or LatencyProfile()
        self.usage = usage
        self.model_rules = model_rules
        self.openai_headers = openai_headers
        self.chunk_size = chunk_size
        self.seconds_per_character = float(seconds_per_character)
        self.speech_format = speech_format
        self.speech_content_types = {**SPEECH_CONTENT_TYPES, **(speech_content_types or {})}
        self._key_hash = _hash_key(api_key) if api_key is not None else None
        self.base_url = base_url.rstrip("/")
        self.check_request = check_request
        self.check_response = check_response
        self.max_stall = float(max_stall)
        self._requests: list[RecordedRequest] = []
        self._violations: list[RequestViolation] = []
        self._faults: list[_Fault] = []
        self._counts: dict[Endpoint | None, int] = {}
        self._ids = itertools.count(1)

    @classmethod
    def compatible(cls, **kwargs: Any) -> FakeOpenAI:
        """A fake OpenAI-compatible server (vLLM, speaches, Kokoro-FastAPI, LocalAI...).

        It sends no usage, takes any model name with any parameter the API defines, and
        sends no OpenAI-specific headers; ``kwargs`` are as for the constructor (e.g.
        ``speech_format="wav"`` for a server that ignores ``response_format``).
        """
        options: dict[str, Any] = {
            "usage": False,
            "model_rules": False,
            "openai_headers": False,
            "base_url": "http://compatible.fake.test/v1",
        }
        options.update(kwargs)
        return cls(**options)

    def __repr__(self) -> str:
        return (
            f"FakeOpenAI(base_url={self.base_url!r}, requests={len(self._requests)}, "
            f"violations={len(self._violations)})"
        )

    # ------------------------------------------------------------------------ clients

    def http_client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client whose transport is this fake (``kwargs`` go to the client)."""
        return httpx.Client(transport=self, **kwargs)

    def async_http_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An async httpx client whose transport is this fake."""
        return httpx.AsyncClient(transport=self, **kwargs)

    def client(
        self, *, api_key: str = "sk-fake-key", max_retries: int = 2, **kwargs: Any
    ) -> openai.OpenAI:
        """An ``openai.OpenAI`` client talking to this fake.

        Args:
            api_key: The key to send (a dummy by default).
            max_retries: The client's retry count (the SDK's default is 2).
            **kwargs: More ``openai.OpenAI`` options, e.g. ``timeout``.
        """
        import openai

        return openai.OpenAI(
            api_key=api_key,
            base_url=self.base_url,
            max_retries=max_retries,
            http_client=self.http_client(),
            **kwargs,
        )

    def async_client(
        self, *, api_key: str = "sk-fake-key", max_retries: int = 2, **kwargs: Any
    ) -> openai.AsyncOpenAI:
        """An ``openai.AsyncOpenAI`` client talking to this fake (arguments as :meth:`client`)."""
        import openai

        return openai.AsyncOpenAI(
            api_key=api_key,
            base_url=self.base_url,
            max_retries=max_retries,
            http_client=self.async_http_client(),
            **kwargs,
        )

    def serve(self, *, host: str = "127.0.0.1", port: int = 0) -> FakeOpenAIServer:
        """Serve this fake over real HTTP on the loopback interface, in a thread.

        Use it as a context manager; its ``base_url`` (also set on the fake) is where to
        point a client::

            with fake.serve() as server:
                chain = chainvoice.AsyncChain.openai(base_url=server.base_url)

        Args:
            host: The address to listen on.
            port: The port; 0 picks a free one.
        """
        from chainvoice.testing._fake_server import FakeOpenAIServer

        return FakeOpenAIServer(self, host=host, port=port)

    # ---------------------------------------------------------------------- scripting

    def add_transcripts(self, *texts: str) -> None:
        """Queue texts for the next successful transcription requests."""
        with self._lock:
            self._transcripts.extend(_texts(texts, "transcripts"))

    def add_replies(self, *texts: str) -> None:
        """Queue texts for the next successful responses / chat requests."""
        with self._lock:
            self._replies.extend(_texts(texts, "replies"))

    @property
    def pending_transcripts(self) -> tuple[str, ...]:
        """Queued transcripts not served yet."""
        with self._lock:
            return tuple(self._transcripts)

    @property
    def pending_replies(self) -> tuple[str, ...]:
        """Queued replies not served yet."""
        with self._lock:
            return tuple(self._replies)

    @property
    def pending_faults(self) -> tuple[str, ...]:
        """Descriptions of scripted faults that have not fired (all their times) yet."""
        with self._lock:
            return tuple(f.describe() for f in self._faults if f.remaining > 0)

    def fail(
        self,
        endpoint: str | None = None,
        status: int = 500,
        *,
        times: int = 1,
        nth: int | None = None,
        retry_after: float | None = None,
        retry_after_ms: float | None = None,
        message: str | None = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
        after_events: int | None = None,
    ) -> None:
        """Answer the next request(s) to ``endpoint`` with an OpenAI-style HTTP error.

        The body is ``{"error": {"message", "type", "param", "code"}}`` with defaults
        fitting the status (401 invalid key, 403 no access, 404 unknown model, 429 rate
        limit, 500 server error...), and the response carries an ``x-request-id``.

        Args:
            endpoint: ``"transcriptions"``, ``"responses"``, ``"chat"``, ``"speech"`` (or
                their paths), or None for any endpoint.
            status: The HTTP status, 400 to 599.
            times: How many requests fail (a client's retries count as requests).
            nth: Fail from the ``nth`` request to the endpoint on (1-based, counting every
                request it ever received); None for the next one.
            retry_after: Seconds for a ``Retry-After`` header.
            retry_after_ms: Milliseconds for a ``retry-after-ms`` header.
            message: The error message (a default fits the status).
            type: The error type (e.g. ``"invalid_request_error"``, ``"server_error"``).
            code: The error code (e.g. ``"rate_limit_exceeded"``).
            param: The parameter the error is about.
            headers: More response headers.
            after_events: Instead of an error status, start a normal 200 stream and send
                the error as an SSE error event after this many events (on a body that
                is not SSE, the connection is cut there instead).

        Raises:
            ConfigurationError: An unknown endpoint, a status outside 400-599, or
                ``times``/``nth``/``after_events`` out of range.
        """
        if not (isinstance(status, int) and 400 <= status <= 599):
            raise ConfigurationError(
                f"status must be an HTTP error from 400 to 599, not {status!r}"
            )
        extra = {str(k): str(v) for k, v in (headers or {}).items()}
        if retry_after is not None:
            extra["retry-after"] = _header_number(retry_after, "retry_after")
        if retry_after_ms is not None:
            extra["retry-after-ms"] = _header_number(retry_after_ms, "retry_after_ms")
        error = _default_error(status)
        for key, value in (("message", message), ("type", type), ("code", code), ("param", param)):
            if value is not None:
                error[key] = value
        self._add_fault(
            _Fault(
                kind="status" if after_events is None else "stream_error",
                endpoint=_endpoint_arg(endpoint),
                remaining=_count_arg(times, "times"),
                nth=_nth_arg(nth),
                status=status,
                error=error,
                headers=extra,
                after_events=_position_arg(after_events, "after_events"),
            )
        )

    def cut(
        self,
        endpoint: str | None = None,
        *,
        after_events: int | None = None,
        after_bytes: int | None = None,
        error: Literal["remote_protocol", "read"] = "remote_protocol",
        times: int = 1,
        nth: int | None = None,
    ) -> None:
        """Drop the connection in the middle of the next answer(s) from ``endpoint``.

        The headers (200) and the first events or bytes arrive, then reading the body
        raises ``httpx.RemoteProtocolError`` (``error="remote_protocol"``, a server that
        went away) or ``httpx.ReadError`` (``error="read"``, a connection reset), as a real
        cut does; the openai client turns both into ``openai.APIConnectionError``.

        Args:
            endpoint: As in :meth:`fail`.
            after_events: Cut after this many whole events (SSE events, audio chunks, or
                the one JSON body).
            after_bytes: Cut after this many body bytes (possibly inside an event). With
                neither, the body is cut before its first byte.
            error: Which network error the client sees.
            times: How many answers are cut.
            nth: As in :meth:`fail`.

        Raises:
            ConfigurationError: Both positions given, or a bad count.
        """
        if error not in _READ_ERRORS:
            raise ConfigurationError(f"error must be 'remote_protocol' or 'read', not {error!r}")
        events, size = self._positions(after_events, after_bytes)
        self._add_fault(
            _Fault(
                kind="cut",
                endpoint=_endpoint_arg(endpoint),
                remaining=_count_arg(times, "times"),
                nth=_nth_arg(nth),
                after_events=events,
                after_bytes=size if events is None else None,
                cut_error=error,
            )
        )

    def stall(
        self,
        endpoint: str | None = None,
        *,
        seconds: float | None = None,
        after_events: int | None = None,
        after_bytes: int | None = None,
        times: int = 1,
        nth: int | None = None,
    ) -> None:
        """Stop sending for a while in the next answer(s) from ``endpoint``.

        With no position the stall is before the response headers (time to first byte);
        otherwise after that many events or bytes of the body. If the stall is longer than
        the client's read timeout, the client gets ``httpx.ReadTimeout`` (the openai
        client: ``openai.APITimeoutError``) when its timeout fires, as with a real server.
        Async clients can cancel a stalled request at any time.

        Args:
            endpoint: As in :meth:`fail`.
            seconds: How long to stall; the answer then continues normally. None stalls
                until the client's read timeout fires; a client without one waits
                :attr:`max_stall` seconds, then the connection drops and a ``stall``
                violation is recorded.
            after_events: Stall after this many events of the body.
            after_bytes: Stall after this many bytes of the body.
            times: How many answers stall.
            nth: As in :meth:`fail`.

        Raises:
            ConfigurationError: A negative or NaN duration, both positions, or a bad count.
        """
        if seconds is None:
            duration = math.inf
        elif isinstance(seconds, (int, float)) and seconds >= 0 and not math.isnan(seconds):
            duration = float(seconds)
        else:
            raise ConfigurationError(f"seconds must be >= 0 or None, not {seconds!r}")
        events, size = self._positions(after_events, after_bytes, allow_none=True)
        self._add_fault(
            _Fault(
                kind="stall",
                endpoint=_endpoint_arg(endpoint),
                remaining=_count_arg(times, "times"),
                nth=_nth_arg(nth),
                after_events=events,
                after_bytes=size,
                seconds=duration,
            )
        )

    def clear_faults(self) -> None:
        """Forget every scripted fault that has not fired yet."""
        with self._lock:
            self._faults.clear()

    @staticmethod
    def _positions(
        after_events: int | None, after_bytes: int | None, *, allow_none: bool = False
    ) -> tuple[int | None, int | None]:
        if after_events is not None and after_bytes is not None:
            raise ConfigurationError("give after_events or after_bytes, not both")
        events = _position_arg(after_events, "after_events")
        size = _position_arg(after_bytes, "after_bytes")
        if events is None and size is None and not allow_none:
            size = 0
        return events, size

    def _add_fault(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    # ---------------------------------------------------------------------- recording

    @property
    def requests(self) -> tuple[RecordedRequest, ...]:
        """Every request received so far, in order."""
        with self._lock:
            return tuple(self._requests)

    def requests_to(self, endpoint: str) -> tuple[RecordedRequest, ...]:
        """The requests received by one endpoint (name or path, as in :meth:`fail`)."""
        target = _endpoint_arg(endpoint)
        return tuple(r for r in self.requests if r.endpoint == target)

    def last_request(self, endpoint: str | None = None) -> RecordedRequest:
        """The most recent request (to ``endpoint``, if given).

        Raises:
            LookupError: No such request was received.
        """
        found = self.requests if endpoint is None else self.requests_to(endpoint)
        if not found:
            raise LookupError(
                f"FakeOpenAI received no request{f' to {endpoint}' if endpoint else ''}"
            )
        return found[-1]

    @property
    def violations(self) -> tuple[RequestViolation, ...]:
        """Every violation recorded so far, in order."""
        with self._lock:
            return tuple(self._violations)

    def take_violations(self) -> tuple[RequestViolation, ...]:
        """Return the violations recorded so far and forget them (for tests that expect some)."""
        with self._lock:
            taken = tuple(self._violations)
            self._violations.clear()
            return taken

    def assert_no_violations(self) -> None:
        """Fail with every recorded violation listed, if there is any.

        Raises:
            AssertionError: At least one violation was recorded.
        """
        found = self.violations
        if found:
            lines = "\n".join(f"  - {v}" for v in found)
            requests = len({v.request_index for v in found})
            raise AssertionError(
                f"FakeOpenAI recorded {len(found)} violation(s) in {requests} request(s) "
                f"that the real API would reject:\n{lines}"
            )

    def _add_violation(self, record: RecordedRequest, kind: ViolationKind, message: str) -> None:
        with self._lock:
            self._violations.append(RequestViolation(record.index, record.endpoint, kind, message))

    # ---------------------------------------------------------------------- transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Answer one request from a sync httpx client (the httpx transport API)."""
        request.read()
        record, plan = self._prepare(request)
        body = _Body(self, plan, request, record)
        if plan.headers_delay > 0:
            wait, timed_out = body.limit(plan.headers_delay)
            time.sleep(wait)
            body.after_wait(plan.headers_delay, timed_out)
        return self._response(request, record, plan, body)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer one request from an async httpx client, without blocking the loop."""
        await request.aread()
        record, plan = await anyio.to_thread.run_sync(self._prepare, request)
        body = _Body(self, plan, request, record)
        if plan.headers_delay > 0:
            wait, timed_out = body.limit(plan.headers_delay)
            try:
                await anyio.sleep(wait)
            except anyio.get_cancelled_exc_class():
                body.ended("cancelled")
                raise
            body.after_wait(plan.headers_delay, timed_out)
        return self._response(request, record, plan, body)

    @staticmethod
    def _response(
        request: httpx.Request, record: RecordedRequest, plan: _Plan, body: _Body
    ) -> httpx.Response:
        record.progress.status = "streaming"
        record.progress.status_code = plan.status
        return httpx.Response(plan.status, headers=plan.headers, stream=body, request=request)

    # ---------------------------------------------------------------------- handling

    def _prepare(self, request: httpx.Request) -> tuple[RecordedRequest, _Plan]:
        """Record and check ``request``, and plan the answer (runs off the event loop).

        A scripted error status fires whatever the request holds (as a rate limit does);
        a cut or a stall applies only to an answer that would otherwise succeed.
        """
        record = self._record(request)
        problems = self._check(record)
        fault = self._match_fault(record)
        if fault is not None and fault.kind == "status" and self._consume(fault):
            return record, self._error_plan(record, fault.status, dict(fault.error), fault.headers)
        if record.endpoint is None:
            message = f"Invalid URL ({record.method} {record.path})"
            return record, self._error_plan(record, 404, _error(message, code="unknown_url"))
        auth = self._auth_error(request)
        if auth is not None:
            return record, self._error_plan(record, 401, auth)
        if problems:
            kind, param, message = problems[0]
            status = 413 if kind == "limit" else 400
            return record, self._error_plan(record, status, _error(message, param=param))
        try:
            plan = self._answer(record)
        except UploadProblem as exc:
            error = _error(exc.message, param="file", code=exc.code)
            return record, self._error_plan(record, 400, error)
        except ModelProblem as exc:
            self._add_violation(record, "model", exc.message)
            error = _error(exc.message, param=exc.param, code="unsupported_value")
            return record, self._error_plan(record, 400, error)
        except AudioError as exc:
            message = f"FakeOpenAI could not produce this audio: {exc}"
            return record, self._error_plan(record, 500, _error(message, type="server_error"))
        if fault is not None and fault.kind != "status" and self._consume(fault):
            self._apply_fault(plan, fault)
        return record, plan

    def _record(self, request: httpx.Request) -> RecordedRequest:
        base_path = _url_path(self.base_url)
        path = request.url.path
        route = path[len(base_path) :] if path.startswith(base_path + "/") else path
        endpoint = _ROUTES.get(route) if request.method == "POST" else None
        headers = {k.lower(): _redact(k, v) for k, v in request.headers.items()}
        content_type_header = request.headers.get("content-type", "")
        media = content_type_header.partition(";")[0].strip().lower() or None
        body = request.content
        parsed: Any = None
        form: tuple[tuple[str, str], ...] = ()
        files: tuple[RecordedFile, ...] = ()
        params: dict[str, Any] = {}
        parse_error: str | None = None
        try:
            if media == "application/json":
                parsed = json.loads(body.decode("utf-8"))
                if isinstance(parsed, dict):
                    params = parsed
                else:
                    parse_error = "the JSON body must be an object"
            elif media == "multipart/form-data":
                form, files = parse_multipart(body, content_type_header)
                params = form_params(form, files)
            elif body:
                parse_error = f"unsupported Content-Type {media or 'none'!r}"
            elif endpoint is not None:
                parse_error = "the request has no body"
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            parse_error = f"the body is not valid JSON: {exc}"
        except MultipartError as exc:
            parse_error = f"malformed multipart/form-data body: {exc}"
        with self._lock:
            index = len(self._requests) + 1
            count = self._counts.get(endpoint, 0) + 1 if endpoint is not None else 0
            self._counts[endpoint] = count
            record = RecordedRequest(
                index=index,
                endpoint=endpoint,
                endpoint_index=count,
                method=request.method,
                url=str(request.url),
                route=route,
                headers=headers,
                content_type=media,
                json=parsed,
                form=form,
                files=files,
                params=MappingProxyType(params),
                parse_error=parse_error,
            )
            self._requests.append(record)
        return record

    def _check(self, record: RecordedRequest) -> list[tuple[ViolationKind, str | None, str]]:
        """Every problem with ``record`` (also recorded as violations), first the gravest."""
        if record.endpoint is None:
            self._add_violation(
                record,
                "spec",
                f"{record.method} {record.route} is not an endpoint FakeOpenAI serves",
            )
            return []
        problems: list[tuple[ViolationKind, str | None, str]] = []
        if record.parse_error is not None:
            problems.append(("spec", None, record.parse_error))
        else:
            problems.extend(builtin_problems(record))
            if self.check_request is not None:
                problems.extend(("spec", None, str(p)) for p in self.check_request(record))
        for kind, _param, message in problems:
            self._add_violation(record, kind, message)
        return problems

    def _auth_error(self, request: httpx.Request) -> dict[str, Any] | None:
        value = request.headers.get("authorization", "")
        scheme, _, key = value.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return _error(
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        if self._key_hash is not None and _hash_key(key.strip()) != self._key_hash:
            return _error(
                "Incorrect API key provided. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )
        return None

    def _match_fault(self, record: RecordedRequest) -> _Fault | None:
        with self._lock:
            return next(
                (f for f in self._faults if f.matches(record.endpoint, record.endpoint_index)),
                None,
            )

    def _consume(self, fault: _Fault) -> bool:
        with self._lock:
            if fault.remaining <= 0:  # another thread's request took its last use
                return False
            fault.remaining -= 1
            return True

    def _headers(self, content_type: str, *, streamed: bool) -> dict[str, str]:
        headers = {"content-type": content_type}
        if streamed:
            headers["transfer-encoding"] = "chunked"
        if self.openai_headers:
            headers["x-request-id"] = f"req_{next(self._ids):032x}"
            headers["openai-version"] = "2020-10-01"
            headers["openai-processing-ms"] = "1"
        return headers

    def _error_plan(
        self,
        record: RecordedRequest,
        status: int,
        error: dict[str, Any],
        extra_headers: Mapping[str, str] | None = None,
    ) -> _Plan:
        if "{model}" in str(error.get("message", "")):
            error["message"] = str(error["message"]).replace("{model}", record.model or "")
        payload = {"error": error}
        self._check_payload(record, "ErrorResponse", payload)
        headers = self._headers("application/json", streamed=False)
        headers.update(extra_headers or {})
        return _Plan(status, headers, [(0.0, json.dumps(payload).encode())])

    def _check_payload(self, record: RecordedRequest, schema: str, payload: Any) -> None:
        if self.check_response is None or not self.usage:
            return
        for problem in self.check_response(schema, payload):
            self._add_violation(record, "response", f"{schema}: {problem}")

    def _apply_fault(self, plan: _Plan, fault: _Fault) -> None:
        if fault.kind == "stall":
            if fault.after_events is None and fault.after_bytes is None:
                plan.headers_delay += fault.seconds
                return
            index = _split_at(plan, fault.after_events, fault.after_bytes)
            if index >= len(plan.pieces):
                plan.tail_delay += fault.seconds
            else:
                delay, data = plan.pieces[index]
                plan.pieces[index] = (delay + fault.seconds, data)
            return
        if fault.kind == "stream_error" and plan.sse_errors is not None:
            index = _split_at(plan, fault.after_events, None)
            del plan.pieces[index:]
            plan.pieces.append((0.0, plan.sse_errors(index, fault.error)))
            return
        index = _split_at(plan, fault.after_events, fault.after_bytes)
        del plan.pieces[index:]
        plan.tail_delay = 0.0
        plan.end = fault.cut_error

    # ------------------------------------------------------------------------ answers

    def _answer(self, record: RecordedRequest) -> _Plan:
        if self.model_rules:
            model_rules(record)
        if record.endpoint == "transcriptions":
            return self._transcription(record)
        if record.endpoint == "responses":
            return self._responses(record)
        if record.endpoint == "chat":
            return self._chat(record)
        return self._speech(record)

    def _next_transcript(self, record: RecordedRequest) -> str:
        with self._lock:
            text = self._transcripts.popleft() if self._transcripts else self.default_transcript
        record.progress.output_text = text
        return text

    def _next_reply(self, record: RecordedRequest, last_user: str) -> str:
        with self._lock:
            queued = self._replies.popleft() if self._replies else None
        if queued is not None:
            text = queued
        elif callable(self.reply):
            text = str(self.reply(record))
        elif self.reply is not None:
            text = self.reply
        else:
            text = f"You said: {last_user}" if last_user.strip() else "Hello! How can I help?"
        record.progress.output_text = text
        return text

    def _sse_plan(
        self,
        record: RecordedRequest,
        schema: str,
        events: list[tuple[float, dict[str, Any]]],
        *,
        named: bool = False,
        done: bool = False,
        error_event: Callable[[int, dict[str, Any]], dict[str, Any]],
    ) -> _Plan:
        pieces: list[tuple[float, bytes]] = []
        for delay, payload in events:
            self._check_payload(record, schema, payload)
            pieces.append((delay, sse(payload, payload["type"] if named else None)))
        if done:
            pieces.append((0.0, sse("[DONE]")))

        def errors(index: int, error: dict[str, Any]) -> bytes:
            payload = error_event(index, error)
            return sse(payload, payload.get("type") if named else None)

        return _Plan(
            200,
            self._headers("text/event-stream; charset=utf-8", streamed=True),
            pieces,
            sse_errors=errors,
        )

    def _json_plan(
        self, record: RecordedRequest, schema: str, payload: dict[str, Any], delay: float
    ) -> _Plan:
        self._check_payload(record, schema, payload)
        body = json.dumps(payload, indent=2).encode()
        return _Plan(
            200,
            self._headers("application/json", streamed=False),
            [(0.0, body)],
            headers_delay=delay,
        )

    # ------------------------------------------------------------------ transcriptions

    def _transcription(self, record: RecordedRequest) -> _Plan:
        params = record.params
        file = record.file
        assert file is not None  # checked by builtin_problems
        duration = upload_duration(file.data)
        model = str(params.get("model"))
        if (
            self.model_rules
            and model == "gpt-4o-transcribe-diarize"
            and duration > 30
            and params.get("chunking_strategy") is None
        ):
            raise ModelProblem(
                "chunking_strategy is required for gpt-4o-transcribe-diarize when the audio "
                f"is longer than 30 seconds (this file lasts {duration:.1f} s)",
                "chunking_strategy",
            )
        fmt = str(params.get("response_format", "json"))
        include = as_list(params.get("include"))
        logprobs = "logprobs" in include
        stream = truthy(params.get("stream")) and not model.startswith("whisper")
        language = str(params.get("language") or "en")
        text = self._next_transcript(record)
        tokens = _tokens(text)
        timeline = _timeline(text, duration)
        sentences = _sentences(timeline)
        speakers = as_list(params.get("known_speaker_names")) or ["A", "B"]
        usage = self._transcription_usage(model, duration, str(params.get("prompt") or ""), tokens)
        latency = self.latency
        total = latency.transcription_base + latency.transcription_per_audio_second * duration

        if stream:
            events: list[tuple[float, dict[str, Any]]] = []
            spread = (total - latency.transcription_base) / max(1, len(tokens))
            diarize = fmt == "diarized_json"
            segments = _diarized_segments(sentences, speakers) if diarize else []
            groups: list[tuple[dict[str, Any] | None, list[str]]] = [(None, tokens)]
            if diarize:
                groups = [
                    (segment, _tokens(segment["text"] if i == 0 else " " + segment["text"]))
                    for i, segment in enumerate(segments)
                ]
            streamed = [token for _, group in groups for token in group]
            token_logprobs = iter(_logprobs(streamed, integer_bytes=True))
            first = True
            for segment, group in groups:
                for token in group:
                    delta: dict[str, Any] = {"type": "transcript.text.delta", "delta": token}
                    if logprobs:
                        delta["logprobs"] = [next(token_logprobs)]
                    if segment is not None:
                        delta["segment_id"] = segment["id"]
                    events.append((latency.transcription_base if first else spread, delta))
                    first = False
                if segment is not None:
                    events.append((0.0, dict(segment)))
            done: dict[str, Any] = {"type": "transcript.text.done", "text": text}
            if logprobs:
                done["logprobs"] = _logprobs(streamed, integer_bytes=True)
            if model == "gpt-transcribe":
                done["languages"] = [{"code": language}]
            if usage is not None and usage["type"] == "tokens":
                done["usage"] = usage
            events.append((0.0 if events else latency.transcription_base, done))
            return self._sse_plan(
                record,
                "CreateTranscriptionResponseStreamEvent",
                events,
                error_event=_plain_error_event,
            )

        if fmt in ("text", "srt", "vtt"):
            body = text + "\n" if fmt == "text" else _subtitles(sentences, vtt=fmt == "vtt")
            headers = self._headers("text/plain; charset=utf-8", streamed=False)
            return _Plan(200, headers, [(0.0, body.encode())], headers_delay=total)
        payload: dict[str, Any]
        if fmt == "verbose_json":
            granularities = as_list(params.get("timestamp_granularities")) or ["segment"]
            payload = {
                "task": "transcribe",
                "language": _LANGUAGE_NAMES.get(language, language),
                "duration": round(duration, 3),
                "text": text,
            }
            if "segment" in granularities:
                temperature = _number(params.get("temperature"), 0.0)
                payload["segments"] = [
                    _verbose_segment(i, sentence, temperature)
                    for i, sentence in enumerate(sentences)
                ]
            if "word" in granularities:
                payload["words"] = [
                    {"word": word, "start": start, "end": end} for word, start, end in timeline
                ]
            if usage is not None:
                payload["usage"] = {"type": "duration", "seconds": math.ceil(duration)}
            schema = "CreateTranscriptionResponseVerboseJson"
        elif fmt == "diarized_json":
            payload = {
                "task": "transcribe",
                "duration": round(duration, 3),
                "text": text,
                "segments": _diarized_segments(sentences, speakers),
            }
            if usage is not None:
                payload["usage"] = usage
            schema = "CreateTranscriptionResponseDiarizedJson"
        else:
            payload = {"text": text}
            if logprobs:
                payload["logprobs"] = _logprobs(tokens, integer_bytes=False)
            if model == "gpt-transcribe":
                payload["languages"] = [{"code": language}]
            if usage is not None:
                payload["usage"] = usage
            schema = "CreateTranscriptionResponseJson"
        return self._json_plan(record, schema, payload, total)

    def _transcription_usage(
        self, model: str, duration: float, prompt: str, tokens: list[str]
    ) -> dict[str, Any] | None:
        if not self.usage:
            return None
        if model.startswith("whisper"):
            return {"type": "duration", "seconds": math.ceil(duration)}
        audio_tokens = math.ceil(duration * _AUDIO_TOKENS_PER_SECOND)
        text_tokens = _count_tokens(prompt)
        return {
            "type": "tokens",
            "input_tokens": audio_tokens + text_tokens,
            "input_token_details": {"text_tokens": text_tokens, "audio_tokens": audio_tokens},
            "output_tokens": len(tokens),
            "total_tokens": audio_tokens + text_tokens + len(tokens),
        }

    # ----------------------------------------------------------------------- responses

    def _responses(self, record: RecordedRequest) -> _Plan:
        params = record.params
        text = self._next_reply(record, _last_user_text_responses(params.get("input")))
        tokens = _tokens(text)
        limit = params.get("max_output_tokens")
        incomplete = isinstance(limit, int) and len(tokens) > limit
        if incomplete:
            tokens = tokens[:limit]
        out_text = "".join(tokens)
        input_tokens = _count_tokens(
            json.dumps(params.get("input", "")) + str(params.get("instructions") or "")
        )
        created = int(time.time())
        response_id = f"resp_{next(self._ids):048x}"
        message_id = f"msg_{next(self._ids):048x}"
        status = "incomplete" if incomplete else "completed"
        part = {"type": "output_text", "text": out_text, "annotations": [], "logprobs": []}
        message = {
            "id": message_id,
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": [part],
        }
        usage = None
        if self.usage:
            usage = {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": len(tokens),
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + len(tokens),
            }

        def response(state: str, output: list[Any], with_usage: bool) -> dict[str, Any]:
            reasoning = params.get("reasoning")
            body: dict[str, Any] = {
                "id": response_id,
                "object": "response",
                "created_at": created,
                "status": state,
                "background": False,
                "completed_at": created if state == "completed" else None,
                "error": None,
                "incomplete_details": {"reason": "max_output_tokens"}
                if state == "incomplete"
                else None,
                "instructions": params.get("instructions"),
                "max_output_tokens": params.get("max_output_tokens"),
                "max_tool_calls": None,
                "model": params.get("model"),
                "output": output,
                "parallel_tool_calls": True,
                "previous_response_id": params.get("previous_response_id"),
                "reasoning": {
                    "effort": reasoning.get("effort") if isinstance(reasoning, dict) else None,
                    "summary": None,
                },
                "service_tier": "default",
                "store": params.get("store", True),
                "temperature": params.get("temperature", 1.0),
                "text": {"format": {"type": "text"}, "verbosity": "medium"},
                "tool_choice": "auto",
                "tools": [],
                "top_logprobs": 0,
                "top_p": params.get("top_p", 1.0),
                "truncation": "disabled",
                "metadata": params.get("metadata") or {},
            }
            if with_usage and usage is not None:
                body["usage"] = usage
            if isinstance(params.get("user"), str):
                body["user"] = params["user"]
            return body

        latency = self.latency
        if not truthy(params.get("stream")):
            delay = latency.text_first_token + latency.text_per_token * max(0, len(tokens) - 1)
            return self._json_plan(record, "Response", response(status, [message], True), delay)

        seq = itertools.count()
        where = {"item_id": message_id, "output_index": 0, "content_index": 0}
        events: list[tuple[float, dict[str, Any]]] = [
            (0.0, {"type": "response.created", "response": response("in_progress", [], False)}),
            (0.0, {"type": "response.in_progress", "response": response("in_progress", [], False)}),
            (
                0.0,
                {
                    "type": "response.output_item.added",
                    "output_index": 0,
                    "item": {**message, "status": "in_progress", "content": []},
                },
            ),
            (
                0.0,
                {
                    "type": "response.content_part.added",
                    **where,
                    "part": {**part, "text": ""},
                },
            ),
        ]
        for i, token in enumerate(tokens):
            delay = latency.text_first_token if i == 0 else latency.text_per_token
            events.append(
                (
                    delay,
                    {"type": "response.output_text.delta", **where, "delta": token, "logprobs": []},
                )
            )
        tail_delay = 0.0 if tokens else latency.text_first_token
        events += [
            (
                tail_delay,
                {"type": "response.output_text.done", **where, "text": out_text, "logprobs": []},
            ),
            (0.0, {"type": "response.content_part.done", **where, "part": part}),
            (0.0, {"type": "response.output_item.done", "output_index": 0, "item": message}),
            (
                0.0,
                {
                    "type": "response.incomplete" if incomplete else "response.completed",
                    "response": response(status, [message], True),
                },
            ),
        ]
        numbered = [(delay, {**event, "sequence_number": next(seq)}) for delay, event in events]

        def error_event(index: int, error: dict[str, Any]) -> dict[str, Any]:
            return {
                "type": "error",
                "code": error.get("code"),
                "message": error.get("message", ""),
                "param": error.get("param"),
                "sequence_number": index,
            }

        return self._sse_plan(
            record, "ResponseStreamEvent", numbered, named=True, error_event=error_event
        )

    # ---------------------------------------------------------------------------- chat

    def _chat(self, record: RecordedRequest) -> _Plan:
        params = record.params
        text = self._next_reply(record, _last_user_text_chat(params.get("messages")))
        tokens = _tokens(text)
        limit = params.get("max_completion_tokens", params.get("max_tokens"))
        finish = "stop"
        if isinstance(limit, int) and len(tokens) > limit:
            tokens = tokens[:limit]
            finish = "length"
        out_text = "".join(tokens)
        choices = _number(params.get("n"), 1)
        n = int(choices) if choices >= 1 else 1
        prompt_tokens = _count_tokens(json.dumps(params.get("messages", [])))
        completion_tokens = len(tokens) * n
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        chat_id = f"chatcmpl-{next(self._ids):032x}"
        created = int(time.time())
        model = params.get("model")
        base = {
            "id": chat_id,
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_fakeopenai",
        }
        latency = self.latency
        if not truthy(params.get("stream")):
            payload: dict[str, Any] = {
                **base,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": i,
                        "message": {
                            "role": "assistant",
                            "content": out_text,
                            "refusal": None,
                            "annotations": [],
                        },
                        "logprobs": None,
                        "finish_reason": finish,
                    }
                    for i in range(n)
                ],
            }
            if self.usage:
                payload["usage"] = usage
            delay = latency.text_first_token + latency.text_per_token * max(0, len(tokens) - 1)
            return self._json_plan(record, "CreateChatCompletionResponse", payload, delay)

        options = params.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        chunk_base = {**base, "object": "chat.completion.chunk"}
        if include_usage:
            chunk_base["usage"] = None

        def chunk(index: int, delta: dict[str, Any], reason: str | None) -> dict[str, Any]:
            choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": reason}
            return {**chunk_base, "choices": [choice]}

        events: list[tuple[float, dict[str, Any]]] = []
        for i in range(n):
            events.append(
                (0.0, chunk(i, {"role": "assistant", "content": "", "refusal": None}, None))
            )
        for t, token in enumerate(tokens):
            for i in range(n):
                delay = 0.0 if i else latency.text_first_token if t == 0 else latency.text_per_token
                events.append((delay, chunk(i, {"content": token}, None)))
        for i in range(n):
            events.append((0.0 if tokens or i else latency.text_first_token, chunk(i, {}, finish)))
        if include_usage and self.usage:
            events.append((0.0, {**chunk_base, "choices": [], "usage": usage}))
        return self._sse_plan(
            record,
            "CreateChatCompletionStreamResponse",
            events,
            done=True,
            error_event=_plain_error_event,
        )

    # -------------------------------------------------------------------------- speech

    def _speech(self, record: RecordedRequest) -> _Plan:
        params = record.params
        text = str(params.get("input", ""))
        speed = _number(params.get("speed"), 1.0)
        fmt = self.speech_format or str(params.get("response_format", "mp3"))
        pcm = speech_pcm(text, speed=speed, seconds_per_character=self.seconds_per_character)
        duration = len(pcm) / (2 * SPEECH_RATE)
        audio = encode_speech(pcm, fmt)
        size = self.chunk_size
        chunks = [audio[i : i + size] for i in range(0, len(audio), size)] or [b""]
        record.progress.output_text = text
        latency = self.latency
        pace = [
            latency.speech_realtime_factor * duration * len(c) / max(1, len(audio)) for c in chunks
        ]
        delays = [0.0, *pace[:-1]]
        if params.get("stream_format") == "sse":
            events: list[tuple[float, dict[str, Any]]] = [
                (
                    delay,
                    {"type": "speech.audio.delta", "audio": base64.b64encode(c).decode("ascii")},
                )
                for delay, c in zip(delays, chunks, strict=True)
            ]
            events[0] = (latency.speech_first_byte, events[0][1])
            done: dict[str, Any] = {"type": "speech.audio.done"}
            if self.usage:
                input_tokens = _count_tokens(text + str(params.get("instructions") or ""))
                output_tokens = math.ceil(duration * _SPEECH_TOKENS_PER_SECOND)
                done["usage"] = {
                    "input_tokens": input_tokens,
                    "output_tokens": output_tokens,
                    "total_tokens": input_tokens + output_tokens,
                }
            events.append((pace[-1], done))
            return self._sse_plan(
                record, "CreateSpeechResponseStreamEvent", events, error_event=_plain_error_event
            )
        headers = self._headers(self.speech_content_types[fmt], streamed=True)
        pieces = list(zip(delays, chunks, strict=True))
        return _Plan(200, headers, pieces, headers_delay=latency.speech_first_byte)


# ----------------------------------------------------------------------------- helpers


def _texts(values: Iterable[str], what: str) -> list[str]:
    if isinstance(values, str):
        raise ConfigurationError(f"{what} must be a list of strings, not one string")
    out = list(values)
    for value in out:
        if not isinstance(value, str):
            raise ConfigurationError(f"{what} must be strings, got {value!r}")
    return out


def _hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _redact(name: str, value: str) -> str:
    lower = name.lower()
    if lower in ("authorization", "proxy-authorization"):
        scheme = value.partition(" ")[0]
        return f"{scheme} [redacted]" if " " in value else "[redacted]"
    if lower in ("api-key", "x-api-key") or "secret" in lower or "token" in lower:
        return "[redacted]"
    return value


def _url_path(url: str) -> str:
    after_scheme = url.partition("://")[2]
    path = "/" + after_scheme.partition("/")[2] if "/" in after_scheme else ""
    return path.rstrip("/")


def _endpoint_arg(endpoint: str | None) -> Endpoint | None:
    if endpoint is None or endpoint == "*":
        return None
    key = endpoint.strip()
    if key.startswith("/v1/"):
        key = key[3:]
    found = _ALIASES.get(key)
    if found is None:
        raise ConfigurationError(
            f"unknown endpoint {endpoint!r}; use 'transcriptions', 'responses', 'chat', "
            "'speech' or None for any"
        )
    return found


def _count_arg(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be a whole number >= 1, not {value!r}")
    return value


def _nth_arg(value: int | None) -> int | None:
    return None if value is None else _count_arg(value, "nth")


def _position_arg(value: int | None, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"{name} must be a whole number >= 0, not {value!r}")
    return value


def _header_number(value: float, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigurationError(f"{name} must be a number >= 0, not {value!r}")
    return str(int(value)) if float(value).is_integer() else str(value)


def _split_at(plan: _Plan, events: int | None, size: int | None) -> int:
    """Index of the first piece after ``events`` pieces or ``size`` bytes (splitting one)."""
    if events is not None:
        return min(events, len(plan.pieces))
    assert size is not None
    total = 0
    for index, (delay, data) in enumerate(plan.pieces):
        if total + len(data) > size:
            keep = size - total
            if keep > 0:
                plan.pieces[index : index + 1] = [(delay, data[:keep]), (0.0, data[keep:])]
                return index + 1
            return index
        total += len(data)
    return len(plan.pieces)


_STATUS_ERRORS: Final[dict[int, tuple[str, str, str | None]]] = {
    400: ("The request was invalid.", "invalid_request_error", None),
    401: (
        "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        "invalid_api_key",
    ),
    403: (
        "You are not allowed to use this model or resource ({model}).",
        "invalid_request_error",
        "model_not_allowed",
    ),
    404: (
        "The model `{model}` does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    ),
    408: ("Request timed out.", "timeout", None),
    409: ("The request conflicted with another request.", "invalid_request_error", None),
    413: ("The request is too large.", "invalid_request_error", None),
    422: ("The request could not be processed.", "invalid_request_error", None),
    429: (
        "Rate limit reached for requests. Please try again later.",
        "requests",
        "rate_limit_exceeded",
    ),
    500: (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
    ),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
    504: ("Gateway timeout.", "server_error", None),
}


def _default_error(status: int) -> dict[str, Any]:
    message, kind, code = _STATUS_ERRORS.get(
        status,
        ("The request failed.", "server_error" if status >= 500 else "invalid_request_error", None),
    )
    return {"message": message, "type": kind, "param": None, "code": code}


def _error(
    message: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    return {"message": message, "type": type, "param": param, "code": code}


def _plain_error_event(_index: int, error: dict[str, Any]) -> dict[str, Any]:
    return {"error": dict(error)}


def _number(value: Any, default: float) -> float:
    if value is None or isinstance(value, bool):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


_TOKEN_CHARS: Final = 4


def _tokens(text: str) -> list[str]:
    """Split text into token-like deltas (up to 4 characters, a word's leading space first).

    Joining the pieces gives back ``text`` exactly; words longer than a token are split,
    as a real tokenizer does, so streamed deltas cut words in the middle.
    """
    pieces: list[str] = []
    for word in re.findall(r"\s*\S+|\s+", text):
        pieces.extend(word[i : i + _TOKEN_CHARS] for i in range(0, len(word), _TOKEN_CHARS))
    return pieces


def _count_tokens(text: str) -> int:
    return math.ceil(len(text) / _CHARS_PER_TOKEN)


def _timeline(text: str, duration: float) -> list[tuple[str, float, float]]:
    """Each word of ``text`` with start and end times spread over ``duration``."""
    words = text.split()
    total = sum(len(w) + 1 for w in words)
    out: list[tuple[str, float, float]] = []
    position = 0
    for word in words:
        start = duration * position / total
        position += len(word) + 1
        end = duration * (position - 1) / total
        out.append((word, round(start, 3), round(end, 3)))
    return out


def _sentences(timeline: Sequence[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    """Group timed words into sentences (ending in . ! or ?)."""
    out: list[tuple[str, float, float]] = []
    current: list[tuple[str, float, float]] = []
    for item in timeline:
        current.append(item)
        if item[0].endswith((".", "!", "?")):
            out.append((" ".join(w for w, _, _ in current), current[0][1], current[-1][2]))
            current = []
    if current:
        out.append((" ".join(w for w, _, _ in current), current[0][1], current[-1][2]))
    return out


def _verbose_segment(
    index: int, sentence: tuple[str, float, float], temperature: float
) -> dict[str, Any]:
    text, start, end = sentence
    return {
        "id": index,
        "seek": 0,
        "start": start,
        "end": end,
        "text": " " + text,
        "tokens": [50364 + i for i in range(len(_tokens(text)))],
        "temperature": temperature,
        "avg_logprob": -0.25,
        "compression_ratio": 1.2,
        "no_speech_prob": 0.01,
    }


def _diarized_segments(
    sentences: Sequence[tuple[str, float, float]], speakers: Sequence[str]
) -> list[dict[str, Any]]:
    return [
        {
            "type": "transcript.text.segment",
            "id": f"seg_{i:03d}",
            "start": start,
            "end": end,
            "text": text,
            "speaker": speakers[i % len(speakers)],
        }
        for i, (text, start, end) in enumerate(sentences)
    ]


def _logprobs(tokens: Sequence[str], *, integer_bytes: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, token in enumerate(tokens):
        raw = list(token.encode("utf-8"))
        out.append(
            {
                "token": token,
                "logprob": -0.01 * (i % 7 + 1),
                "bytes": raw if integer_bytes else [float(b) for b in raw],
            }
        )
    return out


def _subtitles(sentences: Sequence[tuple[str, float, float]], *, vtt: bool) -> str:
    def stamp(seconds: float) -> str:
        millis = round(seconds * 1000)
        hours, millis = divmod(millis, 3_600_000)
        minutes, millis = divmod(millis, 60_000)
        secs, millis = divmod(millis, 1000)
        sep = "." if vtt else ","
        return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{millis:03d}"

    cues = []
    for i, (text, start, end) in enumerate(sentences, 1):
        head = "" if vtt else f"{i}\n"
        cues.append(f"{head}{stamp(start)} --> {stamp(end)}\n{text}\n")
    body = "\n".join(cues)
    return f"WEBVTT\n\n{body}\n" if vtt else f"{body}\n"


def _content_text(content: Any, part_types: tuple[str, ...]) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") in part_types
        ]
        return " ".join(texts)
    return ""


def _last_user_text_responses(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        for item in reversed(value):
            if isinstance(item, dict) and item.get("role") == "user":
                return _content_text(item.get("content"), ("input_text",))
    return ""


def _last_user_text_chat(value: Any) -> str:
    if isinstance(value, list):
        for item in reversed(value):
            if isinstance(item, dict) and item.get("role") == "user":
                return _content_text(item.get("content"), ("text",))
    return ""
