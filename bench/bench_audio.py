"""Audio hot paths: chainvoice against pydub on the same data.

1. decode: a 10-minute 44.1 kHz stereo MP3 (128 kbit/s) into samples. chainvoice
   ``Audio.from_file`` (ffmpeg, piped as float WAV, read with numpy) against pydub
   ``AudioSegment.from_file`` (the same ffmpeg binary, 16-bit WAV), alone and followed by
   the conversion to a float32 numpy array that chainvoice hands back. pydub is given
   ``codec="mp3"``, which spares it the ffprobe call it would otherwise make first.
2. resample: those 10 minutes to 16 kHz mono. chainvoice ``to_mono().resample(16000)``
   (libsoxr, band-limited) against pydub ``set_channels(1).set_frame_rate(16000)``
   (``audioop.ratecv``).
Cutting an hour of audio at its pauses, against pydub's ``split_on_silence``, is measured
by ``bench/bench_long.py``, which ``bash bench/run`` runs too.

The signal is synthesized (deterministic), so the benchmark needs no data file. Each
figure is the median of several runs after one that is not counted; peak memory is
not measured here. Wall-clock seconds; lower is better.

Run: ``python bench/bench_audio.py [--runs 5] [--json PATH]`` (about half a minute).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from _machine import describe, load, summary

import chainvoice as cv

HERE = Path(__file__).resolve().parent


def speechlike(seconds: float, rate: int, channels: int, seed: int = 7) -> npt.NDArray[np.float32]:
    """Voiced bursts (harmonics under a syllable envelope) separated by quiet pauses."""
    rng = np.random.default_rng(seed)
    parts: list[npt.NDArray[np.float32]] = []
    total = int(seconds * rate)
    made = 0
    while made < total:
        burst = int(rng.uniform(1.0, 6.0) * rate)
        t = np.arange(burst) / rate
        pitch = rng.uniform(90, 220)
        voiced = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 6))
        syllables = 0.5 * (1 - np.cos(2 * np.pi * rng.uniform(3, 6) * t))
        sound = 0.2 * voiced * syllables + 0.01 * rng.standard_normal(burst)
        pause = int(rng.uniform(0.2, 1.5) * rate)
        quiet = 0.0005 * rng.standard_normal(pause)  # about -66 dBFS
        parts += [sound.astype(np.float32), quiet.astype(np.float32)]
        made += burst + pause
    mono = np.concatenate(parts)[:total]
    return np.repeat(mono[:, None], channels, axis=1) if channels > 1 else mono[:, None]


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, list[float], Any]:
    """Median seconds over ``runs`` calls after one uncounted call, and the last result."""
    result = fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, result


def pydub_to_float(segment: Any) -> npt.NDArray[np.float32]:
    samples = np.array(segment.get_array_of_samples(), dtype=np.float32) / 32768.0
    return samples.reshape(-1, segment.channels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "audio.json")
    args = parser.parse_args(argv)

    try:
        import imageio_ffmpeg

        with warnings.catch_warnings():  # pydub warns that ffmpeg is not on PATH: set below
            warnings.simplefilter("ignore", RuntimeWarning)
            from pydub import AudioSegment
    except ImportError as exc:
        print(f"needs pydub and imageio-ffmpeg (chainvoice's dev extras): {exc}")
        return 1
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    AudioSegment.converter = ffmpeg
    machine = describe(("chainvoice", "numpy", "soxr", "pydub", "imageio-ffmpeg"))
    rows: list[dict[str, Any]] = []

    def add(task: str, who: str, seconds: float, samples: list[float], note: str = "") -> None:
        rows.append({"task": task, "who": who, "seconds": seconds, "runs": samples, "note": note})
        print(f"  {task:34s} {who:40s} {seconds:8.3f} s {note}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        mp3 = Path(tmp) / "ten_minutes.mp3"
        music = cv.Audio(speechlike(600, 44100, 2), 44100)
        music.save(mp3, format="mp3", bitrate="128k")

        task = "decode 10 min MP3 (44.1 kHz stereo)"
        secs, runs, audio = timed(lambda: cv.Audio.from_file(mp3), args.runs)
        add(task, "chainvoice Audio.from_file", secs, runs)
        secs, runs, segment = timed(
            lambda: AudioSegment.from_file(mp3, format="mp3", codec="mp3"), args.runs
        )
        add(task, "pydub AudioSegment.from_file", secs, runs, "(an AudioSegment of int16)")
        secs, runs, _ = timed(
            lambda: pydub_to_float(AudioSegment.from_file(mp3, format="mp3", codec="mp3")),
            args.runs,
        )
        add(task, "pydub from_file + to float32 array", secs, runs, "(what chainvoice returns)")

        task = "resample 10 min 44.1 kHz stereo -> 16 kHz mono"
        secs, runs, _ = timed(lambda: audio.to_mono().resample(16000), args.runs)
        add(task, "chainvoice to_mono().resample()", secs, runs, "(libsoxr HQ)")
        secs, runs, _ = timed(lambda: segment.set_channels(1).set_frame_rate(16000), args.runs)
        add(task, "pydub set_channels().set_frame_rate()", secs, runs, "(audioop.ratecv)")

    result = {
        "benchmark": "audio",
        "machine": machine,
        "load_at_end": load(),
        "ffmpeg": ffmpeg,
        "rows": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")

    print(
        f"Machine: {summary(machine)}; load {machine['load_at_start']} -> {result['load_at_end']}"
    )
    print("| task | chainvoice | pydub | pydub / chainvoice |")
    print("|---|---|---|---|")
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    for task in tasks:
        mine = next(r for r in rows if r["task"] == task and r["who"].startswith("chainvoice"))
        theirs = [r for r in rows if r["task"] == task and r["who"].startswith("pydub")]
        peer = theirs[-1]
        print(
            f"| {task} | {mine['seconds']:.3f} s | {peer['seconds']:.3f} s ({peer['who'][6:]}) "
            f"| {peer['seconds'] / mine['seconds']:.1f}x |"
        )
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
