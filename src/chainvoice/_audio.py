"""Audio: the value type for sound in chainvoice."""

from __future__ import annotations

import io
import wave
from collections.abc import Iterable
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from chainvoice._errors import EmptyAudioError, InvalidSamplesError, SampleRateError

__all__ = ["Audio"]

Samples = npt.NDArray[np.float32]


def _to_samples(value: Any) -> Samples:
    try:
        arr = np.asarray(value)
    except Exception as exc:  # pragma: no cover - numpy accepts nearly anything
        raise InvalidSamplesError(f"samples must be array-like numbers: {exc}") from exc
    if arr.dtype.kind not in "fiub":
        raise InvalidSamplesError(
            f"samples must be numbers, not dtype {arr.dtype}; pass a float or int numpy array"
        )
    if arr.dtype.kind in "iu":
        info = np.iinfo(arr.dtype)
        scale = float(max(-int(info.min), int(info.max) + 1))
        arr = arr.astype(np.float32) / np.float32(scale)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise InvalidSamplesError(
            f"samples must be shaped (frames,) or (frames, channels), not {arr.shape}"
        )
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(out).all():
        raise InvalidSamplesError(
            "samples contain NaN or infinite values; clean them (e.g. np.nan_to_num) first"
        )
    out.setflags(write=False)
    return out


def _to_rate(value: Any) -> Any:
    return int(value) if isinstance(value, np.integer) else value


def _check_rate(_inst: object, _attr: object, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise SampleRateError(f"the sample rate must be a positive integer in Hz, not {value!r}")


@attrs.frozen(eq=False, repr=False)
class Audio:
    """Sound as float32 samples shaped (frames, channels) at an explicit sample rate.

    Args:
        samples: Samples in [-1, 1] shaped (frames,) or (frames, channels); integer arrays
            are scaled from their full range.
        rate: Sample rate in Hz.

    Raises:
        InvalidSamplesError: NaN or infinite samples, or an unusable shape.
        SampleRateError: A rate that is not a positive integer.

    Example:
        >>> import numpy as np
        >>> a = Audio(np.zeros(16000, dtype=np.float32), 16000)
        >>> a.duration, a.channels
        (1.0, 1)
    """

    samples: Samples = attrs.field(converter=_to_samples)
    rate: int = attrs.field(converter=_to_rate, validator=_check_rate)

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

    def __len__(self) -> int:
        return self.frames

    def __repr__(self) -> str:
        return f"Audio(duration={self.duration:.3f}s, rate={self.rate}, channels={self.channels})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Audio):
            return NotImplemented
        return self.rate == other.rate and np.array_equal(self.samples, other.samples)

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def silence(cls, seconds: float, rate: int = 16000, channels: int = 1) -> Audio:
        """Silent audio of the given length."""
        return cls(np.zeros((round(seconds * rate), channels), dtype=np.float32), rate)

    @classmethod
    def from_pcm16(cls, data: bytes, *, rate: int, channels: int = 1) -> Audio:
        """Audio from raw little-endian signed 16-bit PCM.

        Raises:
            EmptyAudioError: ``data`` is empty.
            InvalidSamplesError: The byte count is not a whole number of frames.
        """
        if not data:
            raise EmptyAudioError("no PCM data: the byte string is empty")
        width = 2 * channels
        if len(data) % width:
            raise InvalidSamplesError(
                f"{len(data)} bytes is not a whole number of {channels}-channel 16-bit frames"
            )
        ints = np.frombuffer(data, dtype="<i2").reshape(-1, channels)
        return cls(ints.astype(np.float32) / np.float32(32768.0), rate)

    def to_pcm16(self) -> bytes:
        """Raw little-endian signed 16-bit PCM, interleaved, clipped to [-1, 1)."""
        scaled = np.clip(np.round(self.samples * 32768.0), -32768, 32767).astype("<i2")
        return scaled.tobytes()

    def to_wav(self) -> bytes:
        """A 16-bit PCM WAV file as bytes."""
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(self.channels)
            w.setsampwidth(2)
            w.setframerate(self.rate)
            w.writeframes(self.to_pcm16())
        return buf.getvalue()

    @classmethod
    def concat(cls, parts: Iterable[Audio]) -> Audio:
        """Join audio end to end; all parts must share rate and channel count.

        Raises:
            EmptyAudioError: ``parts`` is empty.
            SampleRateError: The parts have different rates.
        """
        items = list(parts)
        if not items:
            raise EmptyAudioError("nothing to concatenate")
        first = items[0]
        for item in items[1:]:
            if item.rate != first.rate:
                raise SampleRateError(
                    f"cannot join {first.rate} Hz and {item.rate} Hz audio; resample first"
                )
            if item.channels != first.channels:
                raise InvalidSamplesError(
                    f"cannot join {first.channels}- and {item.channels}-channel audio; "
                    "use to_mono() first"
                )
        return cls(np.concatenate([i.samples for i in items]), first.rate)

    def __add__(self, other: object) -> Audio:
        if not isinstance(other, Audio):
            return NotImplemented
        return Audio.concat([self, other])
