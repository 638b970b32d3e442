"""A loopback OpenAI stand-in for the benchmarks: FakeOpenAI behind a real HTTP server.

Every scenario of ``bench/voice_turn.py`` (chainvoice, the plain openai SDK, the OpenAI
Agents SDK, pipecat) talks HTTP to this server through its ``base_url``, so all of them pay
the same connection, upload, chunked-transfer and parsing costs. The answers come from
:class:`chainvoice.testing.FakeOpenAI` (OpenAI's wire formats, checked requests) with the
delays of a :class:`~chainvoice.testing.LatencyProfile` read from a JSON file
(``bench/profile.json``); streamed bodies really arrive chunk by chunk over the socket, so
a client's time to first byte is real.

The server runs in its own process (``python bench/fake_server.py``), so that its work is
not counted in any scenario's CPU time. It prints one JSON line (``{"port": ...}``) when
it is ready, serves until its standard input closes (or SIGTERM), and also answers:

- ``GET /_bench/log?since=N``: the requests after the N-th, with their server-side times
  (``time.monotonic()``, the same clock in every process of the machine), for the
  per-stage breakdown of a turn;
- ``GET /_bench/health``: ``ok``.

A request the real API would refuse is answered as the real API would (HTTP 400) and is
logged to standard error with the reason; the server never stops on a bad request. With
``--spec`` the requests are also checked against OpenAI's OpenAPI schemas (the subset in
``tests/openapi``, needs ``jsonschema``), and what the check finds is logged, not refused.

Run: ``python bench/fake_server.py --profile bench/profile.json [--port 0]``.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from chainvoice.testing import FakeOpenAI, LatencyProfile

HERE = Path(__file__).resolve().parent

#: Response headers FakeOpenAI sets that the HTTP layer here decides itself.
_HOP_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})


def load_profile(path: Path) -> tuple[LatencyProfile, dict[str, Any]]:
    """The latency profile in ``path`` and the whole file's content.

    The file holds the six :class:`LatencyProfile` fields; keys starting with ``_`` are
    comments.
    """
    data = json.loads(path.read_text(encoding="utf-8"))
    fields = {k: float(v) for k, v in data.items() if not k.startswith("_")}
    return LatencyProfile(**fields), data


def load_script(path: Path) -> dict[str, str]:
    """The scripted transcript and reply (``bench/script.json``)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return {"transcript": str(data["transcript"]), "reply": str(data["reply"])}


class _SpecLogger:
    """Checks requests against the OpenAPI subset and logs what it finds (never refuses)."""

    def __init__(self) -> None:
        sys.path.insert(0, str(HERE.parent / "tests"))
        from openapi.validator import SpecValidator

        self._spec = SpecValidator.load()
        self.found: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, record: Any) -> list[str]:
        try:
            problems = self._spec.check_request(record)
        except Exception as exc:  # a validator bug must not stop the server
            problems = [f"validator error: {exc!r}"]
        for problem in problems:
            line = f"spec: request #{record.index} {record.route}: {problem}"
            with self._lock:
                self.found.append(line)
            print(line, file=sys.stderr, flush=True)
        return []


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], fake: FakeOpenAI) -> None:
        super().__init__(address, _Handler)
        self.fake = fake
        self.logged_violations = 0
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Small chunks must leave at once: no Nagle delay on streamed bodies.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would cost more than the requests themselves

    # -- requests ---------------------------------------------------------------------

    def _body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
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
        url = urlsplit(self.path)
        if url.path == "/_bench/health":
            self._send_plain(200, b"ok", "text/plain")
        elif url.path == "/_bench/log":
            since = int(parse_qs(url.query).get("since", ["0"])[0])
            self._send_plain(200, json.dumps(self._log(since)).encode(), "application/json")
        else:
            self._forward(b"")

    def do_POST(self) -> None:
        self._forward(self._body())

    def _log(self, since: int) -> list[dict[str, Any]]:
        out = []
        for record in self.server.fake.requests[since:]:
            params = record.params
            progress = record.progress
            out.append(
                {
                    "index": record.index,
                    "endpoint": record.endpoint,
                    "model": record.model,
                    "stream": record.stream,
                    "input_chars": len(str(params.get("input", "")))
                    if record.endpoint == "speech"
                    else None,
                    "status": progress.status,
                    "status_code": progress.status_code,
                    "received_at": progress.received_at,
                    "first_byte_at": progress.first_byte_at,
                    "finished_at": progress.finished_at,
                    "bytes_sent": progress.bytes_sent,
                }
            )
        return out

    def _forward(self, body: bytes) -> None:
        import httpx2 as httpx

        fake = self.server.fake
        host = self.headers.get("host", "127.0.0.1")
        headers = [(k, v) for k, v in self.headers.items() if k.lower() != "transfer-encoding"]
        request = httpx.Request(
            self.command, f"http://{host}{self.path}", headers=headers, content=body
        )
        response = fake.handle_request(request)
        self._log_violations()
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
        except Exception as exc:  # a scripted cut or a timeout inside the fake
            print(f"fake_server: body ended early: {exc!r}", file=sys.stderr, flush=True)
            self.close_connection = True
        finally:
            response.close()

    def _send_plain(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _log_violations(self) -> None:
        server = self.server
        with server.lock:
            found = server.fake.violations[server.logged_violations :]
            server.logged_violations += len(found)
        for violation in found:
            print(f"fake_server: refused like the API would: {violation}", file=sys.stderr)
        if found:
            sys.stderr.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", type=Path, default=HERE / "profile.json")
    parser.add_argument("--script", type=Path, default=HERE / "script.json")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--spec", action="store_true", help="log problems found by the OpenAPI schemas"
    )
    args = parser.parse_args(argv)
    profile, _ = load_profile(args.profile)
    script = load_script(args.script)
    spec = _SpecLogger() if args.spec else None
    fake = FakeOpenAI(
        default_transcript=script["transcript"],
        reply=script["reply"],
        latency=profile,
        check_request=spec,
        max_stall=30.0,
    )
    server = _Server(("127.0.0.1", args.port), fake)
    port = server.server_address[1]
    fake.base_url = f"http://127.0.0.1:{port}/v1"
    thread = threading.Thread(target=server.serve_forever, name="fake-openai", daemon=True)
    thread.start()
    print(json.dumps({"port": port, "base_url": fake.base_url}), flush=True)
    try:
        sys.stdin.read()  # serve until the parent closes our stdin (or exits)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
