"""Audio as a value: construction, PCM/WAV round trips, resampling, channels, slicing,
concatenation, levels, silence detection and the notebook player."""

from __future__ import annotations

import base64
import copy
import io
import math
import pickle
import re
import wave

import attrs
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import chainvoice as cv
from chainvoice import _audio
from chainvoice.testing.strategies import COMMON_RATES, audio

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def tone(freq: float, seconds: float, rate: int, amp: float = 0.5, channels: int = 1) -> cv.Audio:
    t = np.arange(round(seconds * rate)) / rate
    x = amp * np.sin(2 * np.pi * freq * t)
    return cv.Audio(np.repeat(x[:, None], channels, axis=1).astype(np.float32), rate)


def measured_frequency(a: cv.Audio) -> float:
    """Frequency of a clean tone from its rising zero crossings, edges skipped."""
    x = a.samples[:, 0].astype(np.float64)
    n = len(x)
    x = x[n // 10 : n - n // 10]
    rising = np.flatnonzero((x[:-1] < 0) & (x[1:] >= 0))
    # Interpolate each crossing to a fraction of a sample.
    frac = x[rising] / (x[rising] - x[rising + 1])
    times = (rising + frac) / a.rate
    return (len(times) - 1) / (times[-1] - times[0])


# --------------------------------------------------------------------------- construction


def test_basic_properties_and_repr() -> None:
    a = cv.Audio(np.zeros((24000, 2), dtype=np.float32), 24000)
    assert (a.frames, a.channels, a.rate, a.duration, len(a)) == (24000, 2, 24000, 1.0, 24000)
    assert a.samples.dtype == np.float32
    assert repr(a) == "Audio(duration=1.000s, rate=24000, channels=2)"


def test_one_dimensional_samples_become_one_channel() -> None:
    a = cv.Audio([0.0, 0.5, -0.5], 8000)
    assert a.samples.shape == (3, 1)


def test_integer_samples_are_scaled_from_full_range() -> None:
    a = cv.Audio(np.array([-32768, 0, 16384], dtype=np.int16), 16000)
    assert a.samples[:, 0].tolist() == [-1.0, 0.0, 0.5]
    u = cv.Audio(np.array([0, 128, 255], dtype=np.uint8), 8000)
    assert u.samples[:, 0].tolist() == pytest.approx([-1.0, 0.0, 127 / 128])


def test_frozen_and_read_only() -> None:
    a = tone(440, 0.1, 16000)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        a.rate = 8000  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        a.samples[0, 0] = 1.0
    with pytest.raises(TypeError):
        hash(a)


def test_samples_are_copied_from_a_writable_array() -> None:
    x = np.zeros((10, 1), dtype=np.float32)
    a = cv.Audio(x, 8000)
    x[0, 0] = 1.0
    assert a.samples[0, 0] == 0.0
    assert x.flags.writeable  # the caller's array is left alone


def test_read_only_view_of_a_writable_array_is_copied() -> None:
    base = np.zeros((10, 1), dtype=np.float32)
    view = base[:]
    view.setflags(write=False)
    a = cv.Audio(view, 8000)
    base[0, 0] = 1.0
    assert a.samples[0, 0] == 0.0


def test_audio_from_another_audio_shares_its_immutable_samples() -> None:
    a = tone(440, 0.1, 16000)
    assert cv.Audio(a.samples, a.rate).samples is a.samples


def test_numpy_integer_rate_is_accepted() -> None:
    a = cv.Audio(np.zeros(4, dtype=np.float32), np.int64(22050))
    assert a.rate == 22050 and type(a.rate) is int


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_samples_are_rejected(bad: float) -> None:
    with pytest.raises(cv.InvalidSamplesError, match="NaN or infinite"):
        cv.Audio(np.array([0.0, bad, 0.0]), 16000)


def test_float64_overflowing_float32_is_rejected() -> None:
    with pytest.raises(cv.InvalidSamplesError):
        cv.Audio(np.array([1e300]), 16000)


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (np.array(["a", "b"]), "numbers"),
        (np.array([1 + 1j]), "numbers"),
        (np.zeros((2, 2, 2)), "shaped"),
        (np.zeros((10, 0)), "no channels"),
        (np.zeros((2, 48000)), r"samples\.T"),
        (np.zeros((5000, 2000)), r"samples\.T"),
    ],
)
def test_unusable_samples_are_rejected(samples: np.ndarray, message: str) -> None:
    with pytest.raises(cv.InvalidSamplesError, match=message):
        cv.Audio(samples, 16000)


