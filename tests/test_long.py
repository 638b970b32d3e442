"""Recordings of any length: planning cuts, concurrent transcription, stitching, failures.

The recordings here are synthetic "speech": words are bursts of a square wave whose
amplitude encodes the word's number (so a fake transcriber can "hear" which word it got,
and a cut word is still recognised on both sides of a cut), separated by short gaps
inside sentences and longer pauses between them. Low sample rates keep two hours of it
cheap (2 kHz: 58 MB of float32).
"""

from __future__ import annotations

import asyncio
import itertools
import pickle
import threading

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chainvoice as cv
from chainvoice._errors import PartialTranscriptionError
from chainvoice._long import (
    AsyncLongTranscriber,
    LongTranscriber,
    Piece,
    PieceLimits,
    ProgressBar,
    TranscriptionProgress,
    _overlap_match,
    _place,
    _Placed,
    _retry_delay,
    atranscribe_long,
    fits_in_one_piece,
    plan_pieces,
    stitch,
    transcribe_long,
)
from chainvoice._subtitles import cues

RATE = 2000
SQUARE_PERIOD = 8  # samples: a 250 Hz square wave at 2 kHz


# --------------------------------------------------------------------------------------------
# Synthetic speech and a transcriber that hears it
# --------------------------------------------------------------------------------------------


@attrs.frozen
class Recording:
    audio: cv.Audio
    words: tuple[tuple[float, float, int], ...]  # start, end, number

    @property
    def numbers(self) -> list[int]:
        return [n for _, _, n in self.words]


