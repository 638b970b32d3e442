"""Decoding long compressed files: samples stream from ffmpeg into memory in bounded chunks.

The peak memory itself is measured in ``bench/bench_long.py``; here the chunked reader is
checked for exactness across chunk boundaries and for its failure modes.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np
import pytest

import chainvoice as cv
from chainvoice import _codecs

pytest.importorskip("imageio_ffmpeg")


def _signal(seconds: float, rate: int, channels: int) -> cv.Audio:
    rng = np.random.default_rng(3)
    frames = round(seconds * rate)
    t = np.arange(frames) / rate
    mono = 0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)
    noisy = mono[:, None] + rng.normal(0, 0.01, (frames, channels))
    # Quantised to 16 bits, so that a FLAC round trip is exact.
    return cv.Audio.from_pcm16(cv.Audio(noisy, rate).to_pcm16(), rate=rate, channels=channels)


@pytest.mark.parametrize("chunk", [4096, 4099, 1 << 22])
@pytest.mark.parametrize("channels", [1, 2])
def test_chunked_reading_is_exact_across_chunk_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, channels: int
) -> None:
    audio = _signal(3.3, 8000, channels)
    path = audio.save(tmp_path / "a.flac")
    monkeypatch.setattr(_codecs, "_READ_CHUNK", chunk)
    decoded = cv.Audio.from_file(path)
    assert decoded.rate == 8000 and decoded.channels == channels
    assert np.array_equal(decoded.samples, audio.samples)
    assert not decoded.samples.flags.writeable


def test_reading_a_streamed_wav_from_a_pipe_with_unknown_sizes() -> None:
    body = np.linspace(-0.5, 0.5, 30001, dtype="<f4").tobytes()
    wav = bytearray(_codecs.write_wav(np.zeros((1, 1), np.float32), 16000, "float32"))
    data_at = wav.index(b"data")
    header = bytes(wav[: data_at + 4]) + b"\xff\xff\xff\xff"
    header = header[:4] + b"\xff\xff\xff\xff" + header[8:]
    samples, rate = _codecs._read_stream_wav(io.BytesIO(header + body))
    assert rate == 16000
    assert np.array_equal(samples[:, 0], np.frombuffer(body, "<f4"))


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", cv.AudioFormatError),
        (b"RIFF\x00\x00\x00\x00WAVE", cv.AudioFormatError),
        (b"nonsense at the start of it", cv.AudioFormatError),
    ],
)
def test_a_stream_without_a_proper_header_is_refused(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        _codecs._read_stream_wav(io.BytesIO(data))


def test_a_stream_with_no_frames_is_empty_and_nan_is_refused() -> None:
    header = _codecs.write_wav(np.zeros((1, 1), np.float32), 8000, "float32")[:-4]
    with pytest.raises(cv.EmptyAudioError):
        _codecs._read_stream_wav(io.BytesIO(header + b"\x00\x00"))
    bad = np.array([0.0, np.nan, 0.5], dtype="<f4").tobytes()
    with pytest.raises(cv.InvalidSamplesError, match="NaN"):
        _codecs._read_stream_wav(io.BytesIO(header + bad))


def test_a_corrupt_file_fails_with_ffmpegs_reason_without_hanging(tmp_path: Path) -> None:
    good = _signal(2.0, 16000, 1).encode("mp3")
    junk = good[:2000] + bytes(range(256)) * 2000 + good[2000:4000]
    path = tmp_path / "broken.mp3"
    path.write_bytes(junk)
    try:
        decoded = cv.Audio.from_file(path)
    except cv.AudioFormatError as exc:
        assert "ffmpeg" in str(exc)
    else:  # ffmpeg skips junk between MP3 frames; what it kept must be sound
        assert decoded.frames > 0 and np.isfinite(decoded.samples).all()


def test_a_file_without_audio_frames_is_empty(tmp_path: Path) -> None:
    ffmpeg = _codecs.find_ffmpeg()
    path = tmp_path / "empty.ogg"
    subprocess.run(
        [
            ffmpeg,
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "anullsrc=r=8000:cl=mono",
            "-t",
            "0",
            "-c:a",
            "libvorbis",
            str(path),
        ],
        check=True,
    )
    with pytest.raises((cv.EmptyAudioError, cv.AudioFormatError)):
        cv.Audio.from_file(path)