@pytest.mark.parametrize(
    "rate", [0, -16000, 16000.0, 1.5, True, "16000", None, 1, 999, 768_001, 10**12]
)
def test_bad_rates_are_rejected(rate: object) -> None:
    with pytest.raises(cv.SampleRateError, match="whole number of Hz from 1000 to 768000"):
        cv.Audio(np.zeros(4, dtype=np.float32), rate)  # type: ignore[arg-type]


def test_rates_from_1_to_768_khz_are_accepted_and_a_rate_in_khz_is_pointed_out() -> None:
    assert cv.Audio(np.zeros(4), 1000).rate == 1000
    assert cv.Audio(np.zeros(4), 768_000).rate == 768_000
    with pytest.raises(cv.SampleRateError, match="not kHz: 16 kHz is 16000 Hz"):
        cv.Audio.from_pcm16(b"\x00\x00", rate=16)
    with pytest.raises(cv.SampleRateError, match=r"not 1 \(in Hz, not kHz"):
        tone(440, 0.1, 16000).resample(1)
    with pytest.raises(cv.SampleRateError, match="not 1000000000000"):
        tone(440, 0.1, 16000).with_rate(10**12)
    with pytest.raises(cv.SampleRateError, match="from 1000 to 768000"):
        cv.Audio.silence(1, rate=10**9)


def test_errors_are_value_errors() -> None:
    with pytest.raises(ValueError):
        cv.Audio(np.zeros(4), 0)


def test_equality_compares_rate_and_samples() -> None:
    a = tone(440, 0.1, 16000)
    assert a == cv.Audio(a.samples.copy(), 16000)
    assert a != a.with_rate(8000)
    assert a != tone(441, 0.1, 16000)
    assert a != "audio"


@given(audio(max_duration=0.05))
@FAST
def test_pickle_and_copy_keep_value_and_immutability(a: cv.Audio) -> None:
    for b in (pickle.loads(pickle.dumps(a)), copy.deepcopy(a), copy.copy(a)):
        assert b == a
        assert not b.samples.flags.writeable


def test_silence() -> None:
    s = cv.Audio.silence(0.5, rate=8000, channels=2)
    assert s.samples.shape == (4000, 2) and not s.samples.any()
    assert cv.Audio.silence(0).frames == 0
    with pytest.raises(cv.AudioError, match=">= 0"):
        cv.Audio.silence(-1)
    with pytest.raises(cv.AudioError, match="finite"):
        cv.Audio.silence(math.nan)
    with pytest.raises(cv.SampleRateError):
        cv.Audio.silence(1, rate=0)
    with pytest.raises(cv.InvalidSamplesError, match="channels"):
        cv.Audio.silence(1, channels=0)


# ------------------------------------------------------------------------------ PCM16 / WAV


@given(data=st.binary(min_size=2, max_size=4000), channels=st.sampled_from([1, 2]))
@FAST
def test_pcm16_bytes_round_trip_bit_exact(data: bytes, channels: int) -> None:
    data = data[: len(data) // (2 * channels) * (2 * channels)]
    assume(data)
    a = cv.Audio.from_pcm16(data, rate=24000, channels=channels)
    assert a.channels == channels and a.frames == len(data) // (2 * channels)
    assert a.to_pcm16() == data
    assert a.encode("pcm") == data


@given(audio(min_duration=0.001, quantized=True))
@FAST
def test_quantized_audio_round_trips_through_pcm16_and_wav_exactly(a: cv.Audio) -> None:
    assert cv.Audio.from_pcm16(a.to_pcm16(), rate=a.rate, channels=a.channels) == a
    assert cv.Audio.from_bytes(a.to_wav()) == a


@given(audio(min_duration=0.001, max_amplitude=1.5))
@FAST
def test_wav_sample_formats_round_trip(a: cv.Audio) -> None:
    assert cv.Audio.from_bytes(a.to_wav(sample_format="float32")) == a
    clipped = np.clip(a.samples, -1.0, 1.0)
    for fmt, tolerance in [("pcm8", 1 / 128), ("pcm16", 1 / 32768), ("pcm24", 2.0**-23)]:
        back = cv.Audio.from_bytes(a.to_wav(sample_format=fmt))
        assert back.rate == a.rate and back.channels == a.channels
        assert np.max(np.abs(back.samples - clipped)) <= tolerance * 1.0001
    back32 = cv.Audio.from_bytes(a.to_wav(sample_format="pcm32"))
    assert np.max(np.abs(back32.samples - clipped)) <= 1e-7


def test_pcm16_clips_out_of_range_samples() -> None:
    a = cv.Audio(np.array([2.0, -2.0, 1.0, -1.0], dtype=np.float32), 8000)
    ints = np.frombuffer(a.to_pcm16(), dtype="<i2").tolist()
    assert ints == [32767, -32768, 32767, -32768]


def test_our_wav_is_readable_by_the_standard_library() -> None:
    a = tone(440, 0.05, 16000, channels=2)
    with wave.open(io.BytesIO(a.to_wav())) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 16000)
        assert w.readframes(w.getnframes()) == a.to_pcm16()


