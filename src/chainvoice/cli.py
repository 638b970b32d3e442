"""The ``chainvoice`` command: a voice turn, transcription, speech and the model table.

Run ``chainvoice --help`` (or ``python -m chainvoice --help``). Each command takes
``--backend openai|local``; without it, chainvoice uses OpenAI when ``OPENAI_API_KEY`` is
set and the embedded offline models otherwise, and says which on stderr. Progress goes to
stderr when it is a terminal. A mistake (a missing file, an unknown format, no key or a
refused one, a bad option) is one line on stderr and exit status 2, in every command; a
failure while working is one line and status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import IO, Any, NoReturn

import chainvoice as cv

__all__ = ["main"]

PROG = "chainvoice"
FORMATS: dict[str, Callable[[cv.Transcript], str]] = {
    "text": cv.Transcript.to_text,
    "json": cv.Transcript.to_json,
    "srt": cv.Transcript.to_srt,
    "vtt": cv.Transcript.to_vtt,
}
DEFAULT_REPLY_FILE = "chainvoice-reply.wav"
DEMO_QUESTION = "data/question.wav"


class UsageError(Exception):
    """A mistake in how the command was called (exit status 2)."""


# ------------------------------------------------------------------------------ progress


class Progress:
    """A self-erasing status line on stderr for work that takes more than a second.

    It is shown only when stderr is a terminal.
    """

    _FRAMES = "|/-\\"

    def __init__(self, stream: IO[str], enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled
        self._lock = threading.Lock()
        self._text = ""
        self._shown = False

    @contextlib.contextmanager
    def task(self, text: str, *, delay: float = 1.0) -> Iterator[Callable[[str], None]]:
        """Show ``text`` with a spinner and the elapsed time while the block runs.

        Yields:
            A function that replaces the text (for example with how far a file has got).
        """
        if not self.enabled:
            yield lambda _text: None
            return
        self._text = text
        done = threading.Event()
        started = time.monotonic()

        def spin() -> None:
            if done.wait(delay):
                return
            for frame in itertools.cycle(self._FRAMES):
                with self._lock:
                    line = f"{frame} {self._text} {time.monotonic() - started:.0f}s"
                    self.stream.write("\r\033[K" + line)
                    self.stream.flush()
                    self._shown = True
                if done.wait(0.2):
                    return

        def update(new: str) -> None:
            with self._lock:
                self._text = new

        thread = threading.Thread(target=spin, name="chainvoice-progress", daemon=True)
        thread.start()
        try:
            yield update
        finally:
            done.set()
            thread.join()
            with self._lock:
                if self._shown:
                    self.stream.write("\r\033[K")
                    self.stream.flush()
                    self._shown = False


# ------------------------------------------------------------------------------ backends


def _choose_backend(args: argparse.Namespace, err: IO[str]) -> str:
    if args.backend is not None:
        if args.backend == "openai" and not os.environ.get("OPENAI_API_KEY"):
            raise UsageError(
                "--backend openai needs an API key: set OPENAI_API_KEY, or use --backend local "
                "for the offline models"
            )
        return str(args.backend)
    if os.environ.get("OPENAI_API_KEY"):
        if not args.quiet:
            print(
                f"{PROG}: using the OpenAI backend (OPENAI_API_KEY is set; "
                "--backend local for the offline models)",
                file=err,
            )
        return "openai"
    if not args.quiet:
        print(
            f"{PROG}: using the local backend (no OPENAI_API_KEY set; it runs offline)",
            file=err,
        )
    return "local"


def _load(progress: Progress, stages: Sequence[Any]) -> float:
    """Load local stages now, with progress; returns the seconds it took."""
    names = {
        "LocalTranscriber": "speech recognition (whisper-base)",
        "LocalResponder": "the language model (SmolLM2-135M-Instruct)",
        "LocalSynthesizer": "the voice (hibari)",
    }
    started = time.perf_counter()
    for stage in stages:
        load = getattr(stage, "load", None)
        if load is None or getattr(stage, "loaded", True):
            continue
        with progress.task(f"Loading {names.get(type(stage).__name__, type(stage).__name__)}"):
            load()
    return time.perf_counter() - started


def _local_chain_stages(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    from chainvoice.local import stages

    responder_options: dict[str, Any] = {}
    if args.model:
        responder_options["model"] = args.model
    synth: dict[str, Any] = {}
    if args.speed is not None:
        synth["speed"] = args.speed
    if getattr(args, "voice_instructions", None):
        raise UsageError(
            "--voice-instructions needs --backend openai: the local voice cannot be steered"
        )
    return stages(
        language=args.language or "en",
        voice=args.voice or "heart",
        responder_options=responder_options,
        synthesizer_options=synth,
    )


def _openai_chain_stages(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    from chainvoice.openai import stages

    synth: dict[str, Any] = {}
    if args.speed is not None:
        synth["speed"] = args.speed
    transcriber: dict[str, Any] = {}
    if args.language:
        transcriber["language"] = args.language
    return stages(
        asynchronous=False,
        reply_model=args.model,
        voice=args.voice,
        voice_instructions=getattr(args, "voice_instructions", None),
        transcriber_options=transcriber,
        synthesizer_options=synth,
    )


# ------------------------------------------------------------------------------ inputs


#: What ``Audio.from_file`` recognises, for messages.
READABLE = "WAV, MP3, AAC, OGG (Opus, Vorbis, FLAC), FLAC, WebM, M4A/MP4, AIFF, CAF, AMR, WMA or AU"


def _read_audio(path: str) -> cv.Audio:
    file = Path(path)
    if not file.exists():
        raise UsageError(f"no such file: {path}")
    if file.is_dir():
        raise UsageError(f"{path} is a directory, not an audio file")
    try:
        return cv.Audio.from_file(file)
    except cv.AudioFormatError as exc:
        raise UsageError(_unreadable(file, exc)) from exc
    except cv.AudioError as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc


def _unreadable(file: Path, exc: cv.AudioFormatError) -> str:
    """One line for a file that is not audio chainvoice can read (no ffmpeg output)."""
    from chainvoice import _codecs

    with file.open("rb") as handle:
        head = handle.read(4096)
    kind = _codecs.sniff(head)
    if kind is None:
        why = _codecs._describe_unknown(head)
        return (
            f"cannot read {file}: cannot recognise the audio format ({why}); use a {READABLE} file"
        )
    if kind == "wav":  # read with numpy: its own messages are short and say what is wrong
        return f"cannot read {file}: {exc}"
    return (
        f"cannot read {file}: it looks like {kind.upper()} audio but cannot be decoded "
        "(corrupt or cut short?)"
    )


def _demo_question() -> Path:
    return Path(str(resources.files("chainvoice").joinpath(DEMO_QUESTION)))


def _check_output(path: str) -> Path:
    out = Path(path)
    if out.is_dir():
        raise UsageError(f"{path} is a directory; give a file name such as reply.wav")
    if not out.parent.exists():
        raise UsageError(f"cannot write {path}: the directory {out.parent} does not exist")
    # Fail on an unknown suffix before any work is done.
    from chainvoice import _codecs

    try:
        _codecs.format_from_suffix(out)
    except cv.AudioError as exc:
        what = f"the suffix {out.suffix!r}" if out.suffix else "a name without a suffix"
        raise UsageError(
            f"cannot tell the audio format of {path} from {what}; end the file name with one "
            f"of {', '.join(_codecs.SAVE_SUFFIXES)} (e.g. reply.wav)"
        ) from exc
    return out


# ------------------------------------------------------------------------------ commands


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}s"


def _print_timings(turn: cv.Turn, out: IO[str]) -> None:
    t = turn.timings
    print("Timings (seconds from the start of the turn):", file=out)
    for name, stage in (
        ("transcribe", t.transcribe),
        ("respond", t.respond),
        ("synthesize", t.synthesize),
    ):
        if stage is None:
            continue
        first = (
            f", first output {_fmt(stage.first_output)}"
            if stage.first_output is not None and name != "transcribe"
            else ""
        )
        print(
            f"  {name:<11} {_fmt(stage.start)} -> {_fmt(stage.end)}"
            f"  ({_fmt(stage.duration)}{first})",
            file=out,
        )
    print(f"  {'first audio':<11} {_fmt(t.first_audio)}", file=out)
    print(f"  {'total':<11} {_fmt(t.total)}", file=out)


def _model_of(stage: object) -> str:
    """The model a stage uses (``model`` on OpenAI's, ``model_name`` on the local ones)."""
    for name in ("model", "model_name"):
        value = getattr(stage, name, None)
        if isinstance(value, str) and value:
            return value
    return type(stage).__name__


def _run_turn(
    args: argparse.Namespace,
    audio: cv.Audio | None,
    text: str | None,
    output: Path,
    out: IO[str],
    err: IO[str],
    progress: Progress,
    *,
    demo: bool,
) -> int:
    backend = _choose_backend(args, err)
    stages = _local_chain_stages(args) if backend == "local" else _openai_chain_stages(args)
    if demo:
        names = ", ".join(_model_of(stage) for stage in stages)
        print(f"{PROG} demo ({backend} backend: {names})", file=out)
    if backend == "local":
        loaded = _load(progress, stages)
        if demo:
            print(f"Models loaded in {loaded:.2f}s", file=out)
    if audio is not None:
        source = "the sample question" if args.input is None else args.source
        print(f"Question:   {source} ({audio.duration:.1f}s of audio)", file=out)
    else:
        print(f"You said:   {text}", file=out)
    turn: cv.Turn | None = None
    replying = False
    with cv.Chain(*stages, instructions=args.instructions) as chain, contextlib.ExitStack() as wait:
        # A spinner until the first result; after that the streamed reply shows progress.
        wait.enter_context(progress.task("Listening" if audio is not None else "Thinking"))
        for event in chain.stream(audio) if audio is not None else chain.stream(text=text):
            wait.close()
            if isinstance(event, cv.TranscriptDone):
                heard = event.transcript.text or "(nothing: only silence)"
                print(f"You said:   {heard}", file=out, flush=True)
            elif isinstance(event, cv.ReplyDelta):
                if not replying:
                    print("Reply:      ", end="", file=out)
                    replying = True
                print(event.text, end="", file=out, flush=True)
            elif isinstance(event, cv.TurnDone):
                turn = event.turn
    if replying:
        print(file=out)
    assert turn is not None
    if not turn.reply.text:
        print("Reply:      (none)", file=out)
    _print_timings(turn, out)
    if turn.reply.audio is not None:
        turn.reply.audio.save(output)
        print(
            f"Reply audio: {output} ({turn.reply.audio.duration:.1f}s, {turn.reply.audio.rate} Hz)",
            file=out,
        )
    else:
        print("Reply audio: none (nothing to say)", file=out)
    return 0


def cmd_demo(args: argparse.Namespace, out: IO[str], err: IO[str], progress: Progress) -> int:
    """One full voice turn on the shipped question, a file, or text."""
    output = _check_output(args.output or DEFAULT_REPLY_FILE)
    if args.text is not None and args.input is not None:
        raise UsageError("give an audio file or --text, not both")
    if args.text is not None:
        if not args.text.strip():
            raise UsageError("--text is empty")
        args.source = None
        return _run_turn(args, None, args.text, output, out, err, progress, demo=True)
    args.source = args.input or _demo_question()
    audio = _read_audio(str(args.source))
    return _run_turn(args, audio, None, output, out, err, progress, demo=True)


def cmd_chat(args: argparse.Namespace, out: IO[str], err: IO[str], progress: Progress) -> int:
    """One voice turn: the reply to the audio in IN, written to OUT."""
    output = _check_output(args.output)
    args.source = args.input
    audio = _read_audio(args.input)
    return _run_turn(args, audio, None, output, out, err, progress, demo=False)


def _transcriber(args: argparse.Namespace, backend: str) -> Any:
    if backend == "local":
        from chainvoice.local import LocalTranscriber

        return LocalTranscriber(
            language=args.language,
            prompt=args.prompt,
            words=args.format in ("srt", "vtt", "json"),
            model=args.model,
        )
    from chainvoice.openai import stages

    options: dict[str, Any] = {}
    if args.language:
        options["language"] = args.language
    if args.prompt:
        options["prompt"] = args.prompt
    transcriber, _, _ = stages(
        asynchronous=False, transcription_model=args.model, transcriber_options=options
    )
    return transcriber


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def cmd_transcribe(args: argparse.Namespace, out: IO[str], err: IO[str], progress: Progress) -> int:
    """Transcribe audio files to text, JSON, SRT or WebVTT."""
    render = FORMATS[args.format]
    suffix = {"text": ".txt", "json": ".json", "srt": ".srt", "vtt": ".vtt"}[args.format]
    for name in args.files:  # check every input before the first (slow) one
        if not Path(name).is_file():
            raise UsageError(f"no such file: {name}")
    if args.output_dir is not None and not Path(args.output_dir).is_dir():
        raise UsageError(f"--output-dir {args.output_dir} is not a directory")
    backend = _choose_backend(args, err)
    transcriber = _transcriber(args, backend)
    _load(progress, [transcriber])
    for n, name in enumerate(args.files):
        audio = _read_audio(name)
        label = f"Transcribing {Path(name).name} ({_clock(audio.duration)})"
        with progress.task(label) as update:
            if hasattr(transcriber, "transcribe_stream") and backend == "local":

                def report(done: float, total: float, name: str = name) -> None:
                    update(f"Transcribing {Path(name).name}: {_clock(done)} / {_clock(total)}")

                transcript = None
                for item in transcriber.transcribe_stream(audio, progress=report):
                    if isinstance(item, cv.Transcript):
                        transcript = item
                assert transcript is not None
            else:
                # Long recordings go in pieces, concurrently; show how far it got.
                def report_pieces(event: cv.TranscriptionProgress, name: str = name) -> None:
                    update(
                        f"Transcribing {Path(name).name}: {_clock(event.done_seconds)} / "
                        f"{_clock(event.total_seconds)}, "
                        f"{event.pieces_done}/{event.pieces_total} pieces"
                    )

                long = cv.LongTranscriber(transcriber, progress=report_pieces)
                transcript = long.transcribe(audio)
        rendered = render(transcript)
        if args.output_dir is not None:
            target = Path(args.output_dir) / (Path(name).stem + suffix)
            target.write_text(rendered, encoding="utf-8")
            if not args.quiet:
                print(f"{PROG}: wrote {target}", file=err)
            continue
        if len(args.files) > 1:
            print(f"{'' if n == 0 else chr(10)}==> {name} <==", file=out)
        out.write(rendered)
        out.flush()
    return 0


def cmd_say(args: argparse.Namespace, out: IO[str], err: IO[str], progress: Progress) -> int:
    """Speak TEXT into an audio file."""
    text = sys.stdin.read() if args.text == "-" else args.text
    if not text.strip():
        raise UsageError("there is no text to say")
    to_stdout = args.output == "-"
    output = None if to_stdout else _check_output(args.output)
    backend = _choose_backend(args, err)
    if backend == "local":
        if args.instructions:
            raise UsageError(
                "--instructions needs --backend openai: the local voice cannot be steered"
            )
        if args.model:
            raise UsageError(
                "--model applies to --backend openai; the local backend has one voice model "
                "(choose a voice with --voice)"
            )
        from chainvoice.local import LocalSynthesizer

        options: dict[str, Any] = {"voice": args.voice or "heart"}
        if args.speed is not None:
            options["speed"] = args.speed
        synthesizer: Any = LocalSynthesizer(**options)
        _load(progress, [synthesizer])
    else:
        from chainvoice.openai import stages

        synth: dict[str, Any] = {}
        if args.speed is not None:
            synth["speed"] = args.speed
        _, _, synthesizer = stages(
            asynchronous=False,
            speech_model=args.model,
            voice=args.voice,
            voice_instructions=args.instructions,
            synthesizer_options=synth,
        )
    chunks: list[cv.Audio] = []
    with progress.task("Speaking") as update:
        for item in synthesizer.synthesize(text):
            if isinstance(item, cv.Audio):
                chunks.append(item)
                update(f"Speaking: {sum(c.duration for c in chunks):.1f}s of audio")
    if not chunks:
        raise UsageError("the text has nothing to say (no letters or digits)")
    audio = cv.Audio.concat(chunks)
    if to_stdout:
        sys.stdout.buffer.write(audio.to_wav())
        sys.stdout.buffer.flush()
    else:
        assert output is not None
        audio.save(output)
        if not args.quiet:
            print(f"{PROG}: wrote {output} ({audio.duration:.1f}s, {audio.rate} Hz)", file=err)
    return 0


def cmd_models(args: argparse.Namespace, out: IO[str], err: IO[str], progress: Progress) -> int:
    """Print the OpenAI model table: parameters, formats, streaming, prices, shutdowns."""
    from chainvoice.openai import format_models

    print(format_models(args.kind), file=out)
    return 0


# ------------------------------------------------------------------------------ parser


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _add_backend(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=("openai", "local"),
        help="openai, or local (offline); default: openai when OPENAI_API_KEY is set",
    )
    parser.add_argument("--model", help="the model to use instead of the backend's default")


def _add_turn_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--instructions", help="the system prompt: who the assistant is")
    parser.add_argument("--voice", help="the reply voice (local: heart)")
    parser.add_argument(
        "--voice-instructions", help="how the voice speaks (OpenAI's steerable voices)"
    )
    parser.add_argument("--speed", type=float, help="speaking rate (local: 0.5 to 2.0)")
    parser.add_argument("--language", help="the spoken language, e.g. en (local default: en)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``chainvoice`` command."""
    parser = _Parser(
        prog=PROG,
        description="Speech in, spoken reply out: transcribe, reply and speak from the shell.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {cv.__version__}")
    common = _Parser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress or notes on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="one full voice turn on a question that ships with chainvoice",
        description="Run one voice turn (speech -> text -> reply -> speech) on a short spoken "
        "question that ships with chainvoice, or on an audio file or text you give; print "
        "the transcript, the reply and per-stage timings; write the spoken reply to a WAV file.",
    )
    demo.add_argument("input", nargs="?", help="an audio file to use as the question")
    demo.add_argument("--text", help="ask this text instead of audio")
    demo.add_argument(
        "-o", "--output", help=f"where to write the spoken reply (default {DEFAULT_REPLY_FILE})"
    )
    _add_backend(demo)
    _add_turn_options(demo)
    demo.set_defaults(func=cmd_demo)

    chat = sub.add_parser(
        "chat",
        parents=[common],
        help="one voice turn: the spoken reply to IN, written to OUT",
        description="Transcribe IN, reply to it, and write the spoken reply to OUT.",
    )
    chat.add_argument("input", metavar="IN", help="the audio file to reply to")
    chat.add_argument("-o", "--output", metavar="OUT", required=True, help="the reply audio file")
    _add_backend(chat)
    _add_turn_options(chat)
    chat.set_defaults(func=cmd_chat)

    transcribe = sub.add_parser(
        "transcribe",
        parents=[common],
        help="audio files to text, JSON, SRT or WebVTT",
        description="Transcribe audio files; print the result, or write one file per input.",
    )
    transcribe.add_argument("files", metavar="FILE", nargs="+", help="audio files")
    transcribe.add_argument("--format", choices=sorted(FORMATS), default="text")
    transcribe.add_argument("--language", help="the spoken language, e.g. en (default: detect)")
    transcribe.add_argument("--prompt", help="text that comes before: names, spellings, style")
    transcribe.add_argument("--output-dir", help="write FILE's result to this directory")
    _add_backend(transcribe)
    transcribe.set_defaults(func=cmd_transcribe)

    say = sub.add_parser(
        "say",
        parents=[common],
        help="speak TEXT into an audio file",
        description="Speak TEXT ('-' reads standard input) into OUT; the format follows "
        "OUT's suffix ('-' writes WAV to standard output).",
    )
    say.add_argument("text", metavar="TEXT", help="what to say ('-' for standard input)")
    say.add_argument("-o", "--output", metavar="OUT", required=True, help="the audio file")
    say.add_argument("--voice", help="the voice (local: heart)")
    say.add_argument("--instructions", help="how to speak (OpenAI's steerable voices)")
    say.add_argument("--speed", type=float, help="speaking rate")
    _add_backend(say)
    say.set_defaults(func=cmd_say)

    models = sub.add_parser(
        "models",
        parents=[common],
        help="the OpenAI model table",
        description="Print the OpenAI models chainvoice knows: parameters, formats, "
        "streaming, prices and shutdown dates.",
    )
    models.add_argument(
        "--kind", choices=("transcription", "reply", "speech"), help="only models of this kind"
    )
    models.set_defaults(func=cmd_models)
    return parser


# ------------------------------------------------------------------------------ main


def _fail(err: IO[str], message: str, status: int) -> int:
    first = " ".join(str(message).split())
    print(f"{PROG}: error: {first}", file=err)
    return status


#: Errors that are the caller's mistake (a refused key, a bad option or input): status 2.
_USAGE_ERRORS = (
    cv.AuthenticationError,
    cv.ConfigurationError,
    cv.AudioError,
    cv.MissingDependencyError,
)


def _status(error: BaseException) -> int:
    """The exit status for a chainvoice error: 2 for a mistake, 1 for a failure."""
    return 2 if isinstance(error, _USAGE_ERRORS) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``chainvoice`` command with ``argv`` (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 1 when work failed, 2 for a usage mistake.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    out, err = sys.stdout, sys.stderr
    progress = Progress(err, enabled=err.isatty() and not args.quiet)
    try:
        return int(args.func(args, out, err, progress))
    except UsageError as exc:
        return _fail(err, str(exc), 2)
    except cv.StageError as exc:  # the same status as the stage's own error would give
        return _fail(err, f"the {exc.stage} stage failed: {exc.error}", _status(exc.error))
    except cv.MissingDependencyError as exc:
        hint = ""
        if getattr(args, "backend", None) is None and not os.environ.get("OPENAI_API_KEY"):
            hint = "; or set OPENAI_API_KEY to use OpenAI instead"
        return _fail(err, f"{exc}{hint}", 2)
    except cv.ChainvoiceError as exc:
        return _fail(err, str(exc), _status(exc))
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        return _fail(err, f"{exc.strerror}: {exc.filename}", 2)
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=err)
        return 130
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 1
