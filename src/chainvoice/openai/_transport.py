"""A lean HTTP/1.1 transport for the async OpenAI clients chainvoice builds itself.

A voice turn is a few hundred small reads: the reply's server-sent events and the speech's
audio chunks. The SDK's default HTTP stack spends most of a turn's CPU on them, in layers
(a connection pool, an async compatibility layer, a pure-Python HTTP state machine) that
this module replaces with one :class:`asyncio.Protocol` per connection: bytes are parsed
where they arrive and a waiting reader is woken once per read.

It plugs into the SDK as an httpx transport, so everything above it (request building,
authentication, the SDK's retries, status errors, decompression) is the SDK's own.

What it does: HTTP/1.1 over TCP or TLS (the SDK's certificate settings), keep-alive
connections reused per host and per event loop (a connection belongs to the loop that
opened it, so a client can outlive a loop), ``Content-Length``, chunked and
read-to-close bodies, the connect/read/write timeouts of every request, flow control on
large uploads, and gathered reads: a reader may have the socket left unread for a moment
so that a trickling body arrives in fewer, larger reads (``hold`` in :func:`body_chunks`).
What it does not: proxies and HTTP/2. :func:`lean_transport_applies` says
when it is used: only where no proxy is configured in the environment, and never when
``CHAINVOICE_HTTP=httpx`` is set (an escape hatch to the SDK's default stack). A client
passed in by the user is never changed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import ssl
import threading
import time
import urllib.request
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

from chainvoice._pace import next_tick
from chainvoice.openai._httpx import httpx

__all__ = [
    "LeanBody",
    "LeanTransport",
    "body_chunks",
    "close_idle_connections",
    "lean_transport_applies",
]

#: Longest status line plus headers accepted (the real API sends about 1 KB).
_MAX_HEAD = 64 * 1024
#: Idle connections kept per host and loop.
_MAX_IDLE = 8
#: How long an idle connection is kept (OpenAI's servers close them after about 90 s).
_KEEPALIVE_EXPIRY = 30.0
#: Bytes handed to the reader per wake-up, at most (it gets what is there, up to this).
_READ_LIMIT = 1 << 20
_ENV_SWITCH = "CHAINVOICE_HTTP"
#: The response extension that holds this transport's body stream (httpx wraps the stream).
_BODY_EXTENSION = "chainvoice.lean_body"
_HEX_DIGITS = b"0123456789abcdefABCDEF"


def lean_transport_applies(base_url: str | None = None) -> bool:
    """Whether chainvoice's own transport carries new async clients for ``base_url``.

    Not when ``CHAINVOICE_HTTP=httpx`` is set, nor when the environment configures a proxy
    for the URL's scheme (``HTTPS_PROXY``, ``ALL_PROXY``, ...; the SDK's default stack
    honours them, this transport does not). ``base_url`` defaults to ``OPENAI_BASE_URL``,
    then to OpenAI's (https).
    """
    choice = os.environ.get(_ENV_SWITCH, "").strip().lower()
    if choice in ("httpx", "sdk", "default"):
        return False
    url = (base_url or os.environ.get("OPENAI_BASE_URL") or "https://").strip().lower()
    scheme = "http" if url.startswith("http://") else "https"
    proxies = urllib.request.getproxies()
    return not (proxies.get(scheme) or proxies.get("all"))


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: the response parser runs in ``data_received``."""

    def __init__(self, key: tuple[str, str, int], loop: asyncio.AbstractEventLoop) -> None:
        self.key = key
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.reused = False
        self._buffer = bytearray()
        self._write_paused = False
        self._drained: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._resume: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._reset()

    def _reset(self) -> None:
        """Ready for the next response."""
        self.busy = False
        self._buffer.clear()
        self.head: asyncio.Future[tuple[int, bytes, list[tuple[bytes, bytes]], bool]] | None
        self.head = None
        self.head_only = False
        self.chunks: collections.deque[bytes] = collections.deque()
        self.waiter: asyncio.Future[None] | None = None
        self.error: BaseException | None = None
        self.done = False
        self.received_any = False
        self.keep_alive = True
        self._mode = "head"  # head, length, chunk-size, chunk-data, chunk-end, trailer, close
        self._remaining = 0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's do not derive from asyncio.Transport).
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.busy and not self.done:
            if self._mode == "close" and exc is None:
                self._finish()
            elif not self.received_any:
                self._fail(
                    httpx.RemoteProtocolError("Server disconnected without sending a response.")
                )
            else:
                self._fail(
                    httpx.RemoteProtocolError(
                        "peer closed connection without sending complete message body"
                        + (f" ({exc})" if exc else "")
                    )
                )
        if self._drained is not None and not self._drained.done():
            self._drained.set_exception(ConnectionResetError("connection lost while sending"))

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost follows

    def data_received(self, data: bytes) -> None:
        if not self.busy or self.done:
            # Bytes on an idle connection: the server is not following HTTP; never reuse.
            self.keep_alive = False
            if self.transport is not None:
                self.transport.close()
            return
        self.received_any = True
        try:
            self._parse(data)
        except httpx.RemoteProtocolError as exc:
            self.keep_alive = False
            if not self._whole():  # else: junk after a whole response, which stays good
                self._fail(exc)
            if self.transport is not None:
                self.transport.close()

    # the parser

    def _parse(self, data: bytes) -> None:
        if self._buffer:  # the rest of an earlier read (a header or size line cut short)
            self._buffer += data
            data = bytes(self._buffer)
            self._buffer.clear()
        pos, end = 0, len(data)
        while pos < end and not self.done:
            mode = self._mode
            if mode == "length" or mode == "chunk-data":
                take = min(end - pos, self._remaining)
                self._body(data if take == end else data[pos : pos + take])
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    if mode == "length":
                        self._finish()
                    else:
                        self._mode = "chunk-end"
            elif mode == "chunk-end":
                if end - pos < 2:
                    break
                if data[pos : pos + 2] != b"\r\n":
                    self._protocol_error("chunk not followed by CRLF")
                pos += 2
                self._mode = "chunk-size"
            elif mode == "chunk-size":
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    if end - pos > 1024:
                        self._protocol_error("chunk size line too long")
                    break
                line = data[pos:eol].split(b";", 1)[0].strip()
                pos = eol + 2
                if not line or line.translate(None, _HEX_DIGITS):
                    self._protocol_error(f"bad chunk size {line[:20]!r}")
                self._remaining = int(line, 16)
                self._mode = "chunk-data" if self._remaining else "trailer"
            elif mode == "trailer":
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    break
                blank = eol == pos
                pos = eol + 2
                if blank:  # the empty line after the (usually absent) trailers
                    self._finish()
            elif mode == "close":
                self._body(data[pos:] if pos else data)
                pos = end
            else:  # head
                eoh = data.find(b"\r\n\r\n", pos)
                if (eoh if eoh >= 0 else end) - pos > _MAX_HEAD:
                    self._protocol_error("response headers too large")
                if eoh < 0:
                    break
                head = data[pos:eoh]
                pos = eoh + 4
                self._head(head)
        if pos < end:
            if self.done:
                self._protocol_error("bytes after the end of the response")
            self._buffer += data[pos:]

    def _whole(self) -> bool:
        """Whether the response was received whole."""
        return self.done and self.error is None

    def _protocol_error(self, what: str) -> Any:
        raise httpx.RemoteProtocolError(f"malformed HTTP response: {what}")

    def _head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            self._protocol_error(f"bad status line {lines[0][:60]!r}")
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else b""
        headers: list[tuple[bytes, bytes]] = []
        length: int | None = None
        chunked = False
        connection = b""
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip():
                self._protocol_error(f"bad header line {line[:60]!r}")
            value = value.strip()
            headers.append((name, value))
            lower = name.lower()
            if lower == b"content-length":
                if not value.isdigit():
                    self._protocol_error(f"bad Content-Length {value[:20]!r}")
                length = int(value)
            elif lower == b"transfer-encoding":
                chunked = value.lower().endswith(b"chunked")
            elif lower == b"connection":
                connection = value.lower()
        if 100 <= status < 200:  # interim (100 Continue): the real response follows
            return
        http10 = parts[0] == b"HTTP/1.0"
        self.keep_alive = b"close" not in connection and (not http10 or b"keep-alive" in connection)
        if self.head_only or status in (204, 304):
            self._mode = "length"
            self._remaining = 0
        elif chunked:
            self._mode = "chunk-size"
        elif length is not None:
            self._mode = "length"
            self._remaining = length
        else:
            self._mode = "close"
            self.keep_alive = False
        if self.head is not None and not self.head.done():
            self.head.set_result((status, reason, headers, http10))
        if self._mode == "length" and self._remaining == 0:
            self._finish()

    def _body(self, data: bytes) -> None:
        if data:
            self.chunks.append(data)
            self._wake()

    def _finish(self) -> None:
        self.done = True
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.done = True
        if self.head is not None and not self.head.done():
            self.head.set_exception(exc)
            self.head.exception()  # mark retrieved: the caller may be gone
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # used by the transport and the body stream

    def usable(self, loop: asyncio.AbstractEventLoop, now: float) -> bool:
        return (
            not self.closed
            and self.loop is loop
            and self.transport is not None
            and not self.transport.is_closing()
            and now - self.idle_since < _KEEPALIVE_EXPIRY
        )

    async def send(self, data: bytes, write_timeout: float | None) -> None:
        assert self.transport is not None
        if self.closed or self.transport.is_closing():
            raise httpx.WriteError("the connection was closed before the request was sent")
        self.transport.write(data)
        if self._write_paused:
            self._drained = self.loop.create_future()
            try:
                await asyncio.wait_for(self._drained, write_timeout)
            except asyncio.TimeoutError:
                raise httpx.WriteTimeout("timed out sending the request") from None
            except ConnectionError as exc:
                raise httpx.WriteError(str(exc)) from None
            finally:
                self._drained = None

    async def wait(self, read_timeout: float | None, start: float | None = None) -> None:
        """Until there is body data, the end, or an error.

        At most ``read_timeout`` seconds from ``start`` (loop time; default now).
        """
        waiter = self.waiter = self.loop.create_future()
        if read_timeout is not None:
            # One timer per connection, moved lazily: not one per read.
            self._deadline = (self.loop.time() if start is None else start) + read_timeout
            if self._timer is None:
                self._timer = self.loop.call_at(self._deadline, self._check_deadline)
        try:
            await waiter
        finally:
            self.waiter = None

    def hold(self, seconds: float) -> float:
        """Leave the socket unread for up to ``seconds``: the kernel gathers what arrives.

        Reading resumes on the loop clock's next multiple of ``seconds``, so that streams
        held alike (several speech requests and the reply at once) are read together; a
        timer resumes it, so the reader waits (:meth:`wait`) as for any read and wakes
        once, when the gathered bytes are in.

        Returns:
            The loop time at which reading resumes.
        """
        loop = self.loop
        now = loop.time()
        transport = self.transport
        if transport is None or self.closed or transport.is_closing():
            return now
        until = next_tick(seconds, now)
        transport.pause_reading()
        if self._resume is not None:
            self._resume.cancel()
        self._resume = loop.call_at(until, self._resume_reading)
        return until

    def _resume_reading(self) -> None:
        self._resume = None
        transport = self.transport
        if transport is not None and not self.closed and not transport.is_closing():
            transport.resume_reading()

    def _unhold(self) -> None:
        """Reading resumed now if a hold is pending."""
        if self._resume is not None:
            self._resume.cancel()
            self._resume_reading()

    def _check_deadline(self) -> None:
        self._timer = None
        waiter = self.waiter
        if waiter is None or waiter.done():
            return  # not waiting: the next wait arms a timer again
        if self.loop.time() >= self._deadline - 0.001:
            waiter.set_exception(httpx.ReadTimeout("timed out waiting for the server"))
        else:
            self._timer = self.loop.call_at(self._deadline, self._check_deadline)

    def stop_timer(self) -> None:
        self._unhold()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def abort(self) -> None:
        self.stop_timer()
        if self.transport is not None and not self.closed:
            # asyncio may have finished closing on its own (an EOF while sending), and
            # then abort() fails inside asyncio: the connection is gone either way.
            with contextlib.suppress(AttributeError, RuntimeError):
                self.transport.abort()
        self.closed = True