def test_standard_library_wav_is_readable() -> None:
    pcm = np.arange(-3000, 3000, 3, dtype="<i2").tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(11025)
        w.writeframes(pcm)
    a = cv.Audio.from_bytes(buf.getvalue())
    assert (a.rate, a.channels) == (11025, 2)
    assert a.to_pcm16() == pcm


def test_from_pcm16_errors() -> None:
    with pytest.raises(cv.EmptyAudioError, match="empty"):
        cv.Audio.from_pcm16(b"", rate=24000)
    with pytest.raises(cv.InvalidSamplesError, match="whole number"):
        cv.Audio.from_pcm16(b"\x00\x00\x00", rate=24000)
    with pytest.raises(cv.InvalidSamplesError, match="whole number"):
        cv.Audio.from_pcm16(b"\x00\x00", rate=24000, channels=2)
    with pytest.raises(cv.SampleRateError):
        cv.Audio.from_pcm16(b"\x00\x00", rate=0)
    with pytest.raises(cv.InvalidSamplesError, match="channels"):
        cv.Audio.from_pcm16(b"\x00\x00", rate=8000, channels=0)


def test_from_pcm16_accepts_bytearray_and_memoryview() -> None:
    data = bytearray(b"\x01\x00\xff\x7f")
    a = cv.Audio.from_pcm16(memoryview(data), rate=8000)
    data[0] = 9
    assert a.to_pcm16() == b"\x01\x00\xff\x7f"


def test_unknown_wav_sample_format() -> None:
    with pytest.raises(cv.ConfigurationError, match="pcm24"):
        tone(440, 0.01, 8000).to_wav(sample_format="pcm12")


# ------------------------------------------------------------------------------ resampling


@given(
    rates=st.tuples(st.sampled_from(COMMON_RATES), st.sampled_from(COMMON_RATES)),
    fraction=st.floats(0.02, 0.4),
    seconds=st.floats(0.2, 0.6),
)
@FAST
def test_resampling_keeps_frequency_and_duration(
    rates: tuple[int, int], fraction: float, seconds: float
) -> None:
    rate, new_rate = rates
    freq = max(50.0, fraction * min(rate, new_rate))
    a = tone(freq, seconds, rate)
    b = a.resample(new_rate)
    assert b.rate == new_rate and b.channels == 1
    assert abs(b.duration - a.duration) <= 1 / new_rate
    assert measured_frequency(b) == pytest.approx(freq, rel=0.01)


@given(audio(max_duration=0.1), st.sampled_from(COMMON_RATES))
@FAST
def test_resampling_any_audio_keeps_shape_and_length(a: cv.Audio, rate: int) -> None:
    b = a.resample(rate)
    assert b.channels == a.channels
    assert abs(b.duration - a.duration) <= 1 / rate
    assert np.isfinite(b.samples).all() and not b.samples.flags.writeable


def test_resample_same_rate_is_identity_and_stereo_keeps_channels() -> None:
    a = tone(440, 0.1, 16000, channels=2)
    assert a.resample(16000) is a
    b = a.resample(24000)
    assert b.channels == 2
    np.testing.assert_array_equal(b.samples[:, 0], b.samples[:, 1])


