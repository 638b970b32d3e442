"""Benchmarks for long recordings: cutting at pauses, concurrent pieces, decoding memory.

1. **Cutting**: one hour of 16 kHz speech-like audio (syllable-like tone bursts, short gaps
   inside phrases, longer pauses between them, a little noise) is scanned for pauses by
   ``Audio.silences()`` and cut into 10-minute pieces by ``plan_pieces()``, and the same
   audio by ``pydub.silence.split_on_silence`` (300 ms, -40 dBFS), in the same run.
   Target: chainvoice at least 50 times faster.
2. **Concurrency**: the real ``OpenAITranscriber`` against ``FakeOpenAI`` answering every
   request after 1 s, through ``LongTranscriber`` with 5-minute pieces of an hour's
   recording (12 pieces), at several concurrencies. Target: about pieces / concurrency
   seconds, not pieces seconds.
3. **Memory**: the peak resident memory of ``Audio.from_file`` on one-hour MP3 and Ogg
   Opus files (in a fresh process each), against the size of the decoded samples.

Run: ``python bench/bench_long.py`` (pydub's part alone takes a minute or two; pass
``--minutes 10`` for a shorter recording, ``--skip-pydub`` to leave it out).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import chainvoice as cv
from chainvoice._long import LongTranscriber, plan_pieces

RATE = 16000


def speechlike(seconds: float, rate: int = RATE, seed: int = 0) -> cv.Audio:
    """Syllable-like bursts: 0.15-0.5 s tones under a smooth envelope, 40-150 ms gaps inside
    phrases, 0.35-1.2 s pauses between them, over -54 dBFS of noise."""
    rng = np.random.default_rng(seed)
    frames = round(seconds * rate)
    out = rng.normal(0.0, 0.002, frames).astype(np.float32)
    at = round(0.5 * rate)
    while at < frames - rate:
        length = round(rng.uniform(0.15, 0.5) * rate)
        f0 = rng.uniform(100.0, 250.0)
        k = np.arange(length)
        envelope = np.sin(np.pi * k / length)
        tone = 0.3 * np.sin(2 * np.pi * f0 * k / rate) + 0.1 * np.sin(6 * np.pi * f0 * k / rate)
        out[at : at + length] += (tone * envelope).astype(np.float32)
        pause = rng.uniform(0.35, 1.2) if rng.random() < 0.25 else rng.uniform(0.04, 0.15)
        at += length + round(pause * rate)
    return cv.Audio(out, rate)


def best_of(runs: int, fn: object) -> float:
    assert callable(fn)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_cutting(audio: cv.Audio, skip_pydub: bool) -> None:
    print(f"\n1. Cutting {audio.duration / 60:.0f} min of {audio.rate} Hz audio at pauses")
    silences = audio.silences(min_silence=0.3)
    t_silences = best_of(3, lambda: audio.silences(min_silence=0.3))
    pieces = plan_pieces(audio, max_seconds=600.0)
    t_plan = best_of(3, lambda: plan_pieces(audio, max_seconds=600.0))
    print(
        f"   Audio.silences(min_silence=0.3): {t_silences * 1000:8.1f} ms ({len(silences)} pauses)"
    )
    print(
        f"   plan_pieces(max_seconds=600):    {t_plan * 1000:8.1f} ms "
        f"({len(pieces)} pieces, longest {max(p.duration for p in pieces):.0f} s)"
    )
    if skip_pydub:
        return
    from chainvoice._codecs import load_pydub

    load_pydub()  # quiet import, pointed at chainvoice's ffmpeg
    from pydub.silence import split_on_silence

    segment = audio.to_segment()
    start = time.perf_counter()
    chunks = split_on_silence(segment, min_silence_len=300, silence_thresh=-40, keep_silence=100)
    t_pydub = time.perf_counter() - start
    print(f"   pydub split_on_silence(300 ms):  {t_pydub * 1000:8.1f} ms ({len(chunks)} chunks)")
    print(
        f"   speed-up: {t_pydub / t_silences:.0f}x (silences), "
        f"{t_pydub / t_plan:.0f}x (plan_pieces); target >= 50x"
    )


def bench_concurrency(audio: cv.Audio) -> None:
    from chainvoice.openai import OpenAITranscriber, _models
    from chainvoice.testing import FakeOpenAI, LatencyProfile

    _models._today = lambda: dt.date(2026, 1, 1)  # no shutdown warning in the figures
    print(
        f"\n2. {audio.duration / 60:.0f} min through OpenAITranscriber, FakeOpenAI answering "
        "each piece in 1 s, 5-minute pieces"
    )
    for concurrency in (1, 4, 8):
        fake = FakeOpenAI(latency=LatencyProfile(transcription_base=1.0))
        inner = OpenAITranscriber("gpt-4o-transcribe", stream=False, client=fake.client())
        long = LongTranscriber(inner, max_piece_seconds=300.0, concurrency=concurrency)
        n = len(long.plan(audio))
        start = time.perf_counter()
        transcript = long.transcribe(audio)
        took = time.perf_counter() - start
        ideal = -(-n // concurrency)
        assert transcript.usage is not None and transcript.usage.requests == n
        print(
            f"   concurrency {concurrency}: {n} pieces in {took:5.2f} s "
            f"(ceil(pieces / concurrency) = {ideal} s; sequential would be {n} s)"
        )


_PEAK = """
import sys, time
import chainvoice as cv

def high_water():  # VmHWM: this process's peak resident memory (Linux), in bytes
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise SystemExit("needs Linux /proc")

before = high_water()
start = time.perf_counter()
audio = cv.Audio.from_file(sys.argv[1])
took = time.perf_counter() - start
print(audio.samples.nbytes, high_water() - before, audio.rate, took)
"""


def bench_memory(audio: cv.Audio) -> None:
    print(
        f"\n3. Peak memory of Audio.from_file on {audio.duration / 60:.0f} min compressed "
        "files (fresh process each; growth of the peak RSS while decoding)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name, bitrate in (("mp3", "64k"), ("opus", "32k")):
            path = Path(tmp) / f"hour.{name}"
            audio.save(path, bitrate=bitrate)
            out = subprocess.run(
                [sys.executable, "-c", _PEAK, str(path)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()
            decoded, growth, rate, took = int(out[0]), int(out[1]), int(out[2]), float(out[3])
            print(
                f"   {name:4s} ({path.stat().st_size / 1e6:5.1f} MB file): decoded "
                f"{decoded / 1e6:6.0f} MB at {rate} Hz; peak RSS grew {growth / 1e6:6.0f} MB "
                f"({growth / decoded:.2f}x the samples) in {took:.1f} s"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--skip-pydub", action="store_true")
    args = parser.parse_args()
    print(
        f"chainvoice {cv.__version__}, Python {platform.python_version()}, "
        f"numpy {np.__version__}, {os.cpu_count()} CPUs ({platform.machine()})"
    )
    audio = speechlike(args.minutes * 60.0)
    bench_cutting(audio, args.skip_pydub)
    bench_concurrency(audio)
    bench_memory(audio)


if __name__ == "__main__":
    main()
