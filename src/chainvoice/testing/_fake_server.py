""":class:`FakeOpenAI` behind a real HTTP server on the loopback interface.

For code that must be tested over a socket: an HTTP stack of its own, another process,
another language. Bodies are sent with chunked transfer encoding, one chunk per piece the
fake produces, so streamed answers (server-sent events, speech) really arrive bit by bit.
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from chainvoice.openai._httpx import httpx

if TYPE_CHECKING:
    from types import TracebackType

    from chainvoice.testing._fake_openai import FakeOpenAI

__all__ = ["FakeOpenAIHandler", "FakeOpenAIServer"]

#: Response headers the HTTP layer here decides itself.
_HOP_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


class FakeOpenAIServer(ThreadingHTTPServer):
    """A loopback HTTP server answering with a :class:`FakeOpenAI` (a context manager).

    Made by :meth:`FakeOpenAI.serve`. Its :attr:`base_url` is also set on the fake, so the
    fake's recorded requests and its clients agree. ``connections`` counts the TCP
    connections accepted (to check that a client keeps its connections alive).
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(
        self,
        fake: FakeOpenAI,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        handler: type[FakeOpenAIHandler] | None = None,
    ) -> None:
        super().__init__((host, port), handler or FakeOpenAIHandler)
        self.fake = fake
        self.connections = 0
        self.lock = threading.Lock()
        bound_port = self.server_address[1]
        self.base_url = f"http://{host}:{bound_port}/v1"
        fake.base_url = self.base_url
        self._thread = threading.Thread(
            target=self.serve_forever, name="fake-openai-server", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving and close the listening socket (idempotent)."""
        if self._thread.is_alive():
            self.shutdown()
            self._thread.join()
        self.server_close()

    def __enter__(self) -> FakeOpenAIServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class FakeOpenAIHandler(BaseHTTPRequestHandler):
    """Hands each request to the server's fake; subclass it to answer more paths."""

    protocol_version = "HTTP/1.1"
    server: FakeOpenAIServer

    def setup(self) -> None:
        """Count the connection; send small chunks at once (no Nagle delay)."""
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.lock:
            self.server.connections += 1

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing: a line per request would cost more than the requests."""

    def read_body(self) -> bytes:
        """The request's body (``Content-Length`` or chunked)."""
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        """Answer a GET with the fake."""
        self.forward(b"")

    def do_POST(self) -> None:
        """Answer a POST with the fake."""
        self.forward(self.read_body())

    def forward(self, body: bytes) -> None:
        """Answer with what the fake answers to this request."""
        host = self.headers.get("host", "127.0.0.1")
        headers = [(k, v) for k, v in self.headers.items() if k.lower() != "transfer-encoding"]
        request = httpx.Request(
            self.command, f"http://{host}{self.path}", headers=headers, content=body
        )
        response = self.server.fake.handle_request(request)
        self.send_response(response.status_code)
        for name, value in response.headers.items():
            if name.lower() not in _HOP_HEADERS:
                self.send_header(name, value)
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        try:
            for data in response.iter_raw():
                if data:
                    # One write per chunk: size line, data and CRLF leave together.
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away (e.g. a stream it closed)
        except Exception:  # a scripted cut or stall: the connection ends mid-body
            self.close_connection = True
        finally:
            response.close()

    def send_plain(self, status: int, body: bytes, content_type: str) -> None:
        """A small complete answer with a ``Content-Length``."""
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
