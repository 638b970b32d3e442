"""Audio for :class:`~chainvoice.testing.FakeOpenAI`: synthetic speech out, durations in.

The fake's "speech" is a deterministic sequence of soft tones, one per word, with a
silence for every space or punctuation mark, so that its length is proportional to the
text (``seconds_per_character`` per character, divided by ``speed``) and tests can check
lengths, silences and chunk boundaries exactly.
"""

from __future__ import annotations

import functools
import math
import struct
from typing import Final

import numpy as np
import numpy.typing as npt

from chainvoice import Audio, AudioError, FFmpegNotFoundError

__all__ = [
    "SPEECH_CONTENT_TYPES",
    "SPEECH_RATE",
    "UploadProblem",
    "encode_speech",
    "speech_pcm",
    "upload_duration",
]

#: OpenAI's speech output: 24 kHz, mono, 16-bit little-endian.
SPEECH_RATE: Final = 24_000

#: The Content-Type OpenAI's /audio/speech sends for each ``response_format``.
SPEECH_CONTENT_TYPES: Final[dict[str, str]] = {
    "mp3": "audio/mpeg",
    "opus": "audio/opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}

_AMPLITUDE: Final = 0.2  # about -14 dBFS: soft, far from clipping
_FADE_SECONDS: Final = 0.005  # short ramps so that word edges do not click
_FREQUENCIES: Final = (220.0, 247.0, 262.0, 294.0, 330.0)  # one per word, cycling


def speech_pcm(text: str, *, speed: float, seconds_per_character: float) -> bytes:
    """Raw 24 kHz mono PCM16 "speech" for ``text``: one tone per word.

    Every character lasts ``seconds_per_character / speed`` seconds; letters and digits
    sound, everything else is silence. Empty text gives one character of silence.
    """
    return _speech_pcm(text, float(speed), float(seconds_per_character))


@functools.lru_cache(maxsize=32)
def _speech_pcm(text: str, speed: float, seconds_per_character: float) -> bytes:
    per_char = max(1, round(SPEECH_RATE * seconds_per_character / speed))
    chars = text or " "
    total = per_char * len(chars)
    out = np.zeros(total, dtype=np.float32)
    fade = max(1, min(per_char, round(_FADE_SECONDS * SPEECH_RATE)))
    word = 0
    start: int | None = None
    for i, char in enumerate([*chars, " "]):  # a trailing space closes the last word
        if char.isalnum():
            if start is None:
                start = i
            continue
        if start is not None:
            first, last = start * per_char, i * per_char
            out[first:last] = _tone(last - first, _FREQUENCIES[word % len(_FREQUENCIES)], fade)
            word += 1
            start = None
    return (np.clip(out, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def _tone(length: int, frequency: float, fade: int) -> npt.NDArray[np.float32]:
    t = np.arange(length, dtype=np.float64) / SPEECH_RATE
    wave = _AMPLITUDE * np.sin(2.0 * math.pi * frequency * t)
    ramp = min(fade, length // 2)
    if ramp:
        envelope = np.ones(length)
        envelope[:ramp] = np.linspace(0.0, 1.0, ramp, endpoint=False)
        envelope[length - ramp :] = np.linspace(1.0, 0.0, ramp, endpoint=False)
        wave *= envelope
    return wave.astype(np.float32)


def streaming_wav_header() -> bytes:
    """The 44-byte WAV header OpenAI streams: PCM16 24 kHz mono, sizes 0xFFFFFFFF.

    A streamed WAV cannot know its length up front, so OpenAI writes the largest size in
    both the RIFF and the data chunk; readers must take the data to the end of the body.
    """
    unknown = 0xFFFFFFFF
    return (
        b"RIFF"
        + struct.pack("<I", unknown)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, SPEECH_RATE, SPEECH_RATE * 2, 2, 16)
        + b"data"
        + struct.pack("<I", unknown)
    )


def encode_speech(pcm: bytes, response_format: str) -> bytes:
    """``pcm`` (24 kHz mono PCM16) as a file in one of OpenAI's speech formats.

    ``pcm`` and ``wav`` are written directly; ``mp3``, ``opus`` (Ogg Opus), ``aac`` (ADTS)
    and ``flac`` are encoded by ffmpeg through :meth:`chainvoice.Audio.encode`.

    Raises:
        FFmpegNotFoundError: A compressed format and no ffmpeg.
        AudioError: ffmpeg failed, or an unknown format.
    """
    return _encode_speech(pcm, response_format)


@functools.lru_cache(maxsize=16)
def _encode_speech(pcm: bytes, response_format: str) -> bytes:
    if response_format == "pcm":
        return pcm
    if response_format == "wav":
        return streaming_wav_header() + pcm
    if response_format not in SPEECH_CONTENT_TYPES:
        raise AudioError(f"the fake cannot produce speech as {response_format!r}")
    return Audio.from_pcm16(pcm, rate=SPEECH_RATE).encode(response_format)


class UploadProblem(Exception):
    """An uploaded audio file the real API would refuse (corrupt, empty or too short)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def upload_duration(data: bytes) -> float:
    """Seconds of audio in an uploaded file, as the transcription endpoint measures it.

    Decoded with :meth:`chainvoice.Audio.from_bytes`. Without ffmpeg, a compressed file's
    length is estimated from its size at 128 kbit/s.

    Raises:
        UploadProblem: The file is empty, corrupt, unsupported or shorter than 0.1 s
            (what OpenAI answers with HTTP 400).
    """
    if not data:
        raise UploadProblem(
            "Audio file is too short. Minimum audio length is 0.1 seconds.", "audio_too_short"
        )
    try:
        seconds = Audio.from_bytes(data).duration
    except FFmpegNotFoundError:
        seconds = len(data) / 16_000
    except AudioError as exc:
        raise UploadProblem(
            f"Audio file might be corrupted or unsupported ({exc})", "invalid_value"
        ) from exc
    if seconds < 0.1:
        raise UploadProblem(
            "Audio file is too short. Minimum audio length is 0.1 seconds.", "audio_too_short"
        )
    return seconds
