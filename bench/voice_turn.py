"""Voice-turn latency: chainvoice against the ideal and against its peers, in one run.

Every scenario answers the same spoken question (``src/chainvoice/data/question.wav``,
3 s) through the same loopback fake OpenAI server (``fake_server.py``: chainvoice's
FakeOpenAI behind a real HTTP server, with the delays of ``profile.json``), which says the
same transcript and the same 58-word reply (``script.json``) to everyone:

a   chainvoice ``Chain.openai(...).stream(audio)`` (the sync face)
a2  chainvoice ``AsyncChain.openai(...).stream(audio)``
a3  chainvoice ``Chain(*chainvoice.openai.stages(asynchronous=True, ...)).stream(audio)``: the
    sync chain running the async OpenAI stages on its private event loop
b   chainvoice ``Chain.run(audio)`` (audio reaches the caller when the turn is over)
c   the naive chain: plain ``openai`` SDK, transcribe, non-streamed reply, non-streamed speech
c2  a hand-rolled streaming chain on the bare async ``openai`` SDK: the same streamed
    requests as (a), nothing else (no value types, usage, retries or decoding): the floor
    of what the SDK itself costs for a turn
d   the OpenAI Agents SDK ``VoicePipeline`` (own virtual environment ``bench/.venv-agents``)
e   pipecat, its OpenAI STT, LLM and TTS services in a ``Pipeline`` (``bench/.venv-pipecat``)
f   the ideal, computed from the profile: transcription + time to the token that ends the
    first sentence + speech time to first byte (and, for the last audio, the latest end of
    any sentence's speech, each sentence synthesized as soon as its text is complete)

Each scenario runs in its own long-lived worker process (``worker_*.py``) that reports, per
turn, the time to first and last audio as its application receives them, and the CPU time
of its whole process during the turn; peak RSS is the worker's own. Turns alternate
between scenarios, one turn each in a round, the first scenario of a round rotating, after
warm-up rounds that are not counted. The fake server's request log gives each turn's
breakdown (when each request reached the server), which shows where time went.

Import time is measured in fresh processes: ``python -c "import X"`` minus
``python -c "pass"`` with the same interpreter, median of several runs, interleaved.

Run: ``python bench/voice_turn.py [--turns 12] [--warmup 2] [--json PATH]`` (``bash
bench/run`` makes the peers' virtual environments first). Prints a table; writes JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import re
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _machine import describe, load, summary

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
QUESTION = ROOT / "src" / "chainvoice" / "data" / "question.wav"
MAIN_PYTHON = sys.executable
AGENTS_PYTHON = HERE / ".venv-agents" / "bin" / "python"
PIPECAT_PYTHON = HERE / ".venv-pipecat" / "bin" / "python"
PIPECAT_MODULES = (
    "pipecat.pipeline.pipeline, pipecat.pipeline.worker, pipecat.services.openai.stt, "
    "pipecat.services.openai.llm, pipecat.services.openai.tts"
)


@dataclass
class Scenario:
    key: str
    label: str
    python: Path | str
    script: str
    mode: str = ""
    setup_hint: str = ""


SCENARIOS = [
    Scenario("a", "chainvoice Chain.stream()", MAIN_PYTHON, "worker_chainvoice.py", "stream"),
    Scenario("a2", "chainvoice AsyncChain.stream()", MAIN_PYTHON, "worker_chainvoice.py", "async"),
    Scenario(
        "a3",
        "chainvoice Chain.stream(), async stages",
        MAIN_PYTHON,
        "worker_chainvoice.py",
        "stream-async-stages",
    ),
    Scenario("b", "chainvoice Chain.run()", MAIN_PYTHON, "worker_chainvoice.py", "run"),
    Scenario("c", "naive openai SDK, stage after stage", MAIN_PYTHON, "worker_naive.py"),
    Scenario("c2", "hand-rolled streaming, bare async SDK", MAIN_PYTHON, "worker_sdk_stream.py"),
    Scenario(
        "d",
        "OpenAI Agents SDK VoicePipeline",
        AGENTS_PYTHON,
        "worker_agents.py",
        setup_hint="bash bench/run --setup makes bench/.venv-agents",
    ),
    Scenario(
        "e",
        "pipecat Pipeline (OpenAI STT/LLM/TTS)",
        PIPECAT_PYTHON,
        "worker_pipecat.py",
        setup_hint="bash bench/run --setup makes bench/.venv-pipecat",
    ),
]


# ---------------------------------------------------------------------------- statistics


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def p90(values: Sequence[float]) -> float | None:
    """The 90th percentile (linear interpolation between the closest ranks)."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=10, method="inclusive")[8]