def test_resample_rejects_bad_rate_and_quality() -> None:
    a = tone(440, 0.1, 16000)
    with pytest.raises(cv.SampleRateError):
        a.resample(0)
    with pytest.raises(cv.SampleRateError):
        a.resample(-8000)
    with pytest.raises(cv.ConfigurationError, match="VHQ"):
        a.resample(8000, quality="best")


def test_with_rate_relabels_without_resampling() -> None:
    a = tone(440, 1.0, 16000)
    b = a.with_rate(8000)
    assert b.samples is a.samples and b.duration == 2.0
    assert measured_frequency(b) == pytest.approx(220, rel=0.01)
    with pytest.raises(cv.SampleRateError):
        a.with_rate(0)


# -------------------------------------------------------------------------------- channels


@given(audio(max_duration=0.05, channels=[1, 2, 3]))
@FAST
def test_to_mono_is_the_channel_average(a: cv.Audio) -> None:
    m = a.to_mono()
    assert m.channels == 1 and m.frames == a.frames and m.rate == a.rate
    np.testing.assert_allclose(m.samples[:, 0], a.samples.mean(axis=1), atol=1e-6)
    assert m.to_mono() is m


@given(audio(max_duration=0.05, channels=[1]), st.integers(2, 4))
@FAST
def test_duplicated_channels_mix_back_to_the_original(a: cv.Audio, n: int) -> None:
    wide = a.to_channels(n)
    assert wide.channels == n
    assert wide.to_mono() == a


def test_to_channels_refuses_ambiguous_layouts() -> None:
    six = cv.Audio(np.zeros((10, 6), dtype=np.float32), 8000)
    with pytest.raises(cv.InvalidSamplesError, match="to_mono"):
        six.to_channels(2)
    with pytest.raises(cv.InvalidSamplesError):
        six.to_channels(0)
    assert six.to_channels(6) is six


# ----------------------------------------------------------------------- slicing and joining


@given(a=audio(max_duration=0.2), t1=st.floats(-0.3, 0.3), t2=st.floats(-0.3, 0.3))
@FAST
def test_slices_follow_python_rules_and_join_back(a: cv.Audio, t1: float, t2: float) -> None:
    def frame(t: float) -> int:
        f = round(t * a.rate)
        return min(max(f + a.frames if f < 0 else f, 0), a.frames)

    part = a[t1:t2]
    np.testing.assert_array_equal(part.samples, a.samples[frame(t1) : frame(t2)])
    assert part.rate == a.rate
    lo, hi = sorted((abs(t1), abs(t2)))
    assert cv.Audio.concat([a[:lo], a[lo:hi], a[hi:]]) == a


@given(a=audio(min_duration=0.01, max_duration=0.2), data=st.data())
@FAST
def test_strict_slice_matches_the_clamping_slice_inside_the_audio(
    a: cv.Audio, data: st.DataObject
) -> None:
    start = data.draw(st.floats(0, a.duration))
    end = data.draw(st.floats(start, a.duration))
    assert a.slice(start, end) == a[start:end]
    assert a.slice(start) == a[start:]


def test_slice_examples_and_errors() -> None:
    a = tone(440, 2.0, 1000)
    assert a[0.5:1.5].duration == 1.0
    assert a[-0.5:].duration == 0.5
    assert a[1:].duration == 1.0  # ints are seconds too
    assert a[5:10].frames == 0 and a[1.5:0.5].frames == 0
    assert a.slice().frames == a.frames
    for start, end in [(-0.1, 1.0), (0.0, 2.1), (1.5, 0.5)]:
        with pytest.raises(cv.AudioError, match="0 <= start <= end <= duration"):
            a.slice(start, end)
    with pytest.raises(cv.AudioError, match="no step"):
        a[0:1:2]
    with pytest.raises(TypeError, match="slice of seconds"):
        a[3]  # type: ignore[index]
    with pytest.raises(TypeError, match="number of seconds"):
        a["1":]
    with pytest.raises(cv.AudioError, match="finite"):
        a[math.nan :]
    with pytest.raises(cv.AudioError, match="finite"):
        a.slice(0, math.inf)


