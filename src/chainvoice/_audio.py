"""Audio: the value type for sound in chainvoice."""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, cast

import attrs
import numpy as np
import numpy.typing as npt

from chainvoice import _codecs, _dsp
from chainvoice._errors import (
    AudioError,
    ConfigurationError,
    EmptyAudioError,
    InvalidSamplesError,
    SampleRateError,
)

if TYPE_CHECKING:
    from pydub import AudioSegment

__all__ = ["Audio"]

Samples = npt.NDArray[np.float32]

_MAX_CHANNELS: Final = 1024
# The notebook player embeds at most this much WAV, about 4 MB once in base64: audio that is
# longer is previewed in mono at 16 kHz (about 93 seconds fit), from its beginning.
_HTML_MAX_WAV_BYTES: Final = 3_000_000
_HTML_PREVIEW_RATE: Final = 16_000


def _owned_read_only(arr: npt.NDArray[Any]) -> bool:
    """True if nobody can write to ``arr`` through any array or buffer it is a view of."""
    node: object = arr
    while isinstance(node, np.ndarray):
        if node.flags.writeable:
            return False
        node = node.base
    return node is None or isinstance(node, bytes)


def _to_samples(value: Any) -> Samples:
    try:
        arr = np.asarray(value)
    except Exception as exc:
        raise InvalidSamplesError(f"samples must be array-like numbers: {exc}") from exc
    if arr.dtype.kind not in "fiub":
        raise InvalidSamplesError(
            f"samples must be numbers, not dtype {arr.dtype}; pass a float or int numpy array"
        )
    if arr.dtype.kind in "iu":
        # Full scale maps to [-1, 1): int16 by 32768; unsigned (uint8 WAV-style) around its middle.
        info = np.iinfo(arr.dtype)
        half = (int(info.max) + 1) / 2 if arr.dtype.kind == "u" else 0.0
        scale = float(-int(info.min)) if arr.dtype.kind == "i" else half
        arr = ((arr.astype(np.float64) - half) / scale).astype(np.float32)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise InvalidSamplesError(
            f"samples must be shaped (frames,) or (frames, channels), not {arr.shape}"
        )
    frames, channels = arr.shape
    if channels == 0:
        raise InvalidSamplesError(
            f"samples shaped {arr.shape} have no channels; use (frames, channels) with "
            "channels >= 1"
        )
    if channels > _MAX_CHANNELS or (channels > 16 and channels > frames):
        raise InvalidSamplesError(
            f"samples shaped {arr.shape} would be {channels} channels of {frames} frames; "
            "chainvoice wants (frames, channels): pass samples.T if yours is (channels, frames)"
        )
    if arr.dtype == np.float32 and arr.flags.c_contiguous and _owned_read_only(arr):
        out = arr
    else:
        with np.errstate(over="ignore", invalid="ignore"):  # too-large values become inf
            out = np.array(arr, dtype=np.float32, order="C", copy=True)
    if not np.isfinite(out).all():
        raise InvalidSamplesError(
            "samples contain NaN or infinite values; clean them (e.g. np.nan_to_num) first"
        )
    out.setflags(write=False)
    return out


def _to_rate(value: Any) -> Any:
    return int(value) if isinstance(value, np.integer) else value


def _check_rate(_inst: object, _attr: object, value: int) -> None:
    problem = _codecs.rate_error(value)
    if problem is not None:
        raise problem


def _rate_arg(rate: Any) -> int:
    rate = _to_rate(rate)
    _check_rate(None, None, rate)
    return int(rate)


def _check_channels(channels: Any) -> None:
    if (
        isinstance(channels, bool)
        or not isinstance(channels, int)
        or not 1 <= channels <= _MAX_CHANNELS
    ):
        raise InvalidSamplesError(
            f"channels must be a whole number from 1 to {_MAX_CHANNELS}, not {channels!r}"
        )