def figures(values: Sequence[float | None]) -> dict[str, float | None]:
    kept = [v for v in values if v is not None]
    return {"median": median(kept), "p90": p90(kept), "min": min(kept, default=None)}


# -------------------------------------------------------------------------- the server


class FakeServer:
    """``fake_server.py`` in its own process."""

    def __init__(self, profile: Path, script: Path, spec: bool) -> None:
        command = [MAIN_PYTHON, str(HERE / "fake_server.py"), "--profile", str(profile)]
        command += ["--script", str(script)] + (["--spec"] if spec else [])
        self.log_file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            "w+", prefix="fake_server-", suffix=".log", delete=False
        )
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log_file,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the fake server did not start:\n{self.stderr_tail()}")
        info = json.loads(line)
        self.base_url: str = info["base_url"]
        self.seen = 0

    def new_requests(self) -> list[dict[str, Any]]:
        url = self.base_url.replace("/v1", f"/_bench/log?since={self.seen}")
        with urllib.request.urlopen(url, timeout=10) as answer:
            records: list[dict[str, Any]] = json.loads(answer.read())
        self.seen += len(records)
        return records

    def stderr_tail(self, lines: int = 20) -> str:
        self.log_file.flush()
        return "\n".join(Path(self.log_file.name).read_text().splitlines()[-lines:])

    def refused(self) -> list[str]:
        self.log_file.flush()
        text = Path(self.log_file.name).read_text()
        return [line for line in text.splitlines() if "refused" in line or "spec:" in line]

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            self.process.wait(10)
        self.log_file.close()
        os.unlink(self.log_file.name)


# ------------------------------------------------------------------------- the workers


class WorkerError(Exception):
    pass