@given(st.lists(audio(max_duration=0.05, rates=[16000], channels=[2]), min_size=1, max_size=5))
@FAST
def test_concat_joins_in_order(parts: list[cv.Audio]) -> None:
    joined = cv.Audio.concat(parts)
    assert joined.frames == sum(p.frames for p in parts)
    assert joined.duration == pytest.approx(sum(p.duration for p in parts))
    offset = 0
    for p in parts:
        assert joined.samples[offset : offset + p.frames].tobytes() == p.samples.tobytes()
        offset += p.frames
    if len(parts) >= 2:
        assert parts[0] + parts[1] == cv.Audio.concat(parts[:2])


@given(st.lists(audio(max_duration=0.05, rates=[16000], channels=[2]), min_size=1, max_size=5))
@FAST
def test_joined_on_first_use_is_the_same_audio_as_concat(parts: list[cv.Audio]) -> None:
    """A chain's whole reply audio is joined when its samples are first used; until then
    its length, rate and channels are known, and after it is an Audio like any other."""
    whole = cv.Audio.concat(parts)
    lazy = _audio._Joined.of(parts)
    if len(parts) == 1:
        assert lazy is parts[0]
        return
    assert isinstance(lazy, cv.Audio)
    assert (lazy.frames, lazy.channels, lazy.rate) == (whole.frames, 2, 16000)
    assert lazy.duration == whole.duration and len(lazy) == len(whole)
    assert repr(lazy) == repr(whole)
    assert lazy._parts  # nothing joined yet
    assert lazy == whole and whole == lazy
    assert not lazy._parts  # joined once, the parts let go
    assert lazy.samples.tobytes() == whole.samples.tobytes()
    assert not lazy.samples.flags.writeable
    assert lazy.samples is lazy.samples
    assert lazy.frames == whole.frames and lazy.channels == 2


def test_joined_audio_behaves_as_audio() -> None:
    parts = [tone(440, 0.1, 16000), tone(660, 0.05, 16000)]
    whole = cv.Audio.concat(parts)

    def lazy() -> cv.Audio:
        return _audio._Joined.of(parts)

    restored = pickle.loads(pickle.dumps(lazy()))
    assert type(restored) is cv.Audio and restored == whole
    assert copy.deepcopy(lazy()) == whole
    assert lazy()[0.02:0.1] == whole[0.02:0.1]
    assert lazy().resample(8000) == whole.resample(8000)
    assert lazy() + parts[0] == whole + parts[0]
    assert lazy().to_wav() == whole.to_wav()
    changed = attrs.evolve(lazy(), rate=8000)
    assert changed.rate == 8000 and changed.frames == whole.frames
    assert changed.samples.tobytes() == whole.samples.tobytes()
    frozen = lazy()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        frozen.samples = whole.samples  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        frozen.rate = 8000  # type: ignore[misc]
    assert frozen == whole


