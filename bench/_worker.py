"""The protocol between ``bench/voice_turn.py`` and one scenario's worker process.

Standard library only: it is imported by workers that run in the peers' own virtual
environments, where chainvoice is not installed.

A worker is started once per scenario and stays up for the whole run, so that the runner
can alternate scenarios turn by turn. It reads one JSON command per line on standard input
and answers one JSON line on the file descriptor given by ``--reply-fd`` (its standard
output is left to the libraries it loads, which may print):

- ``{"cmd": "turn"}``: run one voice turn on the question, answer the turn's figures
  (see :class:`TurnClock`) or ``{"error": ...}``;
- ``{"cmd": "stats"}``: answer peak RSS and the versions of the packages used;
- ``{"cmd": "quit"}``: exit.

Before the first command it answers ``{"ready": true, "import_seconds": ...}`` (the time
its scenario's imports took in this process, for information; the import figures of the
report come from fresh processes).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import sys
import time
import traceback
import wave
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def arguments(description: str) -> argparse.Namespace:
    """The options every worker takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--audio", type=Path, required=True, help="the question, a WAV file")
    parser.add_argument("--script", type=Path, default=HERE / "script.json")
    parser.add_argument("--reply-fd", type=int, required=True)
    parser.add_argument("--mode", default="")
    return parser.parse_args()


def read_wav(path: Path) -> tuple[bytes, int, int]:
    """The raw PCM16 frames, rate and channel count of a 16-bit WAV file."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise SystemExit(f"{path}: the bench question must be 16-bit PCM WAV")
        return w.readframes(w.getnframes()), w.getframerate(), w.getnchannels()


def wav_bytes(pcm: bytes, rate: int, channels: int) -> bytes:
    """PCM16 frames in a WAV container."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return out.getvalue()


def peak_rss_mb() -> float:
    """Peak resident set size of this process, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def versions(*names: str) -> dict[str, str]:
    """Installed versions of the named distributions."""
    out = {"python": sys.version.split()[0]}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


class TurnClock:
    """Times one turn: wall clock from the start, CPU of the whole process, audio received.

    Call :meth:`start` when the turn's input is complete and handed over, :meth:`audio` for
    every audio chunk as the application receives it (with its duration in seconds), and
    :meth:`done` when the turn has finished.
    """

    def __init__(self) -> None:
        self.t0 = 0.0
        self.t0_mono = 0.0
        self.cpu0 = 0.0
        self.first: float | None = None
        self.last: float | None = None
        self.audio_seconds = 0.0
        self.chunks = 0

    def start(self) -> None:
        self.cpu0 = time.process_time()
        self.t0_mono = time.monotonic()
        self.t0 = time.perf_counter()

    def audio(self, seconds: float) -> None:
        now = time.perf_counter() - self.t0
        if self.first is None:
            self.first = now
        self.last = now
        self.audio_seconds += seconds
        self.chunks += 1

    def done(self, **extra: Any) -> dict[str, Any]:
        end = time.perf_counter() - self.t0
        cpu = time.process_time() - self.cpu0
        return {
            "t0_mono": self.t0_mono,
            "first_audio": self.first,
            "last_audio": self.last,
            "end": end,
            "cpu": cpu,
            "audio_seconds": round(self.audio_seconds, 4),
            "chunks": self.chunks,
            **extra,
        }


def serve(
    turn: Callable[[], dict[str, Any]],
    *,
    import_seconds: float,
    packages: tuple[str, ...],
    reply_fd: int,
) -> None:
    """Answer the runner's commands until it says quit (or closes our stdin)."""
    out = os.fdopen(reply_fd, "w", buffering=1)

    def reply(payload: dict[str, Any]) -> None:
        out.write(json.dumps(payload) + "\n")
        out.flush()

    reply({"ready": True, "import_seconds": import_seconds, "pid": os.getpid()})
    for line in sys.stdin:
        command = json.loads(line)
        cmd = command.get("cmd")
        if cmd == "turn":
            try:
                reply(turn())
            except BaseException as exc:  # report, keep serving
                reply({"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()})
                if not isinstance(exc, Exception):
                    raise
        elif cmd == "stats":
            reply({"peak_rss_mb": peak_rss_mb(), "versions": versions(*packages)})
        elif cmd == "quit":
            break
    out.close()
