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
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from chainvoice.testing import FakeOpenAI, FakeOpenAIHandler, FakeOpenAIServer, LatencyProfile

HERE = Path(__file__).resolve().parent


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


class _Handler(FakeOpenAIHandler):
    """The fake's answers, the bench's own paths, and refusals logged."""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/_bench/health":
            self.send_plain(200, b"ok", "text/plain")
        elif url.path == "/_bench/log":
            since = int(parse_qs(url.query).get("since", ["0"])[0])
            self.send_plain(200, json.dumps(self._log(since)).encode(), "application/json")
        else:
            self.forward(b"")

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

    def forward(self, body: bytes) -> None:
        super().forward(body)
        server = self.server
        with server.lock:
            logged = getattr(server, "logged_violations", 0)
            found = server.fake.violations[logged:]
            server.logged_violations = logged + len(found)  # type: ignore[attr-defined]
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
    server = FakeOpenAIServer(fake, port=args.port, handler=_Handler)
    port = server.server_address[1]
    print(json.dumps({"port": port, "base_url": server.base_url}), flush=True)
    try:
        sys.stdin.read()  # serve until the parent closes our stdin (or exits)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


if __name__ == "__main__":
    main()