def test_concat_errors() -> None:
    a = tone(440, 0.1, 16000)
    with pytest.raises(cv.EmptyAudioError, match="nothing"):
        cv.Audio.concat([])
    with pytest.raises(cv.SampleRateError, match=r"resample\(16000\)"):
        cv.Audio.concat([a, tone(440, 0.1, 8000)])
    with pytest.raises(cv.InvalidSamplesError, match="to_mono"):
        cv.Audio.concat([a, tone(440, 0.1, 16000, channels=2)])
    with pytest.raises(TypeError, match="only concatenate Audio"):
        cv.Audio.concat([a, b"pcm"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        a + b"pcm"  # type: ignore[operator]


# -------------------------------------------------------------------------------- levels


def test_levels_of_a_sine() -> None:
    a = tone(1000, 1.0, 16000, amp=0.5)
    assert a.peak == pytest.approx(0.5, abs=1e-4)
    assert a.rms == pytest.approx(0.5 / math.sqrt(2), rel=1e-3)
    assert a.dbfs == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.01)
    assert a.peak_dbfs == pytest.approx(-6.02, abs=0.01)
    silent = cv.Audio.silence(0.1)
    assert (silent.peak, silent.rms, silent.dbfs, silent.peak_dbfs) == (
        0.0,
        0.0,
        -math.inf,
        -math.inf,
    )
    empty = cv.Audio.silence(0)
    assert (empty.peak, empty.rms) == (0.0, 0.0)


@given(audio(min_duration=0.01, max_duration=0.1), st.floats(-30, 0))
@FAST
def test_normalize_sets_the_peak(a: cv.Audio, target: float) -> None:
    n = a.normalize(target)
    if a.peak < 1e-10:
        assert n is a
    else:
        assert n.peak_dbfs == pytest.approx(target, abs=0.01)


def test_gain() -> None:
    a = tone(440, 0.1, 16000, amp=0.25)
    assert a.gain(6.0206).peak == pytest.approx(0.5, rel=1e-3)
    assert a.gain(-6.0206).peak == pytest.approx(0.125, rel=1e-3)
    with pytest.raises(cv.InvalidSamplesError, match="overflows"):
        a.gain(1000)


# ------------------------------------------------------------------------------- silences


def gappy(rate: int = 16000, channels: int = 1) -> cv.Audio:
    """Tone 0-1 s, silence 1-1.5 s, tone 1.5-2 s, quiet noise 2-2.6 s."""
    rng = np.random.default_rng(0)
    quiet = 0.001 * rng.standard_normal((round(0.6 * rate), channels)).astype(np.float32)
    return cv.Audio.concat(
        [
            tone(300, 1.0, rate, channels=channels),
            cv.Audio.silence(0.5, rate, channels),
            tone(300, 0.5, rate, channels=channels),
            cv.Audio(quiet, rate),
        ]
    )


def test_silences_finds_the_gaps() -> None:
    spans = gappy().silences(threshold_db=-40, min_silence=0.3)
    assert len(spans) == 2
    assert spans[0] == pytest.approx((1.0, 1.5), abs=0.011)
    assert spans[1] == pytest.approx((2.0, 2.6), abs=0.011)
    assert gappy().silences(min_silence=0.55) == [pytest.approx((2.0, 2.6), abs=0.011)]
    # The quiet noise (about -60 dBFS) is not silent under a stricter threshold.
    assert len(gappy().silences(threshold_db=-70, min_silence=0.3)) == 1


def test_silence_needs_every_channel_quiet() -> None:
    # About -38 dBFS on the left only: averaging the channels would make it -41 dBFS.
    left = tone(300, 1.0, 8000, amp=0.018).samples[:, 0]
    stereo = cv.Audio(np.stack([left, np.zeros_like(left)], axis=1), 8000)
    assert stereo.silences(threshold_db=-40) == []
    assert not stereo.is_silent(threshold_db=-40)
    assert stereo.is_silent(threshold_db=-37)


def test_silences_edge_cases() -> None:
    assert cv.Audio.silence(1.0).silences() == [(0.0, 1.0)]
    assert cv.Audio.silence(0).silences() == []
    assert tone(440, 1.0, 8000).silences() == []
    with pytest.raises(cv.AudioError, match="window"):
        gappy().silences(window=0)
    with pytest.raises(cv.AudioError, match="min_silence"):
        gappy().silences(min_silence=-1)
    with pytest.raises(cv.AudioError, match="finite"):
        gappy().silences(threshold_db=math.nan)


@given(
    audio(min_duration=0.05, max_duration=0.5, signals=["impulses", "silence", "tone"]),
    st.floats(-60, -10),
    st.floats(0, 0.2),
)
@FAST
def test_silences_are_ordered_quiet_and_long_enough(
    a: cv.Audio, threshold: float, minimum: float
) -> None:
    spans = a.silences(threshold_db=threshold, min_silence=minimum)
    previous_end = -1.0
    for start, end in spans:
        assert 0 <= start < end <= a.duration + 1e-9
        assert start > previous_end
        assert end - start >= minimum - 1e-9
        previous_end = end
        # Every 10 ms window in the span is below the threshold on every channel.
        chunk = a.slice(start, end).samples
        w = round(0.01 * a.rate)
        for i in range(0, len(chunk), w):
            power = np.mean(np.square(chunk[i : i + w].astype(np.float64)), axis=0).max()
            assert power < 10 ** (threshold / 10) * 1.001


def test_is_silent_and_trim_silence() -> None:
    assert cv.Audio.silence(0.5).is_silent()
    assert cv.Audio.silence(0).is_silent()
    assert not tone(440, 0.1, 8000).is_silent()
    assert tone(440, 0.1, 8000, amp=0.001).is_silent(threshold_db=-40)
    padded = cv.Audio.concat(
        [cv.Audio.silence(0.3, 8000), tone(440, 0.5, 8000), cv.Audio.silence(0.2, 8000)]
    )
    assert padded.trim_silence().duration == pytest.approx(0.5, abs=0.011)
    assert padded.trim_silence(padding=0.1).duration == pytest.approx(0.7, abs=0.011)
    assert cv.Audio.silence(1.0).trim_silence().frames == 0
    with pytest.raises(cv.AudioError, match="padding"):
        padded.trim_silence(padding=-1)


# --------------------------------------------------------------------------- notebook player


def embedded_wav(markup: str) -> bytes:
    match = re.search(r'src="data:audio/wav;base64,([A-Za-z0-9+/=]+)"', markup)
    assert match, markup[:200]
    return base64.b64decode(match.group(1))


def test_repr_html_embeds_a_player() -> None:
    a = tone(440, 0.2, 16000)
    markup = a._repr_html_()
    assert "<audio controls" in markup and "16000 Hz" in markup and "mono" in markup
    assert cv.Audio.from_bytes(embedded_wav(markup)) == cv.Audio.from_bytes(a.to_wav())


def test_repr_html_previews_long_audio_within_a_few_megabytes() -> None:
    # Three minutes of 16 kHz mono is 5.8 MB of WAV: only the first 93.75 s is embedded.
    a = cv.Audio(np.random.default_rng(1).uniform(-0.5, 0.5, 180 * 16000), 16000)
    markup = a._repr_html_()
    assert len(markup) <= 4_001_000
    shown = cv.Audio.from_bytes(embedded_wav(markup))
    assert (shown.rate, shown.channels) == (16000, 1)
    assert shown.duration == pytest.approx(93.75)
    np.testing.assert_allclose(shown.samples, a.samples[: shown.frames], atol=1 / 32768)
    assert "Preview: the first 1:33 of 3:00; use audio[start:end]" in markup


def test_repr_html_previews_in_mono_at_16_khz_before_cutting() -> None:
    # 20 s of 48 kHz stereo (3.8 MB of WAV) fits whole once in mono at 16 kHz.
    a = tone(440, 20.0, 48000, channels=2)
    markup = a._repr_html_()
    shown = cv.Audio.from_bytes(embedded_wav(markup))
    assert (shown.rate, shown.channels) == (16000, 1)
    assert shown.duration == pytest.approx(20.0)
    assert shown == cv.Audio.from_bytes(a.to_mono().resample(16000).to_wav())
    assert "Preview in mono at 16 kHz; audio.save(path) keeps the original." in markup
    assert "20.0 s · 48000 Hz · stereo" in markup  # the caption describes the original


def test_repr_html_cuts_the_preview_when_even_mono_does_not_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_audio, "_HTML_MAX_WAV_BYTES", 2 * 8000)
    a = tone(440, 3.0, 8000, channels=2)
    markup = a._repr_html_()
    shown = cv.Audio.from_bytes(embedded_wav(markup))
    assert shown.duration == pytest.approx(1.0) and shown.channels == 1 and shown.rate == 8000
    assert "Preview: the first 1.0 s of 3.0 s, in mono; use audio[start:end]" in markup
    short = tone(440, 0.5, 8000, channels=2)  # fits as it is: embedded untouched
    assert cv.Audio.from_bytes(embedded_wav(short._repr_html_())) == cv.Audio.from_bytes(
        short.to_wav()
    )


def test_a_turn_with_long_audio_renders_in_a_few_megabytes() -> None:
    long = cv.Audio(np.random.default_rng(2).uniform(-0.5, 0.5, 180 * 24000), 24000)

    class Ears:
        def transcribe(self, audio: cv.Audio) -> cv.Transcript:
            return cv.Transcript("a long question")

    class Voice:
        def synthesize(self, text: str) -> list[cv.Audio]:
            return [long]

    turn = cv.Chain(Ears(), lambda c: "A long answer.", Voice()).run(long)
    markup = turn._repr_html_()
    assert markup.count("<audio") == 2
    assert len(markup) <= 8_010_000
    assert markup.count("Preview: the first 1:33 of 3:00, at 16 kHz") == 2


def test_repr_html_of_empty_audio_has_no_player() -> None:
    markup = cv.Audio.silence(0)._repr_html_()
    assert "<audio" not in markup and "empty audio" in markup
