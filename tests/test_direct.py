"""Streamed requests sent straight to the lean transport (``chainvoice.openai._direct``).

A chain's own ``AsyncOpenAI`` client (built by chainvoice on ``LeanTransport``) has the
async synthesizer, responder (both APIs) and streamed transcriber send their requests with
``DirectSender.post`` instead of through the SDK; they must look and fail exactly as
through the SDK. Most tests run
one script against a raw loopback server (``test_transport.RawServer``) twice: through
the direct path (a stage built with ``base_url=...``) and through the SDK (the same
stage given ``client=AsyncOpenAI(...)``), and compare what reached the wire and what was
raised. The last ones run whole turns over ``FakeOpenAI.serve()``, checked against
OpenAI's spec.

Covered: which path is taken; headers, URL and body (JSON, or multipart for a
transcription) on the wire; the SDK's retry rule (statuses, ``x-should-retry``,
``Retry-After``/``retry-after-ms``, ``max_retries``, timeouts, connection errors) and its
exceptions as chainvoice errors; redirects as the SDK's HTTP client follows them; faults
inside a transcription stream; the API key never in an error; cancellation during a
retry's wait. Each test checks at teardown that no socket was left open (test_transport's
fixture).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import openai
import pytest

import chainvoice as cv
from chainvoice.openai import (
    AsyncOpenAIResponder,
    AsyncOpenAIStreamingTranscriber,
    AsyncOpenAISynthesizer,
    AsyncOpenAITranscriber,
    OpenAIResponder,
    OpenAISynthesizer,
    OpenAITranscriber,
)
from chainvoice.openai._client import ClientSettings, make_client
from chainvoice.openai._direct import DirectSender, _redirected, direct_sender
from chainvoice.openai._httpx import httpx
from chainvoice.openai._transport import LeanTransport
from chainvoice.testing import FakeOpenAI
from test_transport import (
    CHUNKED_HEAD,
    RawServer,
    Received,
    Reply,
    _causes,
    _no_proxy,  # noqa: F401  (autouse: the lean transport applies)
    _no_socket_left_open,  # noqa: F401  (autouse: no socket left open)
    response,
    then_close,
    then_stall,
    wait_until,
)
from test_transport import speech as noise

MakeFake = Callable[..., FakeOpenAI]
KEY = "sk-direct-test-0123456789SECRET"
PATHS = ("direct", "sdk")
KINDS = ("speech", "responses", "chat", "transcription")
ENDPOINTS = {
    "speech": "audio/speech",
    "responses": "responses",
    "chat": "chat/completions",
    "transcription": "audio/transcriptions",
}

SPEECH_INPUT = "Grüß dich — 你好, how are you?"  # non-ASCII: the body is UTF-8 JSON
USER_TEXT = "Tell me something nice ✓."
AUDIO = noise(0.3)
PCM = b"\x01\x00\xff\xff" * 1200  # 0.1 s of 24 kHz 16-bit mono
REPLY_TEXT = "Hello there."

RESPONSES_SSE = (
    b'data: {"type":"response.created","response":{"id":"resp_1"}}\n\n'
    b'data: {"type":"response.output_text.delta","delta":"Hello "}\n\n'
    b'data: {"type":"response.output_text.delta","delta":"there."}\n\n'
    b'data: {"type":"response.completed","response":{"id":"resp_1",'
    b'"usage":{"input_tokens":5,"output_tokens":2}}}\n\n'
)
CHAT_SSE = (
    b'data: {"choices":[{"index":0,"delta":{"content":"Hello "},"finish_reason":null}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{"content":"there."},"finish_reason":null}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}\n\n'
    b"data: [DONE]\n\n"
)
TRANSCRIPTION_SSE = (
    b'data: {"type":"transcript.text.delta","delta":"Hello "}\n\n'
    b'data: {"type":"transcript.text.delta","delta":"there."}\n\n'
    b'data: {"type":"transcript.text.done","text":"Hello there.",'
    b'"usage":{"type":"tokens","input_tokens":5,"output_tokens":2,"total_tokens":7}}\n\n'
)
SSE_BODIES = {"responses": RESPONSES_SSE, "chat": CHAT_SSE, "transcription": TRANSCRIPTION_SSE}

#: Headers both paths must send alike (the SDK adds a few of its own, e.g. its raw-response
#: marker, its read timeout and Accept-Encoding, which say nothing to the server).
SAME_HEADERS = (
    "authorization",
    "accept",
    "content-type",
    "user-agent",
    "openai-organization",
    "openai-project",
    "x-stainless-retry-count",
    "x-stainless-lang",
    "x-stainless-package-version",
    "x-stainless-os",
    "x-stainless-arch",
    "x-stainless-runtime",
    "x-stainless-runtime-version",
    "x-stainless-async",
)


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def _no_openai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key, organization or project from the environment unless a test sets one."""
    for name in ("OPENAI_API_KEY", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def posts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The path of every ``DirectSender.post`` (a request sent the direct way)."""
    seen: list[str] = []
    original = DirectSender.post

    def spy(self: DirectSender, path: str, **kwargs: Any) -> Any:
        seen.append(path)
        return original(self, path, **kwargs)

    monkeypatch.setattr(DirectSender, "post", spy)
    return seen


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's backoff without ``Retry-After`` starts at 10 ms, not 0.5 s (both paths)."""
    import openai._base_client

    monkeypatch.setattr(openai._base_client, "INITIAL_RETRY_DELAY", 0.01)


# ----------------------------------------------------------------------------- helpers


def ok(kind: str) -> bytes:
    """A successful answer for ``kind``."""
    if kind == "speech":
        return response(PCM, headers=b"Content-Type: audio/pcm\r\n")
    return response(SSE_BODIES[kind], headers=b"Content-Type: text/event-stream\r\n")


def error(status: int, message: str | None = None, headers: bytes = b"") -> bytes:
    """An OpenAI-style JSON error answer with an ``x-request-id``."""
    body = {
        "error": {
            "message": message or f"scripted failure {status}",
            "type": "invalid_request_error" if status < 500 else "server_error",
            "param": None,
            "code": None,
        }
    }
    head = b"Content-Type: application/json\r\nx-request-id: req_%d\r\n" % status + headers
    return response(json.dumps(body).encode(), status=b"%d Scripted" % status, headers=head)


def build(
    kind: str,
    base_url: str,
    *,
    path: str,
    api_key: str = KEY,
    timeout: float = 2.0,
    max_retries: int = 2,
    organization: str | None = None,
    project: str | None = None,
    **options: Any,
) -> Any:
    """An async stage for ``kind``: built by chainvoice (``path="direct"``) or given a
    client built by the user (``path="sdk"``), with the same settings either way."""
    settings: dict[str, Any] = {
        "api_key": api_key,
        "base_url": base_url,
        "timeout": timeout,
        "max_retries": max_retries,
        "organization": organization,
        "project": project,
    }
    settings = {k: v for k, v in settings.items() if v is not None}
    cls: type[Any]
    if kind == "speech":
        cls = AsyncOpenAISynthesizer
    elif kind == "transcription":
        cls = AsyncOpenAITranscriber
        options.setdefault("stream", True)
    else:
        cls = AsyncOpenAIResponder
        options["api"] = kind
    if path == "sdk":
        stage = cls(client=openai.AsyncOpenAI(**settings), **options)
    else:
        stage = cls(**settings, **options)
    assert isinstance(stage._setup.direct, DirectSender) is (path == "direct")
    return stage


def sender_of(stage: Any) -> DirectSender | None:
    """The sender a stage's next request would use (None: through the SDK)."""
    sender: DirectSender | None = stage._setup.direct
    return sender


async def consume(stage: Any) -> list[Any]:
    """Everything the stage yields for one request."""
    if isinstance(stage, AsyncOpenAISynthesizer):
        return [item async for item in stage.synthesize(SPEECH_INPUT)]
    if isinstance(stage, AsyncOpenAIStreamingTranscriber):
        return [item async for item in stage.transcribe_stream(AUDIO)]
    conversation = cv.Conversation().add("user", USER_TEXT)
    return [item async for item in stage.respond(conversation)]


def check_success(items: list[Any]) -> None:
    """What a successful request to the scripted server yields, for any kind."""
    if items and isinstance(items[-1], cv.Transcript):
        assert all(isinstance(i, str) for i in items[:-1])
        assert "".join(items[:-1]) == REPLY_TEXT  # each piece of text passed on once
        assert items[-1].text == REPLY_TEXT and items[-1].usage is not None
        assert items[-1].usage.input_tokens == 5
        return
    usage = [i for i in items if isinstance(i, cv.Usage)]
    assert len(usage) == 1 and usage[0].requests == 1
    audio = [i for i in items if isinstance(i, cv.Audio)]
    text = "".join(i for i in items if isinstance(i, str))
    if audio:
        assert sum(a.frames for a in audio) == len(PCM) // 2 and text == ""
    else:
        assert text == REPLY_TEXT


@dataclass
class Outcome:
    """What one stage did against a scripted server."""

    path: str
    base_url: str
    items: list[Any] = field(default_factory=list)
    error: cv.ChainvoiceError | None = None
    requests: list[Received] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def retry_counts(self) -> list[bytes | None]:
        return [r.header("x-stainless-retry-count") for r in self.requests]

    @property
    def message(self) -> str:
        return str(self.error).replace(self.base_url, "URL")


async def attempt(
    kind: str, replies: list[Reply], *, path: str, prefix: str = "/v1", **settings: Any
) -> Outcome:
    """Build a stage on ``path``, send one request to a server answering ``replies``."""
    async with RawServer(*replies) as server:
        base_url = server.url + prefix
        stage = build(kind, base_url, path=path, **settings)
        outcome = Outcome(path, stage._setup.base_url)
        start = time.monotonic()
        try:
            outcome.items = await asyncio.wait_for(consume(stage), 10)
        except cv.ChainvoiceError as exc:
            outcome.error = exc
        finally:
            outcome.elapsed = time.monotonic() - start
            await stage._setup.client.close()
        outcome.requests = list(server.requests)
    return outcome


def both(kind: str, replies: list[Reply], **settings: Any) -> tuple[Outcome, Outcome]:
    """The same script sent the direct way, then through the SDK (a fresh server each)."""

    async def main() -> tuple[Outcome, Outcome]:
        direct = await attempt(kind, replies, path="direct", **settings)
        sdk = await attempt(kind, replies, path="sdk", **settings)
        return direct, sdk

    return asyncio.run(main())


def assert_alike(direct: Outcome, sdk: Outcome) -> None:
    """The direct path failed (or not) as the SDK did, after as many requests."""
    assert type(direct.error) is type(sdk.error), (direct.error, sdk.error)
    assert len(direct.requests) == len(sdk.requests)
    assert direct.retry_counts == sdk.retry_counts
    if isinstance(direct.error, cv.APIError) and direct.error.status_code is not None:
        assert isinstance(sdk.error, cv.APIError)
        assert direct.message == sdk.message
        assert direct.error.status_code == sdk.error.status_code
        assert direct.error.request_id == sdk.error.request_id
    if isinstance(direct.error, cv.RateLimitError):
        assert isinstance(sdk.error, cv.RateLimitError)
        assert direct.error.retry_after == sdk.error.retry_after


def headers_of(request: Received) -> dict[str, str]:
    """A request's headers, names lower-cased."""
    out: dict[str, str] = {}
    for line in request.head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        out[key.strip().lower().decode()] = value.strip().decode()
    return out


Part = tuple[str, str | None, str | None, bytes]


def form_parts(request: Received) -> list[Part]:
    """A multipart body's parts as (name, filename, content type, value), in order."""
    ctype = (request.header("content-type") or b"").decode()
    assert ctype.startswith("multipart/form-data; boundary="), ctype
    boundary = b"--" + ctype.partition("boundary=")[2].encode()
    chunks = request.body.split(boundary)
    assert chunks[0] == b"" and chunks[-1] == b"--\r\n"
    parts: list[Part] = []
    for chunk in chunks[1:-1]:
        head, _, value = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        assert value.endswith(b"\r\n")
        meta: dict[str, str] = {}
        for line in head.decode().split("\r\n"):
            key, _, rest = line.partition(":")
            meta[key.strip().lower()] = rest.strip()
        disposition = dict(
            item.strip().split("=", 1) for item in meta["content-disposition"].split(";")[1:]
        )
        filename = disposition.get("filename")
        parts.append(
            (
                disposition["name"].strip('"'),
                filename.strip('"') if filename else None,
                meta.get("content-type"),
                value[:-2],
            )
        )
    return parts


def payload(request: Received) -> Any:
    """The body as the server reads it: a JSON value, or the multipart parts, sorted."""
    if (request.header("content-type") or b"").startswith(b"multipart/"):
        return sorted(form_parts(request), key=lambda p: (p[0], p[3]))
    return json.loads(request.body.decode("utf-8"))


def fields_of(request: Received) -> dict[str, list[str]]:
    """A multipart body's text fields, each name's values in order."""
    out: dict[str, list[str]] = {}
    for name, filename, _, value in form_parts(request):
        if filename is None:
            out.setdefault(name, []).append(value.decode("utf-8"))
    return out


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# ---------------------------------------------------------------------- which path


@pytest.mark.parametrize("kind", KINDS)
def test_stage_built_async_client_gets_a_direct_sender(kind: str) -> None:
    stage = build(kind, "http://127.0.0.1:9/v1", path="direct")
    client = stage._setup.client
    assert isinstance(client._client._transport, LeanTransport)
    sender = stage._setup.direct
    assert isinstance(sender, DirectSender)
    assert direct_sender(client) is sender  # one sender per client
    assert sender._transport is client._client._transport
    asyncio.run(client.close())


def test_chain_built_stages_share_one_direct_sender() -> None:
    async def main() -> None:
        chain = cv.AsyncChain.openai(base_url="http://127.0.0.1:9/v1", api_key=KEY)
        client = chain.responder._setup.client
        try:
            assert chain.synthesizer._setup.client is client
            assert chain.transcriber._setup.client is client
            sender = chain.responder._setup.direct
            assert isinstance(sender, DirectSender)
            assert chain.synthesizer._setup.direct is sender
            assert chain.transcriber._setup.direct is sender
            assert direct_sender(client) is sender
        finally:
            await client.close()
            await chain.aclose()

    asyncio.run(main())


def test_sync_chain_openai_stages_get_a_direct_sender() -> None:
    chain = cv.Chain.openai(base_url="http://127.0.0.1:9/v1", api_key=KEY)
    try:
        assert type(chain.responder) is AsyncOpenAIResponder
        assert isinstance(chain.responder._setup.direct, DirectSender)
        assert chain.synthesizer._setup.direct is chain.responder._setup.direct
        assert chain.transcriber._setup.direct is chain.responder._setup.direct
    finally:
        chain._runner().submit(chain.responder._setup.client.close()).result(5)
        chain.close()


def test_sync_stages_user_clients_and_the_httpx_switch_go_through_the_sdk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = "http://127.0.0.1:9/v1"
    for sync in (
        OpenAISynthesizer(base_url=url, api_key=KEY),
        OpenAIResponder(base_url=url),
        OpenAITranscriber(base_url=url, api_key=KEY, stream=True),
    ):
        assert sync._setup.direct is None
        assert direct_sender(sync._setup.client) is None
        sync._setup.client.close()

    async def main() -> None:
        user = openai.AsyncOpenAI(base_url=url, api_key=KEY)
        try:
            assert direct_sender(user) is None
            for stage in (
                AsyncOpenAISynthesizer(client=user),
                AsyncOpenAIResponder(client=user, api="chat"),
                AsyncOpenAITranscriber(client=user, stream=True),
                AsyncOpenAISynthesizer(client=user, timeout=1.0, max_retries=0),  # a copy
            ):
                assert stage._setup.direct is None
            chain = cv.AsyncChain.openai(client=user)
            for stage in (chain.transcriber, chain.responder, chain.synthesizer):
                assert stage._setup.direct is None
            await chain.aclose()
        finally:
            await user.close()
        # CHAINVOICE_HTTP=httpx: the SDK's own stack, so the SDK's own pipeline too.
        monkeypatch.setenv("CHAINVOICE_HTTP", "httpx")
        stage = AsyncOpenAISynthesizer(base_url=url, api_key=KEY)
        assert not isinstance(stage._setup.client._client._transport, LeanTransport)
        assert stage._setup.direct is None
        await stage._setup.client.close()

    asyncio.run(main())


def test_a_client_whose_http_client_was_replaced_goes_through_the_sdk(posts: list[str]) -> None:
    async def main() -> Outcome:
        async with RawServer(ok("speech")) as server:
            settings = ClientSettings(api_key=KEY, base_url=server.url + "/v1", max_retries=0)
            client = make_client(None, settings, "test", asynchronous=True)
            own = client._client
            client._client = openai.DefaultAsyncHttpxClient()  # the user's own
            try:
                stage = AsyncOpenAISynthesizer(client=client)
                assert stage._setup.client is client and stage._setup.direct is None
                items = await consume(stage)
            finally:
                await client.close()
                await own.aclose()
            return Outcome("sdk", "", items, requests=list(server.requests))

    got = asyncio.run(main())
    check_success(got.items)
    assert posts == []  # went through the SDK (and the replaced HTTP client)
    assert len(got.requests) == 1
    assert got.requests[0].header("x-stainless-raw-response") == b"stream"  # the SDK's marker


def test_replacing_the_http_client_after_a_stage_was_built_is_noticed(posts: list[str]) -> None:
    """The same stage sends direct, then through the SDK once its client's HTTP client is
    replaced (and a stage built on that client later gets no sender either)."""

    async def main() -> list[Received]:
        async with RawServer(ok("speech"), ok("speech")) as server:
            stage = build("speech", server.url + "/v1", path="direct")
            client = stage._setup.client
            before = direct_sender(client)
            assert before is not None and before is sender_of(stage)
            own = client._client
            try:
                check_success(await consume(stage))
                client._client = openai.DefaultAsyncHttpxClient()
                after = direct_sender(client)
                assert after is None
                assert sender_of(stage) is None  # asked again at each request
                assert AsyncOpenAISynthesizer(client=client)._setup.direct is None
                check_success(await consume(stage))
            finally:
                await client.close()
                await own.aclose()
            return list(server.requests)

    first, second = asyncio.run(main())
    assert posts == ["audio/speech"]  # the first request only
    assert first.header("x-stainless-raw-response") is None
    assert second.header("x-stainless-raw-response") == b"stream"  # the SDK's marker
    assert json.loads(first.body) == json.loads(second.body)


def test_the_sdk_path_still_works_for_sync_stages_and_user_clients(posts: list[str]) -> None:
    async def main() -> tuple[list[list[Any]], list[Received]]:
        replies = [ok("speech"), ok("chat"), ok("responses"), ok("transcription")]
        async with RawServer(*replies) as server:
            url = server.url + "/v1"
            sync = OpenAISynthesizer(base_url=url, api_key=KEY, max_retries=0, timeout=2.0)
            try:
                first = await asyncio.to_thread(lambda: list(sync.synthesize(SPEECH_INPUT)))
            finally:
                sync._setup.client.close()
            sync_reply = OpenAIResponder(base_url=url, api_key=KEY, api="chat", timeout=2.0)
            conversation = cv.Conversation().add("user", USER_TEXT)
            try:
                second = await asyncio.to_thread(lambda: list(sync_reply.respond(conversation)))
            finally:
                sync_reply._setup.client.close()
            user = build("responses", url, path="sdk")
            try:
                third = await consume(user)
            finally:
                await user._setup.client.close()
            user = build("transcription", url, path="sdk")
            try:
                fourth = await consume(user)
            finally:
                await user._setup.client.close()
            return [first, second, third, fourth], list(server.requests)

    results, requests = asyncio.run(main())
    for items in results:
        check_success(items)
    assert posts == []
    assert [r.request_line.split()[1] for r in requests] == [
        b"/v1/audio/speech",
        b"/v1/chat/completions",
        b"/v1/responses",
        b"/v1/audio/transcriptions",
    ]


# ------------------------------------------------------------------------ on the wire


@pytest.mark.parametrize("kind", KINDS)
def test_headers_path_and_body_on_the_wire(kind: str, posts: list[str]) -> None:
    got = asyncio.run(
        attempt(
            kind,
            [ok(kind)],
            path="direct",
            prefix="/some/prefix/v1",
            organization="org-direct",
            project="proj_direct",
            extra_body={"user": "user-7", "x_custom": [1, "ü"]},
        )
    )
    check_success(got.items)
    assert posts == [ENDPOINTS[kind]]
    (request,) = got.requests
    assert request.request_line == b"POST /some/prefix/v1/%s HTTP/1.1" % ENDPOINTS[kind].encode()
    headers = headers_of(request)
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers["openai-organization"] == "org-direct"
    assert headers["openai-project"] == "proj_direct"
    assert headers["user-agent"] == f"AsyncOpenAI/Python {openai.__version__}"
    assert headers["x-stainless-retry-count"] == "0"
    assert int(headers["content-length"]) == len(request.body)
    assert headers["accept"] == (
        "application/octet-stream" if kind == "speech" else "application/json"
    )
    if kind == "transcription":
        assert headers["content-type"].startswith("multipart/form-data; boundary=")
        fields = fields_of(request)
        assert fields["user"] == ["user-7"] and fields["x_custom[]"] == ["1", "ü"]
        assert fields["stream"] == ["true"] and fields["model"] == ["gpt-transcribe"]
        assert "extra_body" not in fields
        (upload,) = [p for p in form_parts(request) if p[1] is not None]
        assert upload[:3] == ("file", "audio.wav", "audio/wav")
        assert upload[3].startswith(b"RIFF") and len(upload[3]) == 44 + AUDIO.frames * 2
        return
    assert headers["content-type"] == "application/json"
    body = json.loads(request.body.decode("utf-8"))
    assert body["user"] == "user-7" and body["x_custom"] == [1, "ü"]  # extra_body merged
    assert "extra_body" not in body
    if kind == "speech":
        assert body["input"] == SPEECH_INPUT and body["response_format"] == "pcm"
    elif kind == "responses":
        assert body["stream"] is True and body["input"][0]["content"] == USER_TEXT
    else:
        assert body["stream"] is True and body["messages"][-1]["content"] == USER_TEXT


def test_no_organization_or_project_header_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    got = asyncio.run(attempt("speech", [ok("speech")], path="direct"))
    headers = headers_of(got.requests[0])
    assert "openai-organization" not in headers and "openai-project" not in headers
    # From the environment, as the SDK reads it.
    monkeypatch.setenv("OPENAI_ORG_ID", "org-env")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-env")
    got = asyncio.run(attempt("speech", [ok("speech")], path="direct"))
    headers = headers_of(got.requests[0])
    assert headers["openai-organization"] == "org-env"
    assert headers["openai-project"] == "proj-env"


def test_key_from_the_environment_and_placeholder_key(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main(**settings: Any) -> Received:
        async with RawServer(ok("speech")) as server:
            stage = AsyncOpenAISynthesizer(base_url=server.url + "/v1", **settings)
            assert stage._setup.direct is not None
            try:
                check_success(await consume(stage))
            finally:
                await stage._setup.client.close()
            return server.requests[0]

    # No key anywhere, a base_url that is not OpenAI's: chainvoice's placeholder key.
    assert asyncio.run(main()).header("authorization") == b"Bearer not-needed"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment-123456")
    got = asyncio.run(main())
    assert got.header("authorization") == b"Bearer sk-from-the-environment-123456"


SAME_AS_SDK: list[tuple[str, str, dict[str, Any]]] = [
    ("speech", "/v1", {}),
    ("speech", "/v1/", {"speed": 1.25, "instructions": "Calm.", "voice": "ash"}),
    ("speech", "/some/prefix/v1", {"extra_body": {"voice": "alloy", "x_extra": {"a": [1]}}}),
    ("speech", "", {"fragment_guard": False, "stream_format": "sse"}),
    ("responses", "/v1", {}),
    (
        "responses",
        "/some/prefix/v1",
        {
            "instructions": "Be brief, ünïcode.",
            "max_output_tokens": 50,
            "reasoning_effort": "low",
            "store": True,
            "extra_body": {"metadata": {"k": "v"}, "store": False},
        },
    ),
    ("chat", "/v1", {}),
    (
        "chat",
        "/some/prefix/v1",
        {
            "model": "my-local-llm",
            "temperature": 0.3,
            "max_output_tokens": 40,
            "reasoning_effort": None,
            "instructions": "Be brief.",
            "extra_body": {"seed": 7, "user": "u"},
        },
    ),
    ("transcription", "/v1", {}),
    (
        "transcription",
        "/some/prefix/v1",
        {
            "model": "my-stt",
            "language": "de",
            "temperature": 0.2,
            "prompt": "Namen: Jürgen.",
            "include": ["logprobs"],
            "response_format": "json",
            "chunking_strategy": {"type": "server_vad", "threshold": 0.5},
            "extra_body": {"x_list": [1, 2], "x_map": {"a": "b"}, "x_flag": True, "language": "fr"},
        },
    ),
]


@pytest.mark.parametrize(
    ("kind", "prefix", "options"),
    SAME_AS_SDK,
    ids=[f"{k}-{p or 'root'}-{i}" for i, (k, p, _) in enumerate(SAME_AS_SDK)],
)
def test_the_same_request_as_the_sdk(kind: str, prefix: str, options: dict[str, Any]) -> None:
    """Same request line, same JSON object, same headers that matter, on both paths."""
    reply: bytes = ok(kind)
    if options.get("stream_format") == "sse":
        events = (
            b'data: {"type":"speech.audio.delta","audio":"AQD//w=="}\n\n'
            b'data: {"type":"speech.audio.done","usage":{"input_tokens":3,'
            b'"output_tokens":4,"total_tokens":7}}\n\n'
        )
        reply = response(events, headers=b"Content-Type: text/event-stream\r\n")
    settings = {"organization": "org-1", "project": "proj-1", **options}
    direct, sdk = both(kind, [reply], prefix=prefix, **settings)
    assert direct.error is None and sdk.error is None, (direct.error, sdk.error)
    assert [type(i) for i in direct.items] == [type(i) for i in sdk.items]
    (sent,), (expected,) = direct.requests, sdk.requests
    assert sent.request_line == expected.request_line
    assert payload(sent) == payload(expected)
    if "extra_body" in options and kind != "transcription":
        body = json.loads(sent.body)
        for key, value in options["extra_body"].items():
            assert body[key] == value  # merged in, over the stage's own value
    if kind == "transcription" and "extra_body" in options:
        fields = fields_of(sent)
        assert fields["language"] == ["fr"]  # extra_body over the stage's own value
        assert fields["x_list[]"] == ["1", "2"] and fields["x_map[a]"] == ["b"]
        assert fields["x_flag"] == ["true"] and fields["chunking_strategy[type]"] == ["server_vad"]
    direct_headers, sdk_headers = headers_of(sent), headers_of(expected)
    for name in SAME_HEADERS:
        mine, theirs = direct_headers.get(name), sdk_headers.get(name)
        if name == "content-type" and kind == "transcription":  # a random boundary each
            assert mine and theirs and "boundary=" in mine and "boundary=" in theirs
            mine, theirs = mine.partition(";")[0], theirs.partition(";")[0]
        assert mine == theirs, name
    assert direct_headers["authorization"] == f"Bearer {KEY}"
    assert direct_headers["openai-organization"] == "org-1"


def test_retry_count_header_and_body_on_each_attempt(posts: list[str]) -> None:
    replies: list[Reply] = [
        error(500, headers=b"retry-after-ms: 10\r\n"),
        error(429, headers=b"Retry-After: 0.01\r\n"),
        ok("speech"),
    ]
    direct, sdk = both("speech", replies, max_retries=2)
    assert direct.error is None and sdk.error is None
    check_success(direct.items)
    assert posts == ["audio/speech"]  # one post, sent three times
    assert direct.retry_counts == [b"0", b"1", b"2"] == sdk.retry_counts
    assert len({r.body for r in direct.requests}) == 1
    assert {r.header("authorization") for r in direct.requests} == {f"Bearer {KEY}".encode()}


# --------------------------------------------------------------------------- retries


@dataclass
class Case:
    replies: list[Reply]
    error: type[cv.ChainvoiceError] | None
    requests: int
    max_retries: int = 2


def _ms(ms: int) -> bytes:
    return b"retry-after-ms: %d\r\n" % ms


CASES: dict[str, Case] = {
    "429-retry-after-then-ok": Case([error(429, headers=b"Retry-After: 0.05\r\n")], None, 2),
    "429-retry-after-ms-then-ok": Case([error(429, headers=_ms(50))], None, 2),
    "408-then-ok": Case([error(408, headers=_ms(10))], None, 2),
    "409-then-ok": Case([error(409, headers=_ms(10))], None, 2),
    "502-twice-then-ok": Case([error(502, headers=_ms(10))] * 2, None, 3),
    "500-always": Case([error(500, headers=_ms(10))] * 3, cv.ServerError, 3),
    "503-always-max-retries-1": Case([error(503, headers=_ms(10))] * 2, cv.ServerError, 2, 1),
    "500-max-retries-0": Case([error(500, headers=_ms(10))], cv.ServerError, 1, 0),
    "429-always": Case([error(429, headers=_ms(10))] * 3, cv.RateLimitError, 3),
    "429-retry-after-over-the-maximum": Case(
        [error(429, headers=b"Retry-After: 121\r\n")], cv.RateLimitError, 1
    ),
    "400": Case([error(400)], cv.BadRequestError, 1),
    "401": Case([error(401)], cv.AuthenticationError, 1),
    "403": Case([error(403)], cv.AuthenticationError, 1),
    "404": Case([error(404)], cv.NotFoundError, 1),
    "422": Case([error(422)], cv.BadRequestError, 1),
    "500-x-should-retry-false": Case(
        [error(500, headers=b"x-should-retry: false\r\n")], cv.ServerError, 1
    ),
    "400-x-should-retry-true-then-ok": Case(
        [error(400, headers=b"x-should-retry: true\r\n" + _ms(10))], None, 2
    ),
    "401-x-should-retry-true-always": Case(
        [error(401, headers=b"x-should-retry: true\r\n" + _ms(10))] * 3,
        cv.AuthenticationError,
        3,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_retry_rule_and_errors_match_the_sdk(name: str) -> None:
    case = CASES[name]
    replies = list(case.replies)
    if case.error is None:
        replies.append(ok("speech"))
    direct, sdk = both("speech", replies, max_retries=case.max_retries)
    for got in (direct, sdk):
        assert type(got.error) is (type(None) if case.error is None else case.error), got
        assert len(got.requests) == case.requests, got.path
        assert got.retry_counts == [str(i).encode() for i in range(case.requests)]
        if case.error is None:
            check_success(got.items)
    assert_alike(direct, sdk)
    if isinstance(direct.error, cv.APIError):
        status = int(name[:3])
        assert direct.error.status_code == status
        assert direct.error.request_id == f"req_{status}"
        assert f"scripted failure {status}" in str(direct.error)  # the server's message
    if name == "429-retry-after-over-the-maximum":
        assert isinstance(direct.error, cv.RateLimitError) and direct.error.retry_after == 121


@pytest.mark.parametrize("kind", ["responses", "chat", "transcription"])
def test_reply_and_transcription_retries_and_errors_match_the_sdk(kind: str) -> None:
    direct, sdk = both(kind, [error(503, headers=_ms(10)), ok(kind)], max_retries=1)
    for got in (direct, sdk):
        assert got.error is None and len(got.requests) == 2
        check_success(got.items)
    assert direct.retry_counts == [b"0", b"1"]
    message = "Invalid 'input': the message is too long."
    direct, sdk = both(kind, [error(400, message)], max_retries=2)
    assert isinstance(direct.error, cv.BadRequestError)
    assert message in str(direct.error) and len(direct.requests) == 1
    assert_alike(direct, sdk)


def test_bad_request_carries_the_servers_message() -> None:
    message = "Invalid value for 'voice': 'nobody' is not a voice."
    direct, sdk = both("speech", [error(400, message)])
    assert isinstance(direct.error, cv.BadRequestError)
    assert message in str(direct.error)
    assert direct.error.status_code == 400 and direct.error.request_id == "req_400"
    assert len(direct.requests) == 1
    assert direct.message == sdk.message


@pytest.mark.parametrize("header", [b"Retry-After: 0.3", b"retry-after-ms: 300"])
def test_retry_after_is_waited_for(header: bytes, fast_backoff: None) -> None:
    """The server's delay, not the backoff (10 ms here)."""
    direct, sdk = both("speech", [error(429, headers=header + b"\r\n"), ok("speech")])
    for got in (direct, sdk):
        assert got.error is None and len(got.requests) == 2
        assert 0.29 <= got.elapsed < 2.0, (got.path, got.elapsed)


def test_backoff_without_retry_after_is_the_sdks() -> None:
    """No header: the SDK's exponential backoff, 0.5 s less up to 25 % for the first retry."""
    direct, sdk = both("speech", [error(500), ok("speech")], max_retries=1)
    for got in (direct, sdk):
        assert got.error is None and len(got.requests) == 2
        assert 0.37 <= got.elapsed < 2.0, (got.path, got.elapsed)


def test_a_connection_closed_without_an_answer_is_retried(fast_backoff: None) -> None:
    direct, sdk = both("speech", [then_close(), then_close(), ok("speech")], max_retries=2)
    for got in (direct, sdk):
        assert got.error is None and len(got.requests) == 3
        check_success(got.items)
    assert direct.retry_counts == sdk.retry_counts == [b"0", b"1", b"2"]
    direct, sdk = both("speech", [then_close(), then_close()], max_retries=1)
    for got in (direct, sdk):
        assert isinstance(got.error, cv.APIConnectionError) and len(got.requests) == 2
    assert_alike(direct, sdk)


@pytest.mark.parametrize("path", PATHS)
def test_connection_refused_is_an_api_connection_error_after_retries(
    path: str, fast_backoff: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"

    async def main() -> tuple[cv.ChainvoiceError | None, int]:
        stage = build("speech", url, path=path, max_retries=2)
        transport = stage._setup.client._client._transport
        calls = 0
        original = transport.handle_async_request

        async def counted(request: Any) -> Any:
            nonlocal calls
            calls += 1
            return await original(request)

        monkeypatch.setattr(transport, "handle_async_request", counted)
        try:
            await consume(stage)
        except cv.ChainvoiceError as exc:
            return exc, calls
        finally:
            await stage._setup.client.close()
        return None, calls

    got, calls = asyncio.run(main())
    assert isinstance(got, cv.APIConnectionError)
    assert str(got).startswith(f"could not reach {url} for the speech")
    assert calls == 3  # max_retries=2: three attempts
    assert isinstance(got.__cause__, openai.APIConnectionError)


@pytest.mark.parametrize("max_retries", [0, 1])
def test_a_server_that_never_answers_times_out(max_retries: int, fast_backoff: None) -> None:
    replies: list[Reply] = [then_stall()] * (max_retries + 1)
    direct, sdk = both("speech", replies, timeout=0.3, max_retries=max_retries)
    for got in (direct, sdk):
        assert isinstance(got.error, cv.APITimeoutError), got
        assert isinstance(got.error.__cause__, openai.APITimeoutError)
        assert len(got.requests) == max_retries + 1
        assert 0.3 * (max_retries + 1) - 0.02 <= got.elapsed < 0.3 * (max_retries + 1) + 1.0
    assert_alike(direct, sdk)
    assert direct.message == sdk.message


def test_the_clients_timeout_is_used_not_a_default() -> None:
    """A server that answers after 0.25 s: in time for timeout=1, too late for 0.1."""

    async def late(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.25)
        writer.write(ok("speech"))
        await writer.drain()

    direct, sdk = both("speech", [late], timeout=1.0, max_retries=0)
    assert direct.error is None and sdk.error is None
    direct, sdk = both("speech", [late], timeout=0.1, max_retries=0)
    assert isinstance(direct.error, cv.APITimeoutError) and direct.elapsed < 0.22
    assert isinstance(sdk.error, cv.APITimeoutError)


# ------------------------------------------------------------------------- redirects


def redirect(status: bytes, location: str | None) -> bytes:
    where = b"" if location is None else b"Location: %s\r\n" % location.encode()
    return response(b"moved", status=status, headers=where + b"Content-Type: text/plain\r\n")


#: status, Location, the method and path the redirected request must have, body kept.
REDIRECTS: dict[str, tuple[bytes, str, str, bool]] = {
    "307": (b"307 Temporary Redirect", "/v1/moved/speech", "POST /v1/moved/speech", True),
    "308-relative": (b"308 Permanent Redirect", "moved", "POST /v1/audio/moved", True),
    "303": (b"303 See Other", "/v1/result", "GET /v1/result", False),
    "302-after-post": (b"302 Found", "/v1/result", "GET /v1/result", False),
    "301-after-post": (b"301 Moved Permanently", "/v1/result", "GET /v1/result", False),
}


@pytest.mark.parametrize("name", list(REDIRECTS))
def test_a_redirect_is_followed_as_the_sdks_http_client_follows_it(
    name: str, posts: list[str]
) -> None:
    status, location, line, body_kept = REDIRECTS[name]
    direct, sdk = both("speech", [redirect(status, location), ok("speech")], max_retries=0)
    assert posts == ["audio/speech"]
    for got in (direct, sdk):
        assert got.error is None, (got.path, got.error)
        check_success(got.items)
        first, second = got.requests
        assert first.request_line == b"POST /v1/audio/speech HTTP/1.1"
        assert second.request_line == f"{line} HTTP/1.1".encode(), got.path
        assert second.body == (first.body if body_kept else b""), got.path
        assert second.header("authorization") == f"Bearer {KEY}".encode()  # same origin
        assert second.header("x-stainless-retry-count") == b"0"  # not a retry
        if not body_kept:
            assert second.header("content-length") in (None, b"0")
    for name_ in ("authorization", "accept", "user-agent", "x-stainless-retry-count"):
        assert headers_of(direct.requests[1]).get(name_) == headers_of(sdk.requests[1]).get(name_)


@pytest.mark.parametrize("path", PATHS)
def test_a_redirect_to_another_origin_drops_the_key(path: str) -> None:
    async def main() -> tuple[Outcome, list[Received]]:
        async with RawServer(ok("speech")) as other:
            there = other.url + "/elsewhere/v1/audio/speech"
            got = await attempt(
                "speech", [redirect(b"307 Temporary Redirect", there)], path=path, max_retries=0
            )
            return got, list(other.requests)

    got, elsewhere = asyncio.run(main())
    assert got.error is None, got.error
    check_success(got.items)
    (request,) = elsewhere
    assert request.request_line == b"POST /elsewhere/v1/audio/speech HTTP/1.1"
    assert request.header("authorization") is None  # never sent to another origin
    assert KEY.encode() not in request.head
    assert request.body == got.requests[0].body  # a 307 keeps the body


@pytest.mark.parametrize(
    "reply",
    [
        redirect(b"300 Multiple Choices", None),
        redirect(b"307 Temporary Redirect", None),
        redirect(b"302 Found", None),
        response(b"", status=b"304 Not Modified"),
    ],
    ids=["300", "307-without-location", "302-without-location", "304"],
)
def test_a_3xx_that_cannot_be_followed_is_a_status_error(reply: bytes) -> None:
    direct, sdk = both("speech", [reply, ok("speech")], max_retries=2)
    status = int(reply.split(b" ")[1])
    for got in (direct, sdk):
        assert isinstance(got.error, cv.BadRequestError), (got.path, got.error)
        assert got.error.status_code == status
        assert len(got.requests) == 1  # a 3xx is not retried
        assert got.items == []
    assert_alike(direct, sdk)


def test_a_redirect_loop_ends_as_the_sdks_does() -> None:
    loop = redirect(b"307 Temporary Redirect", "/v1/audio/speech")
    direct, sdk = both("speech", [loop] * 30, max_retries=0)
    for got in (direct, sdk):
        assert isinstance(got.error, cv.APIConnectionError), (got.path, got.error)
        assert "redirect" in str(got.error).lower()
    assert len(direct.requests) == len(sdk.requests) == 21  # the request, then 20 redirects


#: A request to a URL, redirected: (URL, status, Location). Origins other than loopback
#: ones, and https, cannot be served by a test: the redirected request is compared with
#: the one the SDK's HTTP client builds (``_build_redirect_request``) instead.
FROM = "http://api.example.test/v1/audio/speech"
SECURE = "https://api.example.test/v1/audio/speech"
REDIRECTED: dict[str, tuple[str, int, str]] = {
    "307-same-origin": (FROM, 307, "/v1/x"),
    "308-relative": (FROM, 308, "x?q=1"),
    "307-explicit-default-port": (FROM, 307, "http://api.example.test:80/v1/x"),
    "307-other-host": (FROM, 307, "http://other.example.test/v1/x"),
    "307-other-port": (FROM, 307, "http://api.example.test:8080/v1/x"),
    "303-to-get": (FROM, 303, "/v1/x"),
    "302-other-host-to-get": (FROM, 302, "http://other.example.test/x"),
    "301-to-get": (FROM, 301, "https://other.example.test/x"),
    "308-http-to-https-upgrade": (FROM, 308, "https://api.example.test/v1/x"),
    "307-http-to-https-other-port": (FROM, 307, "https://api.example.test:8443/v1/x"),
    "307-https-to-http-downgrade": (SECURE, 307, "http://api.example.test/v1/x"),
    "307-https-same-origin": (SECURE, 307, "/v1/x"),
    "307-from-8080-to-https": (
        "http://api.example.test:8080/v1/audio/speech",
        307,
        "https://api.example.test/v1/x",
    ),
}


@pytest.mark.parametrize("name", list(REDIRECTED))
def test_a_redirected_request_is_built_as_the_sdks_http_client_builds_it(name: str) -> None:
    url, status, location = REDIRECTED[name]
    request = httpx.Request(
        "POST",
        url,
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        content=b'{"input":"hi"}',
    )
    answer = httpx.Response(status, headers={"Location": location}, request=request)
    expected = httpx.AsyncClient()._build_redirect_request(request, answer)
    got = _redirected(request, answer)
    assert got is not None
    assert (got.method, str(got.url)) == (expected.method, str(expected.url))
    assert got.headers.get("authorization") == expected.headers.get("authorization")
    assert got.headers["host"] == expected.headers["host"]
    assert got.read() == expected.read()  # the body, or none after a change to GET
    assert got.extensions == request.extensions  # the client's timeout


def test_a_redirect_of_a_reply_request_keeps_its_stream() -> None:
    reply = redirect(b"307 Temporary Redirect", "/v2/chat/completions")
    direct, sdk = both("chat", [reply, ok("chat")], max_retries=0)
    for got in (direct, sdk):
        assert got.error is None
        check_success(got.items)
        assert got.requests[1].request_line == b"POST /v2/chat/completions HTTP/1.1"
        assert json.loads(got.requests[1].body)["stream"] is True


# ----------------------------------------------------------------------- transcription


SSE_HEAD = CHUNKED_HEAD.replace(b"\r\n", b"\r\nContent-Type: text/event-stream\r\n", 1)
DELTA = b'data: {"type":"transcript.text.delta","delta":"Hello "}\n\n'
ERROR_EVENT = (
    b'data: {"type":"error","error":{"message":"The audio is corrupt.",'
    b'"type":"invalid_request_error","code":"bad_audio"}}\n\n'
)


def sse(body: bytes) -> bytes:
    return response(body, headers=b"Content-Type: text/event-stream\r\n")


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


#: replies (for one attempt), the error after max_retries=0 and =1, attempts sent per try.
STREAM_FAULTS: dict[str, tuple[list[Reply], type[cv.ChainvoiceError], int]] = {
    "cut-before-any-text": ([then_close(SSE_HEAD)], cv.APIConnectionError, 1),
    "cut-after-text": ([then_close(SSE_HEAD + chunk(DELTA))], cv.StreamInterruptedError, 1),
    "error-event": ([sse(ERROR_EVENT)], cv.BadRequestError, 0),
    "error-event-after-text": ([sse(DELTA + ERROR_EVENT)], cv.StreamInterruptedError, 0),
    "stall-after-text": ([then_stall(SSE_HEAD + chunk(DELTA))], cv.StreamTimeoutError, 1),
    "ended-before-done": ([sse(DELTA)], cv.StreamInterruptedError, 1),
}


@pytest.mark.parametrize("max_retries", [0, 1])
@pytest.mark.parametrize("name", list(STREAM_FAULTS))
def test_transcription_stream_faults_match_the_sdk(name: str, max_retries: int) -> None:
    """Faults inside the streamed body: the stream's errors, raised as the SDK's stream
    raises them (so the same retries, with the text delivered replayed)."""
    replies, expected, resent = STREAM_FAULTS[name]
    direct, sdk = both(
        "transcription", replies * (max_retries + 1), max_retries=max_retries, timeout=0.15
    )
    for got in (direct, sdk):
        assert type(got.error) is expected, (got.path, got.error)
        assert len(got.requests) == 1 + resent * max_retries, got.path
    assert direct.error is not None and sdk.error is not None
    assert type(direct.error.__cause__) is type(sdk.error.__cause__)
    if name.startswith("error-event"):
        assert "The audio is corrupt." in str(direct.error)
        assert direct.message == sdk.message


@pytest.mark.parametrize("reads", ["one-read", "later-read"])
def test_nothing_after_done_in_a_transcription_stream_is_read(reads: str) -> None:
    """``data: [DONE]`` ends the stream, as the SDK's stream ends it: the error event after
    it is never seen, whether it came in the same network read or a later one."""
    done = TRANSCRIPTION_SSE + b"data: [DONE]\n\n"
    reply: Reply = sse(done + ERROR_EVENT)
    if reads == "later-read":

        async def later(writer: asyncio.StreamWriter) -> None:
            writer.write(SSE_HEAD + chunk(done))
            await writer.drain()
            await asyncio.sleep(0.05)  # read on its own first
            writer.write(chunk(ERROR_EVENT) + b"0\r\n\r\n")
            await writer.drain()

        reply = later
    direct, sdk = both("transcription", [reply], max_retries=0)
    for got in (direct, sdk):
        assert got.error is None, (got.path, got.error)
        check_success(got.items)


def test_a_replayed_transcription_stream_passes_on_only_new_text(posts: list[str]) -> None:
    replies: list[Reply] = [then_close(SSE_HEAD + chunk(DELTA)), ok("transcription")]
    direct, sdk = both("transcription", replies, max_retries=1)
    for got in (direct, sdk):
        assert got.error is None and len(got.requests) == 2
        check_success(got.items)  # "Hello " once, then "there."
    assert posts == ["audio/transcriptions", "audio/transcriptions"]  # sent again
    assert direct.retry_counts == [b"0", b"0"]  # a new request, not the client's retry


def test_transcribe_streams_direct_and_a_non_streamed_one_goes_through_the_sdk(
    posts: list[str],
) -> None:
    async def main() -> tuple[list[cv.Transcript], list[Received]]:
        plain = response(b'{"text":"Hello there."}', headers=b"Content-Type: application/json\r\n")
        async with RawServer(ok("transcription"), plain) as server:
            url = server.url + "/v1"
            streamed = AsyncOpenAITranscriber(base_url=url, api_key=KEY, stream=True)
            whole = AsyncOpenAITranscriber(base_url=url, api_key=KEY, stream=False)
            try:
                assert streamed._setup.direct is not None and whole._setup.direct is not None
                return [
                    await streamed.transcribe(AUDIO),
                    await whole.transcribe(AUDIO),
                ], list(server.requests)
            finally:
                await streamed._setup.client.close()
                await whole._setup.client.close()

    transcripts, requests = asyncio.run(main())
    assert [t.text for t in transcripts] == [REPLY_TEXT, REPLY_TEXT]
    assert posts == ["audio/transcriptions"]  # only the streamed one went direct
    assert fields_of(requests[0])["stream"] == ["true"]
    assert "stream" not in fields_of(requests[1])
    assert requests[1].header("x-stainless-raw-response") is None
    assert requests[1].header("x-stainless-read-timeout") is not None  # the SDK's own


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize(
    ("kind", "status"),
    [("speech", s) for s in (400, 401, 404, 429, 500)]
    + [("responses", 401), ("chat", 400), ("transcription", 401)],
)
def test_a_key_echoed_by_the_server_never_reaches_an_error(kind: str, status: int) -> None:
    message = f"Incorrect API key provided: {KEY}. You can find your key elsewhere."
    echo = b"x-echo: %s\r\n" % KEY.encode()
    direct, sdk = both(kind, [error(status, message, headers=echo)], max_retries=0)
    for got in (direct, sdk):
        assert isinstance(got.error, cv.APIError) and got.error.status_code == status
        assert "Incorrect API key provided" in str(got.error)  # the message is kept
        assert "[redacted]" in str(got.error)
        for exc in _causes(got.error):
            for text in (str(exc), repr(exc), repr(exc.args)):
                assert KEY not in text and "SECRET" not in text, (got.path, exc)
            for name in ("message", "body"):
                assert KEY not in repr(getattr(exc, name, "")), (got.path, exc, name)
        shown = "".join(traceback.format_exception(got.error))
        assert KEY not in shown and "SECRET" not in shown
    assert direct.message == sdk.message


def test_no_key_in_the_reprs_of_the_stage_and_its_sender() -> None:
    stage = build("responses", "http://127.0.0.1:9/v1", path="direct")
    try:
        for thing in (stage, stage._setup, stage._setup.direct, stage._setup.context):
            assert KEY not in repr(thing) and KEY not in str(thing)
    finally:
        asyncio.run(stage._setup.client.close())


# -------------------------------------------------------------------------- end to end


REPLY = "Here is a first sentence. And here is a second one."


@pytest.fixture
def served(make_fake_openai: MakeFake) -> Iterator[tuple[FakeOpenAI, Any]]:
    """A spec-checked fake that accepts only ``KEY``, served on a loopback port."""
    fake = make_fake_openai(reply=REPLY, api_key=KEY)
    with fake.serve() as server:
        yield fake, server


def check_turn(turn: cv.Turn, fake: FakeOpenAI, api: str, posts: list[str], skip: int = 0) -> None:
    """A whole turn from speech, every request of it sent direct and answered 200."""
    requests = fake.requests[skip:]
    assert turn.transcript is not None and turn.transcript.text == fake.default_transcript
    assert turn.reply.text == REPLY
    assert turn.reply.audio is not None and turn.reply.audio.duration > 1.0
    reply_path = "responses" if api == "responses" else "chat/completions"
    assert posts[:2] == ["audio/transcriptions", reply_path]
    assert len(posts) > 2 and set(posts[2:]) == {"audio/speech"}
    endpoints = [r.endpoint for r in requests]
    assert endpoints[:2] == ["transcriptions", "responses" if api == "responses" else "chat"]
    assert set(endpoints[2:]) == {"speech"} and len(endpoints) == len(posts)
    for request in requests:
        assert request.progress.status_code == 200
        assert request.progress.status == "completed"
        assert request.headers["user-agent"].startswith("AsyncOpenAI/Python")
    assert fake.violations == ()


@pytest.mark.parametrize("api", ["responses", "chat"])
def test_chain_turns_over_the_served_fake(
    served: tuple[FakeOpenAI, Any], api: str, posts: list[str]
) -> None:
    """``AsyncChain.openai``, then ``Chain.openai`` (async stages on its own loop)."""
    fake, server = served

    async def main() -> cv.Turn:
        chain = cv.AsyncChain.openai(
            base_url=server.base_url,
            api_key=KEY,
            timeout=5.0,
            max_retries=0,
            responder_options={"api": api},
        )
        client = chain.responder._setup.client
        assert chain.transcriber.streams
        assert chain.responder._setup.direct is not None
        try:
            return await chain.run(noise())
        finally:
            await client.close()
            await chain.aclose()

    check_turn(asyncio.run(main()), fake, api, posts)
    posts.clear()
    already = len(fake.requests)

    chain = cv.Chain.openai(
        base_url=server.base_url, api_key=KEY, timeout=5.0, responder_options={"api": api}
    )
    assert type(chain.synthesizer) is AsyncOpenAISynthesizer
    assert chain.synthesizer._setup.direct is not None
    try:
        turn = chain.run(noise())
    finally:
        chain._runner().submit(chain.responder._setup.client.close()).result(5)
        chain.close()
    assert len(fake.requests) - already == len(posts)
    check_turn(turn, fake, api, posts, skip=already)


def test_wrong_key_over_the_served_fake_is_an_authentication_error(
    served: tuple[FakeOpenAI, Any], posts: list[str]
) -> None:
    fake, server = served

    async def main() -> cv.StageError:
        chain = cv.AsyncChain.openai(base_url=server.base_url, api_key="sk-wrong-0123456789")
        try:
            await chain.run(text="Say something.")
        except cv.StageError as exc:
            return exc
        finally:
            await chain.responder._setup.client.close()
            await chain.aclose()
        raise AssertionError("the turn did not fail")

    got = asyncio.run(main())
    assert isinstance(got.error, cv.AuthenticationError) and got.error.status_code == 401
    assert posts == ["responses"] and len(fake.requests) == 1  # 401 is not retried
    assert "sk-wrong-0123456789" not in str(got)


def test_a_scripted_429_over_the_served_fake_is_retried(
    served: tuple[FakeOpenAI, Any], posts: list[str]
) -> None:
    fake, server = served
    fake.fail("speech", 429, retry_after=0.05)
    fake.fail("responses", 503, retry_after_ms=10)

    async def main() -> cv.Turn:
        chain = cv.AsyncChain.openai(base_url=server.base_url, api_key=KEY, timeout=5.0)
        try:
            return await chain.run(text="Say something.")
        finally:
            await chain.responder._setup.client.close()
            await chain.aclose()

    turn = asyncio.run(main())
    assert turn.reply.text == REPLY and turn.reply.audio is not None
    statuses = [(r.endpoint, r.progress.status_code) for r in fake.requests]
    assert statuses[:2] == [("responses", 503), ("responses", 200)]
    assert ("speech", 429) in statuses
    # The 429 was sent again by the same post: one post per sentence, one request more.
    assert posts.count("responses") == 1 and len(fake.requests_to("responses")) == 2
    assert len(fake.requests_to("speech")) == posts.count("audio/speech") + 1
    assert [r.headers.get("x-stainless-retry-count") for r in fake.requests[:2]] == ["0", "1"]
    assert fake.pending_faults == ()


# ---------------------------------------------------------------------------- cancel


@pytest.mark.parametrize("kind", ["speech", "responses", "transcription"])
@pytest.mark.parametrize("path", PATHS)
def test_cancel_while_waiting_to_retry(kind: str, path: str, posts: list[str]) -> None:
    async def main() -> tuple[float, int, list[int]]:
        async with RawServer(error(429, headers=b"Retry-After: 5\r\n"), ok(kind)) as server:
            stage = build(kind, server.url + "/v1", path=path, max_retries=2)
            task = asyncio.create_task(consume(stage))
            try:
                await wait_until(lambda: len(server.requests) == 1)
                await asyncio.sleep(0.1)
                assert not task.done()  # waiting the 5 s
                start = time.monotonic()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                took = time.monotonic() - start
                await asyncio.sleep(0.1)  # nothing is sent after the cancel
                return took, len(server.requests), list(server.reset_by_client)
            finally:
                await stage._setup.client.close()

    took, requests, resets = asyncio.run(main())
    assert took < 0.2
    assert requests == 1
    assert resets == []
    assert posts == ([] if path == "sdk" else [ENDPOINTS[kind]])