def speechlike(
    seconds: float,
    *,
    rate: int = RATE,
    seed: int = 0,
    pauses: bool = True,
    base: float = 0.1,
    step: float = 0.008,
    silence: tuple[float, float] | None = None,
) -> Recording:
    """``seconds`` of word-like bursts; word ``n`` has amplitude ``base + step * (n % 100)``.

    With ``pauses``, words are separated by 40-150 ms gaps (too short to cut in) and, one
    time in four, by a 0.35-1.2 s pause; without, they follow each other with no gap at
    all. ``silence=(start, length)`` inserts that much silence at ``start`` seconds.
    """
    rng = np.random.default_rng(seed)
    count = int(seconds / 0.25) + 16
    lengths = rng.uniform(0.15, 0.6, count)
    if pauses:
        short = rng.uniform(0.04, 0.15, count)
        long_ = rng.uniform(0.35, 1.2, count)
        gaps = np.where(rng.random(count) < 0.75, short, long_)
    else:
        gaps = np.zeros(count)
    word_frames = np.maximum(1, np.rint(lengths * rate)).astype(np.int64)
    gap_frames = np.rint(gaps * rate).astype(np.int64)
    lead = round(0.5 * rate)
    starts = lead + np.concatenate(([0], np.cumsum(word_frames + gap_frames)[:-1]))
    if silence is not None:
        at, length = round(silence[0] * rate), round(silence[1] * rate)
        starts = np.where(starts >= at, starts + length, starts)
    total = round(seconds * rate)
    keep = starts + word_frames <= total - lead
    starts, word_frames = starts[keep], word_frames[keep]
    numbers = np.arange(starts.size)
    amps = (base + step * (numbers % 100)).astype(np.float32)
    env = np.zeros(total, dtype=np.float32)
    # Each word is a run of its amplitude: write run starts and ends into a difference array.
    diff = np.zeros(total + 1, dtype=np.float64)
    np.add.at(diff, starts, amps)
    np.add.at(diff, starts + word_frames, -amps)
    env[:] = np.cumsum(diff[:-1])
    env[np.abs(env) < 1e-4] = 0.0
    square = np.where(np.arange(total) % SQUARE_PERIOD < SQUARE_PERIOD // 2, 1.0, -1.0)
    samples = (env * square.astype(np.float32)).reshape(-1, 1)
    samples.setflags(write=False)
    words = tuple(
        (float(s) / rate, float(s + f) / rate, int(n))
        for s, f, n in zip(starts, word_frames, numbers, strict=True)
    )
    return Recording(cv.Audio(samples, rate), words)


def hear(audio: cv.Audio, *, base: float, step: float) -> list[tuple[int, float, float]]:
    """The words in ``audio`` as (number mod 100, start, end), in 10 ms resolution."""
    wf = max(1, audio.rate // 100)
    n = audio.frames // wf
    if n == 0:
        return []
    peaks = np.abs(audio.samples[: n * wf, 0]).reshape(n, wf).max(axis=1)
    ids = np.where(peaks < 0.05, -1, np.rint((peaks - base) / step)).astype(np.int64)
    edges = np.flatnonzero(np.diff(ids)) + 1
    starts = np.concatenate(([0], edges))
    ends = np.concatenate((edges, [n]))
    sec = wf / audio.rate
    return [
        (int(ids[s]), s * sec, e * sec) for s, e in zip(starts, ends, strict=True) if ids[s] >= 0
    ]


class WordTranscriber:
    """Hears the synthetic words; thread-safe; records calls, can fail and block on purpose.

    Args:
        words: Give word times (else text only, as gpt-4o-transcribe does).
        segments: Give one segment per ``segment_words`` words.
        fail: Piece start time (rounded to 0.1 s) -> exceptions to raise, in order, before
            answering normally.
        gate: Block each of the first ``gate`` calls until that many are in flight at once
            (a failing test times out instead of hanging).
    """

    def __init__(
        self,
        *,
        base: float = 0.1,
        step: float = 0.008,
        words: bool = True,
        segments: bool = True,
        segment_words: int = 8,
        speaker: str | None = None,
        fail: dict[int, list[BaseException]] | None = None,
        gate: int = 0,
        usage: bool = True,
        language: str = "en",
    ) -> None:
        self.base, self.step = base, step
        self.words, self.segments, self.segment_words = words, segments, segment_words
        self.speaker = speaker
        self.fail = {k: list(v) for k, v in (fail or {}).items()}
        self.usage = usage
        self.language = language
        self.lock = threading.Lock()
        self.calls: list[cv.Audio] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.gate = threading.Barrier(gate, timeout=10) if gate else None
        self.gated = 0

    def _enter(self, audio: cv.Audio) -> int:
        with self.lock:
            self.calls.append(audio)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            number = len(self.calls)
            waits = self.gate is not None and self.gated < self.gate.parties
            if waits:
                self.gated += 1
        if waits:
            assert self.gate is not None
            self.gate.wait()  # BrokenBarrierError after 10 s if the calls are not concurrent
        return number

    def _leave(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def answer(self, audio: cv.Audio) -> cv.Transcript:
        key = fingerprint(audio)
        with self.lock:
            queue = self.fail.get(key)
            error = queue.pop(0) if queue else None
        if error is not None:
            raise error
        heard = hear(audio, base=self.base, step=self.step)
        words = [
            cv.Word(text=f"w{n:02d}", start=s, end=e, speaker=self.speaker) for n, s, e in heard
        ]
        segs = []
        if self.segments:
            size = self.segment_words
            for group in (words[i : i + size] for i in range(0, len(words), size)):
                segs.append(
                    cv.Segment(
                        text=" ".join(w.text for w in group),
                        start=group[0].start,
                        end=group[-1].end,
                        speaker=self.speaker,
                        words=tuple(group) if self.words else (),
                    )
                )
        usage = (
            cv.Usage(
                stage="transcribe",
                model="ears",
                audio_seconds=audio.duration,
                requests=1,
                cost_usd=audio.duration * 0.0001,
            )
            if self.usage
            else None
        )
        return cv.Transcript(
            " ".join(w.text for w in words),
            language=self.language,
            duration=audio.duration,
            segments=segs,
            words=words if self.words else (),
            usage=usage,
            model="ears",
        )

    def transcribe(self, audio: cv.Audio) -> cv.Transcript:
        self._enter(audio)
        try:
            return self.answer(audio)
        finally:
            self._leave()


def fingerprint(audio: cv.Audio) -> int:
    """A key for a piece: its length in frames (pieces of one plan differ)."""
    return audio.frames


def expected_numbers(rec: Recording) -> list[int]:
    return [n % 100 for n in rec.numbers]


def numbers_in(transcript: cv.Transcript) -> list[int]:
    return [int(w[1:]) for w in transcript.text.split()]


def assert_monotonic(transcript: cv.Transcript) -> None:
    starts = [s.start for s in transcript.segments]
    assert starts == sorted(starts)
    for a, b in itertools.pairwise(transcript.segments):
        assert a.end <= b.start + 1e-9
    wstarts = [w.start for w in transcript.words]
    assert wstarts == sorted(wstarts)


@pytest.fixture(scope="module")
def two_hours() -> Recording:
    return speechlike(2 * 3600.0, seed=7)


# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------


def test_a_recording_that_fits_is_one_piece_the_audio_itself() -> None:
    rec = speechlike(30.0)
    pieces = plan_pieces(rec.audio, max_seconds=60.0)
    assert len(pieces) == 1
    assert pieces[0].audio is rec.audio
    assert (pieces[0].start, pieces[0].end, pieces[0].cut) == (0.0, rec.audio.duration, "end")


def test_two_hours_are_cut_at_pauses_into_pieces_under_both_limits(two_hours: Recording) -> None:
    max_bytes = 1_200_000  # at 2 kHz mono 16-bit: about 297 s
    pieces = plan_pieces(
        two_hours.audio, max_seconds=600.0, max_bytes=max_bytes, bytes_per_second=2 * RATE
    )
    assert len(pieces) >= 24
    for piece in pieces:
        assert len(piece.audio.to_wav()) <= max_bytes
        assert piece.duration <= 600.0
        assert piece.duration > 0.5 * max_bytes / (2 * RATE)  # cut near the limit, not early
        assert piece.cut in ("pause", "end")
        assert piece.overlap == 0.0
        assert piece.audio.samples.base is not None  # a view of the recording, no copy
    for a, b in itertools.pairwise(pieces):
        assert a.end <= b.start
    # No word is cut, and every word is in exactly one piece.
    for start, end, _ in two_hours.words:
        holders = [p for p in pieces if p.start <= start and end <= p.end]
        assert len(holders) == 1
    assert pieces[0].index == 0
    assert [p.index for p in pieces] == list(range(len(pieces)))


def test_cuts_fall_in_the_longest_pause_before_the_limit() -> None:
    rec = speechlike(120.0, seed=3)
    pieces = plan_pieces(rec.audio, max_seconds=40.0, margin=0.0)
    assert len(pieces) >= 3
    gaps = [(a[1], b[0]) for a, b in itertools.pairwise(rec.words)]
    for piece in pieces[:-1]:
        window = [g for g in gaps if piece.start + 30.0 <= g[0] and g[1] <= piece.start + 40.0]
        chosen = next(g for g in gaps if g[0] <= piece.end <= g[1])
        longest = max(min(b - a, 1.5) for a, b in window)
        assert min(chosen[1] - chosen[0], 1.5) >= longest - 0.03


def test_a_recording_without_pauses_is_cut_hard_with_overlap() -> None:
    rec = speechlike(600.0, pauses=False, base=0.5, step=0.004)
    pieces = plan_pieces(rec.audio, max_seconds=100.0, overlap=1.0)
    assert len(pieces) >= 7
    for a, b in itertools.pairwise(pieces):
        assert a.cut == "hard"
        assert b.overlap == pytest.approx(1.0)
        assert b.start == pytest.approx(a.end - 1.0)
    assert all(p.duration <= 100.0 for p in pieces)


def test_long_silences_at_a_cut_and_at_the_ends_are_not_sent() -> None:
    rec = speechlike(400.0, seed=5, silence=(150.0, 120.0))
    padded = cv.Audio.concat([cv.Audio.silence(30.0, RATE), rec.audio, cv.Audio.silence(30, RATE)])
    pieces = plan_pieces(padded, max_seconds=200.0)
    sent = sum(p.duration for p in pieces)
    assert sent < padded.duration - 60.0 - 100.0  # both ends and most of the 120 s gap
    assert pieces[0].start >= 30.0
    assert pieces[-1].end <= padded.duration - 30.0 + 0.5


def test_silence_throughout_gives_no_pieces_and_no_request() -> None:
    audio = cv.Audio.silence(900.0, RATE)
    assert plan_pieces(audio, max_seconds=300.0) == ()
    ears = WordTranscriber()
    transcript = LongTranscriber(ears, max_piece_seconds=300.0).transcribe(audio)
    assert ears.calls == []
    assert transcript.text == ""
    assert transcript.duration == 900.0
    assert transcript.usage is not None and transcript.usage.cost_usd == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_seconds": 0.5}, "at least a second"),
        ({"max_seconds": -1.0}, "max_seconds"),
        ({"max_seconds": float("nan")}, "max_seconds"),
        ({"max_seconds": 20.0, "overlap": 6.0}, "overlap"),
        ({"max_bytes": 10}, "max_bytes"),
        ({"bytes_per_second": 0}, "bytes_per_second"),
        ({"min_pause": 0}, "min_pause"),
        ({"margin": 0.7}, "margin"),
    ],
)
def test_bad_limits_are_refused(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(cv.ConfigurationError, match=match):
        plan_pieces(speechlike(60.0).audio, **kwargs)  # type: ignore[arg-type]


def test_piece_limits_take_the_stricter_value_and_a_margin() -> None:
    a = PieceLimits(max_seconds=1500.0, max_bytes=25 * 1024 * 1024)
    assert a.piece_seconds(0.0) == pytest.approx((25 * 1024 * 1024 - 1024) / 32000)
    b = PieceLimits(max_seconds=300.0)
    both = a.combine(b)
    assert both.max_seconds == 300.0 and both.max_bytes == 25 * 1024 * 1024
    assert PieceLimits().piece_seconds() is None
    assert fits_in_one_piece(cv.Audio.silence(293.0), both)  # 2% margin by default
    assert not fits_in_one_piece(cv.Audio.silence(295.0), both)
    assert fits_in_one_piece(cv.Audio.silence(299.0), both, margin=0.0)
    with pytest.raises(cv.ConfigurationError):
        PieceLimits(max_seconds=0)


@settings(max_examples=25, deadline=None)
@given(
    seconds=st.floats(20.0, 300.0),
    limit=st.floats(8.0, 90.0),
    seed=st.integers(0, 10_000),
    pauses=st.booleans(),
    rate=st.sampled_from([1000, 2000, 8000, 11025]),
)
def test_every_plan_covers_all_words_within_the_limit(
    seconds: float, limit: float, seed: int, pauses: bool, rate: int
) -> None:
    rec = speechlike(seconds, seed=seed, pauses=pauses, rate=rate, base=0.5, step=0.004)
    pieces = plan_pieces(rec.audio, max_seconds=limit)
    assert pieces
    for piece in pieces:
        assert piece.duration <= limit + 1e-9
        assert piece.audio.frames == round(piece.duration * rate)
    for a, b in itertools.pairwise(pieces):
        assert b.start >= a.end - b.overlap - 1e-9
        assert b.start > a.start
    for start, end, _ in rec.words:
        assert any(p.start - 1e-9 <= start and end <= p.end + 1e-9 for p in pieces) or any(
            a.end - 1e-9 >= start and b.start <= end for a, b in itertools.pairwise(pieces)
        )


# --------------------------------------------------------------------------------------------
# Transcribing long recordings
# --------------------------------------------------------------------------------------------


def test_two_hours_are_transcribed_concurrently_and_stitched_in_order(
    two_hours: Recording,
) -> None:
    ears = WordTranscriber(gate=2)
    events: list[TranscriptionProgress] = []
    long = LongTranscriber(ears, max_piece_seconds=600.0, progress=events.append)
    transcript = long.transcribe(two_hours.audio)
    assert ears.max_in_flight >= 2
    assert len(ears.calls) == len(long.plan(two_hours.audio)) >= 12
    assert numbers_in(transcript) == expected_numbers(two_hours)
    assert_monotonic(transcript)
    # Word times are on the recording's clock.
    for word, (start, end, _) in zip(transcript.words, two_hours.words, strict=True):
        assert word.start == pytest.approx(start, abs=0.011)
        assert word.end == pytest.approx(end, abs=0.011)
    assert transcript.duration == two_hours.audio.duration
    assert transcript.language == "en" and transcript.model == "ears"
    usage = transcript.usage
    assert usage is not None
    assert usage.requests == len(ears.calls)
    assert usage.audio_seconds == pytest.approx(sum(c.duration for c in ears.calls))
    assert usage.cost_usd == pytest.approx(usage.audio_seconds * 0.0001)
    # Progress: one event to start, one per piece, growing to the whole.
    assert len(events) == len(ears.calls) + 1
    assert events[0].pieces_done == 0 and events[0].piece is None
    done = [e.done_seconds for e in events]
    assert done == sorted(done)
    assert events[-1].finished and events[-1].fraction == 1.0


def test_a_recording_shorter_than_a_piece_takes_exactly_one_request() -> None:
    rec = speechlike(50.0)
    ears = WordTranscriber()
    transcript = LongTranscriber(ears, max_piece_seconds=60.0).transcribe(rec.audio)
    assert len(ears.calls) == 1
    assert ears.calls[0] is rec.audio
    assert numbers_in(transcript) == expected_numbers(rec)


@pytest.mark.parametrize("words", [True, False], ids=["by-word-times", "by-text"])
def test_hard_cuts_keep_each_word_once(words: bool) -> None:
    rec = speechlike(900.0, pauses=False, base=0.5, step=0.004, seed=11)
    ears = WordTranscriber(base=0.5, step=0.004, words=words, segments=words)
    long = LongTranscriber(ears, max_piece_seconds=120.0)
    pieces = long.plan(rec.audio)
    assert all(p.cut == "hard" for p in pieces[:-1])
    transcript = long.transcribe(rec.audio)
    assert numbers_in(transcript) == expected_numbers(rec)
    assert_monotonic(transcript)
    if not words:  # one segment per piece, trimmed at the middle of each overlap
        assert len(transcript.segments) == len(pieces)
        assert sum(len(s.text.split()) for s in transcript.segments) == len(rec.words)


def test_a_piece_that_fails_twice_is_retried_and_then_succeeds() -> None:
    rec = speechlike(1200.0, seed=2)
    plan = plan_pieces(rec.audio, max_seconds=300.0)
    target = plan[2]
    ears = WordTranscriber(
        fail={
            fingerprint(target.audio): [
                cv.ServerError("upstream hiccup", status_code=500),
                cv.RateLimitError("slow down", retry_after=0.01),
            ]
        }
    )
    transcript = LongTranscriber(ears, max_piece_seconds=300.0, backoff=0.001).transcribe(rec.audio)
    assert numbers_in(transcript) == expected_numbers(rec)
    assert len(ears.calls) == len(plan) + 2
    assert sum(c.frames == target.audio.frames for c in ears.calls) == 3


def test_a_piece_that_always_fails_keeps_the_rest_and_can_be_retried_alone() -> None:
    rec = speechlike(1200.0, seed=4)
    plan = plan_pieces(rec.audio, max_seconds=300.0)
    bad = plan[1]
    ears = WordTranscriber(
        fail={fingerprint(bad.audio): [cv.ServerError(f"boom {i}") for i in range(3)]}
    )
    long = LongTranscriber(ears, max_piece_seconds=300.0, retries=2, backoff=0.001)
    with pytest.raises(PartialTranscriptionError) as caught:
        long.transcribe(rec.audio)
    error = caught.value
    assert isinstance(error, RuntimeError)
    assert isinstance(error.__cause__, cv.ServerError)
    assert len(error.failed) == 1
    start, end, exc = error.failed[0]
    assert (start, end) == (bad.start, bad.end)
    assert isinstance(exc, cv.ServerError)
    message = str(error)
    assert f"1 of {len(plan)} pieces" in message
    assert _clock(bad.start) in message and _clock(bad.end) in message
    assert "ServerError: boom 2" in message and ".retry()" in message
    # Every word outside the failed piece is kept, in order.
    outside = [n % 100 for s, e, n in rec.words if not (bad.start <= s and e <= bad.end)]
    assert numbers_in(error.transcript) == outside
    assert error.transcript.usage is not None
    assert error.transcript.usage.requests == len(plan) - 1
    calls_before = len(ears.calls)
    assert calls_before == len(plan) + 2  # three attempts at the bad piece
    transcript = error.retry()  # the failure script is used up: it works now
    assert len(ears.calls) == calls_before + 1
    assert ears.calls[-1].frames == bad.audio.frames
    assert numbers_in(transcript) == expected_numbers(rec)
    assert transcript.usage is not None and transcript.usage.requests == len(plan)


def _clock(seconds: float) -> str:
    tenths = round(seconds * 10)
    hours, rest = divmod(tenths, 36000)
    minutes, rest = divmod(rest, 600)
    return f"{hours}:{minutes:02d}:{rest / 10:04.1f}"


def test_retry_can_use_another_transcriber_and_fail_again() -> None:
    rec = speechlike(700.0, seed=8)
    plan = plan_pieces(rec.audio, max_seconds=300.0)
    broken = WordTranscriber(fail={fingerprint(p.audio): [cv.ServerError("down")] for p in plan})
    long = LongTranscriber(broken, max_piece_seconds=300.0, retries=0)
    with pytest.raises(PartialTranscriptionError) as first:
        long.transcribe(rec.audio)
    assert len(first.value.failed) == len(plan)
    assert first.value.transcript.text == ""
    half = WordTranscriber(fail={fingerprint(plan[0].audio): [cv.ServerError("still down")]})
    with pytest.raises(PartialTranscriptionError) as second:
        first.value.retry(half)
    assert [a for a, _, _ in second.value.failed] == [plan[0].start]
    assert len(half.calls) == len(plan)
    whole = second.value.retry()
    assert numbers_in(whole) == expected_numbers(rec)


def test_an_error_every_piece_would_meet_stops_sending() -> None:
    rec = speechlike(1500.0, seed=9)
    plan = plan_pieces(rec.audio, max_seconds=200.0)
    denied = cv.AuthenticationError("bad key", status_code=401)

    class Denied(WordTranscriber):
        def transcribe(self, audio: cv.Audio) -> cv.Transcript:
            self._enter(audio)
            self._leave()
            raise denied

    ears = Denied()
    with pytest.raises(PartialTranscriptionError) as caught:
        LongTranscriber(ears, max_piece_seconds=200.0, concurrency=2).transcribe(rec.audio)
    assert len(caught.value.failed) == len(plan)
    assert all(exc is denied for _, _, exc in caught.value.failed)
    assert len(ears.calls) <= 2  # no retry of an auth error, no further pieces


def test_a_single_piece_raises_the_transcribers_own_error_after_retries() -> None:
    ears = WordTranscriber(fail={0: []})
    audio = speechlike(20.0).audio
    ears.fail[fingerprint(audio)] = [cv.APITimeoutError("slow"), cv.APITimeoutError("slow")]
    with pytest.raises(cv.APITimeoutError):
        LongTranscriber(ears, retries=1, backoff=0.0).transcribe(audio)
    assert len(ears.calls) == 2


def test_retry_delay_honours_retry_after_and_backs_off() -> None:
    assert _retry_delay(cv.RateLimitError("x", retry_after=7.5), 0, 1.0) == 7.5
    assert 1.0 <= _retry_delay(cv.ServerError("x"), 0, 1.0) <= 1.25
    assert 4.0 <= _retry_delay(cv.ServerError("x"), 2, 1.0) <= 5.0
    assert _retry_delay(cv.ServerError("x"), 20, 1.0) == 30.0


def test_usage_cost_is_unknown_when_a_piece_reports_none() -> None:
    rec = speechlike(700.0, seed=1)
    transcript = LongTranscriber(WordTranscriber(usage=False), max_piece_seconds=300.0).transcribe(
        rec.audio
    )
    assert transcript.usage is not None
    assert transcript.usage.cost_usd is None
    assert "ears (it reported no usage)" in transcript.usage.unpriced


def test_speakers_and_segments_are_kept_on_the_recordings_clock() -> None:
    rec = speechlike(700.0, seed=12)
    long = LongTranscriber(WordTranscriber(speaker="Ada"), max_piece_seconds=250.0)
    transcript = long.transcribe(rec.audio)
    assert transcript.speakers == ("Ada",)
    assert all(s.speaker == "Ada" for s in transcript.segments)
    assert_monotonic(transcript)
    for seg in transcript.segments:
        assert all(seg.start - 1e-9 <= w.start and w.end <= seg.end + 1e-9 for w in seg.words)
    items = cues(transcript)
    assert items and all(a.end <= b.start for a, b in itertools.pairwise(items))
    assert items[-1].end > 600.0


def test_carry_prompt_sends_the_previous_text_one_piece_at_a_time() -> None:
    rec = speechlike(900.0, seed=6)

    class Prompted(WordTranscriber):
        def __init__(self) -> None:
            super().__init__()
            self.prompts: list[str | None] = []

        def transcribe(self, audio: cv.Audio, *, prompt: str | None = None) -> cv.Transcript:
            self.prompts.append(prompt)
            return super().transcribe(audio)

    ears = Prompted()
    long = LongTranscriber(ears, max_piece_seconds=200.0, carry_prompt=True, concurrency=8)
    assert long.concurrency == 1
    transcript = long.transcribe(rec.audio)
    assert ears.max_in_flight == 1
    assert ears.prompts[0] is None
    texts = [ears.answer(a).text for a in ears.calls]
    for prompt, previous in zip(ears.prompts[1:], texts, strict=False):
        assert prompt is not None and previous.endswith(prompt)
        assert 0 < len(prompt) <= 400
    assert numbers_in(transcript) == expected_numbers(rec)
    with pytest.raises(cv.ConfigurationError, match="prompt"):
        LongTranscriber(WordTranscriber(), carry_prompt=True)


def test_streaming_yields_final_text_in_order_then_the_transcript() -> None:
    rec = speechlike(1000.0, seed=13)
    long = LongTranscriber(WordTranscriber(), max_piece_seconds=200.0)
    items = list(long.transcribe_stream(rec.audio))
    final = items[-1]
    assert isinstance(final, cv.Transcript)
    deltas = [i for i in items[:-1] if isinstance(i, str)]
    assert len(deltas) >= 2
    assert "".join(deltas) == final.text
    assert numbers_in(final) == expected_numbers(rec)


def test_in_a_chain_a_long_recording_is_one_user_turn() -> None:
    rec = speechlike(700.0, seed=14)
    chain = cv.Chain(
        LongTranscriber(WordTranscriber(), max_piece_seconds=300.0),
        lambda conversation: f"heard {len(conversation.last_user_text.split())} words",
    )
    turn = chain.run(rec.audio)
    assert turn.reply.text == f"heard {len(rec.words)} words"
    assert turn.transcript is not None and numbers_in(turn.transcript) == expected_numbers(rec)
    assert turn.usage_by_stage["transcribe"].requests >= 3


def test_cjk_pieces_join_without_spaces_and_others_with_one() -> None:
    audio = cv.Audio.silence(10.0, RATE)
    pieces = [
        Piece(index=i, start=i * 2.0, end=i * 2.0 + 2.0, audio=audio[i * 2.0 : i * 2.0 + 2.0])
        for i in range(4)
    ]
    texts = ["東京は", "晴れです。", " Then  English. ", "and more"]
    transcript = stitch(pieces, [cv.Transcript(t) for t in texts])
    assert transcript.text == "東京は晴れです。Then  English. and more"
    assert [s.start for s in transcript.segments] == [0.0, 2.0, 4.0, 6.0]
    with pytest.raises(cv.ConfigurationError):
        stitch(pieces, [cv.Transcript("x")])


def test_times_beyond_a_piece_are_clamped_to_it() -> None:
    audio = cv.Audio.silence(10.0, RATE)
    pieces = [
        Piece(index=0, start=0.0, end=5.0, audio=audio[:5.0], cut="pause"),
        Piece(index=1, start=5.0, end=10.0, audio=audio[5.0:]),
    ]
    wild = cv.Transcript(
        "a b",
        segments=[cv.Segment(text="a b", start=-1.0, end=9.0)],
        words=[cv.Word(text="a", start=-1.0, end=0.5), cv.Word(text="b", start=4.0, end=9.0)],
    )
    transcript = stitch(pieces, [wild, wild])
    assert [(s.start, s.end) for s in transcript.segments] == [(0.0, 5.0), (5.0, 10.0)]
    assert [w.start for w in transcript.words] == [0.0, 4.0, 5.0, 9.0]


def test_progress_bar_draws_on_a_terminal_only() -> None:
    import io

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    quiet = io.StringIO()
    ProgressBar(quiet)(_event(1, 4))
    assert quiet.getvalue() == ""
    tty = Tty()
    bar = ProgressBar(tty, width=8)
    bar(_event(0, 4))
    bar(_event(4, 4, failed=0))
    out = tty.getvalue()
    assert out.startswith("\rTranscribing [--------]   0%")
    assert "[########] 100% 0:04:00/0:04:00 of audio, 4/4 pieces" in out
    assert out.endswith("\n")
    with pytest.raises(cv.ConfigurationError):
        ProgressBar(width=0)


def _event(done: int, total: int, failed: int = 0) -> TranscriptionProgress:
    return TranscriptionProgress(
        done_seconds=60.0 * done,
        total_seconds=60.0 * total,
        pieces_done=done,
        pieces_failed=failed,
        pieces_total=total,
    )


def test_partial_error_pickles_without_its_pieces() -> None:
    error = PartialTranscriptionError(
        cv.Transcript("kept"), [(10.0, 20.0, cv.ServerError("x"))], pieces=3
    )
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error)
    assert copy.transcript.text == "kept"
    with pytest.raises(cv.ConfigurationError, match="cannot retry"):
        copy.retry()


def test_bad_wrapping_is_refused_clearly() -> None:
    with pytest.raises(TypeError, match="transcribe"):
        LongTranscriber(object())  # type: ignore[arg-type]
    with pytest.raises(cv.ConfigurationError, match="concurrency"):
        LongTranscriber(WordTranscriber(), concurrency=0)
    with pytest.raises(cv.ConfigurationError, match="retries"):
        LongTranscriber(WordTranscriber(), retries=-1)
    with pytest.raises(cv.ConfigurationError, match="progress"):
        LongTranscriber(WordTranscriber(), progress="yes")  # type: ignore[arg-type]
    with pytest.raises(cv.ConfigurationError, match="AsyncLongTranscriber"):
        LongTranscriber(AsyncWords())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Audio"):
        LongTranscriber(WordTranscriber()).transcribe(b"RIFF")  # type: ignore[arg-type]

    class Liar:
        def transcribe(self, audio: cv.Audio) -> str:
            return "text"

    with pytest.raises(cv.ProtocolError, match="Transcript"):
        LongTranscriber(Liar()).transcribe(cv.Audio.silence(1.0))  # type: ignore[arg-type]


def test_transcribe_long_is_the_wrapper_in_one_call() -> None:
    rec = speechlike(500.0, seed=21)
    transcript = transcribe_long(WordTranscriber(), rec.audio, max_piece_seconds=200.0)
    assert numbers_in(transcript) == expected_numbers(rec)


# --------------------------------------------------------------------------------------------
# Async
# --------------------------------------------------------------------------------------------


class AsyncWords:
    """An async WordTranscriber whose first ``gate`` calls wait until that many are in flight."""

    def __init__(self, gate: int = 0, **options: object) -> None:
        self.inner = WordTranscriber(**options)  # type: ignore[arg-type]
        self.gate = gate
        self.in_flight = 0
        self.max_in_flight = 0
        self.calls = 0
        self.opened: asyncio.Event | None = None

    async def transcribe(self, audio: cv.Audio) -> cv.Transcript:
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.calls <= self.gate:
                if self.opened is None:
                    self.opened = asyncio.Event()
                if self.in_flight >= self.gate:
                    self.opened.set()
                await asyncio.wait_for(self.opened.wait(), timeout=10)
            await asyncio.sleep(0)
            return self.inner.answer(audio)
        finally:
            self.in_flight -= 1


def test_async_pieces_run_as_concurrent_tasks(two_hours: Recording) -> None:
    ears = AsyncWords(gate=3)
    long = AsyncLongTranscriber(ears, max_piece_seconds=600.0, concurrency=3)
    transcript = asyncio.run(long.transcribe(two_hours.audio))
    assert ears.max_in_flight == 3
    assert numbers_in(transcript) == expected_numbers(two_hours)
    assert_monotonic(transcript)


def test_async_wrapper_runs_a_sync_transcriber_in_threads() -> None:
    rec = speechlike(1200.0, seed=15)
    ears = WordTranscriber(gate=2)
    transcript = asyncio.run(
        atranscribe_long(ears, rec.audio, max_piece_seconds=300.0, concurrency=2)
    )
    assert ears.max_in_flight == 2
    assert numbers_in(transcript) == expected_numbers(rec)


def test_async_failure_keeps_the_rest_and_aretry_finishes() -> None:
    rec = speechlike(1000.0, seed=16)
    plan = plan_pieces(rec.audio, max_seconds=250.0)
    ears = AsyncWords(fail={fingerprint(plan[-1].audio): [cv.ServerError("x")] * 2})
    long = AsyncLongTranscriber(ears, max_piece_seconds=250.0, retries=1, backoff=0.0)
    with pytest.raises(PartialTranscriptionError) as caught:
        asyncio.run(long.transcribe(rec.audio))
    assert [a for a, _, _ in caught.value.failed] == [plan[-1].start]
    with pytest.raises(cv.ConfigurationError, match="aretry"):
        caught.value.retry()
    transcript = asyncio.run(caught.value.aretry())
    assert numbers_in(transcript) == expected_numbers(rec)


def test_async_stream_and_carry_prompt() -> None:
    rec = speechlike(800.0, seed=17)

    class Prompted(AsyncWords):
        def __init__(self) -> None:
            super().__init__()
            self.prompts: list[str | None] = []

        async def transcribe(self, audio: cv.Audio, prompt: str | None = None) -> cv.Transcript:
            self.prompts.append(prompt)
            return await super().transcribe(audio)

    ears = Prompted()
    long = AsyncLongTranscriber(ears, max_piece_seconds=200.0, carry_prompt=True)

    async def collect() -> list[object]:
        return [item async for item in long.transcribe_stream(rec.audio)]

    items = asyncio.run(collect())
    final = items[-1]
    assert isinstance(final, cv.Transcript)
    assert "".join(i for i in items[:-1] if isinstance(i, str)) == final.text
    assert ears.max_in_flight == 1
    assert ears.prompts[0] is None and all(ears.prompts[1:])
    assert numbers_in(final) == expected_numbers(rec)


def test_pieces_repr_and_progress_fraction() -> None:
    piece = plan_pieces(speechlike(10.0).audio)[0]
    assert repr(piece).startswith("Piece(index=0, start=0.00, end=10.00")
    assert _event(1, 4).fraction == 0.25
    assert not _event(1, 4).finished
    assert (
        TranscriptionProgress(
            done_seconds=0, total_seconds=0, pieces_done=0, pieces_failed=0, pieces_total=0
        ).fraction
        == 1.0
    )


@pytest.mark.parametrize(
    ("words", "segments"),
    [(True, True), (False, True), (False, False), (True, False)],
    ids=["words+segments", "segments", "text-only", "words-only"],
)
def test_subtitles_of_two_hours_are_readable_and_never_overlap(
    two_hours: Recording, words: bool, segments: bool
) -> None:
    from chainvoice._subtitles import CUE_SECONDS, LINE_CHARS, to_srt

    ears = WordTranscriber(words=words, segments=segments)
    transcript = LongTranscriber(ears, max_piece_seconds=600.0).transcribe(two_hours.audio)
    items = cues(transcript)
    assert items[0].start >= 0.0 and items[-1].end <= two_hours.audio.duration
    for a, b in itertools.pairwise(items):
        assert a.end <= b.start
    assert all(len(c.text) <= 2 * LINE_CHARS for c in items)
    if words or segments:  # timed: every cue is short
        assert all(c.end - c.start <= CUE_SECONDS + 1e-9 for c in items)
    srt = to_srt(transcript)
    assert srt.count(" --> ") == len(items)
    assert "01:59:" in srt  # times run to the end of the recording


def _placed(text: str, start: float, end: float, overlap: float = 0.0) -> _Placed:
    audio = cv.Audio.silence(end - start, RATE)
    piece = Piece(index=0, start=start, end=end, audio=audio, overlap=overlap)
    return _place(piece, cv.Transcript(text))


FILLER = " ".join(f"word{i}" for i in range(750))  # five minutes of speech


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        # The overlap's words end one text and start the other, with a cut word around.
        ("we met on tuesday at", "tuesday at noon", ("tuesday at", "tuesday at noon")),
        ("we will meet at the old bri", "the old bridge at noon", ("the old bri", "the old")),
        ("and that was the end of it", "end of it. Then we left", ("end of it", "end of it.")),
        ("we left at dawn", "on the road", None),
        # One short word in common is not enough.
        ("this is it and", "and so on", None),
        # CJK: one character is one word.
        ("今日は東京で会議があり", "会議がありました", ("会議があり", "会議があり")),
    ],
)
def test_text_matching_at_a_hard_cut(
    left: str, right: str, expected: tuple[str, str] | None
) -> None:
    wide = left[0] > "\u3000"
    filler = "漢字" * 750 if wide else FILLER + " "
    a = _placed(filler + left, 0.0, 300.0)
    b = _placed(right + ("漢字" * 750 if wide else " " + FILLER), 299.0, 600.0, overlap=1.0)
    found = _overlap_match(a, b)
    if expected is None:
        assert found is None
        return
    assert found is not None
    left_at, right_at = found
    assert (filler + left)[left_at:] == expected[0]
    assert right[right_at:].startswith(expected[1])


