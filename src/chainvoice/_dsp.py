"""Signal processing on float32 (frames, channels) arrays: resampling, mixing, levels, silence.

Everything here is vectorised numpy over the whole signal (long inputs are processed in
blocks of about a million frames to bound memory), so an hour of audio takes well under a
second to scan for silences.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from chainvoice._errors import ConfigurationError

__all__ = [
    "RESAMPLE_QUALITIES",
    "db_to_power",
    "mix_to_mono",
    "resample",
    "silent_runs",
    "window_power",
]

Samples = npt.NDArray[np.float32]

RESAMPLE_QUALITIES: Final = ("QQ", "LQ", "MQ", "HQ", "VHQ")
_BLOCK_FRAMES: Final = 1 << 20


def resample(samples: Samples, rate: int, new_rate: int, quality: str = "HQ") -> Samples:
    """Resample with libsoxr (band-limited, phase-linear), keeping the channel layout.

    The output has ``frames * new_rate / rate`` frames, rounded half up.

    Raises:
        ConfigurationError: An unknown quality name.
    """
    q = quality.upper()
    if q not in RESAMPLE_QUALITIES:
        raise ConfigurationError(
            f"unknown resampling quality {quality!r}; use one of {', '.join(RESAMPLE_QUALITIES)}"
        )
    frames, channels = samples.shape
    expected = (2 * frames * new_rate + rate) // (2 * rate)
    if frames == 0 or expected == 0:
        return np.zeros((expected, channels), dtype=np.float32)
    import soxr

    out = np.asarray(soxr.resample(samples, rate, new_rate, quality=q), dtype=np.float32)
    out = out.reshape(-1, channels)
    # soxr may be off by a frame at the very end; pin the length to the exact ratio.
    if out.shape[0] > expected:
        out = out[:expected]
    elif out.shape[0] < expected:
        pad = np.zeros((expected - out.shape[0], channels), dtype=np.float32)
        out = np.concatenate([out, pad])
    return np.ascontiguousarray(out)


def mix_to_mono(samples: Samples) -> Samples:
    """Average the channels into one, shaped (frames, 1)."""
    channels = samples.shape[1]
    if channels == 1:
        return samples
    if channels == 2:
        # (a + b) * 0.5 in float32 rounds once (at the sum; halving is exact), like the
        # float64 mean cast to float32, and gives back x for two equal channels x, even
        # subnormal ones; it is several times faster than a mean along a short axis. Only
        # samples near float32's limit can overflow the sum: those take float64.
        with np.errstate(over="ignore"):  # an overflow is caught just below
            mono = samples[:, 0] + samples[:, 1]
        mono *= np.float32(0.5)
        if not np.isfinite(mono).all():
            mono = ((samples[:, 0].astype(np.float64) + samples[:, 1]) / 2).astype(np.float32)
    else:
        total = samples[:, 0].astype(np.float64)
        for channel in range(1, channels):
            total += samples[:, channel]
        total /= channels
        mono = total.astype(np.float32)
    out: Samples = mono.reshape(-1, 1)
    return out


def db_to_power(db: float) -> float:
    """Mean-square power of a level in dBFS (0 dBFS is a full-scale square wave)."""
    return float(10.0 ** (db / 10.0))


def window_power(samples: Samples, window: int) -> npt.NDArray[np.float32]:
    """Mean-square power of consecutive windows of ``window`` frames.

    Each channel is measured on its own and the loudest channel counts, so a window is
    quiet only if every channel is. The last window may be shorter.

    Returns:
        One float32 power per window: ``ceil(frames / window)`` values.
    """
    frames, channels = samples.shape
    n_windows = -(-frames // window)
    out = np.empty(n_windows, dtype=np.float32)
    full = frames // window
    block = max(1, _BLOCK_FRAMES // window)
    for first in range(0, full, block):
        last = min(full, first + block)
        chunk = samples[first * window : last * window]
        power = np.square(chunk).reshape(last - first, window, channels).mean(axis=1)
        out[first:last] = power.max(axis=1)
    if full < n_windows:
        tail = samples[full * window :]
        out[full] = np.square(tail).mean(axis=0).max()
    return out


def silent_runs(quiet: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Start and end (exclusive) indices of the runs of ``True`` in ``quiet``."""
    edges = np.diff(np.concatenate(([False], quiet, [False])).astype(np.int8))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return starts, ends
