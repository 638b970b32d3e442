"""LocalSynthesizer: hibari-tts with its bundled voice, streaming one sentence at a time."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from chainvoice._audio import Audio
from chainvoice._errors import ConfigurationError
from chainvoice._types import Usage
from chainvoice.local._assets import loaded as _loaded
from chainvoice.local._assets import require_modules, shared_model

__all__ = ["HIBARI_RATE", "LocalSynthesizer"]

HIBARI_RATE = 24000
"""The sample rate of hibari's speech, in Hz."""

DEFAULT_VOICE = "heart"

_WORD = re.compile(r"[^\W_]+")  # a run of letters and digits
_OTHER_LANGUAGES = (
    "for other languages use a synthesizer that speaks them (e.g. "
    "chainvoice.openai.OpenAISynthesizer), or ask the responder to answer in English"
)


def _quote(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _unspoken_words(tts: Any, text: str) -> list[str]:
    """The words of ``text`` the voice has no pronunciation for (it skips them)."""
    return [
        word
        for word in dict.fromkeys(_WORD.findall(text))
        if not word.isascii() and not any(p.strip() for p in tts.phonemize(word))
    ]


def _voice_model_path(voice: str) -> Path:
    """The ONNX file of a hibari voice, without ever downloading one.

    Raises:
        ConfigurationError: An unknown voice, or one that is neither in the package nor
            already in hibari's cache.
    """
    from hibari import voices

    if voice not in voices.VOICES:
        raise ConfigurationError(
            f"hibari has no voice {voice!r}; its voices are {', '.join(voices.VOICES)} "
            f"({DEFAULT_VOICE!r} ships in the package)"
        )
    try:
        return Path(voices.voice_path(voice, download_missing=False))
    except FileNotFoundError:
        raise ConfigurationError(
            f"the hibari voice {voice!r} is not in the package and chainvoice does not download "
            f"models; use voice={DEFAULT_VOICE!r} (bundled), or place its file "
            f"{voices.VOICES[voice]['file']} (sha256 {voices.VOICES[voice]['sha256']}) in "
            f"{voices.cache_dir()} yourself"
        ) from None


@attrs.define
class _Voice:
    tts: Any


def _load_voice(voice: str, path: Path, threads: int) -> _Voice:
    from hibari import Hibari

    tts = Hibari(voice=voice, model=str(path), threads=threads)
    # Build the grapheme-to-phoneme models now: lazily, concurrent first calls could race.
    tts.phonemize("Hello.")
    return _Voice(tts=tts)


class LocalSynthesizer:
    """Text to speech on this machine: hibari-tts (24 kHz mono), one chunk per sentence.

    The voice ``"heart"`` (American English) ships inside the ``hibari-tts`` package.
    hibari's other voices are downloaded by hibari on first use; chainvoice never does
    that, so they work only when already in hibari's cache (``HIBARI_HOME``).

    Args:
        voice: The hibari voice.
        speed: Speaking rate, from 0.5 (slow) to 2.0 (fast).
        seed: Fixes the random part of the voice, so the same text gives the same samples.
        threads: onnxruntime threads per synthesis (one is plenty: it runs about 50 times
            faster than real time on one core; sentences are synthesized concurrently).

    Raises:
        MissingDependencyError: The ``local`` extra is not installed.
        ConfigurationError: An unknown or not-installed voice, or a speed out of range.

    Example:
        >>> from chainvoice.local import LocalSynthesizer
        >>> chunks = list(LocalSynthesizer().synthesize("Hello there. How are you?"))
        >>> [c.rate for c in chunks if isinstance(c, Audio)]  # doctest: +SKIP
        [24000, 24000]
    """

    rate = HIBARI_RATE

    def __init__(
        self,
        *,
        voice: str = DEFAULT_VOICE,
        speed: float = 1.0,
        seed: int | None = None,
        threads: int = 1,
    ) -> None:
        require_modules("hibari", "onnxruntime", what="the local synthesizer")
        if not isinstance(speed, (int, float)) or not 0.5 <= float(speed) <= 2.0:
            raise ConfigurationError(f"speed must be from 0.5 to 2.0, not {speed!r}")
        if seed is not None and (not isinstance(seed, int) or seed < 0):
            raise ConfigurationError(f"seed must be a non-negative integer or None, not {seed!r}")
        if not isinstance(threads, int) or threads < 1:
            raise ConfigurationError(f"threads must be a positive integer, not {threads!r}")
        self.voice = voice
        self._path = _voice_model_path(voice)
        self.speed = float(speed)
        self.seed = seed
        self.threads = threads
        self.model_name = f"hibari-{voice}"

    def __repr__(self) -> str:
        return f"LocalSynthesizer(voice={self.voice!r}, speed={self.speed})"

    @property
    def _key(self) -> tuple[str, str, int]:
        return ("hibari", os.fspath(self._path), self.threads)

    @property
    def loaded(self) -> bool:
        """True once this voice is loaded in this process."""
        return _loaded(self._key)

    def load(self) -> LocalSynthesizer:
        """Load the voice now rather than on first use.

        Returns:
            This synthesizer.
        """
        self._model()
        return self

    def _model(self) -> _Voice:
        return shared_model(self._key, lambda: _load_voice(self.voice, self._path, self.threads))

    def synthesize(self, text: str) -> Iterator[Audio | Usage]:
        """Speak ``text``, one audio chunk per sentence, each as soon as it is made.

        The voices speak English (and read digits, Latin letters with accents, Greek and
        Cyrillic the English way); they cannot say words in other scripts (Japanese,
        Chinese, Korean, Arabic, Hebrew, Devanagari, Thai, ...).

        Yields:
            24 kHz mono ``Audio`` chunks, then one ``Usage`` (characters and seconds of
            audio; the cost is 0). Text with no letters or digits (blank, or only
            punctuation or emoji) yields no audio.

        Raises:
            ConfigurationError: The text has letters or digits but the voice can say none
                of it (text in another language); in a chain this is a ``StageError``
                that keeps the reply text.

        Warns:
            UserWarning: The voice skipped some words it cannot say (e.g. a Japanese name
                in an English sentence); the rest is spoken.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, not {type(text).__name__}")
        seconds = 0.0
        if any(c.isalnum() for c in text):  # punctuation alone would come out as a breath
            tts = self._model().tts
            rng = np.random.default_rng(self.seed)
            for phonemes in tts.phonemize(text):
                samples = tts.from_ids(tts.ids(phonemes), self.speed, rng)
                if len(samples) == 0:
                    continue
                chunk = Audio(np.asarray(samples, dtype=np.float32), HIBARI_RATE)
                seconds += chunk.duration
                yield chunk
            if seconds == 0.0:
                raise ConfigurationError(
                    f"the local voice {self.voice!r} speaks English and could not say any of "
                    f"{_quote(text)}; {_OTHER_LANGUAGES}"
                )
            unspoken = [] if text.isascii() else _unspoken_words(tts, text)
            if unspoken:
                warnings.warn(
                    f"the local voice {self.voice!r} speaks English and skipped words it "
                    f"cannot say: {', '.join(_quote(w, 20) for w in unspoken[:5])}"
                    + (f" and {len(unspoken) - 5} more" if len(unspoken) > 5 else "")
                    + f"; {_OTHER_LANGUAGES}",
                    UserWarning,
                    stacklevel=2,
                )
        yield Usage(
            stage="synthesize",
            model=self.model_name,
            characters=len(text),
            audio_seconds=seconds,
            cost_usd=0.0,
        )