def test_the_same_short_text_in_two_long_pieces_is_not_an_overlap() -> None:
    a = _placed("Hello, this is a test.", 0.0, 300.0)
    b = _placed("Hello, this is a test.", 299.0, 600.0, overlap=1.0)
    assert _overlap_match(a, b) is None


def test_streaming_over_hard_cuts_and_many_pieces_gives_the_final_text(
    two_hours: Recording,
) -> None:
    rec = speechlike(600.0, pauses=False, base=0.5, step=0.004, seed=41)
    long = LongTranscriber(WordTranscriber(base=0.5, step=0.004, words=False), max_piece_seconds=30)
    items = list(long.transcribe_stream(rec.audio))
    final = items[-1]
    assert isinstance(final, cv.Transcript)
    assert "".join(i for i in items[:-1] if isinstance(i, str)) == final.text
    assert numbers_in(final) == expected_numbers(rec)
    # Hundreds of pieces stream in time proportional to their number.
    many = LongTranscriber(WordTranscriber(), max_piece_seconds=20.0, concurrency=8)
    assert len(many.plan(two_hours.audio)) > 300
    items = list(many.transcribe_stream(two_hours.audio))
    assert len(items) > 10
    assert "".join(i for i in items[:-1] if isinstance(i, str)) == items[-1].text  # type: ignore[union-attr]


def test_a_single_piece_streams_through_the_wrapped_transcriber() -> None:
    from chainvoice.testing import ScriptedTranscriber

    inner = ScriptedTranscriber(["one two three"], stream=True)
    events: list[TranscriptionProgress] = []
    long = LongTranscriber(inner, progress=events.append)
    items = list(long.transcribe_stream(cv.Audio.silence(2.0)))
    assert "".join(i for i in items if isinstance(i, str)) == "one two three"
    assert isinstance(items[-1], cv.Transcript)
    assert [e.pieces_done for e in events] == [0, 1]
