"""Reading and writing audio bytes: WAV and PCM with numpy, everything else through ffmpeg.

WAV (PCM 8/16/24/32-bit, IEEE float 32/64-bit, A-law and mu-law, with plain, float or
WAVE_FORMAT_EXTENSIBLE headers, RIFF or RF64) is parsed here with numpy alone. Compressed
formats are decoded and encoded by an ffmpeg subprocess: the audio is piped through it as
32-bit float WAV, so ffprobe is never needed. ffmpeg is looked up in ``$CHAINVOICE_FFMPEG``,
then on ``PATH``, then in the ``imageio-ffmpeg`` wheel (``pip install 'chainvoice[ffmpeg]'``).
pydub is only used to convert to and from ``AudioSegment`` and is imported on first use.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import shutil
import struct
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path
from types import ModuleType
from typing import IO, Any, Final

import attrs
import numpy as np
import numpy.typing as npt

from chainvoice._errors import (
    AudioFormatError,
    ConfigurationError,
    EmptyAudioError,
    FFmpegNotFoundError,
    InvalidSamplesError,
    MissingDependencyError,
    SampleRateError,
)

__all__ = [
    "DECODE_FORMATS",
    "ENCODE_FORMATS",
    "MAX_RATE",
    "MIN_RATE",
    "SAVE_SUFFIXES",
    "WAV_SAMPLE_FORMATS",
    "canonical_format",
    "check_decode_format",
    "clear_ffmpeg_cache",
    "decode",
    "decode_file",
    "decode_pcm16",
    "encode",
    "encode_pcm16",
    "find_ffmpeg",
    "format_from_suffix",
    "load_pydub",
    "rate_error",
    "read_wav",
    "segment_to_samples",
    "sniff",
    "unknown_format_error",
    "write_wav",
]

Samples = npt.NDArray[np.float32]

FFMPEG_HINT: Final = (
    "install ffmpeg (e.g. `apt install ffmpeg`, `brew install ffmpeg`) or "
    "`pip install 'chainvoice[ffmpeg]'` for a bundled one; WAV and raw PCM need no ffmpeg"
)

# --------------------------------------------------------------------------------------------
# Format names
# --------------------------------------------------------------------------------------------


@attrs.frozen
class _Encoder:
    """How ffmpeg writes one output format (always to a temporary file, which it can seek)."""

    muxer: str
    codec: str
    lossy: bool


# Output formats reached through ffmpeg; "wav" and "pcm" are written with numpy.
_ENCODERS: Final[dict[str, _Encoder]] = {
    "mp3": _Encoder("mp3", "libmp3lame", lossy=True),
    "ogg": _Encoder("ogg", "libvorbis", lossy=True),
    "opus": _Encoder("ogg", "libopus", lossy=True),
    "flac": _Encoder("flac", "flac", lossy=False),
    "webm": _Encoder("webm", "libopus", lossy=True),
    "m4a": _Encoder("ipod", "aac", lossy=True),
    "mp4": _Encoder("mp4", "aac", lossy=True),
    "aac": _Encoder("adts", "aac", lossy=True),
    "aiff": _Encoder("aiff", "pcm_s16be", lossy=False),
}

_ALIASES: Final[dict[str, str]] = {
    "wave": "wav",
    "pcm16": "pcm",
    "s16le": "pcm",
    "raw": "pcm",
    "oga": "ogg",
    "vorbis": "ogg",
    "weba": "webm",
    "aif": "aiff",
    "mpeg": "mp3",
}

#: Every format name :func:`encode` accepts (after aliases).
ENCODE_FORMATS: Final[tuple[str, ...]] = ("wav", "pcm", *_ENCODERS)

#: File suffixes :meth:`Audio.save` understands, and the format each one means.
SAVE_SUFFIXES: Final[dict[str, str]] = {
    ".wav": "wav",
    ".wave": "wav",
    ".pcm": "pcm",
    ".raw": "pcm",
    ".mp3": "mp3",
    ".ogg": "ogg",
    ".oga": "ogg",
    ".opus": "opus",
    ".flac": "flac",
    ".webm": "webm",
    ".weba": "webm",
    ".m4a": "m4a",
    ".mp4": "mp4",
    ".aac": "aac",
    ".aif": "aiff",
    ".aiff": "aiff",
}

# Decoder hints: a format name to the ffmpeg demuxer that reads it.
_DEMUXERS: Final[dict[str, str]] = {
    "mp3": "mp3",
    "ogg": "ogg",
    "opus": "ogg",
    "flac": "flac",
    "webm": "matroska",
    "matroska": "matroska",
    "mkv": "matroska",
    "mka": "matroska",
    "m4a": "mov",
    "mp4": "mov",
    "mov": "mov",
    "3gp": "mov",
    "aac": "aac",
    "aiff": "aiff",
    "caf": "caf",
    "amr": "amr",
    "wma": "asf",
    "asf": "asf",
    "au": "au",
}


#: Format names a decoder hint (``Audio.from_bytes(..., format=)``) may use, besides any
#: demuxer name of the ffmpeg that is found (see ``ffmpeg -demuxers``).
DECODE_FORMATS: Final[tuple[str, ...]] = ("wav", *_DEMUXERS)

#: The sample rates chainvoice accepts, in Hz: 1 kHz up to 768 kHz, the highest rate of
#: common audio hardware. A rate outside is a mistake (kHz for Hz, a byte rate, a typo).
MIN_RATE: Final = 1_000
MAX_RATE: Final = 768_000


def rate_error(rate: object, what: str = "the sample rate") -> SampleRateError | None:
    """The error for a rate that is not a whole number of Hz in [MIN_RATE, MAX_RATE]."""
    hint = ""
    if isinstance(rate, int) and not isinstance(rate, bool):
        if MIN_RATE <= rate <= MAX_RATE:
            return None
        if 0 < rate < MIN_RATE:
            hint = f" (in Hz, not kHz: {rate} kHz is {rate * 1000} Hz)"
    return SampleRateError(
        f"{what} must be a whole number of Hz from {MIN_RATE} to {MAX_RATE}, not {rate!r}{hint}"
    )


def canonical_format(name: str) -> str:
    """Lower-case a format name, drop a leading dot and resolve aliases."""
    key = name.strip().lower().lstrip(".")
    return _ALIASES.get(key, key)


def format_from_suffix(path: str | os.PathLike[str]) -> str:
    """The output format a file name asks for, from its suffix.

    Raises:
        AudioFormatError: The suffix is missing or not one chainvoice can write.
    """
    suffix = Path(path).suffix.lower()
    try:
        return SAVE_SUFFIXES[suffix]
    except KeyError:
        supported = ", ".join(SAVE_SUFFIXES)
        what = f"the suffix {suffix!r}" if suffix else "a file name without a suffix"
        raise AudioFormatError(
            f"cannot tell the audio format from {what} ({os.fspath(path)!r}); use one of "
            f"{supported}, or pass format= explicitly"
        ) from None


# --------------------------------------------------------------------------------------------
# Sniffing
# --------------------------------------------------------------------------------------------

_MP3_SYNC_LAYERS: Final = frozenset({1, 2, 3})


def _id3_end(data: bytes) -> int:
    """Offset just past a leading ID3v2 tag (0 without one)."""
    if len(data) < 10 or data[:3] != b"ID3":
        return 0
    size_bytes = data[6:10]
    if any(b & 0x80 for b in size_bytes):
        return 0
    size = 0
    for b in size_bytes:
        size = (size << 7) | b
    footer = 10 if data[5] & 0x10 else 0
    return 10 + size + footer


def _is_mpeg_audio_frame(head: bytes) -> bool:
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version = (head[1] >> 3) & 0x3
    layer = (head[1] >> 1) & 0x3
    bitrate_index = head[2] >> 4
    rate_index = (head[2] >> 2) & 0x3
    return version != 1 and layer in _MP3_SYNC_LAYERS and bitrate_index != 15 and rate_index != 3


def _is_adts_frame(head: bytes) -> bool:
    # 12 sync bits, then the layer bits are 00 in ADTS (MPEG-2/4 AAC).
    return len(head) >= 4 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0


def _after_id3(after: bytes) -> str:
    """The format behind an ID3v2 tag, from the bytes that follow it."""
    if after[:4] == b"fLaC":
        return "flac"
    if _is_adts_frame(after):
        return "aac"
    # An ID3 tag in front of anything else is an MP3 (possibly with padding first).
    return "mp3"


def sniff(data: bytes) -> str | None:
    """Name the container in ``data`` from its magic bytes, or ``None`` if unknown.

    Returns one of ``"wav"``, ``"mp3"``, ``"aac"``, ``"ogg"``, ``"flac"``, ``"webm"``,
    ``"matroska"``, ``"mp4"``, ``"aiff"``, ``"caf"``, ``"amr"``, ``"wma"``, ``"au"``.
    """
    head = data[:64]
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm" if b"webm" in data[:64] else "matroska"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "mp4"
    if len(head) >= 12 and head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:4] == b"caff":
        return "caf"
    if head[:5] == b"#!AMR":
        return "amr"
    if head[:4] == b".snd":
        return "au"
    if head[:16] == bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c"):
        return "wma"
    if _id3_end(data):
        return _after_id3(data[_id3_end(data) :])
    if _is_adts_frame(head):
        return "aac"
    if _is_mpeg_audio_frame(head):
        return "mp3"
    return None


def _describe_unknown(data: bytes) -> str:
    head = data[:256].lstrip()
    lowered = head[:32].lower()
    if lowered.startswith((b"<!doctype", b"<html", b"<?xml", b"<")):
        return "it looks like HTML or XML text, not audio (an error page saved as audio?)"
    if lowered.startswith((b"{", b"[")):
        return "it looks like JSON text, not audio (an API error response?)"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return f"it starts with bytes {data[:8].hex(' ')}"
    if head and all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        return "it looks like plain text, not audio"
    return f"it starts with bytes {data[:8].hex(' ')}"


def unknown_format_error(data: bytes, where: str = "the data") -> AudioFormatError:
    """The error for bytes whose format cannot be recognised."""
    return AudioFormatError(
        f"cannot recognise the audio format of {where}: {_describe_unknown(data)}. chainvoice "
        "reads WAV, MP3, AAC, OGG (Opus/Vorbis/FLAC), FLAC, WebM/Matroska, M4A/MP4, AIFF, CAF, "
        "AMR, WMA and AU; for raw 16-bit PCM use Audio.from_pcm16(data, rate=...), and for "
        "another format ffmpeg can read pass format=... (e.g. format='mp3')"
    )


# --------------------------------------------------------------------------------------------
# WAV with numpy
# --------------------------------------------------------------------------------------------

_WAVE_FORMAT_PCM: Final = 0x0001
_WAVE_FORMAT_IEEE_FLOAT: Final = 0x0003
_WAVE_FORMAT_ALAW: Final = 0x0006
_WAVE_FORMAT_MULAW: Final = 0x0007
_WAVE_FORMAT_EXTENSIBLE: Final = 0xFFFE
_GUID_TAIL: Final = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
_UNKNOWN_SIZE: Final = 0xFFFFFFFF
_MAX_CHANNELS: Final = 1024


@attrs.frozen
class _WavFormat:
    tag: int
    channels: int
    rate: int
    sample_bytes: int


class _NeedsFFmpeg(Exception):
    """A WAV file in a codec numpy does not decode (ADPCM, GSM, MP3-in-WAV, ...)."""

    def __init__(self, tag: int) -> None:
        super().__init__(tag)
        self.tag = tag


def _corrupt(message: str) -> AudioFormatError:
    return AudioFormatError(f"corrupt WAV data: {message}; re-export or re-record the file")


def _parse_fmt(body: bytes) -> _WavFormat:
    if len(body) < 16:
        raise _corrupt(f"the fmt chunk is {len(body)} bytes long, at least 16 are needed")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", body)
    if tag == _WAVE_FORMAT_EXTENSIBLE:
        if len(body) < 40:
            raise _corrupt("a WAVE_FORMAT_EXTENSIBLE fmt chunk shorter than 40 bytes")
        guid = body[24:40]
        if guid[2:] != _GUID_TAIL:
            raise _NeedsFFmpeg(tag)
        tag = struct.unpack_from("<H", guid)[0]
    if channels == 0:
        raise _corrupt("the header says the file has 0 channels")
    if channels > _MAX_CHANNELS:
        raise _corrupt(f"the header says the file has {channels} channels")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise SampleRateError(
            f"the WAV header gives a sample rate of {rate} Hz, outside the {MIN_RATE} to "
            f"{MAX_RATE} Hz chainvoice reads: the file is corrupt or not audio; re-export it, "
            "or read the raw samples with Audio.from_pcm16(..., rate=)"
        )
    if block_align and block_align % channels == 0:
        sample_bytes = block_align // channels
    else:
        sample_bytes = (bits + 7) // 8
    if tag == _WAVE_FORMAT_PCM and sample_bytes not in (1, 2, 3, 4):
        raise AudioFormatError(
            f"unsupported WAV sample size: {bits}-bit integer PCM in {sample_bytes}-byte "
            "containers; chainvoice reads 8, 16, 24 and 32-bit PCM"
        )
    if tag == _WAVE_FORMAT_IEEE_FLOAT and sample_bytes not in (4, 8):
        raise AudioFormatError(
            f"unsupported WAV sample size: {bits}-bit float; chainvoice reads 32 and 64-bit float"
        )
    if tag in (_WAVE_FORMAT_ALAW, _WAVE_FORMAT_MULAW) and sample_bytes != 1:
        raise _corrupt(f"G.711 audio with {sample_bytes}-byte samples")
    if tag not in (
        _WAVE_FORMAT_PCM,
        _WAVE_FORMAT_IEEE_FLOAT,
        _WAVE_FORMAT_ALAW,
        _WAVE_FORMAT_MULAW,
    ):
        raise _NeedsFFmpeg(tag)
    return _WavFormat(tag, channels, rate, sample_bytes)


def _g711_table(mu: bool) -> npt.NDArray[np.float32]:
    codes = np.arange(256, dtype=np.int32)
    if mu:
        u = ~codes & 0xFF
        exponent = (u >> 4) & 0x7
        magnitude = ((((u & 0x0F) << 3) + 0x84) << exponent) - 0x84
        values = np.where(u & 0x80, -magnitude, magnitude)
    else:
        a = codes ^ 0x55
        exponent = (a >> 4) & 0x7
        mantissa = a & 0x0F
        magnitude = np.where(
            exponent == 0,
            (mantissa << 4) + 8,
            ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0),
        )
        values = np.where(a & 0x80, magnitude, -magnitude)
    return (values / 32768.0).astype(np.float32)


_G711: dict[bool, npt.NDArray[np.float32]] = {}


def _decode_samples(raw: bytes, offset: int, count: int, fmt: _WavFormat) -> Samples:
    """Decode ``count`` frames at ``offset`` of ``raw`` to float32 (frames, channels)."""
    n = count * fmt.channels
    width = fmt.sample_bytes
    out: npt.NDArray[Any]
    if fmt.tag == _WAVE_FORMAT_IEEE_FLOAT:
        dtype = "<f4" if width == 4 else "<f8"
        out = np.frombuffer(raw, dtype=dtype, count=n, offset=offset)
        if not np.isfinite(out).all():
            raise InvalidSamplesError(
                "the float WAV data contains NaN or infinite samples: the file is corrupt; "
                "re-export it"
            )
        out = out.astype(np.float32, copy=False)
        if not out.flags.aligned:
            out = out.copy()
    elif fmt.tag in (_WAVE_FORMAT_ALAW, _WAVE_FORMAT_MULAW):
        mu = fmt.tag == _WAVE_FORMAT_MULAW
        table = _G711.get(mu)
        if table is None:
            table = _G711[mu] = _g711_table(mu)
        out = table[np.frombuffer(raw, dtype=np.uint8, count=n, offset=offset)]
    elif width == 1:
        u8 = np.frombuffer(raw, dtype=np.uint8, count=n, offset=offset)
        out = (u8.astype(np.float32) - np.float32(128.0)) / np.float32(128.0)
    elif width == 2:
        out = np.frombuffer(raw, dtype="<i2", count=n, offset=offset).astype(np.float32)
        out *= np.float32(1.0 / 32768.0)
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8, count=3 * n, offset=offset).reshape(n, 3)
        wide = np.zeros((n, 4), dtype=np.uint8)
        wide[:, 1:] = b
        ints = wide.view("<i4").reshape(n) >> 8
        out = ints.astype(np.float32) * np.float32(1.0 / 8388608.0)
    else:
        ints32 = np.frombuffer(raw, dtype="<i4", count=n, offset=offset)
        out = (ints32.astype(np.float64) * (1.0 / 2147483648.0)).astype(np.float32)
    return out.reshape(count, fmt.channels)


def read_wav(raw: bytes) -> tuple[Samples, int]:
    """Parse a RIFF/RF64 WAV file held in ``raw``.

    Returns:
        Read-only float32 samples shaped (frames, channels), and the sample rate.

    Raises:
        EmptyAudioError: The file holds no audio frames.
        AudioFormatError: The file is corrupt or truncated.
        SampleRateError: The header's sample rate is zero or absurd.
        InvalidSamplesError: Float samples are NaN or infinite.
        FFmpegNotFoundError: The WAV uses a codec other than PCM/float/G.711 and there is no
            ffmpeg to decode it.
    """
    try:
        return _read_wav(raw)
    except _NeedsFFmpeg as need:
        ffmpeg = find_ffmpeg(
            f"this WAV file uses codec 0x{need.tag:04x} (not PCM or float), which needs ffmpeg"
        )
        return _ffmpeg_decode(ffmpeg, raw, None, "wav", f"WAV (codec 0x{need.tag:04x}) data")


def _read_wav(raw: bytes) -> tuple[Samples, int]:
    total = len(raw)
    if total < 12:
        raise _corrupt(f"only {total} bytes, too short for a WAV header")
    riff_id = raw[:4]
    riff_size = struct.unpack_from("<I", raw, 4)[0]
    # A streamed WAV (written to a pipe by ffmpeg or a TTS service) cannot know its length
    # up front and says 0 or 0xFFFFFFFF: its data then runs to the end of the file.
    streamed = riff_id == b"RIFF" and riff_size in (0, _UNKNOWN_SIZE)
    pos = 12
    fmt: _WavFormat | None = None
    data_offset = -1
    data_size = 0
    rf64_data_size: int | None = None
    while pos + 8 <= total:
        chunk_id = raw[pos : pos + 4]
        size = struct.unpack_from("<I", raw, pos + 4)[0]
        body_start = pos + 8
        if chunk_id == b"ds64" and riff_id != b"RIFF" and size >= 16:
            rf64_data_size = struct.unpack_from("<Q", raw, body_start + 8)[0]
        elif chunk_id == b"fmt ":
            if body_start + size > total:
                raise _corrupt("the fmt chunk is cut off")
            fmt = _parse_fmt(raw[body_start : body_start + size])
        elif chunk_id == b"data":
            data_offset = body_start
            available = total - body_start
            if size == _UNKNOWN_SIZE and rf64_data_size is not None:
                size = rf64_data_size
            if size == _UNKNOWN_SIZE or (size == 0 and streamed):
                size = available
            elif size > available:
                raise _corrupt(
                    f"the header says {size} bytes of audio follow but only {available} are "
                    "present, so the file is truncated (an interrupted download or recording?)"
                )
            data_size = size
            if fmt is not None:
                break
        pos = body_start + size + (size & 1)
    if fmt is None:
        raise _corrupt("no fmt chunk, so the sample format is unknown")
    if data_offset < 0:
        raise _corrupt("no data chunk, so the file is truncated or holds no audio")
    frame_bytes = fmt.sample_bytes * fmt.channels
    frames = data_size // frame_bytes
    if frames == 0:
        raise EmptyAudioError(
            "the WAV file holds no audio frames (0 samples): record or export some audio"
        )
    samples = _decode_samples(raw, data_offset, frames, fmt)
    samples.setflags(write=False)
    return samples, fmt.rate


WAV_SAMPLE_FORMATS: Final = ("pcm8", "pcm16", "pcm24", "pcm32", "float32")
_MAX_RIFF_BYTES: Final = 0xFFFFFFFF - 64


def encode_pcm16(samples: Samples) -> bytes:
    """Interleaved little-endian 16-bit PCM, clipped to the int16 range."""
    scaled = samples * np.float32(32768.0)
    np.rint(scaled, out=scaled)
    np.clip(scaled, -32768.0, 32767.0, out=scaled)
    data: bytes = scaled.astype("<i2").tobytes()
    return data


def decode_pcm16(data: bytes, channels: int) -> Samples:
    """Float32 (frames, channels) from interleaved little-endian 16-bit PCM."""
    ints = np.frombuffer(data, dtype="<i2").reshape(-1, channels)
    out = ints.astype(np.float32)
    out *= np.float32(1.0 / 32768.0)
    out.setflags(write=False)
    return out


def _quantize(samples: Samples, bits: int) -> npt.NDArray[np.int64]:
    scale = float(1 << (bits - 1))
    scaled = np.rint(samples.astype(np.float64) * scale)
    return np.clip(scaled, -scale, scale - 1).astype(np.int64)


def write_wav(samples: Samples, rate: int, sample_format: str = "pcm16") -> bytes:
    """A WAV file holding ``samples`` (float32, shaped (frames, channels)).

    ``pcm16`` mono or stereo gets the plain PCM header every reader understands; 24/32-bit
    and multichannel integer audio get WAVE_FORMAT_EXTENSIBLE, and ``float32`` gets
    WAVE_FORMAT_IEEE_FLOAT with a ``fact`` chunk.

    Raises:
        ConfigurationError: An unknown ``sample_format``.
        AudioFormatError: The audio is too long for a WAV file (4 GiB).
    """
    frames, channels = samples.shape
    if sample_format == "pcm16":
        body = encode_pcm16(samples)
        width, tag = 2, _WAVE_FORMAT_PCM
    elif sample_format == "float32":
        body = samples.astype("<f4").tobytes()
        width, tag = 4, _WAVE_FORMAT_IEEE_FLOAT
    elif sample_format == "pcm8":
        body = (_quantize(samples, 8) + 128).astype(np.uint8).tobytes()
        width, tag = 1, _WAVE_FORMAT_PCM
    elif sample_format == "pcm24":
        ints = _quantize(samples, 24).astype("<i4")
        body = ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
        width, tag = 3, _WAVE_FORMAT_PCM
    elif sample_format == "pcm32":
        body = _quantize(samples, 32).astype("<i4").tobytes()
        width, tag = 4, _WAVE_FORMAT_PCM
    else:
        raise ConfigurationError(
            f"unknown WAV sample format {sample_format!r}; "
            f"use one of {', '.join(WAV_SAMPLE_FORMATS)}"
        )
    if len(body) > _MAX_RIFF_BYTES:
        raise AudioFormatError(
            f"{frames / rate:.0f} s of {channels}-channel {sample_format} audio is too long for a "
            "WAV file (4 GiB limit): save it as FLAC, or split it with Audio.slice()"
        )
    block_align = width * channels
    extensible = tag == _WAVE_FORMAT_PCM and (width > 2 or channels > 2)
    if extensible:
        mask = (1 << channels) - 1 if channels <= 18 else 0
        fmt_body = struct.pack(
            "<HHIIHHHHI16s",
            _WAVE_FORMAT_EXTENSIBLE,
            channels,
            rate,
            rate * block_align,
            block_align,
            8 * width,
            22,
            8 * width,
            mask,
            struct.pack("<H", tag) + _GUID_TAIL,
        )
    elif tag == _WAVE_FORMAT_IEEE_FLOAT:
        fmt_body = struct.pack(
            "<HHIIHHH", tag, channels, rate, rate * block_align, block_align, 8 * width, 0
        )
    else:
        fmt_body = struct.pack(
            "<HHIIHH", tag, channels, rate, rate * block_align, block_align, 8 * width
        )
    chunks = [b"fmt ", struct.pack("<I", len(fmt_body)), fmt_body]
    if tag != _WAVE_FORMAT_PCM or extensible:
        chunks += [b"fact", struct.pack("<II", 4, frames & 0xFFFFFFFF)]
    chunks += [b"data", struct.pack("<I", len(body)), body]
    if len(body) & 1:
        chunks.append(b"\x00")
    payload = b"".join(chunks)
    return b"RIFF" + struct.pack("<I", 4 + len(payload)) + b"WAVE" + payload


# --------------------------------------------------------------------------------------------
# ffmpeg
# --------------------------------------------------------------------------------------------

_ffmpeg_lock = threading.Lock()
_ffmpeg_cache: dict[str, str] = {}


_demuxer_cache: dict[str, frozenset[str]] = {}


def clear_ffmpeg_cache() -> None:
    """Forget the ffmpeg found earlier, so that the next lookup searches again."""
    with _ffmpeg_lock:
        _ffmpeg_cache.clear()
        _demuxer_cache.clear()


def _ffmpeg_demuxers() -> frozenset[str]:
    """The demuxer names of the ffmpeg that is found (none without ffmpeg)."""
    try:
        ffmpeg = find_ffmpeg()
    except FFmpegNotFoundError:
        return frozenset()
    with _ffmpeg_lock:
        cached = _demuxer_cache.get(ffmpeg)
    if cached is not None:
        return cached
    try:
        listing = subprocess.run(
            [ffmpeg, "-hide_banner", "-demuxers"], capture_output=True, timeout=30, check=False
        ).stdout.decode("utf-8", "replace")
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    names: set[str] = set()
    for line in listing.split("--", 1)[-1].splitlines():
        fields = line.split()
        if len(fields) >= 2 and "D" in fields[0]:
            names.update(fields[1].split(","))
    found = frozenset(names)
    with _ffmpeg_lock:
        _demuxer_cache[ffmpeg] = found
    return found


def check_decode_format(name: object) -> str:
    """The canonical name of a format given to read audio as (``format=``).

    Raises:
        TypeError: ``name`` is not a string.
        AudioFormatError: Raw PCM (which needs its rate and channels), or a name that is
            neither one chainvoice knows nor a demuxer of the ffmpeg that is found.
    """
    if not isinstance(name, str):
        raise TypeError(f"format must be a format name such as 'mp3', not {name!r}")
    kind = canonical_format(name)
    if kind == "pcm":
        raise _pcm_needs_rate()
    if kind in DECODE_FORMATS or kind in _ffmpeg_demuxers():
        return kind
    raise AudioFormatError(
        f"format={name!r} is not an audio format chainvoice can read; use one of "
        f"{', '.join(DECODE_FORMATS)} (or, with ffmpeg installed, a name that "
        "`ffmpeg -demuxers` lists), or leave it out: the format is recognised from the data"
    )


def _pcm_needs_rate() -> AudioFormatError:
    return AudioFormatError(
        "raw PCM has no header, so its sample rate and channels are unknown: use "
        "Audio.from_pcm16(data, rate=..., channels=...)"
    )


def find_ffmpeg(why: str = "this needs ffmpeg") -> str:
    """The path of an ffmpeg executable.

    Looks in ``$CHAINVOICE_FFMPEG``, then on ``PATH``, then in the ``imageio-ffmpeg`` wheel.

    Args:
        why: What needs ffmpeg, for the error message.

    Raises:
        FFmpegNotFoundError: No ffmpeg anywhere, or ``$CHAINVOICE_FFMPEG`` names no program.
    """
    with _ffmpeg_lock:
        cached = _ffmpeg_cache.get("path")
        if cached is not None:
            return cached
        found = _search_ffmpeg(why)
        _ffmpeg_cache["path"] = found
        return found


def _search_ffmpeg(why: str) -> str:
    explicit = os.environ.get("CHAINVOICE_FFMPEG")
    if explicit:
        resolved = shutil.which(explicit)
        if resolved is None:
            raise FFmpegNotFoundError(
                f"{why}, but $CHAINVOICE_FFMPEG={explicit!r} is not an executable program: "
                "point it at an ffmpeg binary or unset it"
            )
        return resolved
    on_path = shutil.which("ffmpeg")
    if on_path is not None:
        return on_path
    try:
        import imageio_ffmpeg
    except ImportError:
        pass
    else:
        try:
            return str(imageio_ffmpeg.get_ffmpeg_exe())
        except (RuntimeError, OSError):
            pass
    raise FFmpegNotFoundError(f"{why}, and no ffmpeg was found: {FFMPEG_HINT}")


def _ffmpeg_error(stderr: bytes, doing: str) -> str:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    detail = "; ".join(lines[-3:]) if lines else "no message"
    if len(detail) > 600:
        detail = detail[-600:]
    return f"ffmpeg could not {doing}: {detail}"


def _run_ffmpeg(ffmpeg: str, args: list[str], stdin: bytes | None) -> bytes:
    cmd = [ffmpeg, "-hide_banner", "-nostats", "-loglevel", "error", *args]
    try:
        proc = subprocess.run(
            cmd,
            input=stdin if stdin is not None else b"",
            capture_output=True,
            check=False,
        )
    except FileNotFoundError as exc:
        clear_ffmpeg_cache()
        raise FFmpegNotFoundError(f"ffmpeg at {ffmpeg!r} disappeared: {FFMPEG_HINT}") from exc
    except PermissionError as exc:
        raise FFmpegNotFoundError(
            f"ffmpeg at {ffmpeg!r} cannot be run ({exc}): {FFMPEG_HINT}"
        ) from exc
    if proc.returncode != 0:
        raise _FFmpegFailed(proc.stderr)
    return proc.stdout


class _FFmpegFailed(Exception):
    def __init__(self, stderr: bytes) -> None:
        super().__init__(stderr)
        self.stderr = stderr


# Decoding reads ffmpeg's float WAV from the pipe into anonymous memory maps of 4 MB, then
# moves them one by one into the final array, unmapping each as it goes: memory stays at the
# decoded samples plus about two chunks (a bytes buffer copied into an array would need two
# full copies). Untouched pages of the final array cost nothing until they are written.
_READ_CHUNK: Final = 1 << 22
_FINITE_BLOCK: Final = 1 << 20


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    parts = []
    while size > 0:
        part = stream.read(size)
        if not part:
            break
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def _read_stream_wav(stream: IO[bytes]) -> tuple[Samples, int]:
    """Read a (streamed) WAV of 32-bit float samples from ``stream`` into a numpy array.

    Raises:
        EmptyAudioError: No frames.
        AudioFormatError: No WAV header, or a sample format other than 32-bit float.
        InvalidSamplesError: NaN or infinite samples.
    """
    head = _read_exact(stream, 12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
        raise _corrupt("the decoder's output has no WAV header")
    fmt: _WavFormat | None = None
    while True:
        chunk = _read_exact(stream, 8)
        if len(chunk) < 8:
            raise _corrupt("the decoder's output has no data chunk")
        chunk_id, size = chunk[:4], struct.unpack_from("<I", chunk, 4)[0]
        if chunk_id == b"data":
            break
        body = _read_exact(stream, size + (size & 1))
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(body[:size])
    if fmt is None:
        raise _corrupt("no fmt chunk, so the sample format is unknown")
    if fmt.tag != _WAVE_FORMAT_IEEE_FLOAT or fmt.sample_bytes != 4:
        raise AudioFormatError("the decoder did not write 32-bit float samples")
    frame_bytes = 4 * fmt.channels
    blocks: list[mmap.mmap] = []
    total = 0
    try:
        while True:
            block = mmap.mmap(-1, _READ_CHUNK)
            blocks.append(block)
            filled = 0
            with memoryview(block) as view:
                while filled < _READ_CHUNK:
                    count = stream.readinto(view[filled:])  # type: ignore[attr-defined]
                    if not count:
                        break
                    filled += count
            total += filled
            if filled < _READ_CHUNK:
                break
        frames = total // frame_bytes
        if frames == 0:
            raise EmptyAudioError("the WAV file holds no audio frames (0 samples)")
        buffer = np.empty(frames * frame_bytes, dtype=np.uint8)
        for index, block in enumerate(blocks):
            start = index * _READ_CHUNK
            take = min(_READ_CHUNK, buffer.size - start)
            if take > 0:
                with memoryview(block) as view:
                    buffer[start : start + take] = np.frombuffer(view, np.uint8, take)
            block.close()
    finally:
        for block in blocks:
            block.close()
    samples = buffer.view("<f4")
    for first in range(0, samples.size, _FINITE_BLOCK):
        if not np.isfinite(samples[first : first + _FINITE_BLOCK]).all():
            raise InvalidSamplesError(
                "the decoded audio contains NaN or infinite samples: the file is corrupt; "
                "re-export it"
            )
    out = samples.astype(np.float32, copy=False).reshape(frames, fmt.channels)
    out.setflags(write=False)
    buffer.setflags(write=False)
    return out, fmt.rate


def _ffmpeg_samples(ffmpeg: str, args: list[str]) -> tuple[Samples, int]:
    """Run ffmpeg (which writes float WAV to stdout) and read its samples as they come.

    Raises:
        _FFmpegFailed: ffmpeg failed (with its stderr).
        FFmpegNotFoundError: ffmpeg cannot be run.
        EmptyAudioError, AudioFormatError, InvalidSamplesError: As in
            :func:`_read_stream_wav`, when ffmpeg itself succeeded.
    """
    cmd = [ffmpeg, "-hide_banner", "-nostats", "-loglevel", "error", *args]
    # stderr goes to a file: a pipe could fill up (one line per corrupt frame) and stall
    # ffmpeg while we wait on its stdout.
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors
            )
        except FileNotFoundError as exc:
            clear_ffmpeg_cache()
            raise FFmpegNotFoundError(f"ffmpeg at {ffmpeg!r} disappeared: {FFMPEG_HINT}") from exc
        except PermissionError as exc:
            raise FFmpegNotFoundError(
                f"ffmpeg at {ffmpeg!r} cannot be run ({exc}): {FFMPEG_HINT}"
            ) from exc
        assert proc.stdout is not None
        problem: Exception | None = None
        result: tuple[Samples, int] | None = None
        try:
            result = _read_stream_wav(proc.stdout)
        except (AudioFormatError, EmptyAudioError, InvalidSamplesError, _NeedsFFmpeg) as exc:
            problem = exc
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            proc.stdout.close()
        if proc.wait() != 0:
            errors.seek(0)
            raise _FFmpegFailed(errors.read())
    if problem is not None:
        raise problem
    assert result is not None
    return result


def _ffmpeg_decode(
    ffmpeg: str, data: bytes | None, path: str | None, demuxer: str | None, label: str = ""
) -> tuple[Samples, int]:
    """Decode the first audio stream of ``path`` (or of ``data``) to float32 with ffmpeg."""
    fmt_args = ["-f", demuxer] if demuxer else []
    out_args = ["-map", "0:a:0", "-vn", "-sn", "-dn", "-f", "wav", "-c:a", "pcm_f32le", "pipe:1"]
    label = label or (f"{demuxer} data" if demuxer else "the audio")
    try:
        if path is not None:
            # "file:" keeps ffmpeg from reading a name with a colon as a protocol.
            src = "file:" + os.path.abspath(path)
            decoded = _ffmpeg_samples(ffmpeg, [*fmt_args, "-i", src, *out_args])
        else:
            # Bytes go through a temporary file rather than a pipe: ffmpeg needs to seek to
            # read an MP4 index at the end, or an MP3's LAME tag (to drop the encoder delay).
            with tempfile.TemporaryDirectory(prefix="chainvoice-") as tmp:
                src = os.path.join(tmp, "input")
                with open(src, "wb") as f:
                    f.write(data or b"")
                decoded = _ffmpeg_samples(ffmpeg, [*fmt_args, "-i", "file:" + src, *out_args])
    except _FFmpegFailed as failed:
        text = failed.stderr.decode("utf-8", "replace")
        if "matches no streams" in text or "does not contain any stream" in text:
            raise AudioFormatError(
                f"{label} has no audio stream (a video without sound?)"
            ) from None
        raise AudioFormatError(
            _ffmpeg_error(failed.stderr, f"decode {label}")
            + "; the data is corrupt, truncated, or not in the format it claims"
        ) from None
    except EmptyAudioError:
        raise EmptyAudioError(
            f"{label} decoded to no audio at all: the file is empty, cut off or corrupt"
        ) from None
    except (AudioFormatError, _NeedsFFmpeg) as exc:  # pragma: no cover - ffmpeg wrote bad WAV
        raise AudioFormatError(f"ffmpeg returned unreadable output for {label}: {exc}") from None
    return decoded


_SNIFF_BYTES: Final = 1 << 16


def _kind_of(hint: str | None, sniffed: str | None) -> str | None:
    """The sniffed format, else the one ``hint`` names, else ``None``."""
    if sniffed is not None or hint is None:
        return sniffed
    kind = canonical_format(hint)
    if kind == "pcm":
        raise _pcm_needs_rate()
    if re.fullmatch(r"[a-z0-9_]+", kind) is None:
        raise AudioFormatError(f"{hint!r} is not an audio format name")
    if kind == "wav":
        return None  # every WAV starts with RIFF/RF64...WAVE, so this is not one
    return kind  # a name chainvoice knows, or else an ffmpeg demuxer name


def _decode_compressed(kind: str, data: bytes | None, path: str | None) -> tuple[Samples, int]:
    ffmpeg = find_ffmpeg(f"reading {kind.upper()} audio needs ffmpeg")
    return _ffmpeg_decode(ffmpeg, data, path, _DEMUXERS.get(kind, kind), f"{kind.upper()} data")


def decode(data: bytes, *, hint: str | None = None) -> tuple[Samples, int]:
    """Decode an audio file's bytes (WAV with numpy, anything else with ffmpeg).

    Args:
        data: The whole file.
        hint: A format name used when the bytes cannot be recognised (e.g. from a suffix).

    Raises:
        EmptyAudioError: No data, or no frames.
        AudioFormatError: An unknown, unsupported or corrupt format.
        FFmpegNotFoundError: A compressed format and no ffmpeg.
        SampleRateError: A header with an impossible rate.
        InvalidSamplesError: Float samples that are NaN or infinite.
    """
    if not data:
        raise EmptyAudioError("no audio data: the byte string is empty")
    kind = _kind_of(hint, sniff(data))
    if kind is None:
        raise unknown_format_error(data)
    if kind == "wav":
        return read_wav(data)
    return _decode_compressed(kind, data, None)


def decode_file(path: str, *, hint: str | None = None) -> tuple[Samples, int]:
    """Decode an audio file; only WAV (or unrecognised data) is read into memory whole.

    Compressed files are handed to ffmpeg by path, after sniffing their first bytes.

    Raises:
        FileNotFoundError: No such file.
        EmptyAudioError, AudioFormatError, FFmpegNotFoundError, SampleRateError,
        InvalidSamplesError: As in :func:`decode`.
    """
    with open(path, "rb") as f:
        head = f.read(_SNIFF_BYTES)
        if not head:
            raise EmptyAudioError(f"{path!r} is empty (0 bytes): there is no audio to read")
        sniffed = sniff(head)
        tag_end = _id3_end(head)
        if tag_end and tag_end + 4 > len(head):  # a long ID3 tag (cover art): look past it
            f.seek(tag_end)
            sniffed = _after_id3(f.read(16))
        kind = _kind_of(hint, sniffed)
        if kind is None or kind == "wav":
            f.seek(0)
            data = f.read()
    if kind is None:
        raise unknown_format_error(data, repr(path))
    if kind == "wav":
        return read_wav(data)
    return _decode_compressed(kind, None, path)


def _bitrate_arg(bitrate: str | int) -> str:
    if isinstance(bitrate, bool):
        raise ConfigurationError(
            f"bitrate must be bits per second or a string like '64k', not {bitrate!r}"
        )
    if isinstance(bitrate, int):
        if bitrate < 1000:
            raise ConfigurationError(
                f"bitrate {bitrate} is in bits per second and too low; use e.g. 64000 or '64k'"
            )
        return str(bitrate)
    text = bitrate.strip()
    if re.fullmatch(r"\d+(\.\d+)?[kKmM]?", text) is None:
        raise ConfigurationError(f"bitrate must look like '64k' or 64000, not {bitrate!r}")
    return text


def encode(samples: Samples, rate: int, fmt: str, *, bitrate: str | int | None = None) -> bytes:
    """Encode float32 (frames, channels) samples with ffmpeg into a compressed format.

    Raises:
        AudioFormatError: An unknown format, or ffmpeg failed to encode.
        ConfigurationError: A bitrate for a lossless format, or a malformed bitrate.
        EmptyAudioError: No frames to encode.
        FFmpegNotFoundError: No ffmpeg.
    """
    name = canonical_format(fmt)
    encoder = _ENCODERS.get(name)
    if encoder is None:
        raise AudioFormatError(
            f"cannot encode to {fmt!r}; chainvoice writes {', '.join(ENCODE_FORMATS)}"
        )
    if bitrate is not None and not encoder.lossy:
        raise ConfigurationError(
            f"{name} is lossless and takes no bitrate; drop bitrate= or pick a lossy format "
            "(mp3, ogg, opus, webm, m4a, mp4, aac)"
        )
    if samples.shape[0] == 0:
        raise EmptyAudioError(f"no audio to encode as {name}: the audio has 0 frames")
    ffmpeg = find_ffmpeg(f"writing {name.upper()} needs ffmpeg")
    codec_args = ["-c:a", encoder.codec]
    if bitrate is not None:
        codec_args += ["-b:a", _bitrate_arg(bitrate)]
    wav = write_wav(samples, rate, "float32")
    in_args = ["-f", "wav", "-i", "pipe:0", "-map_metadata", "-1"]
    try:
        with tempfile.TemporaryDirectory(prefix="chainvoice-") as tmp:
            target = os.path.join(tmp, f"out.{name}")
            # A seekable output lets the muxer finish its header: the MP4 index, FLAC's total
            # length, MP3's LAME tag (so decoders drop the encoder delay), AIFF's sizes.
            out_args = [*codec_args, "-f", encoder.muxer, "-y", "file:" + target]
            _run_ffmpeg(ffmpeg, [*in_args, *out_args], wav)
            return Path(target).read_bytes()
    except _FFmpegFailed as failed:
        raise AudioFormatError(
            _ffmpeg_error(failed.stderr, f"encode {name}")
            + f" (this ffmpeg may lack the {encoder.codec} encoder: try another ffmpeg build,"
            " e.g. `pip install 'chainvoice[ffmpeg]'`)"
        ) from None


# --------------------------------------------------------------------------------------------
# pydub
# --------------------------------------------------------------------------------------------


def load_pydub() -> ModuleType:
    """Import pydub quietly, pointing it at chainvoice's ffmpeg when it has none of its own.

    pydub warns at import when ``ffmpeg`` is not on PATH, and imports the deprecated
    ``audioop`` on Python 3.11/3.12; both warnings are silenced here.

    Raises:
        MissingDependencyError: pydub (or, on Python 3.13+, audioop-lts) is missing.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import pydub
        except ImportError as exc:
            raise MissingDependencyError(
                f"AudioSegment conversion needs pydub ({exc}): `pip install pydub` "
                "(and `pip install audioop-lts` on Python 3.13+), or reinstall chainvoice"
            ) from exc
    segment_cls = pydub.AudioSegment
    if shutil.which(str(segment_cls.converter)) is None:
        with contextlib.suppress(FFmpegNotFoundError):
            segment_cls.converter = find_ffmpeg()
    module: ModuleType = pydub
    return module