class LeanBody(httpx.AsyncByteStream):
    """A response body as it arrives; the connection goes back to the pool at its end.

    ``hold``, when set, is asked each time the reader has taken everything received: it
    answers how many seconds to leave the socket unread first (0 for none), so that what
    the server sends meanwhile arrives as one read.
    """

    def __init__(self, owner: LeanTransport, conn: _Connection, read_timeout: float | None):
        self._owner = owner
        self._conn = conn
        self._read_timeout = read_timeout
        self._released = False
        self.hold: Callable[[], float] | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        try:
            while True:
                if conn.chunks:
                    if len(conn.chunks) == 1:
                        yield conn.chunks.popleft()
                    else:
                        yield _take(conn.chunks)
                elif conn.error is not None:
                    raise conn.error
                elif conn.done:
                    break
                elif self.hold is not None and (seconds := self.hold()) > 0:
                    await conn.wait(self._read_timeout, conn.hold(seconds))
                else:
                    await conn.wait(self._read_timeout)
        except BaseException:
            await self.aclose()
            raise
        self._release()

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self._owner._release(self._conn)

    async def aclose(self) -> None:
        if self._released:  # read to its end: the connection may serve another request now
            return
        conn = self._conn
        if not (conn.done and conn.error is None and not conn.chunks):
            conn.keep_alive = False  # a body not read to its end: the connection is spent
        self._release()