def _seconds(value: Any, name: str, unit: str = "seconds") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number of {unit}, not {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise AudioError(f"{name} must be a finite number of {unit}, not {number}")
    return number


def _format_time(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60.0)
    if minutes < 1:
        return f"{secs:.1f} s"
    hours, minutes = divmod(int(minutes), 60)
    if hours:
        return f"{hours}:{minutes:02d}:{int(secs):02d}"
    return f"{minutes}:{int(secs):02d}"


@attrs.frozen(eq=False, repr=False)
class Audio:
    """Sound as float32 samples shaped (frames, channels) at an explicit sample rate.

    An ``Audio`` is an immutable value: its ``samples`` array is read-only, and every
    operation returns a new ``Audio``. Samples are nominally in [-1, 1]; louder values are
    kept and only clipped when written as integer PCM. Times (slicing, silences) are in
    seconds; ``audio[1.0:2.5]`` is the part from 1 s to 2.5 s (Python slice rules: negative
    times count from the end, out-of-range times are clamped), while ``audio.slice(1.0, 2.5)``
    is the strict form that raises for times outside the audio.

    Args:
        samples: Samples shaped (frames,) or (frames, channels). Integer arrays are scaled
            from their full range (int16 by 32768); other arrays are copied to float32
            unless already a read-only float32 array.
        rate: Sample rate in Hz, a whole number from 1000 to 768000 (every rate chainvoice
            takes is in that range; outside it a rate is a mistake, such as kHz for Hz).

    Raises:
        InvalidSamplesError: NaN or infinite samples, a non-numeric dtype, or an unusable
            shape (including one that looks like (channels, frames)).
        SampleRateError: A rate that is not a whole number from 1000 to 768000 Hz.

    Example:
        >>> import numpy as np
        >>> a = Audio(np.zeros(16000, dtype=np.float32), 16000)
        >>> a.duration, a.channels
        (1.0, 1)
        >>> a[0.25:0.75].duration
        0.5
    """

    samples: Samples = attrs.field(converter=_to_samples)
    rate: int = attrs.field(converter=_to_rate, validator=_check_rate)

    @classmethod
    def _make(cls, samples: npt.NDArray[Any], rate: int) -> Audio:
        """Wrap an array chainvoice made itself (float32, 2-D, finite), without copying."""
        arr = np.ascontiguousarray(samples, dtype=np.float32)
        if arr.flags.writeable:
            arr.setflags(write=False)
        inst = object.__new__(cls)
        object.__setattr__(inst, "samples", arr)
        object.__setattr__(inst, "rate", int(rate))
        return inst

    # ---------------------------------------------------------------------------- properties

    @property
    def channels(self) -> int:
        """Number of channels."""
        return int(self.samples.shape[1])

    @property
    def frames(self) -> int:
        """Number of frames (samples per channel)."""
        return int(self.samples.shape[0])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.rate

    @property
    def peak(self) -> float:
        """The largest absolute sample value (0.0 for empty audio)."""
        if self.samples.size == 0:
            return 0.0
        return float(np.max(np.abs(self.samples)))

    @property
    def rms(self) -> float:
        """Root-mean-square level over all samples (0.0 for empty audio)."""
        if self.samples.size == 0:
            return 0.0
        return math.sqrt(
            float(np.sum(np.square(self.samples), dtype=np.float64)) / self.samples.size
        )

    @property
    def dbfs(self) -> float:
        """RMS level in dB relative to full scale (``-inf`` for digital silence)."""
        rms = self.rms
        return 20.0 * math.log10(rms) if rms > 0 else -math.inf

    @property
    def peak_dbfs(self) -> float:
        """Peak level in dB relative to full scale (``-inf`` for digital silence)."""
        peak = self.peak
        return 20.0 * math.log10(peak) if peak > 0 else -math.inf

    # ---------------------------------------------------------------------- python protocol

    def __len__(self) -> int:
        return self.frames

    def __repr__(self) -> str:
        return f"Audio(duration={self.duration:.3f}s, rate={self.rate}, channels={self.channels})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Audio):
            return NotImplemented
        return self.rate == other.rate and np.array_equal(self.samples, other.samples)

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return (Audio, (self.samples, self.rate))

    def __getitem__(self, key: slice) -> Audio:
        """The part between two times in seconds, with Python slice rules.

        ``audio[1.0:2.5]`` is 1 s to 2.5 s, ``audio[-3:]`` the last 3 seconds, ``audio[:0.5]``
        the first half second. Times past either end are clamped; a start after the end
        gives empty audio. Frame positions are ``round(seconds * rate)``.

        Raises:
            TypeError: The key is not a slice, or a bound is not a number.
            AudioError: A slice step, or a NaN or infinite bound.
        """
        if not isinstance(key, slice):
            raise TypeError(
                "index Audio with a slice of seconds, e.g. audio[1.0:2.5]; for single samples "
                "use audio.samples[i]"
            )
        if key.step is not None:
            raise AudioError("Audio slices take no step; use resample() to change the rate")
        start = self._clamped_frame(key.start, 0)
        stop = self._clamped_frame(key.stop, self.frames)
        return Audio._make(self.samples[start : max(start, stop)], self.rate)

    def _clamped_frame(self, bound: Any, default: int) -> int:
        if bound is None:
            return default
        seconds = _seconds(bound, "a slice bound")
        frame = round(seconds * self.rate)
        if frame < 0:
            frame += self.frames
        return min(max(frame, 0), self.frames)

    def __add__(self, other: object) -> Audio:
        if not isinstance(other, Audio):
            return NotImplemented
        return Audio.concat([self, other])

    def _repr_html_(self) -> str:
        """An HTML ``<audio>`` player for notebooks (IPython/Jupyter), with the WAV inline.

        The embedded WAV is at most about 3 MB (4 MB of HTML), so that notebooks stay small
        and under Jupyter's output limits. Audio that does not fit is previewed in mono at
        16 kHz (at most), and when even that does not fit (over about 93 seconds), only its
        beginning is embedded; a note says what is shown.
        """
        caption = html.escape(
            f"{_format_time(self.duration)} · {self.rate} Hz · "
            + (
                "mono"
                if self.channels == 1
                else "stereo"
                if self.channels == 2
                else f"{self.channels} channels"
            )
        )
        if self.frames == 0:
            return f'<div class="chainvoice-audio"><em>empty audio</em> ({caption})</div>'
        shown, note = self._html_preview()
        payload = base64.b64encode(shown.to_wav()).decode("ascii")
        if note:
            note = f"<br><small>{html.escape(note)}</small>"
        return (
            '<div class="chainvoice-audio">'
            f'<audio controls preload="metadata" src="data:audio/wav;base64,{payload}"></audio>'
            f"<br><small>{caption}</small>{note}</div>"
        )

    def _html_preview(self) -> tuple[Audio, str]:
        """What the notebook player embeds (16-bit WAV within the cap) and a note about it."""
        limit = _HTML_MAX_WAV_BYTES
        if self.frames * 2 * self.channels <= limit:
            return self, ""
        rate = min(self.rate, _HTML_PREVIEW_RATE)
        frames = max(1, limit // 2)  # mono 16-bit frames that fit, at ``rate``
        # Cut before converting: only the part that is shown is mixed and resampled.
        source = self[: (frames + 1) / rate] if frames / rate < self.duration else self
        shown = source.to_mono().resample(rate)
        if shown.frames > frames:
            shown = Audio._make(shown.samples[:frames], rate)
        what = " ".join(
            ([] if self.channels == 1 else ["in mono"])
            + ([] if rate == self.rate else [f"at {rate / 1000:g} kHz"])
        )
        if shown.duration < self.duration - 0.5 / self.rate:
            part = f"the first {_format_time(shown.duration)} of {_format_time(self.duration)}"
            note = f"Preview: {part}" + (f", {what}" if what else "")
            return shown, (
                f"{note}; use audio[start:end] to listen to another part, or audio.save(path)."
            )
        return shown, f"Preview {what}; audio.save(path) keeps the original."

    # -------------------------------------------------------------------------- constructors

    @classmethod
    def silence(cls, seconds: float, rate: int = 16000, channels: int = 1) -> Audio:
        """Silent audio of the given length in seconds.

        Raises:
            AudioError: A negative or non-finite length.
            SampleRateError: A rate that is not a whole number from 1000 to 768000 Hz.
            InvalidSamplesError: Fewer than one channel.
        """
        length = _seconds(seconds, "seconds")
        if length < 0:
            raise AudioError(f"silence cannot last {length} s; give a length >= 0")
        rate = _rate_arg(rate)
        _check_channels(channels)
        return cls._make(np.zeros((round(length * rate), channels), dtype=np.float32), rate)

    @classmethod
    def from_pcm16(
        cls, data: bytes | bytearray | memoryview, *, rate: int, channels: int = 1
    ) -> Audio:
        """Audio from raw little-endian signed 16-bit PCM (interleaved if multichannel).

        This is the format of OpenAI's ``pcm`` speech output (24 kHz mono). The round trip
        through :meth:`to_pcm16` is bit-exact.

        Args:
            data: The PCM bytes.
            rate: Sample rate in Hz; raw PCM does not record it, so it must be given.
            channels: Number of interleaved channels.

        Raises:
            EmptyAudioError: ``data`` is empty.
            InvalidSamplesError: The byte count is not a whole number of frames, or a bad
                channel count.
            SampleRateError: A rate that is not a whole number from 1000 to 768000 Hz.
        """
        rate = _rate_arg(rate)
        _check_channels(channels)
        if not data:
            raise EmptyAudioError("no PCM data: the byte string is empty")
        raw = bytes(data)
        width = 2 * channels
        if len(raw) % width:
            raise InvalidSamplesError(
                f"{len(raw)} bytes is not a whole number of {channels}-channel 16-bit frames "
                f"({width} bytes each): the PCM stream is cut or the channel count is wrong"
            )
        return cls._make(_codecs.decode_pcm16(raw, channels), rate)

    @classmethod
    def from_bytes(
        cls, data: bytes | bytearray | memoryview, *, format: str | None = None
    ) -> Audio:
        """Audio from the bytes of an audio file, its format recognised from its content.

        WAV (8/16/24/32-bit integer, 32/64-bit float, A-law/mu-law; plain, float or
        extensible headers; RIFF or RF64) is read with numpy alone. MP3, AAC, OGG
        (Opus/Vorbis/FLAC), FLAC, WebM/Matroska, M4A/MP4, AIFF, CAF, AMR, WMA and AU are
        decoded by ffmpeg (see :meth:`encode` for where it is found). Compressed audio
        comes back at the rate the decoder produces (48 kHz for Opus).

        Args:
            data: The whole file.
            format: A format name to use when the content is not recognised (e.g.
                ``"mp3"`` for an MP3 with leading junk): ``wav``, ``mp3``, ``ogg``,
                ``opus``, ``flac``, ``webm``, ``m4a``, ``mp4``, ``aac``, ``aiff``, ``caf``,
                ``amr``, ``wma``, ``au`` and the like, or any demuxer name of the ffmpeg
                found. Content that is recognised is read as what it is.

        Raises:
            EmptyAudioError: No bytes, or a file without audio frames.
            AudioFormatError: An unknown, unsupported, corrupt or truncated format, or a
                ``format`` that names none (the message lists the names to use).
            FFmpegNotFoundError: A compressed format and no ffmpeg.
            SampleRateError: A header with an impossible sample rate.
            InvalidSamplesError: Float samples that are NaN or infinite.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                "Audio.from_bytes() takes bytes; for a file path use Audio.from_file(path)"
            )
        hint = None if format is None else _codecs.check_decode_format(format)
        samples, rate = _codecs.decode(bytes(data), hint=hint)
        return cls._make(samples, rate)

    @classmethod
    def from_file(
        cls, file: str | os.PathLike[str] | IO[bytes], *, format: str | None = None
    ) -> Audio:
        """Audio read from a file path or a binary file object.

        The format is recognised from the content as in :meth:`from_bytes`; the file's
        suffix (or ``format``, checked as there) is used only when the content is not
        recognised.

        Raises:
            FileNotFoundError: The path does not exist.
            EmptyAudioError: An empty file, or one without audio frames.
            AudioFormatError: An unknown, unsupported, corrupt or truncated format, or a
                ``format`` that names none.
            FFmpegNotFoundError: A compressed format and no ffmpeg.
        """
        if format is not None:
            format = _codecs.check_decode_format(format)
        if hasattr(file, "read"):
            data = file.read()
            if isinstance(data, str):
                raise TypeError("the file object is in text mode; open it with 'rb'")
            name = getattr(file, "name", None)
            hint = format
            if hint is None and isinstance(name, str):
                hint = Path(name).suffix or None
            samples, rate = _codecs.decode(bytes(data), hint=hint)
            return cls._make(samples, rate)
        path = Path(os.fspath(file))
        samples, rate = _codecs.decode_file(str(path), hint=format or path.suffix or None)
        return cls._make(samples, rate)

    @classmethod
    def from_segment(cls, segment: AudioSegment) -> Audio:
        """Audio from a pydub ``AudioSegment`` (any sample width, any channel count).

        Raises:
            EmptyAudioError: The segment has no frames.
            InvalidSamplesError: Not an AudioSegment, or an unusable sample width.
        """
        samples, rate = _codecs.segment_to_samples(segment)
        return cls._make(samples, rate)

    # ------------------------------------------------------------------------------- output

    def to_pcm16(self) -> bytes:
        """Raw little-endian signed 16-bit PCM, interleaved, clipped to [-1, 1)."""
        return _codecs.encode_pcm16(self.samples)

    def to_wav(self, *, sample_format: str = "pcm16") -> bytes:
        """A WAV file as bytes, written with numpy (no ffmpeg).

        Args:
            sample_format: ``"pcm16"`` (the default, readable everywhere), ``"pcm8"``,
                ``"pcm24"``, ``"pcm32"`` or ``"float32"`` (lossless for these samples).

        Raises:
            ConfigurationError: An unknown sample format.
            AudioFormatError: Audio too long for a WAV file (4 GiB of data).
        """
        return _codecs.write_wav(self.samples, self.rate, sample_format)

    def encode(
        self,
        format: str = "wav",
        *,
        bitrate: str | int | None = None,
        sample_format: str | None = None,
    ) -> bytes:
        """The audio as the bytes of a file in ``format``.

        ``"wav"`` and ``"pcm"`` (raw 16-bit little-endian) are written with numpy. ``"mp3"``,
        ``"ogg"`` (Vorbis), ``"opus"`` (Ogg Opus), ``"flac"``, ``"webm"`` (Opus),
        ``"m4a"``/``"mp4"`` (AAC), ``"aac"`` (ADTS) and ``"aiff"`` are encoded by ffmpeg,
        found in ``$CHAINVOICE_FFMPEG``, on ``PATH``, or in the ``imageio-ffmpeg`` wheel
        (``pip install 'chainvoice[ffmpeg]'``).

        Args:
            format: The format name (case-insensitive; a leading dot is ignored).
            bitrate: For lossy formats, bits per second or an ffmpeg string like ``"64k"``.
            sample_format: For WAV only, as in :meth:`to_wav`.

        Raises:
            AudioFormatError: An unknown format, or ffmpeg failed to encode.
            ConfigurationError: An option that does not apply to the format.
            EmptyAudioError: Encoding empty audio to a compressed format.
            FFmpegNotFoundError: A compressed format and no ffmpeg.
        """
        name = _codecs.canonical_format(format)
        if sample_format is not None and name != "wav":
            raise ConfigurationError(f"sample_format applies to WAV only, not {name}")
        if name == "wav":
            if bitrate is not None:
                raise ConfigurationError("WAV is uncompressed and takes no bitrate")
            return self.to_wav(sample_format=sample_format or "pcm16")
        if name == "pcm":
            if bitrate is not None:
                raise ConfigurationError("raw PCM is uncompressed and takes no bitrate")
            return self.to_pcm16()
        return _codecs.encode(self.samples, self.rate, name, bitrate=bitrate)

    def save(
        self,
        path: str | os.PathLike[str],
        *,
        format: str | None = None,
        bitrate: str | int | None = None,
        sample_format: str | None = None,
    ) -> Path:
        """Write the audio to a file, in the format its suffix names (or ``format``).

        Suffixes: ``.wav``, ``.pcm``/``.raw``, ``.mp3``, ``.ogg``/``.oga``, ``.opus``,
        ``.flac``, ``.webm``/``.weba``, ``.m4a``, ``.mp4``, ``.aac``, ``.aif``/``.aiff``.
        The file is only created once encoding has succeeded.

        Returns:
            The path written.

        Raises:
            AudioFormatError: An unknown suffix (the message lists the supported ones).
            ConfigurationError, EmptyAudioError, FFmpegNotFoundError: As in :meth:`encode`.
        """
        target = Path(os.fspath(path))
        name = _codecs.canonical_format(format) if format else _codecs.format_from_suffix(target)
        data = self.encode(name, bitrate=bitrate, sample_format=sample_format)
        target.write_bytes(data)
        return target

    def to_segment(self) -> AudioSegment:
        """A pydub ``AudioSegment`` holding this audio as 16-bit PCM.

        pydub is imported on first use. When pydub cannot find ``ffmpeg`` itself, it is
        pointed at the ffmpeg chainvoice uses, so that ``segment.export(...)`` works.

        Raises:
            MissingDependencyError: pydub is not installed.
        """
        pydub = _codecs.load_pydub()
        segment: AudioSegment = pydub.AudioSegment(
            data=self.to_pcm16(), sample_width=2, frame_rate=self.rate, channels=self.channels
        )
        return segment

    # ------------------------------------------------------------------------ transformations

    def resample(self, rate: int, *, quality: str = "HQ") -> Audio:
        """The same sound at another sample rate (band-limited resampling with libsoxr).

        The result has ``frames * rate / self.rate`` frames (rounded), so the duration is
        kept to within one sample. Compare :meth:`with_rate`, which relabels the samples.

        Args:
            rate: The new sample rate in Hz.
            quality: libsoxr quality, ``"QQ"``, ``"LQ"``, ``"MQ"``, ``"HQ"`` or ``"VHQ"``.

        Raises:
            SampleRateError: A rate that is not a whole number from 1000 to 768000 Hz.
            ConfigurationError: An unknown quality.
        """
        rate = _rate_arg(rate)
        if rate == self.rate:
            return self
        return Audio._make(_dsp.resample(self.samples, self.rate, rate, quality), rate)

    def with_rate(self, rate: int) -> Audio:
        """The same samples labelled with another rate (which changes speed and pitch).

        Use it to fix audio whose rate was recorded wrongly (the "chipmunk" or
        "slow-motion" bug); use :meth:`resample` to convert between rates.

        Raises:
            SampleRateError: A rate that is not a whole number from 1000 to 768000 Hz.
        """
        return Audio._make(self.samples, _rate_arg(rate))

    def to_mono(self) -> Audio:
        """One channel, the average of all channels."""
        if self.channels == 1:
            return self
        return Audio._make(_dsp.mix_to_mono(self.samples), self.rate)

    def to_channels(self, channels: int) -> Audio:
        """Mono copied to ``channels`` channels, or any audio mixed down to mono.

        Raises:
            InvalidSamplesError: Another conversion (e.g. 6 channels to 2), which needs a
                layout-aware downmix this class does not guess.
        """
        _check_channels(channels)
        if channels == self.channels:
            return self
        if channels == 1:
            return self.to_mono()
        if self.channels == 1:
            return Audio._make(np.repeat(self.samples, channels, axis=1), self.rate)
        raise InvalidSamplesError(
            f"cannot convert {self.channels} channels to {channels}: mix to mono first "
            "(to_mono()), or pick channels from audio.samples yourself"
        )

    def slice(self, start: float = 0.0, end: float | None = None) -> Audio:
        """The part from ``start`` to ``end`` seconds (``end=None``: to the end), strictly.

        Unlike ``audio[start:end]``, negative or out-of-range times raise instead of being
        clamped (times within half a sample of the end count as the end).

        Raises:
            AudioError: ``start`` or ``end`` outside [0, duration], or ``start > end``.
        """
        begin = _seconds(start, "start")
        finish = self.duration if end is None else _seconds(end, "end")
        slack = 0.5 / self.rate
        if begin < 0 or finish > self.duration + slack or begin > finish:
            raise AudioError(
                f"cannot slice {begin:g} s to {finish:g} s out of {self.duration:g} s of audio; "
                "times must satisfy 0 <= start <= end <= duration (audio[start:end] clamps)"
            )
        first = min(round(begin * self.rate), self.frames)
        last = min(round(finish * self.rate), self.frames)
        return Audio._make(self.samples[first:last], self.rate)

    @classmethod
    def concat(cls, parts: Iterable[Audio]) -> Audio:
        """Join audio end to end; all parts must share rate and channel count.

        Raises:
            EmptyAudioError: ``parts`` is empty.
            SampleRateError: The parts have different rates.
            InvalidSamplesError: The parts have different channel counts.
        """
        items = list(parts)
        if not items:
            raise EmptyAudioError("nothing to concatenate: the list of parts is empty")
        first = items[0]
        for item in items:
            if not isinstance(item, Audio):
                raise TypeError(f"can only concatenate Audio, not {type(item).__name__}")
            if item.rate != first.rate:
                raise SampleRateError(
                    f"cannot join {first.rate} Hz and {item.rate} Hz audio; "
                    f"resample first, e.g. part.resample({first.rate})"
                )
            if item.channels != first.channels:
                raise InvalidSamplesError(
                    f"cannot join {first.channels}- and {item.channels}-channel audio; "
                    "use to_mono() or to_channels() first"
                )
        if len(items) == 1:
            return first
        return cls._make(np.concatenate([i.samples for i in items]), first.rate)

    def gain(self, db: float) -> Audio:
        """Louder (positive ``db``) or quieter (negative) by ``db`` decibels.

        Raises:
            InvalidSamplesError: The gain overflows float32.
        """
        factor = 10.0 ** (_seconds(db, "db", "decibels") / 20.0)
        with np.errstate(over="ignore", invalid="ignore"):
            out = self.samples * np.float32(factor)
        if not np.isfinite(out).all():
            raise InvalidSamplesError(
                f"a gain of {db} dB overflows the samples; use a smaller gain"
            )
        return Audio._make(out, self.rate)

    def normalize(self, peak_dbfs: float = -1.0) -> Audio:
        """Scaled so that the peak sits at ``peak_dbfs`` (digital silence is returned as is)."""
        target = _seconds(peak_dbfs, "peak_dbfs", "decibels")
        peak = self.peak
        if peak < 1e-10:
            return self
        factor = 10.0 ** (target / 20.0) / peak
        return Audio._make(self.samples * np.float32(factor), self.rate)

    # ------------------------------------------------------------------------------ silence

    def _quiet_windows(
        self, threshold_db: float, window: float
    ) -> tuple[npt.NDArray[np.bool_], int]:
        threshold = _seconds(threshold_db, "threshold_db", "decibels")
        seconds = _seconds(window, "window")
        if seconds <= 0:
            raise AudioError(f"window must be a positive number of seconds, not {seconds}")
        size = max(1, round(seconds * self.rate))
        power = _dsp.window_power(self.samples, size)
        return power < np.float32(_dsp.db_to_power(threshold)), size

    def silences(
        self, *, threshold_db: float = -40.0, min_silence: float = 0.3, window: float = 0.01
    ) -> list[tuple[float, float]]:
        """The quiet stretches, as (start, end) times in seconds.

        The audio is measured in windows of ``window`` seconds; a window is quiet when the
        RMS level of its loudest channel is below ``threshold_db`` dBFS. Runs of quiet
        windows lasting at least ``min_silence`` seconds are returned, in order, with times
        on window boundaries (the last end is the duration). It is vectorised over the whole
        signal: an hour of 16 kHz audio takes a fraction of a second.

        Args:
            threshold_db: Level in dBFS below which a window counts as silent.
            min_silence: The shortest run to report, in seconds.
            window: Analysis window in seconds.

        Raises:
            AudioError: A non-positive window, a negative min_silence, or NaN arguments.
        """
        minimum = _seconds(min_silence, "min_silence")
        if minimum < 0:
            raise AudioError(f"min_silence must be >= 0 seconds, not {minimum}")
        quiet, size = self._quiet_windows(threshold_db, window)
        starts, ends = _dsp.silent_runs(quiet)
        start_s = starts * size / self.rate
        end_s = np.minimum(ends * size, self.frames) / self.rate
        keep = (end_s - start_s) >= minimum - 1e-9
        return [(float(a), float(b)) for a, b in zip(start_s[keep], end_s[keep], strict=True)]

    def is_silent(self, *, threshold_db: float = -40.0, window: float = 0.01) -> bool:
        """True if no window of the audio reaches ``threshold_db`` dBFS (or it is empty)."""
        quiet, _ = self._quiet_windows(threshold_db, window)
        return bool(quiet.all())

    def trim_silence(
        self, *, threshold_db: float = -40.0, padding: float = 0.0, window: float = 0.01
    ) -> Audio:
        """Leading and trailing silence cut off, keeping ``padding`` seconds of it each side.

        Audio that is silent throughout becomes empty audio (0 frames).

        Raises:
            AudioError: A negative padding or a non-positive window.
        """
        pad = _seconds(padding, "padding")
        if pad < 0:
            raise AudioError(f"padding must be >= 0 seconds, not {pad}")
        quiet, size = self._quiet_windows(threshold_db, window)
        loud = np.flatnonzero(~quiet)
        if loud.size == 0:
            return Audio._make(self.samples[:0], self.rate)
        pad_frames = round(pad * self.rate)
        first = max(0, int(loud[0]) * size - pad_frames)
        last = min(self.frames, (int(loud[-1]) + 1) * size + pad_frames)
        return Audio._make(self.samples[first:last], self.rate)


_SAMPLES: Any = Audio.__dict__["samples"]  # the slot that holds an Audio's samples


class _Joined(Audio):
    """Parts of audio (one rate and channel count) joined when the samples are first used.

    A chain's whole reply audio is this: a listener who streamed the turn has had every
    part already and may never need them joined. Otherwise it is an :class:`Audio` like
    any other (equal, pickled and shown as one); its length is known without joining.
    """

    __slots__ = ("_parts",)
    _parts: tuple[Audio, ...]

    @classmethod
    def of(cls, parts: list[Audio]) -> Audio:
        """``parts`` joined (on first use); the caller checked that they match."""
        if len(parts) == 1:
            return parts[0]
        inst = object.__new__(cls)
        object.__setattr__(inst, "_parts", tuple(parts))
        object.__setattr__(inst, "rate", parts[0].rate)
        return inst

    @property
    def samples(self) -> Samples:
        """Float32 samples shaped (frames, channels), read-only."""
        try:
            return cast("Samples", _SAMPLES.__get__(self, Audio))
        except AttributeError:
            pass
        joined = np.concatenate([part.samples for part in self._parts])
        joined.setflags(write=False)
        _SAMPLES.__set__(self, joined)
        object.__setattr__(self, "_parts", ())
        return joined

    @samples.setter
    def samples(self, value: Samples) -> None:  # attrs's __init__ (attrs.evolve) sets it
        _SAMPLES.__set__(self, value)
        object.__setattr__(self, "_parts", ())

    @property
    def frames(self) -> int:
        """Number of frames (samples per channel)."""
        parts = self._parts
        return sum(part.frames for part in parts) if parts else int(self.samples.shape[0])

    @property
    def channels(self) -> int:
        """Number of channels."""
        parts = self._parts
        return parts[0].channels if parts else int(self.samples.shape[1])