def segment_to_samples(segment: Any) -> tuple[Samples, int]:
    """Float32 samples and the rate of a pydub ``AudioSegment`` (duck-typed).

    Raises:
        InvalidSamplesError: The object is not an AudioSegment, or has an odd sample width.
        EmptyAudioError: The segment has no frames.
        SampleRateError: The segment's frame rate is outside 1000 to 768000 Hz.
    """
    try:
        raw = bytes(segment.raw_data)
        width = int(segment.sample_width)
        channels = int(segment.channels)
        rate = int(segment.frame_rate)
    except AttributeError as exc:
        raise InvalidSamplesError(
            f"expected a pydub AudioSegment, got {type(segment).__name__} ({exc})"
        ) from None
    if channels <= 0:
        raise InvalidSamplesError(f"the AudioSegment has {channels} channels")
    if width not in (1, 2, 3, 4):
        raise InvalidSamplesError(
            f"the AudioSegment has a sample width of {width} bytes; pydub uses 1, 2, 3 or 4"
        )
    frames = len(raw) // (width * channels)
    if frames == 0:
        raise EmptyAudioError("the AudioSegment is empty (0 frames)")
    problem = rate_error(rate, "the AudioSegment's frame rate")
    if problem is not None:
        raise problem
    if width == 1:
        # pydub keeps 8-bit audio signed (it converts WAV's unsigned bytes on load).
        ints = np.frombuffer(raw, dtype=np.int8, count=frames * channels)
        out = ints.astype(np.float32) * np.float32(1.0 / 128.0)
        out = out.reshape(frames, channels)
    else:
        fmt = _WavFormat(_WAVE_FORMAT_PCM, channels, rate, width)
        out = _decode_samples(raw, 0, frames, fmt)
    out.setflags(write=False)
    return out, rate