def _take(chunks: collections.deque[bytes]) -> bytes:
    """Up to ``_READ_LIMIT`` bytes from the front of ``chunks``, joined."""
    parts = []
    size = 0
    while chunks and size < _READ_LIMIT:
        part = chunks.popleft()
        parts.append(part)
        size += len(part)
    return b"".join(parts)


class LeanTransport(httpx.AsyncBaseTransport):
    """An HTTP/1.1 keep-alive transport on asyncio protocols (see the module docstring).

    Args:
        ssl_context: For ``https``; by default the SDK's HTTP library's own (the same
            certificates, ``SSL_CERT_FILE``/``SSL_CERT_DIR`` honoured).
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._lock = threading.Lock()
        _TRANSPORTS.add(self)

    def close_idle(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close the idle connections that belong to ``loop`` (call it on that loop)."""
        with self._lock:
            mine = {key: [c for c in idle if c.loop is loop] for key, idle in self._idle.items()}
            for idle in self._idle.values():
                idle[:] = [c for c in idle if c.loop is not loop]
        for conns in mine.values():
            for conn in conns:
                _discard(conn)

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            context = httpx.create_ssl_context()
            context.set_alpn_protocols(["http/1.1"])
            self._ssl = context
        return self._ssl

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
        port = url.port or (443 if scheme == "https" else 80)
        key = (scheme, url.host, port)
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        body = await request.aread()
        head = [f"{request.method} ".encode("ascii"), url.raw_path, b" HTTP/1.1\r\n"]
        chunked = False
        for name, value in request.headers.raw:
            if name.lower() == b"transfer-encoding" and value.lower() == b"chunked":
                chunked = True
            head += (name, b": ", value, b"\r\n")
        head.append(b"\r\n")
        if chunked:  # the whole body is known now: one chunk and the end
            body = (b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)) if body else b"0\r\n\r\n"
        message = b"".join(head) + body

        for attempt in (0, 1):
            conn = await self._connection(key, timeouts.get("connect"), fresh=attempt > 0)
            conn.busy = True
            conn.head_only = request.method == "HEAD"
            conn.head = conn.loop.create_future()
            try:
                await conn.send(message, timeouts.get("write"))
                status, reason, headers, http10 = await _wait_head(conn, timeouts.get("read"))
            except httpx.TransportError as exc:
                conn.abort()
                # A kept-alive connection the server closed as we reused it: once, anew.
                stale = conn.reused and not conn.received_any
                if attempt == 0 and stale and not isinstance(exc, httpx.TimeoutException):
                    continue
                raise
            except BaseException:
                conn.abort()
                raise
            stream = LeanBody(self, conn, timeouts.get("read"))
            return httpx.Response(
                status,
                headers=headers,
                stream=stream,
                extensions={
                    "http_version": b"HTTP/1.0" if http10 else b"HTTP/1.1",
                    "reason_phrase": reason,
                    _BODY_EXTENSION: stream,
                },
            )
        raise AssertionError("unreachable")  # pragma: no cover

    async def _connection(
        self, key: tuple[str, str, int], connect_timeout: float | None, *, fresh: bool
    ) -> _Connection:
        loop = asyncio.get_running_loop()
        if not fresh:
            now = time.monotonic()
            with self._lock:
                idle = self._idle.get(key, [])
                while idle:
                    conn = idle.pop()
                    if conn.usable(loop, now):
                        conn.reused = True
                        return conn
                    _discard(conn)
        scheme, host, port = key
        conn = _Connection(key, loop)
        options: dict[str, Any] = {}
        if isinstance(loop, asyncio.BaseEventLoop):  # asyncio's own loops; not e.g. uvloop's
            options["happy_eyeballs_delay"] = 0.25
        try:
            await asyncio.wait_for(
                loop.create_connection(
                    lambda: conn,
                    host,
                    port,
                    ssl=self._ssl_context() if scheme == "https" else None,
                    server_hostname=host if scheme == "https" else None,
                    **options,
                ),
                connect_timeout,
            )
        except asyncio.TimeoutError:
            raise httpx.ConnectTimeout(f"timed out connecting to {host}:{port}") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from None
        return conn

    def _release(self, conn: _Connection) -> None:
        """A response is over: keep the connection for the next request, or close it."""
        reusable = conn.keep_alive and conn.done and conn.error is None and not conn.closed
        if not reusable:
            conn.abort()
            return
        conn.stop_timer()
        conn._reset()
        conn.idle_since = time.monotonic()
        with self._lock:
            idle = self._idle.setdefault(conn.key, [])
            idle.append(conn)
            while len(idle) > _MAX_IDLE:
                _discard(idle.pop(0))

    async def aclose(self) -> None:
        with self._lock:
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for conn in conns:
            _discard(conn)