class Worker:
    """One scenario's worker process and the line protocol of ``_worker.py``."""

    def __init__(self, scenario: Scenario, base_url: str, src: Path | None = None) -> None:
        self.scenario = scenario
        read_fd, write_fd = os.pipe()
        self.stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed in quit()
        command = [str(scenario.python), str(HERE / scenario.script), "--base-url", base_url]
        command += ["--audio", str(QUESTION), "--script", str(HERE / "script.json")]
        command += ["--reply-fd", str(write_fd), "--mode", scenario.mode]
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), *([str(src)] if src else [])])
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=self.stderr,
            stderr=self.stderr,
            pass_fds=(write_fd,),
            text=True,
            env=env,
            cwd=HERE,
        )
        os.close(write_fd)
        self._fd = read_fd
        self._buffer = b""
        self.ready = self.read(120)

    def stderr_tail(self, lines: int = 15) -> str:
        self.stderr.flush()
        self.stderr.seek(0)
        return "\n".join(self.stderr.read().splitlines()[-lines:])

    def read(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self._fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    raise WorkerError(f"no answer in {timeout:.0f} s\n{self.stderr_tail()}")
                data = os.read(self._fd, 65536)
                if not data:
                    raise WorkerError(f"the worker exited\n{self.stderr_tail()}")
                self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def call(self, command: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self.read(timeout)

    def quit(self) -> None:
        with contextlib.suppress(WorkerError, BrokenPipeError, OSError):
            self.call({"cmd": "quit"}, timeout=0.1)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            self.process.wait(10)
        os.close(self._fd)
        self.stderr.close()


@dataclass
class Record:
    scenario: Scenario
    worker: Worker | None = None
    status: str = "ok"
    turns: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------- the ideal


def sentences(text: str) -> list[str]:
    """The reply's sentences (the speakable pieces of the ideal)."""
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def ideal(profile: dict[str, float], reply: str, question_seconds: float) -> dict[str, Any]:
    """Time to first and last audio with no overhead at all, from the fake's own rules.

    Text arrives as the fake's tokens, each ``text_per_token`` after the one before; a
    sentence is complete with the token that holds its final punctuation; its speech
    request leaves at that instant and its audio arrives ``speech_first_byte`` later, then
    paced as the fake paces it (``speech_realtime_factor`` per second of audio, chunk by
    chunk), each sentence synthesized concurrently with the others.
    """
    from chainvoice.testing._fake_audio import SPEECH_RATE, speech_pcm
    from chainvoice.testing._fake_openai import _tokens

    chunk = 4096  # FakeOpenAI's default chunk size for streamed speech
    transcription = (
        profile["transcription_base"] + profile["transcription_per_audio_second"] * question_seconds
    )
    tokens = _tokens(reply)
    reached = list(itertools.accumulate(len(t) for t in tokens))  # text length per token
    ends: list[int] = []  # index of the token that completes each sentence
    position = 0
    for sentence in sentences(reply):
        position = reply.index(sentence, position) + len(sentence)
        ends.append(next(i for i, length in enumerate(reached) if length >= position))
    pieces = []
    for sentence, end in zip(sentences(reply), ends, strict=True):
        ready = transcription + profile["text_first_token"] + profile["text_per_token"] * end
        pcm = speech_pcm(sentence, speed=1.0, seconds_per_character=0.06)
        seconds = len(pcm) / (2 * SPEECH_RATE)
        sizes = [min(chunk, len(pcm) - i) for i in range(0, len(pcm), chunk)]
        paced = sum(profile["speech_realtime_factor"] * seconds * s / len(pcm) for s in sizes[:-1])
        first = ready + profile["speech_first_byte"]
        pieces.append(
            {
                "text": sentence,
                "tokens": end + 1,
                "text_ready": ready,
                "first_audio": first,
                "last_audio": first + paced,
                "audio_seconds": seconds,
            }
        )
    return {
        "transcription": transcription,
        "first_audio": pieces[0]["first_audio"],
        "last_audio": max(p["last_audio"] for p in pieces),
        "tokens": len(tokens),
        "pieces": pieces,
    }


# ---------------------------------------------------------------------- turn breakdown


def breakdown(
    turn: dict[str, Any], requests: list[dict[str, Any]], first_sentence_ready: float
) -> dict[str, Any]:
    """Where a turn's time went, from the server's view of its requests (seconds from t0).

    ``first_sentence_ready`` is the time, after the reply request reached the server, at
    which the fake sent the token that completes the first sentence.
    """
    t0 = turn["t0_mono"]

    def rel(value: float | None) -> float | None:
        return None if value is None else round(value - t0, 4)

    stt = [r for r in requests if r["endpoint"] == "transcriptions"]
    llm = [r for r in requests if r["endpoint"] in ("responses", "chat")]
    tts = [r for r in requests if r["endpoint"] == "speech"]
    out: dict[str, Any] = {
        "requests": len(requests),
        "refused": [r["status_code"] for r in requests if (r["status_code"] or 200) >= 400],
        "speech_requests": len(tts),
        "speech_chars": [r["input_chars"] for r in tts],
    }
    if stt:
        out["stt_sent"] = rel(stt[0]["received_at"])
        out["stt_done"] = rel(stt[0]["finished_at"])
    if llm:
        out["llm_api"] = llm[0]["endpoint"]
        out["llm_sent"] = rel(llm[0]["received_at"])
        out["first_sentence_ready"] = rel(llm[0]["received_at"] + first_sentence_ready)
    if tts:
        out["tts_first_sent"] = rel(tts[0]["received_at"])
        out["tts_first_byte"] = rel(tts[0]["first_byte_at"])
        out["tts_last_done"] = rel(max(r["finished_at"] or 0 for r in tts))
    gaps = {}
    if stt and llm:
        gaps["stt_done_to_llm_sent"] = out["llm_sent"] - out["stt_done"]
    if llm and tts:
        gaps["first_sentence_to_tts_sent"] = out["tts_first_sent"] - out["first_sentence_ready"]
    if tts and turn.get("first_audio") is not None and out["tts_first_byte"] is not None:
        gaps["tts_first_byte_to_app"] = turn["first_audio"] - out["tts_first_byte"]
    if tts and turn.get("last_audio") is not None and out["tts_last_done"] is not None:
        gaps["tts_last_done_to_app"] = turn["last_audio"] - out["tts_last_done"]
    out["gaps"] = {k: round(v, 4) for k, v in gaps.items()}
    return out


# ------------------------------------------------------------------------------ imports


def import_times(runs: int, src: Path | None = None) -> dict[str, Any]:
    """Fresh-process import time: ``python -c "import X"`` minus ``python -c "pass"``."""
    cases = [
        ("chainvoice", MAIN_PYTHON, "import chainvoice"),
        (
            "chainvoice, Audio and Chain used",
            MAIN_PYTHON,
            "import chainvoice; chainvoice.Audio; chainvoice.Chain",
        ),
        ("chainvoice.openai", MAIN_PYTHON, "import chainvoice.openai"),
        ("numpy", MAIN_PYTHON, "import numpy"),
        ("openai", MAIN_PYTHON, "import openai"),
        ("chainvoice.openai + openai", MAIN_PYTHON, "import chainvoice.openai, openai"),
        ("agents.voice", AGENTS_PYTHON, "import agents.voice"),
        ("pipecat", PIPECAT_PYTHON, f"import {PIPECAT_MODULES}"),
    ]
    pythons = sorted({str(p) for _, p, _ in cases if Path(p).exists()})
    baselines = [("pass", p, "pass") for p in pythons]
    runnable = [c for c in cases if Path(c[1]).exists()]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    main_env = {**env, "PYTHONPATH": str(src)} if src else env

    def once(python: str | Path, code: str) -> float:
        start = time.perf_counter()
        subprocess.run(
            [str(python), "-c", code],
            check=True,
            env=main_env if str(python) == str(MAIN_PYTHON) else env,
            capture_output=True,
            timeout=120,
        )
        return time.perf_counter() - start

    samples: dict[tuple[str, str], list[float]] = {}
    for _name, python, code in [*baselines, *runnable]:
        once(python, code)  # compile and cache, not counted
    for _ in range(runs):
        for name, python, code in [*baselines, *runnable]:
            samples.setdefault((name, str(python)), []).append(once(python, code))
    base = {p: statistics.median(samples[("pass", p)]) for p in pythons}
    out: dict[str, Any] = {"runs": runs, "interpreter_start": base, "modules": {}}
    for name, python, code in cases:
        if not Path(python).exists():
            out["modules"][name] = {"status": f"not run: {python} is missing", "code": code}
            continue
        values = samples[(name, str(python))]
        out["modules"][name] = {
            "seconds": statistics.median(values) - base[str(python)],
            "samples": values,
            "code": code,
            "python": str(python),
        }
    return out


# ---------------------------------------------------------------------------- the run


def run_turns(
    records: list[Record], server: FakeServer, rounds: int, warmup: int, first_ready: float
) -> None:
    live = [r for r in records if r.worker is not None]
    for round_index in range(warmup + rounds):
        counted = round_index >= warmup
        shift = round_index % len(live) if live else 0
        for record in live[shift:] + live[:shift]:
            if record.worker is None:
                continue
            server.new_requests()  # forget anything between turns
            try:
                answer = record.worker.call({"cmd": "turn"})
            except WorkerError as exc:
                record.status = f"not run: worker failed: {exc}".splitlines()[0]
                record.errors.append(str(exc))
                record.worker.quit()
                record.worker = None
                continue
            requests = server.new_requests()
            if "error" in answer:
                record.errors.append(answer["error"])
                print(f"  {record.scenario.key}: {answer['error']}", file=sys.stderr)
                if len(record.errors) >= 3 and not record.turns:
                    record.status = f"not run: {answer['error']}"
                    record.worker.quit()
                    record.worker = None
                continue
            answer["server"] = breakdown(answer, requests, first_ready)
            answer["warmup"] = not counted
            record.turns.append(answer)
            mark = "" if counted else " (warm-up)"
            print(
                f"  round {round_index + 1:2d} {record.scenario.key:3s} "
                f"first {answer['first_audio']:.3f} s, last {answer['last_audio']:.3f} s, "
                f"cpu {answer['cpu']:.3f} s{mark}",
                file=sys.stderr,
                flush=True,
            )
            time.sleep(0.3)  # let the previous turn's connections settle


def summarize(record: Record, expected_audio: float) -> dict[str, Any]:
    turns = [t for t in record.turns if not t["warmup"]]
    out: dict[str, Any] = {
        "label": record.scenario.label,
        "status": record.status,
        "turns_counted": len(turns),
        "errors": record.errors,
    }
    if record.status != "ok" or not turns:
        if record.status == "ok":
            out["status"] = "not run: no turn completed"
        return out
    out["first_audio"] = figures([t["first_audio"] for t in turns])
    out["last_audio"] = figures([t["last_audio"] for t in turns])
    out["cpu"] = figures([t["cpu"] for t in turns])
    out["audio_seconds"] = figures([t["audio_seconds"] for t in turns])
    out["audio_complete"] = all(
        abs(t["audio_seconds"] - expected_audio) < 0.25 * expected_audio for t in turns
    )
    gaps: dict[str, list[float]] = {}
    for t in turns:
        for k, v in t["server"]["gaps"].items():
            gaps.setdefault(k, []).append(v)
    out["gaps_median"] = {k: median(v) for k, v in gaps.items()}
    out["speech_requests"] = turns[-1]["server"]["speech_requests"]
    out["speech_chars"] = turns[-1]["server"]["speech_chars"]
    out["llm_api"] = turns[-1]["server"].get("llm_api")
    out.update(record.stats)
    return out


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    s = result["scenarios"]
    a, d, e = s.get("a", {}), s.get("d", {}), s.get("e", {})
    ideal_ = result["ideal"]
    imports = result["imports"]["modules"]

    def med(row: dict[str, Any], key: str) -> float | None:
        value = row.get(key)
        return value["median"] if isinstance(value, dict) else value

    def check(name: str, value: float | None, limit: float | None, how: str) -> dict[str, Any]:
        if value is None or limit is None:
            return {"target": name, "status": "n/a", "value": value, "limit": limit}
        ok = value < limit if how == "<" else value <= limit
        return {
            "target": name,
            "status": "met" if ok else "MISSED",
            "value": round(value, 4),
            "limit": round(limit, 4),
        }

    def scaled(value: float | None, factor: float) -> float | None:
        return None if value is None else value * factor

    cv_import = imports.get("chainvoice", {}).get("seconds")
    np_import = imports.get("numpy", {}).get("seconds")
    return [
        check(
            "streaming first audio <= 1.05 x ideal",
            med(a, "first_audio"),
            ideal_["first_audio"] * 1.05,
            "<=",
        ),
        check(
            "streaming first audio <= 0.75 x Agents SDK",
            med(a, "first_audio"),
            scaled(med(d, "first_audio"), 0.75),
            "<=",
        ),
        check("streaming first audio < pipecat", med(a, "first_audio"), med(e, "first_audio"), "<"),
        check(
            "last audio <= 1.05 x ideal", med(a, "last_audio"), ideal_["last_audio"] * 1.05, "<="
        ),
        check(
            "CPU per turn <= 1/3 x Agents SDK", med(a, "cpu"), scaled(med(d, "cpu"), 1 / 3), "<="
        ),
        check("import chainvoice <= 1.3 x import numpy", cv_import, scaled(np_import, 1.3), "<="),
        check("peak RSS <= Agents SDK", a.get("peak_rss_mb"), d.get("peak_rss_mb"), "<="),
    ]


def fmt(value: float | None, unit: str = "s", digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f} {unit}".rstrip()


def table(result: dict[str, Any]) -> str:
    """The results as a Markdown table (also printed)."""
    ideal_ = result["ideal"]
    lines = [
        "| scenario | first audio, median (p90) | / ideal | last audio, median (p90) | / ideal "
        "| CPU per turn, median (p90) | peak RSS |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, row in result["scenarios"].items():
        name = f"({key}) {row['label']}"
        if row["status"] != "ok":
            lines.append(f"| {name} | {row['status']} | | | | | |")
            continue
        first, last, cpu = row["first_audio"], row["last_audio"], row["cpu"]
        lines.append(
            f"| {name} | {fmt(first['median'])} ({fmt(first['p90'])}) "
            f"| {first['median'] / ideal_['first_audio']:.2f} "
            f"| {fmt(last['median'])} ({fmt(last['p90'])}) "
            f"| {last['median'] / ideal_['last_audio']:.2f} "
            f"| {fmt(cpu['median'], 's', 3)} ({fmt(cpu['p90'], 's', 3)}) "
            f"| {fmt(row.get('peak_rss_mb'), 'MiB', 0)} |"
        )
    lines.append(
        f"| (f) ideal (computed) | {fmt(ideal_['first_audio'])} | 1.00 "
        f"| {fmt(ideal_['last_audio'])} | 1.00 | - | - |"
    )
    return "\n".join(lines)


def import_table(result: dict[str, Any]) -> str:
    lines = ["| import (fresh process, minus interpreter start) | median |", "|---|---|"]
    for row in result["imports"]["modules"].values():
        value = fmt(row["seconds"] * 1000, "ms", 0) if "seconds" in row else row["status"]
        lines.append(f"| `{row['code']}` | {value} |")
    return "\n".join(lines)


def targets_table(result: dict[str, Any]) -> str:
    lines = ["| target | chainvoice | limit | |", "|---|---|---|---|"]
    for t in result["targets"]:
        unit = "MiB" if "RSS" in t["target"] else "s"
        digits = 0 if unit == "MiB" else 3
        lines.append(
            f"| {t['target']} | {fmt(t['value'], unit, digits)} | {fmt(t['limit'], unit, digits)} "
            f"| {t['status']} |"
        )
    return "\n".join(lines)


def gaps_table(result: dict[str, Any]) -> str:
    """Median gaps: where each scenario spends time beyond the server's own delays."""
    names = {
        "stt_done_to_llm_sent": "transcript done -> reply request",
        "first_sentence_to_tts_sent": "first sentence complete -> first speech request",
        "tts_first_byte_to_app": "first speech byte -> first audio in the app",
        "tts_last_done_to_app": "last speech byte -> last audio in the app",
    }
    keys = [k for k, row in result["scenarios"].items() if row["status"] == "ok"]
    lines = ["| gap (median, ms) | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for gap, label in names.items():
        cells = []
        for k in keys:
            value = result["scenarios"][k].get("gaps_median", {}).get(gap)
            cells.append("-" if value is None else f"{value * 1000:.0f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=12, help="counted turns per scenario")
    parser.add_argument("--warmup", type=int, default=2, help="uncounted turns per scenario")
    parser.add_argument("--import-runs", type=int, default=9)
    parser.add_argument("--profile", type=Path, default=HERE / "profile.json")
    parser.add_argument("--script", type=Path, default=HERE / "script.json")
    parser.add_argument("--only", help="comma-separated scenario keys, e.g. a,d")
    parser.add_argument("--spec", action="store_true", help="log OpenAPI spec problems")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "voice_turn.json")
    parser.add_argument(
        "--src",
        type=Path,
        help="import chainvoice from this directory in the workers and import timings "
        "(e.g. a `git archive` export of a commit), not from the installed package",
    )
    parser.add_argument("--source-label", help="what --src holds, for the results")
    parser.add_argument(
        "--imports-only",
        action="store_true",
        help="only measure the import times again, and update them (and the targets) in --json",
    )
    args = parser.parse_args(argv)

    if args.imports_only:
        result = json.loads(args.json.read_text())
        result["imports"] = import_times(args.import_runs, args.src)
        result["imports"]["load"] = load()
        result["targets"] = targets(result)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        print(import_table(result))
        print()
        print(targets_table(result))
        return 0

    packages = ("chainvoice", "openai", "httpx2", "numpy", "soxr", "pydub")
    machine = describe(packages)
    if args.src:
        machine["source"] = args.source_label or str(args.src)
    profile = {
        k: float(v)
        for k, v in json.loads(args.profile.read_text()).items()
        if not k.startswith("_")
    }
    script = json.loads(args.script.read_text())
    import chainvoice as cv

    question = cv.Audio.from_file(QUESTION)
    best = ideal(profile, script["reply"], question.duration)
    first_ready = profile["text_first_token"] + profile["text_per_token"] * (
        best["pieces"][0]["tokens"] - 1
    )
    expected_audio = sum(p["audio_seconds"] for p in best["pieces"])
    print(f"machine: {summary(machine)}; load {machine['load_at_start']}", file=sys.stderr)
    print(
        "profile (an assumption, not a measurement of OpenAI): "
        + ", ".join(f"{k} {v:g}" for k, v in profile.items()),
        file=sys.stderr,
    )

    chosen = [s for s in SCENARIOS if not args.only or s.key in args.only.split(",")]
    server = FakeServer(args.profile, args.script, args.spec)
    records = [Record(s) for s in chosen]
    try:
        for record in records:
            python = Path(record.scenario.python)
            if not python.exists():
                venv = python.parent.parent.name
                record.status = f"not run: {venv} missing ({record.scenario.setup_hint})"
                continue
            try:
                record.worker = Worker(record.scenario, server.base_url, args.src)
            except WorkerError as exc:
                record.status = f"not run: {str(exc).splitlines()[-1]}"
                record.errors.append(str(exc))
        run_turns(records, server, args.turns, args.warmup, first_ready)
        for record in records:
            if record.worker is not None:
                record.stats = record.worker.call({"cmd": "stats"})
                record.stats["import_seconds_in_worker"] = record.worker.ready["import_seconds"]
        refused = server.refused()
    finally:
        for record in records:
            if record.worker is not None:
                record.worker.quit()
        server.stop()

    print("import times (fresh processes)...", file=sys.stderr)
    imports = import_times(args.import_runs, args.src)
    result: dict[str, Any] = {
        "benchmark": "voice_turn",
        "machine": machine,
        "load_at_end": load(),
        "profile": profile,
        "profile_note": "an assumption of the order of OpenAI's API, not a measurement of it",
        "script": {k: v for k, v in script.items() if not k.startswith("_")},
        "question_seconds": question.duration,
        "method": {
            "turns_counted": args.turns,
            "warmup_turns": args.warmup,
            "order": "round robin, one turn per scenario a round, first scenario rotating",
        },
        "ideal": best,
        "scenarios": {r.scenario.key: summarize(r, expected_audio) for r in records},
        "server_refused_or_spec": refused,
        "imports": imports,
        "turns": {r.scenario.key: r.turns for r in records},
    }
    result["targets"] = targets(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")

    print()
    print(f"Machine: {summary(machine)}")
    print(f"Load average at start {machine['load_at_start']}, at end {result['load_at_end']}")
    print(f"Fake server profile (assumed, not measured): {profile}")
    print(f"{args.turns} counted turns per scenario after {args.warmup} warm-up turns\n")
    print(table(result))
    print()
    print(gaps_table(result))
    print()
    print(import_table(result))
    print()
    print(targets_table(result))
    if refused:
        print(f"\nThe fake server refused or flagged {len(refused)} request(s); first ones:")
        print("\n".join(refused[:5]))
    print(f"\nJSON: {args.json.relative_to(ROOT) if args.json.is_relative_to(ROOT) else args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
