"""LeanTransport: the HTTP/1.1 transport under the async OpenAI clients chainvoice builds.

Most tests script the raw bytes a server sends (``asyncio.start_server`` in the test's own
loop) and send requests through ``httpx.AsyncClient(transport=LeanTransport())``; the last
ones run whole turns over real sockets against ``FakeOpenAI.serve()``.

Every test checks at teardown that no socket was left open (a ``ResourceWarning`` after a
garbage collection); the tests that change event loops without closing the connections
first leave them to the garbage collector (see
``test_connections_of_a_loop_are_closed_before_it_ends``) and ask for ``tolerate_leaks``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import hashlib
import shutil
import socket
import ssl
import subprocess
import threading
import time
import traceback
import warnings
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import chainvoice as cv
from chainvoice.openai import _transport
from chainvoice.openai._httpx import httpx
from chainvoice.openai._transport import (
    LeanTransport,
    close_idle_connections,
    lean_transport_applies,
)
from chainvoice.testing import FakeOpenAI

MakeFake = Callable[..., FakeOpenAI]
KEY = "sk-transport-test-0123456789SECRET"
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


# ------------------------------------------------------------------------------ leak check


@dataclass
class LeakCheck:
    tolerated: bool = False


@pytest.fixture(autouse=True)
def _no_socket_left_open() -> Iterator[LeakCheck]:
    """Fail a test that leaves a socket or an asyncio transport open (found by the GC).

    Such a leak would otherwise surface as a ``ResourceWarning`` in whatever test the
    garbage collector happens to run in.
    """
    check = LeakCheck()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        yield check
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    for w in caught:
        if not issubclass(w.category, ResourceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if not check.tolerated:
        assert not leaks, leaks


@pytest.fixture
def tolerate_leaks(_no_socket_left_open: LeakCheck) -> None:
    """For tests that leave a closed loop's connections to the garbage collector."""
    _no_socket_left_open.tolerated = True


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.delenv("CHAINVOICE_HTTP", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


# ----------------------------------------------------------------------------- raw server


@dataclass
class Received:
    """A request as the server read it."""

    head: bytes
    raw_body: bytes  # as sent (chunked framing included)
    body: bytes  # decoded
    connection: int  # 1-based number of the connection it came on

    @property
    def request_line(self) -> bytes:
        return self.head.split(b"\r\n", 1)[0]

    def header(self, name: str) -> bytes | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower().encode():
                return value.strip()
        return None


async def read_request(reader: asyncio.StreamReader) -> Received | None:
    """Read one request (head, then a Content-Length or chunked body); None at EOF."""
    try:
        head = (await reader.readuntil(b"\r\n\r\n"))[:-4]
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    request = Received(head, b"", b"", 0)
    if (request.header("transfer-encoding") or b"").lower() == b"chunked":
        raw, body = [], []
        while True:
            line = await reader.readuntil(b"\r\n")
            raw.append(line)
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while True:
                    trailer = await reader.readuntil(b"\r\n")
                    raw.append(trailer)
                    if trailer == b"\r\n":
                        break
                break
            data = await reader.readexactly(size + 2)
            raw.append(data)
            body.append(data[:-2])
        request.raw_body, request.body = b"".join(raw), b"".join(body)
    elif request.header("content-length"):
        length = int(request.header("content-length") or b"0")
        request.raw_body = request.body = await reader.readexactly(length)
    return request


Reply = bytes | Callable[[asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A loopback server answering each request with the next scripted reply, in order.

    A reply is raw bytes, or an async function of the connection's writer (for tiny
    writes, stalls and closes). Connections are kept open between requests unless a
    reply closes them.
    """

    def __init__(
        self,
        *replies: Reply,
        read: bool = True,
        early: Callable[[asyncio.StreamWriter], Awaitable[None]] | None = None,
    ) -> None:
        self.replies: deque[Reply] = deque(replies)
        self.read = read
        self.early = early
        self.requests: list[Received] = []
        self.connections = 0
        self.closed_by_client: list[int] = []
        self.reset_by_client: list[int] = []  # gone while the server was still writing
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(writer)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connections += 1
        number = self.connections
        try:
            if self.early is not None:  # answer after the head, then read on to the end
                await reader.readuntil(b"\r\n\r\n")
                await self.early(writer)
                while await reader.read(1 << 20):
                    pass
                return
            if not self.read:  # a server that never reads (flow control, write timeouts)
                await asyncio.Event().wait()
            while True:
                request = await read_request(reader)
                if request is None:
                    self.closed_by_client.append(number)
                    break
                request.connection = number
                self.requests.append(request)
                if not self.replies:
                    break
                reply = self.replies.popleft()
                if isinstance(reply, bytes):
                    writer.write(reply)
                    await writer.drain()
                else:
                    await reply(writer)
                if writer.is_closing():
                    break
        except ConnectionError:
            self.reset_by_client.append(number)
        except asyncio.CancelledError:
            pass  # a cancelled handler ends normally: asyncio 3.11 logs cancelled ones
        finally:
            writer.close()

    async def wait_closed_by_client(self, number: int) -> None:
        await wait_until(lambda: number in self.closed_by_client)


async def wait_until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.005)


def response(
    body: bytes = b"ok", status: bytes = b"200 OK", headers: bytes = b"", version: bytes = b"1.1"
) -> bytes:
    """A whole response with a Content-Length."""
    return b"HTTP/%s %s\r\nContent-Length: %d\r\n%s\r\n%s" % (
        version,
        status,
        len(body),
        headers,
        body,
    )


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunked(*chunks: bytes, trailer: bytes = b"") -> bytes:
    """A whole chunked response, one chunk per argument."""
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
    return CHUNKED_HEAD + body + b"0\r\n" + trailer + b"\r\n"


async def _handed_over() -> None:
    """Let the client's loop iteration read what was just written, before writing more."""
    for _ in range(3):
        await asyncio.sleep(0)


def pieces(*parts: bytes) -> Callable[[asyncio.StreamWriter], Awaitable[None]]:
    """Write ``parts`` one at a time, each read by the client on its own."""

    async def reply(writer: asyncio.StreamWriter) -> None:
        for part in parts:
            writer.write(part)
            await writer.drain()
            await _handed_over()

    return reply


def byte_by_byte(data: bytes) -> Callable[[asyncio.StreamWriter], Awaitable[None]]:
    return pieces(*(data[i : i + 1] for i in range(len(data))))


def then_close(data: bytes = b"") -> Callable[[asyncio.StreamWriter], Awaitable[None]]:
    """Write ``data`` and close the connection."""

    async def reply(writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()
        writer.close()

    return reply


def then_stall(data: bytes = b"") -> Callable[[asyncio.StreamWriter], Awaitable[None]]:
    """Write ``data`` and never anything more (the server exits cancel it)."""

    async def reply(writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()
        await asyncio.Event().wait()

    return reply


def lean_client(timeout: float = 2.0, **kwargs: Any) -> httpx.AsyncClient:
    """An httpx client on LeanTransport; short timeouts so a broken test fails, not hangs."""
    return httpx.AsyncClient(transport=LeanTransport(), timeout=httpx.Timeout(timeout), **kwargs)


# -------------------------------------------------------------------------- response bodies


def test_content_length_body_and_response_metadata() -> None:
    async def main() -> None:
        headers = b"X-Thing:  a b \r\nContent-Type: text/plain\r\nSet-Cookie: a=1\r\n"
        headers += b"Location: http://h:1/p\r\nset-cookie: b=2\r\nX-Empty:\r\n"
        async with RawServer(response(b"hello", headers=headers)) as server, lean_client() as c:
            got = await c.get(server.url + "/x")
        assert got.status_code == 200 and got.content == b"hello"
        assert got.headers["x-thing"] == "a b" and got.headers["content-type"] == "text/plain"
        assert got.headers.get_list("set-cookie") == ["a=1", "b=2"]
        assert got.headers["location"] == "http://h:1/p" and got.headers["x-empty"] == ""
        assert got.reason_phrase == "OK" and got.http_version == "HTTP/1.1"

    asyncio.run(main())


def test_status_line_without_reason_phrase() -> None:
    async def main() -> None:
        async with (
            RawServer(b"HTTP/1.1 404\r\nContent-Length: 1\r\n\r\nx") as server,
            lean_client() as client,
        ):
            got = await client.get(server.url)
        assert got.status_code == 404 and got.content == b"x"

    asyncio.run(main())


CHUNKED_WITH_EXTRAS = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;foo=bar\r\nhello\r\n"
    b'1 ; name="quoted;semi"\r\n,\r\n'
    b"A\r\n the world\r\n"
    b"0\r\nX-Trailer: yes\r\nX-Other: 2\r\n\r\n"
)


def test_chunked_body_byte_by_byte_with_extensions_and_trailers() -> None:
    async def main() -> None:
        async with (
            RawServer(byte_by_byte(CHUNKED_WITH_EXTRAS), response(b"next")) as server,
            lean_client() as client,
        ):
            got = await client.get(server.url)
            assert got.content == b"hello, the world"
            # The trailers were read to their end: the connection serves the next one.
            assert (await client.get(server.url)).content == b"next"
        assert server.connections == 1

    asyncio.run(main())


def test_chunked_body_cut_at_every_position() -> None:
    """Two reads, split at each byte: size lines, CRLFs, trailers, all cut everywhere."""
    data = CHUNKED_WITH_EXTRAS
    cuts = range(1, len(data))

    async def main() -> None:
        replies = [pieces(data[:i], data[i:]) for i in cuts]
        async with RawServer(*replies) as server, lean_client() as client:
            for i in cuts:
                got = await client.get(server.url)
                assert got.content == b"hello, the world", i
        assert server.connections == 1  # each response ended exactly where it should

    asyncio.run(main())


def test_content_length_body_cut_at_every_position() -> None:
    data = response(b"0123456789", headers=b"X-A: 1\r\n")
    cuts = range(1, len(data))

    async def main() -> None:
        async with (
            RawServer(*[pieces(data[:i], data[i:]) for i in cuts]) as server,
            lean_client() as client,
        ):
            for i in cuts:
                assert (await client.get(server.url)).content == b"0123456789", i
        assert server.connections == 1

    asyncio.run(main())


def test_chunked_and_content_length_prefers_chunked() -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
    data += b"6\r\nchunks\r\n0\r\n\r\n"

    async def main() -> None:
        async with RawServer(data, response(b"after")) as server, lean_client() as client:
            assert (await client.get(server.url)).content == b"chunks"
            assert (await client.get(server.url)).content == b"after"
        assert server.connections == 1

    asyncio.run(main())


def test_read_until_close_body_is_not_reused() -> None:
    async def main() -> None:
        body = b"no length, no chunks: all until the close" * 100
        reply = then_close(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body)
        async with RawServer(reply, response(b"second")) as server, lean_client() as client:
            got = await client.get(server.url)
            assert got.content == body
            assert (await client.get(server.url)).content == b"second"
        assert server.connections == 2
        assert [r.connection for r in server.requests] == [1, 2]

    asyncio.run(main())


def test_read_until_close_body_in_pieces() -> None:
    async def main() -> None:
        reply = pieces(b"HTTP/1.1 200 OK\r\n\r\n", b"one ", b"two ", b"three")
        async with (
            RawServer(reply) as server,
            lean_client() as client,
            client.stream("GET", server.url) as streamed,
        ):
            parts: list[bytes] = []
            task = asyncio.create_task(_collect(streamed, parts))
            await asyncio.sleep(0.05)
            assert b"".join(parts) == b"one two three"  # as it arrived
            assert not task.done()  # the end is the close, not there yet
            server._writers[0].close()
            await task
        assert b"".join(parts) == b"one two three"

    asyncio.run(main())


async def _collect(streamed: httpx.Response, into: list[bytes]) -> None:
    async for part in streamed.aiter_raw():
        into.append(part)


@pytest.mark.parametrize(
    ("method", "reply"),
    [
        ("GET", b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"),
        ("GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
        ("GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 123\r\n\r\n"),
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"),
        ("HEAD", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
        ("HEAD", b"HTTP/1.1 200 OK\r\n\r\n"),
    ],
)
def test_no_body_for_204_304_and_head(method: str, reply: bytes) -> None:
    """No body is read (a wait for one would time out), and the connection stays good."""

    async def main() -> None:
        async with RawServer(reply, response(b"next")) as server, lean_client(0.5) as client:
            got = await client.request(method, server.url)
            assert got.content == b""
            assert (await client.get(server.url)).content == b"next"
        assert server.connections == 1
        assert server.requests[0].request_line.startswith(method.encode() + b" ")

    asyncio.run(main())


@pytest.mark.parametrize("split", [False, True], ids=["one-write", "two-writes"])
def test_interim_responses_are_skipped(split: bool) -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    final = response(b"final", status=b"201 Created", headers=b"X-Final: 1\r\n")
    reply = pieces(interim, final) if split else interim + final

    async def main() -> None:
        async with RawServer(reply, response(b"next")) as server, lean_client() as client:
            got = await client.post(server.url, content=b"data")
            assert (got.status_code, got.content) == (201, b"final")
            assert got.headers["x-final"] == "1" and "link" not in got.headers
            assert (await client.get(server.url)).content == b"next"
        assert server.connections == 1

    asyncio.run(main())


def test_connection_close_response_is_not_reused() -> None:
    """Not reused even though this server would keep the connection open."""

    async def main() -> None:
        first = response(b"bye", headers=b"Connection: close\r\n")
        async with RawServer(first, response(b"new")) as server, lean_client() as client:
            assert (await client.get(server.url)).content == b"bye"
            assert (await client.get(server.url)).content == b"new"
            await server.wait_closed_by_client(1)
        assert server.connections == 2
        assert [r.connection for r in server.requests] == [1, 2]

    asyncio.run(main())


@pytest.mark.parametrize(
    ("headers", "reused"),
    [(b"", False), (b"Connection: keep-alive\r\n", True), (b"Connection: Keep-Alive\r\n", True)],
)
def test_http10_response(headers: bytes, reused: bool) -> None:
    async def main() -> None:
        first = response(b"old", headers=headers, version=b"1.0")
        async with RawServer(first, response(b"new")) as server, lean_client() as client:
            got = await client.get(server.url)
            assert got.content == b"old" and got.http_version == "HTTP/1.0"
            assert (await client.get(server.url)).content == b"new"
        assert server.connections == (1 if reused else 2)

    asyncio.run(main())


def test_keep_alive_reuses_one_connection() -> None:
    async def main() -> None:
        replies = [response(b"%d" % i) for i in range(5)]
        async with RawServer(*replies) as server, lean_client() as client:
            for i in range(5):
                if i % 2:
                    got = await client.post(server.url + f"/{i}", content=b"x" * i)
                else:
                    got = await client.get(server.url + f"/{i}")
                assert got.content == b"%d" % i
        assert server.connections == 1
        assert [r.request_line.split()[1] for r in server.requests] == [
            b"/0",
            b"/1",
            b"/2",
            b"/3",
            b"/4",
        ]

    asyncio.run(main())


def test_concurrent_requests_each_get_their_own_answer() -> None:
    async def echo_path_later(writer: asyncio.StreamWriter) -> None:
        # Answers are not in request order: the path says how long to wait.
        request = server.requests[-1]
        number = int(request.request_line.split()[1][1:])
        await asyncio.sleep(0.002 * (10 - number))
        writer.write(response(b"answer %d" % number))
        await writer.drain()

    server = RawServer(*[echo_path_later] * 20)

    async def main() -> None:
        async with server, lean_client() as client:
            got = await asyncio.gather(*(client.get(server.url + f"/{i}") for i in range(10)))
            assert [g.content for g in got] == [b"answer %d" % i for i in range(10)]
            first = server.connections
            # Past the idle limit, the extra connections were closed, not kept.
            extra = 10 - _transport._MAX_IDLE
            await wait_until(lambda: len(server.closed_by_client) == extra)
            got = await asyncio.gather(*(client.get(server.url + f"/{i}") for i in range(10)))
            assert [g.content for g in got] == [b"answer %d" % i for i in range(10)]
        assert first == 10
        assert server.connections == 10 + extra  # the second round reused the idle ones

    asyncio.run(main())


def test_body_closed_early_is_not_reused() -> None:
    async def main() -> None:
        first = then_stall(response(b"0123456789" * 1000)[:-5000])
        async with RawServer(first, response(b"again")) as server, lean_client() as client:
            async with client.stream("GET", server.url) as streamed:
                async for part in streamed.aiter_raw():
                    assert part
                    break
            assert (await client.get(server.url)).content == b"again"
        assert server.connections == 2

    asyncio.run(main())


def test_body_not_read_at_all_is_not_reused() -> None:
    async def main() -> None:
        async with (
            RawServer(response(b"unread"), response(b"two")) as server,
            lean_client() as client,
        ):
            request = client.build_request("GET", server.url)
            streamed = await client.send(request, stream=True)
            await streamed.aclose()
            assert (await client.get(server.url)).content == b"two"
        assert server.connections == 2

    asyncio.run(main())


def test_large_response_bodies_arrive_whole() -> None:
    rng = np.random.default_rng(7)
    blob = rng.integers(0, 256, 5_000_000, dtype=np.uint8).tobytes()

    async def main() -> None:
        replies = [response(blob), chunked(blob[:3_000_000], blob[3_000_000:], b"end")]
        async with RawServer(*replies) as server, lean_client() as client:
            assert (await client.get(server.url)).content == blob
            assert (await client.get(server.url)).content == blob + b"end"
        assert server.connections == 1

    asyncio.run(main())


def test_compressed_body_is_decoded_above_the_transport() -> None:
    packed = gzip.compress(b"unpacked text " * 100)
    reply = response(packed, headers=b"Content-Encoding: gzip\r\n")

    async def main() -> None:
        async with RawServer(reply, reply) as server, lean_client() as client:
            assert (await client.get(server.url)).content == b"unpacked text " * 100
            async with client.stream("GET", server.url) as streamed:
                assert b"".join([p async for p in streamed.aiter_raw()]) == packed

    asyncio.run(main())


def test_localhost_name_and_direct_transport_use() -> None:
    """Without a client: no timeout extension, the transport used and closed directly."""

    async def main() -> None:
        async with RawServer(response(b"direct"), response(b"again")) as server:
            transport = LeanTransport()
            try:
                for expected in (b"direct", b"again"):
                    url = f"http://localhost:{server.port}/path?q=1"
                    got = await transport.handle_async_request(httpx.Request("GET", url))
                    assert got.status_code == 200 and await got.aread() == expected
                    await got.aclose()
            finally:
                await transport.aclose()
            await server.wait_closed_by_client(1)
        assert server.connections == 1
        assert server.requests[0].header("host") == f"localhost:{server.port}".encode()

    asyncio.run(main())


def test_idle_connections_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_transport, "_KEEPALIVE_EXPIRY", 0.05)

    async def main() -> None:
        replies = [response(b"1"), response(b"2"), response(b"3")]
        async with RawServer(*replies) as server, lean_client() as client:
            await client.get(server.url)
            await client.get(server.url)  # at once: reused
            await asyncio.sleep(0.1)
            assert (await client.get(server.url)).content == b"3"  # expired: a new one
            await server.wait_closed_by_client(1)  # and the old one closed
        assert [r.connection for r in server.requests] == [1, 1, 2]

    asyncio.run(main())


class SdkResponse:
    """What ``body_chunks`` takes: an SDK streaming response (``http_response``, ``iter_bytes``)."""

    def __init__(self, http_response: httpx.Response) -> None:
        self.http_response = http_response
        self.iter_bytes_calls: list[int | None] = []

    def iter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        self.iter_bytes_calls.append(chunk_size)
        return self.http_response.aiter_bytes(chunk_size)


def test_body_chunks_reads_the_transports_stream_directly() -> None:
    reply = pieces(CHUNKED_HEAD, b"3\r\none\r\n", b"3\r\ntwo\r\n0\r\n\r\n")

    async def main() -> None:
        async with RawServer(reply, response(b"next")) as server, lean_client() as client:
            request = client.build_request("GET", server.url)
            sdk = SdkResponse(await client.send(request, stream=True))
            got = [part async for part in _transport.body_chunks(sdk)]
            await sdk.http_response.aclose()
            assert got == [b"one", b"two"] and sdk.iter_bytes_calls == []
            assert (await client.get(server.url)).content == b"next"
        assert server.connections == 1

    asyncio.run(main())


@pytest.mark.parametrize("case", ["gzip", "chunk-size", "other-transport"])
def test_body_chunks_falls_back_to_the_sdk(case: str) -> None:
    body = b"0123456789" * 10
    headers = b"Content-Encoding: gzip\r\n" if case == "gzip" else b""
    reply = response(gzip.compress(body) if case == "gzip" else body, headers=headers)
    chunk_size = 30 if case == "chunk-size" else None

    async def main() -> None:
        async with RawServer(reply) as server:
            transport: httpx.AsyncBaseTransport = (
                httpx.AsyncHTTPTransport() if case == "other-transport" else LeanTransport()
            )
            async with httpx.AsyncClient(transport=transport, timeout=2.0) as client:
                request = client.build_request("GET", server.url)
                sdk = SdkResponse(await client.send(request, stream=True))
                got = [part async for part in _transport.body_chunks(sdk, chunk_size)]
                await sdk.http_response.aclose()
        assert b"".join(got) == body and sdk.iter_bytes_calls == [chunk_size]
        if chunk_size:
            assert {len(part) for part in got[:-1]} == {chunk_size}

    asyncio.run(main())


def test_closing_a_finished_response_late_keeps_the_connection_alive() -> None:
    """With ``body_chunks`` the SDK response is closed after the body ends, not at once."""

    async def main() -> None:
        replies = [response(b"a"), response(b"b"), response(b"c")]
        async with RawServer(*replies) as server, lean_client() as client:
            first = SdkResponse(
                await client.send(client.build_request("GET", server.url), stream=True)
            )
            assert [p async for p in _transport.body_chunks(first)] == [b"a"]
            # Another request (e.g. the next speech) takes the pooled connection...
            second = await client.send(client.build_request("GET", server.url), stream=True)
            await first.http_response.aclose()  # ...before the first response is closed.
            assert await second.aread() == b"b"
            await second.aclose()
            assert (await client.get(server.url)).content == b"c"
        assert [r.connection for r in server.requests] == [1, 1, 1]

    asyncio.run(main())


# ------------------------------------------------------------------------- malformed answers


MALFORMED = {
    "no-status-code": b"HTTP/1.1 OK\r\nContent-Length: 0\r\n\r\n",
    "not-http": b"FOO 200 OK\r\nContent-Length: 0\r\n\r\n",
    "http-2": b"HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n",
    "empty-status-line": b"\r\n\r\n",
    "header-without-colon": b"HTTP/1.1 200 OK\r\nNoColonHere\r\nContent-Length: 0\r\n\r\n",
    "folded-header": b"HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\nContent-Length: 0\r\n\r\n",
    "space-before-colon": b"HTTP/1.1 200 OK\r\nX-A : 1\r\nContent-Length: 0\r\n\r\n",
    "empty-header-name": b"HTTP/1.1 200 OK\r\n: 1\r\nContent-Length: 0\r\n\r\n",
    "bad-content-length": b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\nx",
    "negative-content-length": b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    "chunk-size-zz": CHUNKED_HEAD + b"zz\r\nhello\r\n0\r\n\r\n",
    "chunk-size-minus-one": CHUNKED_HEAD + b"-1\r\nhello\r\n0\r\n\r\n",
    "chunk-size-0x10": CHUNKED_HEAD + b"0x10\r\n0123456789abcdef\r\n0\r\n\r\n",
    "chunk-size-empty": CHUNKED_HEAD + b"\r\nhello\r\n0\r\n\r\n",
    "chunk-size-plus": CHUNKED_HEAD + b"+5\r\nhello\r\n0\r\n\r\n",
    "no-crlf-after-chunk": CHUNKED_HEAD + b"5\r\nhelloXX0\r\n\r\n",
    "long-chunk-size-line": CHUNKED_HEAD + b"5;" + b"x" * 5000,
}


@pytest.mark.parametrize(
    ("case", "split"),
    [
        pytest.param(case, split, id=f"{case}-{'byte-by-byte' if split else 'one-write'}")
        for case in sorted(MALFORMED)
        for split in (False, True)
        if not split or len(MALFORMED[case]) < 300
    ],
)
def test_malformed_response_is_a_protocol_error(case: str, split: bool) -> None:
    data = MALFORMED[case]

    async def main() -> None:
        first = byte_by_byte(data) if split else data
        async with RawServer(first, response(b"fine")) as server, lean_client() as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get(server.url)
            # The broken connection is never used again.
            assert (await client.get(server.url)).content == b"fine"
        assert server.connections == 2

    asyncio.run(main())


def test_malformed_chunk_after_good_data_keeps_what_came_before() -> None:
    data = CHUNKED_HEAD + b"5\r\nhello\r\nzz\r\n"

    async def main() -> None:
        async with RawServer(then_stall(data)) as server, lean_client() as client:
            parts: list[bytes] = []
            with pytest.raises(httpx.RemoteProtocolError):
                async with client.stream("GET", server.url) as streamed:
                    await _collect(streamed, parts)
        assert b"".join(parts) == b"hello"

    asyncio.run(main())


def test_head_over_64_kib_without_its_end_is_a_protocol_error() -> None:
    """Arriving in pieces, it fails once past 64 KiB, not at the read timeout."""
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(
        b"X-%05d: %s\r\n" % (i, b"v" * 60) for i in range(2000)
    )
    parts = [head[i : i + 8000] for i in range(0, len(head), 8000)]

    async def stall_after_pieces(writer: asyncio.StreamWriter) -> None:
        await pieces(*parts)(writer)
        await asyncio.Event().wait()

    async def main() -> None:
        async with RawServer(stall_after_pieces) as server, lean_client(5.0) as client:
            started = time.monotonic()
            with pytest.raises(httpx.RemoteProtocolError, match="too large"):
                await client.get(server.url)
            assert time.monotonic() - started < 2.0

    asyncio.run(main())


def test_head_under_64_kib_in_pieces_is_fine() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
    head += b"".join(b"X-%05d: %s\r\n" % (i, b"v" * 60) for i in range(900))  # ~62 KB
    data = head + b"\r\nok"
    assert 60 * 1024 < len(data) < 64 * 1024

    async def main() -> None:
        reply = pieces(*[data[i : i + 5000] for i in range(0, len(data), 5000)])
        async with RawServer(reply) as server, lean_client() as client:
            got = await client.get(server.url)
        assert got.content == b"ok" and got.headers["x-00899"] == "v" * 60

    asyncio.run(main())


def test_head_over_64_kib_is_refused_even_when_it_arrives_at_once() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
    head += b"".join(b"X-%05d: %s\r\n" % (i, b"v" * 60) for i in range(940))  # just over 64 KiB
    assert 64 * 1024 < len(head) < 68 * 1024

    async def main() -> None:
        async with RawServer(head + b"\r\nok") as server, lean_client() as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get(server.url)

    asyncio.run(main())


@pytest.mark.parametrize(
    "first",
    [
        response(b"ok") + b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil",
        chunked(b"ok") + b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil",
        response(b"ok") + b"junk",
    ],
    ids=["smuggled-response", "after-chunked", "junk"],
)
def test_bytes_after_a_whole_response(first: bytes) -> None:
    """The response stays good; the connection is dropped, never read from again."""

    async def main() -> None:
        async with RawServer(first, response(b"real")) as server, lean_client() as client:
            assert (await client.get(server.url)).content == b"ok"
            assert (await client.get(server.url)).content == b"real"
        assert server.connections == 2

    asyncio.run(main())


def test_bytes_sent_on_an_idle_connection_drop_it() -> None:
    async def junk_later(writer: asyncio.StreamWriter) -> None:
        writer.write(response(b"ok"))
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil")

    async def main() -> None:
        async with RawServer(junk_later, response(b"real")) as server, lean_client() as client:
            assert (await client.get(server.url)).content == b"ok"
            await asyncio.sleep(0.1)
            assert (await client.get(server.url)).content == b"real"
        assert server.connections == 2

    asyncio.run(main())


@pytest.mark.parametrize(
    "sent",
    [
        response(b"0123456789")[:-5],
        chunked(b"0123456789")[:-12],
        chunked(b"0123456789")[:-5],  # all the data, not the last chunk
        chunked(b"0123456789")[:-2],  # inside the trailers
        b"HTTP/1.1 200 OK\r\nContent-Le",
    ],
    ids=["content-length", "chunked-data", "before-last-chunk", "trailer", "in-head"],
)
def test_server_closes_mid_response(sent: bytes) -> None:
    async def main() -> None:
        async with (
            RawServer(then_close(sent), response(b"next")) as server,
            lean_client() as client,
        ):
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get(server.url)
            assert (await client.get(server.url)).content == b"next"
        assert len(server.requests) == 2  # not sent again

    asyncio.run(main())


def test_server_closes_before_any_response_on_a_fresh_connection() -> None:
    async def main() -> None:
        async with RawServer(then_close(), response(b"next")) as server, lean_client() as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.post(server.url, content=b"once")
            assert (await client.get(server.url)).content == b"next"
        # A fresh connection that got no answer is not a stale one: no second try.
        assert [r.body for r in server.requests] == [b"once", b""]

    asyncio.run(main())


# ---------------------------------------------------------------------------- request bytes


def test_request_line_host_headers_and_body() -> None:
    async def main() -> None:
        async with RawServer(response(), response()) as server, lean_client() as client:
            await client.get(
                server.url + "/v1/a%20b/c?x=1&y=%2F&z",
                headers={"X-Custom-Header": "Value 1"},
            )
            await client.post(server.url + "/upload", content=b"\x00body\r\n\r\nbytes")
        get, post = server.requests
        assert get.request_line == b"GET /v1/a%20b/c?x=1&y=%2F&z HTTP/1.1"
        assert get.header("host") == f"127.0.0.1:{server.port}".encode()
        assert b"\r\nX-Custom-Header: Value 1" in get.head  # the case as given
        assert get.header("content-length") is None and get.body == b""
        assert post.request_line == b"POST /upload HTTP/1.1"
        assert post.header("content-length") == b"14"
        assert post.body == b"\x00body\r\n\r\nbytes"
        assert get.head.count(b"\r\nHost:") + get.head.count(b"\r\nhost:") == 1

    asyncio.run(main())


def test_chunked_request_body_from_an_async_generator() -> None:
    async def parts() -> AsyncIterator[bytes]:
        for part in (b"first ", b"", b"second ", b"third"):
            yield part

    async def nothing() -> AsyncIterator[bytes]:
        return
        yield b""  # pragma: no cover

    async def main() -> None:
        async with RawServer(response(), response()) as server, lean_client() as client:
            await client.post(server.url, content=parts())
            await client.post(server.url, content=nothing())
        full, empty = server.requests
        assert full.header("transfer-encoding") == b"chunked"
        assert full.header("content-length") is None
        assert full.body == b"first second third"
        assert full.raw_body.endswith(b"0\r\n\r\n")
        assert empty.header("transfer-encoding") == b"chunked"
        assert empty.raw_body == b"0\r\n\r\n" and empty.body == b""
        assert server.connections == 1  # the framing ended where the server expected

    asyncio.run(main())


def test_large_upload_is_received_whole() -> None:
    """30 MB: more than the socket buffers hold, so the transport waits for the drain."""
    rng = np.random.default_rng(3)
    blob = rng.integers(0, 256, 30_000_000, dtype=np.uint8).tobytes()

    async def digest(writer: asyncio.StreamWriter) -> None:
        got = server.requests[-1].body
        writer.write(response(b"%d %s" % (len(got), hashlib.sha256(got).hexdigest().encode())))
        await writer.drain()

    server = RawServer(digest)

    async def main() -> None:
        async with server, lean_client(10.0) as client:
            got = await client.post(server.url, content=blob)
        assert got.content == b"%d %s" % (len(blob), hashlib.sha256(blob).hexdigest().encode())

    asyncio.run(main())


async def answer_early_then_drain(writer: asyncio.StreamWriter) -> None:
    """Answer 413 before the body is read, and half-close (then the server reads on)."""
    reply = response(
        b"too large", status=b"413 Payload Too Large", headers=b"Connection: close\r\n"
    )
    writer.write(reply)
    await writer.drain()
    writer.write_eof()


def test_early_answer_to_a_large_upload_with_a_lingering_close() -> None:
    async def main() -> None:
        server = RawServer(early=answer_early_then_drain)
        async with server, lean_client(5.0) as client:
            request = client.build_request("POST", server.url, content=b"x" * 30_000_000)
            got = await client.send(request, stream=True)
            await asyncio.sleep(0.2)  # the upload ends, the server closes
            assert got.status_code == 413 and await got.aread() == b"too large"
            await got.aclose()

    asyncio.run(main())


async def half_close_without_answer(writer: asyncio.StreamWriter) -> None:
    writer.write_eof()


def test_server_half_closing_without_an_answer_during_a_large_upload() -> None:
    async def main() -> None:
        server = RawServer(early=half_close_without_answer)
        async with server, lean_client(5.0) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.post(server.url, content=b"x" * 30_000_000)

    asyncio.run(main())


# ------------------------------------------------------------------- stale kept-alive connections


def test_idle_connection_the_server_closed_is_replaced() -> None:
    async def main() -> None:
        async with (
            RawServer(then_close(response(b"one")), response(b"two")) as server,
            lean_client() as client,
        ):
            assert (await client.get(server.url)).content == b"one"
            await asyncio.sleep(0.05)  # the close reaches the idle connection
            assert (await client.get(server.url)).content == b"two"
        assert server.connections == 2

    asyncio.run(main())


def test_connection_the_server_closes_after_answering_is_replaced_at_once() -> None:
    """No pause: the close may or may not have reached the client; either way it works."""

    async def main() -> None:
        replies = [then_close(response(b"one")), response(b"two")] * 5
        async with RawServer(*replies) as server, lean_client() as client:
            for _ in range(5):
                assert (await client.get(server.url)).content == b"one"
                assert (await client.get(server.url)).content == b"two"
        # Closed after each "one": one, (two, one) x 4, two.
        assert server.connections == 6
        assert len(server.requests) == 10  # none sent twice to the server

    asyncio.run(main())


def test_kept_alive_connection_closed_as_it_is_reused_is_retried_once() -> None:
    """The server reads the second request, then closes without a word: sent again, anew."""

    async def main() -> None:
        replies = [response(b"one"), then_close(), response(b"two")]
        async with RawServer(*replies) as server, lean_client() as client:
            assert (await client.get(server.url)).content == b"one"
            assert (await client.post(server.url, content=b"again")).content == b"two"
        assert [(r.connection, r.body) for r in server.requests] == [
            (1, b""),
            (1, b"again"),
            (2, b"again"),
        ]

    asyncio.run(main())


def test_the_retry_on_a_fresh_connection_is_not_retried() -> None:
    async def main() -> None:
        replies = [response(b"one"), then_close(), then_close(), response(b"three")]
        async with RawServer(*replies) as server, lean_client() as client:
            assert (await client.get(server.url)).content == b"one"
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get(server.url + "/two")
            assert (await client.get(server.url)).content == b"three"
        assert [r.connection for r in server.requests] == [1, 1, 2, 3]

    asyncio.run(main())


def test_kept_alive_connection_closed_after_part_of_an_answer_is_not_retried() -> None:
    async def main() -> None:
        replies = [response(b"one"), then_close(b"HTTP/1.1 200 OK\r\n")]
        async with RawServer(*replies) as server, lean_client() as client:
            assert (await client.get(server.url)).content == b"one"
            with pytest.raises(httpx.RemoteProtocolError):
                await client.post(server.url, content=b"not twice")
        assert len(server.requests) == 2

    asyncio.run(main())


def test_read_timeout_on_a_kept_alive_connection_is_not_retried() -> None:
    async def main() -> None:
        replies = [response(b"one"), then_stall()]
        async with RawServer(*replies) as server, lean_client(0.2) as client:
            assert (await client.get(server.url)).content == b"one"
            with pytest.raises(httpx.ReadTimeout):
                await client.post(server.url, content=b"not twice")
        assert len(server.requests) == 2

    asyncio.run(main())


# ------------------------------------------------------------------------------------ timeouts


def test_read_timeout_waiting_for_the_head() -> None:
    async def main() -> None:
        async with (
            RawServer(then_stall(b"HTTP/1.1 200 OK\r\n")) as server,
            lean_client(0.2) as client,
        ):
            started = time.monotonic()
            with pytest.raises(httpx.ReadTimeout):
                await client.get(server.url)
            assert 0.15 < time.monotonic() - started < 1.5

    asyncio.run(main())


@pytest.mark.parametrize(
    "sent",
    [response(b"0123456789")[:-5], chunked(b"0123456789")[:-12]],
    ids=["content-length", "chunked"],
)
def test_read_timeout_in_the_middle_of_the_body(sent: bytes) -> None:
    async def main() -> None:
        async with (
            RawServer(then_stall(sent), response(b"next")) as server,
            lean_client(0.2) as client,
        ):
            async with client.stream("GET", server.url) as streamed:
                assert streamed.status_code == 200
                parts: list[bytes] = []
                started = time.monotonic()
                with pytest.raises(httpx.ReadTimeout):
                    await _collect(streamed, parts)
                assert 0.15 < time.monotonic() - started < 1.5
            assert b"".join(parts) == b"01234"
            assert (await client.get(server.url)).content == b"next"
        assert server.connections == 2

    asyncio.run(main())


def test_read_timeout_is_per_read_not_for_the_whole_body() -> None:
    async def dribble(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n")
        for byte in b"slowly":
            await asyncio.sleep(0.06)
            writer.write(bytes([byte]))

    async def main() -> None:
        async with RawServer(dribble) as server, lean_client(0.2) as client:
            started = time.monotonic()
            assert (await client.get(server.url)).content == b"slowly"
            assert time.monotonic() - started > 0.3  # longer than the timeout, in all

    asyncio.run(main())


def test_read_timeout_on_a_reused_connection_counts_from_its_own_reads() -> None:
    async def dribble(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n")
        for byte in b"abc":
            await asyncio.sleep(0.08)
            writer.write(bytes([byte]))

    async def main() -> None:
        replies = [dribble, then_stall(response(b"0123456789")[:-5]), response(b"last")]
        async with RawServer(*replies) as server, lean_client(0.2) as client:
            assert (await client.get(server.url)).content == b"abc"
            async with client.stream("GET", server.url) as streamed:
                started = time.monotonic()
                with pytest.raises(httpx.ReadTimeout):
                    await streamed.aread()
                assert 0.15 < time.monotonic() - started < 1.5
            assert (await client.get(server.url)).content == b"last"
        assert [r.connection for r in server.requests] == [1, 1, 2]

    asyncio.run(main())


def test_connect_timeout() -> None:
    """A listener whose accept queue is full drops new SYNs: the connect hangs."""
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(4):
            filler = socket.socket()
            fillers.append(filler)
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
        time.sleep(0.02)

        async def main() -> tuple[BaseException, float]:
            timeout = httpx.Timeout(1.0, connect=0.2)
            async with httpx.AsyncClient(transport=LeanTransport(), timeout=timeout) as client:
                started = time.monotonic()
                try:
                    await client.get(f"http://127.0.0.1:{port}/")
                except httpx.TransportError as exc:
                    return exc, time.monotonic() - started
            raise AssertionError("no error")

        error, elapsed = asyncio.run(main())
        if isinstance(error, httpx.ReadTimeout):
            pytest.skip("the accept queue could not be filled on this system")
        assert isinstance(error, httpx.ConnectTimeout), error
        assert 0.15 < elapsed < 0.9
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_write_timeout_when_the_server_does_not_read() -> None:
    async def main() -> None:
        async with RawServer(read=False) as server:
            timeout = httpx.Timeout(5.0, write=0.2)
            async with httpx.AsyncClient(transport=LeanTransport(), timeout=timeout) as client:
                started = time.monotonic()
                with pytest.raises(httpx.WriteTimeout):
                    await client.post(server.url, content=b"x" * 30_000_000)
                assert time.monotonic() - started < 2.0

    asyncio.run(main())


def test_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: refused

        async def main() -> None:
            async with lean_client() as client:
                with pytest.raises(httpx.ConnectError, match=str(port)):
                    await client.get(f"http://127.0.0.1:{port}/")

        asyncio.run(main())


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/file", "ws://127.0.0.1/socket"])
def test_unsupported_scheme(url: str) -> None:
    async def main() -> None:
        transport = LeanTransport()
        with pytest.raises(httpx.UnsupportedProtocol):
            await transport.handle_async_request(httpx.Request("GET", url))
        async with lean_client() as client:
            with pytest.raises(httpx.UnsupportedProtocol):
                await client.get(url)

    asyncio.run(main())


def test_cancelled_request_drops_its_connection() -> None:
    async def main() -> None:
        async with RawServer(then_stall(), response(b"after")) as server, lean_client() as client:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.get(server.url), 0.05)
            assert (await client.get(server.url)).content == b"after"
        assert server.connections == 2

    asyncio.run(main())


def test_closing_the_client_closes_idle_connections() -> None:
    async def main() -> None:
        async with RawServer(response(), response()) as server:
            async with lean_client() as client:
                await asyncio.gather(client.get(server.url), client.get(server.url))
                assert server.closed_by_client == []
            await server.wait_closed_by_client(1)
            await server.wait_closed_by_client(2)

    asyncio.run(main())


# ------------------------------------------------------------------------------------------ TLS


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (made with the openssl command)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl command to make a certificate")
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class TlsServer(RawServer):
    def __init__(self, cert: tuple[Path, Path], *replies: Reply) -> None:
        super().__init__(*replies)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(*cert)
        self.context.set_alpn_protocols(["h2", "http/1.1"])
        self.alpn: list[str | None] = []

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def __aenter__(self) -> TlsServer:
        self._server = await asyncio.start_server(
            self._handle_tls, "127.0.0.1", 0, ssl=self.context
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle_tls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.alpn.append(writer.get_extra_info("ssl_object").selected_alpn_protocol())
        await self._handle(reader, writer)


def test_https_with_the_sdk_certificate_settings(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))

    async def main() -> None:
        async with (
            TlsServer(certificate, response(b"one"), response(b"two")) as server,
            lean_client() as client,
        ):
            assert (await client.get(server.url + "/a")).content == b"one"
            assert (await client.get(server.url + "/b")).content == b"two"
        assert server.connections == 1
        assert server.alpn == ["http/1.1"]  # never h2, which the transport does not speak

    asyncio.run(main())


def test_https_with_a_given_context(certificate: tuple[Path, Path]) -> None:
    context = ssl.create_default_context(cafile=str(certificate[0]))

    async def main() -> None:
        async with TlsServer(certificate, response(b"mine")) as server:
            transport = LeanTransport(ssl_context=context)
            async with httpx.AsyncClient(transport=transport, timeout=2.0) as client:
                assert (await client.get(server.url)).content == b"mine"

    asyncio.run(main())


def test_https_with_an_untrusted_certificate_is_a_connect_error(
    certificate: tuple[Path, Path],
) -> None:
    async def main() -> None:
        async with TlsServer(certificate) as server, lean_client() as client:
            with pytest.raises(httpx.ConnectError, match=r"(?i)certificate"):
                await client.get(server.url)

    asyncio.run(main())


# ---------------------------------------------------------------------------- event loops


class ThreadedServer:
    """A RawServer on its own loop in a thread, for clients that change loops."""

    def __init__(self, *replies: Reply) -> None:
        self.raw = RawServer(*replies)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> RawServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.raw.__aenter__(), self.loop).result(5)
        return self.raw

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self.raw.__aexit__(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def test_one_client_on_two_event_loops_one_after_the_other(tolerate_leaks: None) -> None:
    with ThreadedServer(response(b"first"), response(b"second"), response(b"third")) as server:
        client = lean_client()

        async def get() -> bytes:
            return (await client.get(server.url)).content

        async def get_and_close() -> bytes:
            try:
                return await get()
            finally:
                await client.aclose()

        assert asyncio.run(get()) == b"first"
        assert asyncio.run(get()) == b"second"  # not on the first loop's connection
        assert asyncio.run(get_and_close()) == b"third"
        assert [r.connection for r in server.requests] == [1, 2, 3]


def test_connections_of_a_loop_are_closed_before_it_ends(_no_socket_left_open: LeakCheck) -> None:
    """close_idle_connections() (AsyncChain.aclose and Chain.close call it) leaves no socket.

    Without it, a connection left idle when its loop closes stays open until garbage
    collection (a closed loop cannot close it): a known limit for raw clients.
    """
    _no_socket_left_open.tolerated = True  # checked here instead
    with ThreadedServer(response(b"first"), response(b"second")) as server:
        client = lean_client()

        async def get() -> bytes:
            try:
                return (await client.get(server.url)).content
            finally:
                close_idle_connections()

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            assert asyncio.run(get()) == b"first"
            assert asyncio.run(get()) == b"second"
            deadline = time.monotonic() + 0.3
            while 1 not in server.closed_by_client and time.monotonic() < deadline:
                time.sleep(0.01)
            closed = 1 in server.closed_by_client  # closed by the transport, not the GC
            gc.collect()
        leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
        assert closed and not leaks, leaks


# ------------------------------------------------------------------- lean_transport_applies


def test_lean_transport_applies_by_default() -> None:
    assert lean_transport_applies()
    assert lean_transport_applies("https://api.openai.com/v1")
    assert lean_transport_applies("http://127.0.0.1:8000/v1")


@pytest.mark.parametrize("value", ["httpx", "HTTPX", " httpx ", "sdk", "default"])
def test_chainvoice_http_switch(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CHAINVOICE_HTTP", value)
    assert not lean_transport_applies()
    assert not lean_transport_applies("https://api.openai.com/v1")
    assert not lean_transport_applies("http://127.0.0.1:8000/v1")


def test_chainvoice_http_other_values_keep_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAINVOICE_HTTP", "lean")
    assert lean_transport_applies("https://api.openai.com/v1")
    monkeypatch.setenv("CHAINVOICE_HTTP", "")
    assert lean_transport_applies("https://api.openai.com/v1")


@pytest.mark.parametrize("name", ["HTTPS_PROXY", "https_proxy"])
def test_https_proxy_covers_https_urls_only(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "http://proxy.example:3128")
    assert not lean_transport_applies("https://api.openai.com/v1")
    assert not lean_transport_applies("HTTPS://API.OPENAI.COM/v1")
    assert not lean_transport_applies()  # OpenAI's own URL is https
    assert lean_transport_applies("http://127.0.0.1:8000/v1")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:8000/v1")
    assert lean_transport_applies()  # the default URL is then OPENAI_BASE_URL
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    assert not lean_transport_applies("http://127.0.0.1:8000/v1")


@pytest.mark.parametrize("name", ["HTTP_PROXY", "http_proxy"])
def test_http_proxy_covers_http_urls_only(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "http://proxy.example:3128")
    assert not lean_transport_applies("http://127.0.0.1:8000/v1")
    assert lean_transport_applies("https://api.openai.com/v1")


@pytest.mark.parametrize("name", ["ALL_PROXY", "all_proxy"])
def test_all_proxy_covers_every_url(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "socks5://proxy.example:1080")
    assert not lean_transport_applies("http://127.0.0.1:8000/v1")
    assert not lean_transport_applies("https://api.openai.com/v1")


def test_no_proxy_alone_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "*")
    assert lean_transport_applies("https://api.openai.com/v1")


# ---------------------------------------------------------------- end to end, FakeOpenAI served


def speech(seconds: float = 1.0, rate: int = 16000) -> cv.Audio:
    rng = np.random.default_rng(1)
    return cv.Audio(rng.normal(0, 0.1, int(seconds * rate)).astype(np.float32), rate)


def transport_of(stage: Any) -> Any:
    """The httpx transport under a stage's openai client."""
    return stage._setup.client._client._transport


@pytest.fixture
def served(make_fake_openai: MakeFake) -> Iterator[tuple[FakeOpenAI, Any]]:
    fake = make_fake_openai(replies=["First answer.", "Second answer.", "Third answer."])
    with fake.serve() as server:
        yield fake, server


def test_async_chain_over_the_served_fake_keeps_its_connections(
    served: tuple[FakeOpenAI, Any],
) -> None:
    fake, server = served

    async def main() -> list[cv.Turn]:
        chain = cv.AsyncChain.openai(base_url=server.base_url, api_key=KEY, timeout=5.0)
        client = chain.transcriber._setup.client
        assert chain.responder._setup.client is client is chain.synthesizer._setup.client
        assert isinstance(transport_of(chain.transcriber), LeanTransport)
        try:
            return [await chain.run(speech()) for _ in range(3)]
        finally:
            await client.close()

    turns = asyncio.run(main())
    assert [t.transcript.text for t in turns if t.transcript] == [fake.default_transcript] * 3
    assert [t.reply.text for t in turns] == ["First answer.", "Second answer.", "Third answer."]
    assert all(t.reply.audio is not None and t.reply.audio.duration > 0 for t in turns)
    assert len(fake.requests) >= 9
    assert server.connections <= 3 < len(fake.requests)  # kept alive across turns
    assert all(KEY not in str(dict(r.headers)) for r in fake.requests)


def test_sync_chain_uses_async_stages_on_its_loop_and_survives_close(
    served: tuple[FakeOpenAI, Any], tolerate_leaks: None
) -> None:
    fake, server = served
    chain = cv.Chain.openai(base_url=server.base_url, api_key=KEY, timeout=5.0)
    for stage in (chain.transcriber, chain.responder, chain.synthesizer):
        assert type(stage).__name__.startswith("Async"), stage
    assert isinstance(transport_of(chain.transcriber), LeanTransport)
    try:
        first, second = chain.run(speech()), chain.run(speech())
        connections = server.connections
        requests = len(fake.requests)
        assert connections < requests
        chain.close()  # its loop ends; the next turn runs on a new one
        third = chain.run(speech())
        assert server.connections > connections  # new connections for the new loop
        assert len(fake.requests) - requests >= 3
    finally:
        client = chain.transcriber._setup.client
        chain._runner().submit(client.close()).result(5)
        chain.close()
    assert [t.reply.text for t in (first, second, third)] == [
        "First answer.",
        "Second answer.",
        "Third answer.",
    ]
    assert third.reply.audio is not None


def test_chainvoice_http_httpx_builds_sync_stages_that_work(
    served: tuple[FakeOpenAI, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, server = served
    monkeypatch.setenv("CHAINVOICE_HTTP", "httpx")
    chain = cv.Chain.openai(base_url=server.base_url, api_key=KEY, timeout=5.0)
    try:
        for stage in (chain.transcriber, chain.responder, chain.synthesizer):
            assert not type(stage).__name__.startswith("Async"), stage
        assert not isinstance(transport_of(chain.transcriber), LeanTransport)
        turn = chain.run(speech())
        assert turn.reply.text == "First answer." and turn.reply.audio is not None
        assert [r.endpoint for r in fake.requests] == ["transcriptions", "responses", "speech"]
    finally:
        chain.transcriber._setup.client.close()
        chain.close()
    # AsyncChain builds async stages still, over the SDK's own stack.
    async_chain = cv.AsyncChain.openai(base_url=server.base_url, api_key=KEY)
    assert not isinstance(transport_of(async_chain.transcriber), LeanTransport)
    asyncio.run(async_chain.transcriber._setup.client.close())


def test_a_proxy_for_the_scheme_builds_the_sdk_stack(
    served: tuple[FakeOpenAI, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, server = served
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # not for http://127.0.0.1
    chain = cv.Chain.openai(base_url=server.base_url, api_key=KEY)
    assert type(chain.transcriber).__name__.startswith("Async")
    assert isinstance(transport_of(chain.transcriber), LeanTransport)
    chain._runner().submit(chain.transcriber._setup.client.close()).result(5)
    chain.close()
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    chain = cv.Chain.openai(base_url=server.base_url, api_key=KEY)
    assert not type(chain.transcriber).__name__.startswith("Async")
    chain.transcriber._setup.client.close()
    chain.close()


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo = [error]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
        todo += [e for e in (getattr(current, "error", None),) if isinstance(e, BaseException)]


Fault = Callable[[FakeOpenAI], None]
FAULTS: dict[str, tuple[Fault, str, type[cv.APIError]]] = {
    "500": (lambda f: f.fail("responses", 500), "respond", cv.ServerError),
    "429": (
        lambda f: f.fail("transcriptions", 429, retry_after=3),
        "transcribe",
        cv.RateLimitError,
    ),
    "reply-cut": (
        lambda f: f.cut("responses", after_events=8),
        "respond",
        cv.StreamInterruptedError,
    ),
    "speech-cut": (
        lambda f: f.cut("speech", after_bytes=5001),
        "synthesize",
        cv.StreamInterruptedError,
    ),
    "transcription-cut": (
        lambda f: f.cut("transcriptions", after_events=2),
        "transcribe",
        cv.StreamInterruptedError,
    ),
}


async def _failed_turn(chain: cv.AsyncChain, client: Any) -> cv.StageError:
    try:
        await chain.run(speech())
    except cv.StageError as exc:
        return exc
    finally:
        await client.close()
    raise AssertionError("the turn did not fail")


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_scripted_faults_surface_as_with_the_in_process_fake(
    make_fake_openai: MakeFake, fault: str
) -> None:
    script, stage, error_type = FAULTS[fault]
    replies = ["One two three four five six seven eight nine ten."]
    in_process = make_fake_openai(replies=replies)
    script(in_process)

    async def local() -> cv.StageError:
        client = in_process.async_client(api_key=KEY, max_retries=0)
        return await _failed_turn(cv.AsyncChain.openai(client=client), client)

    expected = asyncio.run(local())

    fake = make_fake_openai(replies=replies)
    script(fake)
    with fake.serve() as server:

        async def served() -> cv.StageError:
            chain = cv.AsyncChain.openai(
                base_url=server.base_url, api_key=KEY, max_retries=0, timeout=5.0
            )
            assert isinstance(transport_of(chain.transcriber), LeanTransport)
            return await _failed_turn(chain, chain.transcriber._setup.client)

        got = asyncio.run(served())

    for error in (expected, got):
        assert error.stage == stage and type(error.error) is error_type, error
    # The same words, but for where the server is.
    assert str(got).replace(server.base_url, "URL") == str(expected).replace(
        in_process.base_url, "URL"
    )
    assert getattr(got.error, "status_code", None) == getattr(expected.error, "status_code", None)
    if isinstance(got.error, cv.RateLimitError):
        assert got.error.retry_after == expected.error.retry_after == 3.0  # type: ignore[attr-defined]
    # What arrived before the fault is the same too.
    assert got.partial is not None and expected.partial is not None
    assert got.partial.transcript == expected.partial.transcript
    assert got.partial.reply.text == expected.partial.reply.text
    got_audio, expected_audio = got.partial.reply.audio, expected.partial.reply.audio
    assert (got_audio and got_audio.frames) == (expected_audio and expected_audio.frames)
    shown = "".join(traceback.format_exception(got))
    for error in _causes(got):
        assert KEY not in str(error) and KEY not in repr(error), error
    assert KEY not in shown and "SECRET" not in shown