async def _wait_head(
    conn: _Connection, read_timeout: float | None
) -> tuple[int, bytes, list[tuple[bytes, bytes]], bool]:
    assert conn.head is not None
    try:
        return await asyncio.wait_for(asyncio.shield(conn.head), read_timeout)
    except asyncio.TimeoutError:
        raise httpx.ReadTimeout("timed out waiting for the server's response") from None


_TRANSPORTS: weakref.WeakSet[LeanTransport] = weakref.WeakSet()


def close_idle_connections() -> None:
    """Close every idle connection of the running event loop, of every lean transport.

    For whoever is about to close the loop: its connections could not be closed later.
    """
    loop = asyncio.get_running_loop()
    for transport in list(_TRANSPORTS):
        transport.close_idle(loop)


def _discard(conn: _Connection) -> None:
    """Close a connection from any thread (it may belong to another, or a closed, loop)."""
    conn.closed = True
    transport = conn.transport
    if transport is None or transport.is_closing():
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is conn.loop:
        transport.close()
    elif not conn.loop.is_closed():
        with contextlib.suppress(RuntimeError):  # closed meanwhile
            conn.loop.call_soon_threadsafe(transport.close)


def body_chunks(
    response: Any, chunk_size: int | None = None, hold: Callable[[], float] | None = None
) -> AsyncIterator[bytes]:
    """The body of an SDK streaming response (``with_streaming_response``) as it arrives.

    Straight from this transport's stream when the body needs no decoding (no
    ``Content-Encoding``) and no re-chunking: the HTTP library's per-chunk layers are
    then skipped. Otherwise the SDK's ``iter_bytes``.

    Args:
        response: The SDK's streaming response.
        chunk_size: Bytes per chunk; ``None`` passes data on as it arrives.
        hold: Asked whenever everything received has been handed over: seconds to leave
            the socket unread before the next read, so that a trickling body arrives in
            fewer, larger reads. Only on this transport's own streams (see above).
    """
    http = getattr(response, "http_response", None)
    stream = getattr(http, "extensions", {}).get(_BODY_EXTENSION)
    if (
        chunk_size is None
        and isinstance(stream, LeanBody)
        and http is not None
        and http.headers.get("content-encoding", "identity").lower() in ("identity", "")
    ):
        stream.hold = hold
        return stream.__aiter__()
    chunks: AsyncIterator[bytes] = response.iter_bytes(chunk_size)
    return chunks
