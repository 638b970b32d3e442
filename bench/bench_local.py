"""Latency of the embedded offline chain (``chainvoice[local]``) on this machine.

Measures, and prints (never asserts):

1. cold start, each in a fresh process: ``import chainvoice``, then loading each model
   (whisper-base, SmolLM2-135M-Instruct, hibari), and the first-run assembly of the
   whisper weights into an empty cache;
2. warm turns: after the models are loaded, ``Chain.local()`` turns on the ~3-second
   question that ships with chainvoice, each from a fresh conversation: time to first
   audio and total (targets: at most 1.5 s and 3 s on 2 cores);
3. ``chainvoice demo`` from a cold process, wall clock (target: at most 10 s).

Run: ``python bench/bench_local.py [--turns 10] [--demos 3] [--json results.json]``
(about a minute on 2 cores). Other load on the machine shows in the figures: run it on a
quiet machine, and read the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from importlib import resources
from pathlib import Path
from typing import Any

TARGETS = {"first_audio": 1.5, "total": 3.0, "demo": 10.0}

COLD_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    t0 = time.perf_counter()
    import chainvoice as cv
    from chainvoice.local import LocalResponder, LocalSynthesizer, LocalTranscriber
    t1 = time.perf_counter()
    out = {"import": t1 - t0}
    for name, make in (("whisper", lambda: LocalTranscriber(language="en")),
                       ("smollm2", LocalResponder), ("hibari", LocalSynthesizer)):
        t = time.perf_counter()
        make().load()
        out[name] = time.perf_counter() - t
    print(json.dumps(out))
    """
)


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {cores} cores, Python {platform.python_version()}, {platform.system()}"


def _cold(env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", COLD_SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=300,
    )
    return {k: float(v) for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def cold_start(runs: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    with tempfile.TemporaryDirectory() as empty:
        first = _cold({**env, "CHAINVOICE_CACHE_DIR": empty})
    samples = [_cold(env) for _ in range(runs)]
    keys = samples[0].keys()
    return {
        "first_run_whisper_load_with_assembly": first["whisper"],
        "median": {k: _median([s[k] for s in samples]) for k in keys},
        "runs": samples,
    }


def warm_turns(turns: int) -> dict[str, Any]:
    import chainvoice as cv

    question = cv.Audio.from_file(str(resources.files("chainvoice") / "data" / "question.wav"))
    stages = cv.local.stages()
    for stage in stages:
        stage.load()
    chain = cv.Chain(*stages)
    rows = []
    with chain:
        chain.run(question)  # warm-up: first-call allocations, caches
        for _ in range(turns):
            chain.reset()
            turn = chain.run(question)
            t = turn.timings
            rows.append(
                {
                    "first_audio": t.first_audio,
                    "total": t.total,
                    "transcribe": t.transcribe.duration if t.transcribe else None,
                    "respond_first_text": t.respond.to_first_output if t.respond else None,
                    "respond": t.respond.duration if t.respond else None,
                    "synthesize": t.synthesize.duration if t.synthesize else None,
                    "reply": turn.reply.text,
                    "reply_audio_s": turn.reply.audio.duration if turn.reply.audio else 0.0,
                }
            )
    summary = {
        k: _median([r[k] for r in rows if r[k] is not None])
        for k in (
            "first_audio",
            "total",
            "transcribe",
            "respond_first_text",
            "respond",
            "synthesize",
            "reply_audio_s",
        )
    }
    return {"question_s": question.duration, "median": summary, "turns": rows}


def demo_runs(runs: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "chainvoice", "demo", "-q", "-o", f"{tmp}/reply.wav"],
                capture_output=True,
                env=env,
                check=True,
                timeout=300,
            )
            times.append(time.perf_counter() - started)
    return {"median": _median(times), "runs": times}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10, help="warm turns to time")
    parser.add_argument("--cold", type=int, default=3, help="cold-start processes")
    parser.add_argument("--demos", type=int, default=3, help="cold `chainvoice demo` runs")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    print(f"Machine: {_machine()}")
    cold = cold_start(args.cold)
    med = cold["median"]
    print(f"\nCold start (median of {args.cold} fresh processes, seconds)")
    print(f"  import chainvoice + chainvoice.local  {med['import']:.2f}")
    print(f"  load whisper-base (verify + load)     {med['whisper']:.2f}")
    print(f"  load SmolLM2-135M (verify + warm-up)  {med['smollm2']:.2f}")
    print(f"  load hibari voice                     {med['hibari']:.2f}")
    print(f"  total                                 {sum(med.values()):.2f}")
    print(
        f"  first run, whisper with assembly into an empty cache: "
        f"{cold['first_run_whisper_load_with_assembly']:.2f}"
    )

    warm = warm_turns(args.turns)
    wm = warm["median"]
    print(
        f"\nWarm Chain.local() turn on the {warm['question_s']:.1f}s question "
        f"(median of {args.turns}, seconds)"
    )
    print(f"  transcribe              {wm['transcribe']:.3f}")
    print(f"  reply: first text       {wm['respond_first_text']:.3f}   whole {wm['respond']:.3f}")
    print(f"  synthesize              {wm['synthesize']:.3f}")
    print(
        f"  first audio             {wm['first_audio']:.3f}   (target <= {TARGETS['first_audio']})"
    )
    print(f"  total                   {wm['total']:.3f}   (target <= {TARGETS['total']})")
    print(f"  reply: {warm['turns'][0]['reply']!r} ({wm['reply_audio_s']:.1f}s of audio)")

    demo = demo_runs(args.demos)
    print(f"\n`chainvoice demo` from a cold process (median of {args.demos}, wall clock)")
    print(
        f"  {demo['median']:.2f}s   (target <= {TARGETS['demo']})   runs: "
        + ", ".join(f"{t:.2f}" for t in demo["runs"])
    )

    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": _machine(),
                    "cold": cold,
                    "warm": warm,
                    "demo": demo,
                    "targets": TARGETS,
                },
                indent=2,
            )
        )
        print(f"\nWrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
