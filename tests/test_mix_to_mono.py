"""The fast channel mix-down (bench/bench_audio.py) equals the float64 mean, bit for bit."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import chainvoice as cv
from chainvoice import _dsp

FINITE_F32 = st.floats(allow_nan=False, allow_infinity=False, width=32)


@given(
    hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 50), st.integers(1, 6)),
        elements=FINITE_F32,
    )
)
@settings(max_examples=60, deadline=None)
def test_mix_to_mono_is_the_float64_mean_rounded_once(samples: np.ndarray) -> None:
    mono = _dsp.mix_to_mono(samples)
    expected = samples.mean(axis=1, dtype=np.float64).astype(np.float32).reshape(-1, 1)
    assert mono.dtype == np.float32 and mono.shape == (samples.shape[0], 1)
    assert np.isfinite(mono).all()  # loud channels never overflow when mixed
    np.testing.assert_array_equal(mono, expected)


def test_to_mono_of_stereo_keeps_silence_and_full_scale_exact() -> None:
    loudest = np.finfo(np.float32).max
    left = np.array([0.0, 1.0, -1.0, 0.5, loudest], dtype=np.float32)
    right = np.array([0.0, 1.0, -1.0, -0.5, loudest], dtype=np.float32)
    mono = cv.Audio(np.stack([left, right], axis=1), 8000).to_mono()
    np.testing.assert_array_equal(mono.samples[:, 0], [0.0, 1.0, -1.0, 0.0, loudest])
