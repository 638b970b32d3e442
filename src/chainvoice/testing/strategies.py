"""Hypothesis strategies that generate :class:`chainvoice.Audio`, for property tests.

Needs the ``hypothesis`` package (``pip install 'chainvoice[test]'``).

Example:
    >>> from hypothesis import given
    >>> from chainvoice.testing.strategies import audio
    >>> @given(audio(max_duration=0.5, channels=[1]))
    ... def test_my_transcriber_accepts_any_audio(clip):
    ...     my_transcriber.transcribe(clip)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from chainvoice._audio import Audio
from chainvoice._errors import MissingDependencyError

try:
    from hypothesis import strategies as st
    from hypothesis.errors import InvalidArgument
except ImportError as exc:  # pragma: no cover - exercised in a subprocess
    raise MissingDependencyError(
        "chainvoice.testing.strategies needs hypothesis: `pip install 'chainvoice[test]'`"
    ) from exc

__all__ = ["COMMON_RATES", "SIGNALS", "Signal", "audio", "sample_rates"]

#: Sample rates met in practice (telephony, speech models, OpenAI PCM, CD, video).
COMMON_RATES: Final[tuple[int, ...]] = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)

Signal = Literal["noise", "tone", "silence", "impulses", "extremes"]

#: The kinds of signal :func:`audio` draws from, all by default.
SIGNALS: Final[tuple[Signal, ...]] = ("noise", "tone", "silence", "impulses", "extremes")


def sample_rates(rates: Sequence[int] = COMMON_RATES) -> st.SearchStrategy[int]:
    """Sample rates in Hz, drawn from ``rates``.

    Raises:
        hypothesis.errors.InvalidArgument: ``rates`` is empty or holds a non-positive rate.
    """
    choices = _check_rates(rates)
    return st.sampled_from(choices)


def _check_rates(rates: Sequence[int]) -> tuple[int, ...]:
    choices = tuple(rates)
    if not choices:
        raise InvalidArgument("rates must name at least one sample rate")
    for rate in choices:
        if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
            raise InvalidArgument(f"sample rates must be positive integers, not {rate!r}")
    return choices


def audio(
    *,
    min_duration: float = 0.0,
    max_duration: float = 0.25,
    rates: Sequence[int] | st.SearchStrategy[int] = COMMON_RATES,
    channels: Sequence[int] = (1, 2),
    signals: Sequence[Signal] = SIGNALS,
    max_amplitude: float = 1.0,
    quantized: bool = False,
) -> st.SearchStrategy[Audio]:
    """Strategy for :class:`~chainvoice.Audio` values.

    Each example is one kind of signal: uniform noise, a sine tone (any frequency below
    Nyquist, any phase), digital silence, sparse impulses, or samples at the extremes of
    the range (±``max_amplitude``), at a random level up to ``max_amplitude``. Durations
    and sizes shrink towards ``min_duration``; the samples come from a drawn seed, so
    examples are cheap even for long audio.

    Args:
        min_duration: Shortest audio in seconds (0 allows empty audio).
        max_duration: Longest audio in seconds.
        rates: Sample rates to draw from, or a strategy for them.
        channels: Channel counts to draw from.
        signals: Which kinds of signal to generate.
        max_amplitude: The largest absolute sample value (values above 1.0 model clipping).
        quantized: If true, every sample is a multiple of 1/32768 in [-1, 1), so the audio
            survives 16-bit PCM and WAV bit for bit.

    Raises:
        hypothesis.errors.InvalidArgument: Inconsistent arguments.
    """
    if not (math.isfinite(min_duration) and math.isfinite(max_duration)):
        raise InvalidArgument("durations must be finite")
    if min_duration < 0 or max_duration < min_duration:
        raise InvalidArgument(
            f"need 0 <= min_duration <= max_duration, got {min_duration} and {max_duration}"
        )
    if not math.isfinite(max_amplitude) or max_amplitude < 0:
        raise InvalidArgument(f"max_amplitude must be finite and >= 0, not {max_amplitude}")
    counts = tuple(channels)
    if not counts or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in counts):
        raise InvalidArgument(f"channels must be positive integers, not {channels!r}")
    kinds = tuple(signals)
    unknown = [k for k in kinds if k not in SIGNALS]
    if not kinds or unknown:
        raise InvalidArgument(f"signals must be drawn from {SIGNALS}, not {signals!r}")
    rate_strategy = rates if isinstance(rates, st.SearchStrategy) else sample_rates(rates)

    @st.composite
    def build(draw: st.DrawFn) -> Audio:
        rate = draw(rate_strategy)
        low = math.ceil(min_duration * rate - 1e-9)
        high = math.floor(max_duration * rate + 1e-9)
        if high < low:
            raise InvalidArgument(
                f"no whole number of frames at {rate} Hz lasts between {min_duration} "
                f"and {max_duration} s; widen the duration range"
            )
        frames = draw(st.integers(low, high))
        n_channels = draw(st.sampled_from(counts))
        kind = draw(st.sampled_from(kinds))
        level = draw(st.sampled_from([1.0, 0.5, 0.01]) | st.floats(0.0, 1.0)) * max_amplitude
        seed = draw(st.integers(0, 2**32 - 1))
        samples = _signal(kind, frames, n_channels, rate, level, np.random.default_rng(seed))
        if quantized:
            samples = np.clip(np.rint(samples * 32768.0), -32768, 32767) / 32768.0
        return Audio(samples.astype(np.float32), rate)

    return build()


def _signal(
    kind: Signal, frames: int, channels: int, rate: int, level: float, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    shape = (frames, channels)
    if kind == "noise":
        return rng.uniform(-level, level, size=shape)
    if kind == "tone":
        freq = rng.uniform(20.0, max(20.0, 0.45 * rate), size=channels)
        phase = rng.uniform(0.0, 2 * np.pi, size=channels)
        t = np.arange(frames)[:, None] / rate
        return level * np.sin(2 * np.pi * freq * t + phase)
    if kind == "impulses":
        out = np.zeros(shape)
        count = int(rng.integers(0, max(1, frames // 100) + 1)) if frames else 0
        if count:
            where = rng.integers(0, frames, size=count)
            out[where] = rng.choice([-level, level], size=(count, channels))
        return out
    if kind == "extremes":
        return rng.choice([-level, level], size=shape)
    return np.zeros(shape)
