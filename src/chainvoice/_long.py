"""Recordings of any length: cut at pauses, transcribed concurrently, stitched back in order.

Services limit what one request takes (OpenAI: 25 MB per upload, and a duration limit per
model), and local models need memory in proportion to the audio. :class:`LongTranscriber`
(and its twin :class:`AsyncLongTranscriber`) wraps any transcriber so that it takes audio of
any length:

1. **Plan** (:func:`plan_pieces`): the audio's level is measured in 10 ms windows over the
   whole signal at once (numpy, no per-window Python loop). Each piece ends at the best
   pause (a quiet run of at least ``min_pause`` seconds; the longest, and among long ones
   the latest) in the stretch before the limit, so no word is cut. Long silences at a cut
   are skipped, not sent. Only where no pause exists before the limit is the audio cut hard,
   at the quietest moment, and the next piece then starts ``overlap`` seconds earlier.
2. **Transcribe**: pieces go to the wrapped transcriber concurrently, at most
   ``concurrency`` at a time (a thread pool for a sync transcriber, tasks for an async one).
   A piece that fails with a transient error (rate limit, server error, timeout, lost
   connection) is retried with exponential backoff, honouring a server's ``retry_after``.
3. **Stitch** (:func:`stitch`): texts are joined in order (a space between pieces, none
   between CJK text), segment and word times are moved to the recording's clock, the words
   of a hard cut's overlap are kept once (by word times where the model gives them, else by
   matching the texts), speakers are kept, and usage and cost are summed.

A piece that still fails raises :class:`~chainvoice.PartialTranscriptionError`, which keeps
the stitched transcript of every other piece and can retry just the failed ones.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import math
import random
import re
import sys
import threading
import unicodedata
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import IO, Any, Final, Literal

import attrs
import numpy as np
import numpy.typing as npt

from chainvoice import _dsp
from chainvoice._audio import Audio
from chainvoice._errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    ConfigurationError,
    MissingDependencyError,
    NotFoundError,
    PartialTranscriptionError,
    ProtocolError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)
from chainvoice._protocols import AsyncTranscriber, Transcriber
from chainvoice._types import Logprob, Segment, Transcript, Usage, Word

__all__ = [
    "DEFAULT_BYTES_PER_SECOND",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_PIECE_SECONDS",
    "AsyncLongTranscriber",
    "LongTranscriber",
    "Piece",
    "PieceLimits",
    "ProgressBar",
    "TranscriptionProgress",
    "atranscribe_long",
    "fits_in_one_piece",
    "plan_pieces",
    "stitch",
    "transcribe_long",
]

DEFAULT_MAX_PIECE_SECONDS: Final = 600.0
"""Piece length when neither the caller nor the transcriber names a limit (10 minutes)."""
DEFAULT_BYTES_PER_SECOND: Final = 32_000.0
"""Upload size of one second of 16 kHz mono 16-bit WAV, what most transcribers are sent."""
DEFAULT_CONCURRENCY: Final = 4
"""Pieces in flight at once by default: fast, and well within OpenAI's rate limits."""
DEFAULT_OVERLAP: Final = 1.0
DEFAULT_MIN_PAUSE: Final = 0.3
DEFAULT_RETRIES: Final = 2
DEFAULT_BACKOFF: Final = 1.0
DEFAULT_MARGIN: Final = 0.02

WINDOW_SECONDS: Final = 0.01
"""Analysis window of the planner: levels are measured every 10 ms."""
HEADER_BYTES: Final = 1024
"""Room left in a byte limit for the file header (a WAV header is 44 bytes)."""

_KEEP_SECONDS: Final = 0.25  # silence kept on each side of a skipped silence
_SCORE_CAP_SECONDS: Final = 1.5  # pauses at least this long are equally good; take the latest
_SEARCH_SECONDS: Final = 120.0  # how far before the limit a pause is looked for
_HARD_SEARCH_SECONDS: Final = 3.0  # where a hard cut looks for the quietest moment
_MIN_PIECE_SECONDS: Final = 1.0
_SILENT_DBFS: Final = -60.0  # a recording whose loud parts stay below this is silence
_MIN_RANGE_DB: Final = 12.0  # less dynamic range than this: no pauses to find
_FLOOR_DB: Final = -100.0
_PROMPT_CHARS: Final = 400
_MAX_BACKOFF: Final = 30.0
_TOKENS_PER_SECOND: Final = 8  # the most words (or CJK characters) a second of speech holds

Cut = Literal["pause", "hard", "end"]


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


def _positive_or_none(_inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(f"{attribute.name} must be a positive number, not {value!r}")
    if not math.isfinite(value):
        raise ConfigurationError(f"{attribute.name} must be finite, not {value!r}")


@attrs.frozen(kw_only=True)
class PieceLimits:
    """What one request of a transcriber takes.

    A transcriber can tell :class:`LongTranscriber` its limits with a method
    ``piece_limits(audio) -> PieceLimits``; the OpenAI transcribers do.

    Attributes:
        max_seconds: The longest audio one request takes, or ``None`` for no limit.
        max_bytes: The largest upload one request takes, or ``None`` for no limit.
        bytes_per_second: Upload bytes per second of audio in the encoding sent (16 kHz mono
            16-bit WAV: 32 000).
    """

    max_seconds: float | None = attrs.field(default=None, validator=_positive_or_none)
    max_bytes: int | None = attrs.field(default=None, validator=_positive_or_none)
    bytes_per_second: float = attrs.field(
        default=DEFAULT_BYTES_PER_SECOND, validator=_positive_or_none
    )

    def piece_seconds(self, margin: float = DEFAULT_MARGIN) -> float | None:
        """The longest piece that fits both limits with a safety ``margin`` (a fraction).

        Returns ``None`` when there is no limit.
        """
        candidates = []
        if self.max_seconds is not None:
            candidates.append(self.max_seconds * (1.0 - margin))
        if self.max_bytes is not None:
            room = self.max_bytes * (1.0 - margin) - HEADER_BYTES
            candidates.append(room / self.bytes_per_second)
        return min(candidates) if candidates else None

    def combine(self, other: PieceLimits) -> PieceLimits:
        """The stricter of two limits: the smaller of each."""

        def low(a: float | None, b: float | None) -> float | None:
            return b if a is None else a if b is None else min(a, b)

        if self.max_bytes is None:
            rate = other.bytes_per_second
        elif other.max_bytes is None:
            rate = self.bytes_per_second
        else:
            rate = max(self.bytes_per_second, other.bytes_per_second)
        max_bytes = low(self.max_bytes, other.max_bytes)
        return PieceLimits(
            max_seconds=low(self.max_seconds, other.max_seconds),
            max_bytes=None if max_bytes is None else int(max_bytes),
            bytes_per_second=rate,
        )


@attrs.frozen(kw_only=True, eq=False, repr=False)
class Piece:
    """One piece of a long recording, with its place in the recording.

    Attributes:
        index: Position among the pieces, from 0.
        start: Where it starts in the recording, in seconds (its offset).
        end: Where it ends in the recording, in seconds.
        audio: Its audio (a view of the recording's samples, not a copy).
        overlap: Seconds it shares with the previous piece (after a hard cut), else 0.
        cut: How it ends: ``"pause"`` (in a pause), ``"hard"`` (no pause was found before
            the limit; the next piece overlaps it) or ``"end"`` (the recording's end).
    """

    index: int
    start: float
    end: float
    audio: Audio
    overlap: float = 0.0
    cut: Cut = "end"

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.end - self.start

    def __repr__(self) -> str:
        return (
            f"Piece(index={self.index}, start={self.start:.2f}, end={self.end:.2f}, "
            f"overlap={self.overlap:.2f}, cut={self.cut!r})"
        )


@attrs.frozen(kw_only=True)
class TranscriptionProgress:
    """How far the transcription of a long recording has got.

    A ``progress`` callback receives one of these when the work starts and after each
    piece ends (transcribed, or failed for good).

    Attributes:
        done_seconds: Seconds of audio transcribed so far.
        total_seconds: Seconds of audio to transcribe (the pieces; skipped silence is not
            counted).
        pieces_done: Pieces transcribed.
        pieces_failed: Pieces that failed after their retries.
        pieces_total: All pieces.
        piece: The piece that just ended (``None`` in the first event).
        transcript: Its transcript, on the piece's own clock (``None`` if it failed).
        error: Why it failed, if it did.
    """

    done_seconds: float
    total_seconds: float
    pieces_done: int
    pieces_failed: int
    pieces_total: int
    piece: Piece | None = None
    transcript: Transcript | None = None
    error: BaseException | None = None

    @property
    def fraction(self) -> float:
        """Share of the audio transcribed, 0.0 to 1.0."""
        return 1.0 if self.total_seconds <= 0 else min(1.0, self.done_seconds / self.total_seconds)

    @property
    def finished(self) -> bool:
        """True once every piece has ended."""
        return self.pieces_done + self.pieces_failed >= self.pieces_total


ProgressCallback = Callable[[TranscriptionProgress], object]


# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------


def _number(value: Any, name: str, *, minimum: float = 0.0, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigurationError(f"{name} must be a number, not {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < minimum or (strict and number == minimum):
        bound = ">" if strict else ">="
        raise ConfigurationError(
            f"{name} must be a finite number {bound} {minimum:g}, not {value!r}"
        )
    return number


def _levels_db(audio: Audio) -> tuple[npt.NDArray[np.float32], int]:
    """Level in dBFS of each 10 ms window (the loudest channel), and the window in frames."""
    size = max(1, round(WINDOW_SECONDS * audio.rate))
    power = _dsp.window_power(audio.samples, size)
    np.maximum(power, np.float32(10.0 ** (_FLOOR_DB / 10.0)), out=power)
    db = np.log10(power, out=power)
    db *= np.float32(10.0)
    return db, size


def _quiet_windows(
    db: npt.NDArray[np.float32], threshold_db: float | None
) -> npt.NDArray[np.bool_]:
    """Which windows are quiet: below ``threshold_db``, or below a level read from the audio.

    Without a threshold, the quiet level sits 30% of the way from the floor (5th
    percentile) to the loud parts (99th percentile): it follows background noise and
    recording level. Audio with less than 12 dB between them has no pauses; audio whose
    loud parts stay below -60 dBFS is silence throughout.
    """
    if threshold_db is not None:
        quiet: npt.NDArray[np.bool_] = db < np.float32(threshold_db)
        return quiet
    if db.size == 0:
        return np.zeros(0, dtype=bool)
    floor, top = (float(v) for v in np.percentile(db, [5.0, 99.0]))
    if top < _SILENT_DBFS:
        return np.ones(db.shape, dtype=bool)
    if top - floor < _MIN_RANGE_DB:
        return np.zeros(db.shape, dtype=bool)
    level = floor + 0.3 * (top - floor)
    quiet = db < np.float32(level)
    return quiet


def _check_limit_args(
    max_seconds: float | None,
    max_bytes: int | None,
    bytes_per_second: float,
    margin: float,
) -> PieceLimits:
    if max_seconds is not None:
        _number(max_seconds, "max_seconds", strict=True)
    if max_bytes is not None and (
        isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= HEADER_BYTES
    ):
        raise ConfigurationError(
            f"max_bytes must be a whole number of bytes above {HEADER_BYTES}, not {max_bytes!r}"
        )
    _number(bytes_per_second, "bytes_per_second", strict=True)
    if not 0.0 <= _number(margin, "margin") < 0.5:
        raise ConfigurationError(f"margin must be a fraction from 0 to 0.5, not {margin!r}")
    return PieceLimits(
        max_seconds=max_seconds, max_bytes=max_bytes, bytes_per_second=bytes_per_second
    )


def fits_in_one_piece(audio: Audio, limits: PieceLimits, *, margin: float = DEFAULT_MARGIN) -> bool:
    """Whether ``audio`` fits ``limits`` (with the safety ``margin``) in one request."""
    seconds = limits.piece_seconds(margin)
    return seconds is None or audio.duration <= seconds


def plan_pieces(
    audio: Audio,
    *,
    max_seconds: float | None = DEFAULT_MAX_PIECE_SECONDS,
    max_bytes: int | None = None,
    bytes_per_second: float = DEFAULT_BYTES_PER_SECOND,
    overlap: float = DEFAULT_OVERLAP,
    min_pause: float = DEFAULT_MIN_PAUSE,
    threshold_db: float | None = None,
    margin: float = DEFAULT_MARGIN,
) -> tuple[Piece, ...]:
    """Cut ``audio`` into pieces that each fit the limits, at pauses where possible.

    Audio that fits is one piece, unchanged. Longer audio is cut where the limit allows,
    at the best pause in the last stretch before it (up to two minutes, or a quarter of a
    piece): the longest quiet run of at least ``min_pause`` seconds, and among runs of
    1.5 s or more the latest. A cut inside a long silence drops the silence except a
    quarter second on each side, as does trimming silence at the recording's start and end;
    audio that is silent throughout gives no pieces. Where no pause exists before the
    limit, the cut is hard, at the quietest 10 ms of the last seconds, and the next piece
    starts ``overlap`` seconds before it so that no word is lost (:func:`stitch` removes
    the words heard twice).

    The level is measured over the whole signal at once with numpy; an hour of 16 kHz
    audio is planned in a fraction of a second.

    Args:
        audio: The recording.
        max_seconds: The longest piece in seconds, or ``None`` for no duration limit.
        max_bytes: The largest upload of a piece, or ``None`` for no size limit.
        bytes_per_second: Upload bytes per second of audio (16 kHz mono 16-bit WAV:
            32 000; 8 kHz: 16 000).
        overlap: Seconds shared by the pieces on each side of a hard cut.
        min_pause: The shortest quiet run that counts as a pause, in seconds.
        threshold_db: The level in dBFS below which audio counts as quiet; by default it is
            read from the recording (its noise floor and loud parts).
        margin: A safety margin taken off both limits, as a fraction (0.02: 2%).

    Returns:
        The pieces, in order; each carries its offset (``start``) in the recording.

    Raises:
        ConfigurationError: A limit or option out of range, or limits so small that a
            piece would be shorter than a second.
    """
    limits = _check_limit_args(max_seconds, max_bytes, bytes_per_second, margin)
    overlap_s = _number(overlap, "overlap")
    pause_s = _number(min_pause, "min_pause", strict=True)
    if threshold_db is not None:
        _number(threshold_db, "threshold_db", minimum=-math.inf)
    if not isinstance(audio, Audio):
        raise TypeError(f"plan_pieces() takes an Audio, not {type(audio).__name__}")
    limit_s = limits.piece_seconds(margin)
    whole = Piece(index=0, start=0.0, end=audio.duration, audio=audio)
    if limit_s is None or audio.duration <= limit_s:
        return (whole,)
    if limit_s < 1.0:
        raise ConfigurationError(
            f"these limits allow pieces of only {limit_s:.3f} s; allow at least a second "
            "(raise max_seconds or max_bytes, or lower bytes_per_second)"
        )
    if overlap_s > limit_s / 4:
        raise ConfigurationError(
            f"overlap={overlap_s:g} s is more than a quarter of a piece ({limit_s:.1f} s); "
            "use a smaller overlap or longer pieces"
        )
    db, wf = _levels_db(audio)
    return _cut(audio, db, wf, _quiet_windows(db, threshold_db), limit_s, overlap_s, pause_s)


def _cut(
    audio: Audio,
    db: npt.NDArray[np.float32],
    wf: int,
    quiet: npt.NDArray[np.bool_],
    limit_s: float,
    overlap_s: float,
    pause_s: float,
) -> tuple[Piece, ...]:
    rate = audio.rate

    def windows(seconds: float) -> int:
        return max(1, round(seconds * rate / wf))

    limit_w = max(1, math.floor(limit_s * rate / wf))
    overlap_w = round(overlap_s * rate / wf)
    keep_w = windows(_KEEP_SECONDS)
    min_piece_w = max(windows(min(_MIN_PIECE_SECONDS, limit_s / 10)), keep_w)
    search_w = windows(min(_SEARCH_SECONDS, limit_s / 4))
    hard_w = windows(min(_HARD_SEARCH_SECONDS, limit_s / 4))
    cap_w = windows(_SCORE_CAP_SECONDS)

    loud = np.flatnonzero(~quiet)
    if loud.size == 0:
        return ()
    first = max(0, int(loud[0]) - keep_w)
    last = min(quiet.size, int(loud[-1]) + 1 + keep_w)
    run_starts, run_ends = _dsp.silent_runs(quiet)
    long_enough = (run_ends - run_starts) >= windows(pause_s)
    run_starts, run_ends = run_starts[long_enough], run_ends[long_enough]

    bounds: list[tuple[int, int, int, Cut]] = []  # start, end, overlap (windows), cut
    start, lap = first, 0
    while last - start > limit_w:
        hi = min(start + limit_w, last - min_piece_w)
        lo = max(start + min_piece_w, hi - search_w)
        a = int(np.searchsorted(run_ends, lo, side="right"))
        b = int(np.searchsorted(run_starts, hi, side="left"))
        cut: Cut
        if b > a:
            rs, re_ = run_starts[a:b], run_ends[a:b]
            mid = (rs + re_) // 2
            ends = np.clip(np.minimum(rs + keep_w, mid), lo, hi)
            nexts = np.maximum(np.maximum(re_ - keep_w, mid), ends)
            score = np.minimum(re_ - rs, cap_w)
            best = int(np.lexsort((ends, score))[-1])
            end, nxt, cut = int(ends[best]), int(nexts[best]), "pause"
            nxt = max(end, min(nxt, last - min_piece_w))
        else:
            first_w = max(lo, hi - hard_w)
            end = first_w + int(np.argmin(db[first_w:hi]))
            nxt, cut = end - overlap_w, "hard"
        bounds.append((start, end, lap, cut))
        start, lap = nxt, (overlap_w if cut == "hard" else 0)
    bounds.append((start, last, lap, "end"))

    pieces = []
    for index, (s, e, lap_w, cut) in enumerate(bounds):
        f0 = s * wf
        f1 = min(e * wf, audio.frames)
        pieces.append(
            Piece(
                index=index,
                start=f0 / rate,
                end=f1 / rate,
                audio=Audio._make(audio.samples[f0:f1], rate),
                overlap=lap_w * wf / rate,
                cut=cut,
            )
        )
    return tuple(pieces)


# --------------------------------------------------------------------------------------------
# Stitching
# --------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"\w+", re.UNICODE)


def _wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in "WF"


def _join_texts(parts: Sequence[str]) -> str:
    """Join texts with one space, or none where either side is CJK (wide) text."""
    out = ""
    for part in parts:
        text = part.strip()
        if not text:
            continue
        if out and not (_wide(out[-1]) or _wide(text[0])):
            out += " "
        out += text
    return out


def _tokens(text: str) -> list[tuple[str, int]]:
    """Normalised word tokens with their start offsets; wide (CJK) characters one each."""
    out: list[tuple[str, int]] = []
    for match in _TOKEN.finditer(text):
        word = match.group()
        if any(_wide(c) for c in word):
            out.extend((c.casefold(), match.start() + i) for i, c in enumerate(word))
        else:
            out.append((word.casefold(), match.start()))
    return out


def _locate(text: str, parts: Sequence[str]) -> list[int] | None:
    """Start offset in ``text`` of each part, found in order; None if one is missing."""
    cursor, out = 0, []
    for part in parts:
        needle = part.strip()
        if not needle:
            out.append(cursor)
            continue
        at = text.find(needle, cursor)
        if at < 0:
            return None
        out.append(at)
        cursor = at + len(needle)
    return out


def _center(start: float, end: float) -> float:
    return (start + max(start, end)) / 2.0


@attrs.frozen
class _Placed:
    """One piece's transcript with times on the recording's clock (clamped to the piece)."""

    piece: Piece
    transcript: Transcript
    text: str
    segments: tuple[Segment, ...]
    words: tuple[Word, ...]


def _clamp(value: float, piece: Piece) -> float:
    return piece.start + min(max(0.0, value), piece.duration)


def _move_word(word: Word, piece: Piece) -> Word:
    start = _clamp(word.start, piece)
    return attrs.evolve(word, start=start, end=max(start, _clamp(word.end, piece)))


def _place(piece: Piece, transcript: Transcript) -> _Placed:
    words = tuple(sorted((_move_word(w, piece) for w in transcript.words), key=lambda w: w.start))
    segments = []
    for seg in transcript.segments:
        start = _clamp(seg.start, piece)
        segments.append(
            attrs.evolve(
                seg,
                start=start,
                end=max(start, _clamp(seg.end, piece)),
                words=tuple(_move_word(w, piece) for w in seg.words),
            )
        )
    segments.sort(key=lambda s: s.start)
    return _Placed(piece, transcript, transcript.text.strip(), tuple(segments), words)


def _overlap_match(left: _Placed, right: _Placed) -> tuple[int, int] | None:
    """Where the words heard twice at a hard cut start, in each text, found by matching.

    The words of the overlap end the left text (perhaps followed by a word cut in two) and
    start the right one (perhaps after a cut word), so the longest run of the same words
    is looked for only there, among as many words as the overlap can hold: at most 8 a
    second, and at most three times the piece's own pace. A single matching word counts
    only if it is at least four letters long.

    Returns:
        The offsets in the left and right texts where the shared run starts, or None.
    """
    overlap = right.piece.overlap
    cap = math.ceil(overlap * _TOKENS_PER_SECOND) + 2

    def span(tokens: list[tuple[str, int]], piece: Piece) -> int:
        pace = len(tokens) / max(piece.duration, overlap, 1e-9)
        return min(cap, math.ceil(3.0 * pace * overlap) + 2)

    left_tokens, right_tokens = _tokens(left.text), _tokens(right.text)
    a = left_tokens[-span(left_tokens, left.piece) :]
    b = right_tokens[: span(right_tokens, right.piece)]
    a_words = [t for t, _ in a]
    b_words = [t for t, _ in b]
    for size in range(min(len(a), len(b)), 0, -1):
        for a_slack, b_slack in ((0, 0), (1, 0), (0, 1), (1, 1)):
            end = len(a) - a_slack
            if end - size < 0 or b_slack + size > len(b):
                continue
            if a_words[end - size : end] == b_words[b_slack : b_slack + size]:
                if size == 1 and len(a_words[end - 1]) < 4:
                    return None
                return a[end - size][1], b[b_slack][1]
    return None


@attrs.frozen
class _Boundary:
    """Where the overlap of a hard cut is split: character offsets in each text, and a time."""

    left_end: int  # the left piece's text is kept up to here
    right_start: int  # the right piece's text is kept from here
    time: float  # on the recording's clock


def _boundary(left: _Placed, right: _Placed) -> _Boundary:
    middle = right.piece.start + right.piece.overlap / 2.0
    if left.words and right.words:
        left_at = _locate(left.text, [w.text for w in left.words])
        right_at = _locate(right.text, [w.text for w in right.words])
        if left_at is not None and right_at is not None:
            drop = [i for i, w in enumerate(left.words) if _center(w.start, w.end) >= middle]
            keep = [i for i, w in enumerate(right.words) if _center(w.start, w.end) >= middle]
            return _Boundary(
                left_at[drop[0]] if drop else len(left.text),
                right_at[keep[0]] if keep else len(right.text),
                middle,
            )
    match = _overlap_match(left, right)
    if match is not None:
        return _Boundary(match[0], match[1], middle)
    return _Boundary(len(left.text), 0, middle)


def _trim(
    placed: _Placed, lo: int, hi: int, t_lo: float, t_hi: float
) -> tuple[str, list[Segment], list[Word]]:
    """The part of a placed transcript between two boundaries (text offsets and times)."""
    text = placed.text[lo:hi].strip() if lo < hi else ""
    if lo == 0 and hi >= len(placed.text):
        return text, list(placed.segments), list(placed.words)

    def in_time(w: Word) -> bool:
        return t_lo <= _center(w.start, w.end) < t_hi

    word_at = _locate(placed.text, [w.text for w in placed.words]) if placed.words else None
    if word_at is not None:
        words = [w for w, at in zip(placed.words, word_at, strict=True) if lo <= at < hi]
    else:
        words = [w for w in placed.words if in_time(w)]
    segments: list[Segment] = []
    seg_at = _locate(placed.text, [s.text for s in placed.segments])
    for k, seg in enumerate(placed.segments):
        seg_words = tuple(w for w in seg.words if in_time(w))
        if seg_at is None:
            if seg.end > t_lo and seg.start < t_hi:
                start, end = max(seg.start, t_lo), min(seg.end, t_hi)
                segments.append(
                    attrs.evolve(seg, start=start, end=max(start, end), words=seg_words)
                )
            continue
        s0 = seg_at[k]
        s1 = s0 + len(seg.text.strip())
        a, b = max(s0, lo), min(s1, hi)
        piece_text = placed.text[a:b].strip() if a < b else ""
        if not piece_text:
            continue
        start = max(seg.start, t_lo) if a > s0 else seg.start
        end = min(seg.end, t_hi) if b < s1 else seg.end
        segments.append(
            attrs.evolve(seg, text=piece_text, start=start, end=max(start, end), words=seg_words)
        )
    return text, segments, words


def stitch(
    pieces: Sequence[Piece],
    transcripts: Sequence[Transcript | None],
    *,
    duration: float | None = None,
) -> Transcript:
    """One transcript of the whole recording from the transcripts of its pieces.

    Texts are joined in order with one space (none next to CJK text). Segment and word
    times move to the recording's clock (clamped to their piece, so they increase from
    piece to piece). At a hard cut, what was heard in both pieces is kept once: split at
    the middle of the overlap by word times where both pieces have words, else where
    the two texts match. A piece whose transcript has text but no segments becomes one
    segment spanning the piece, so that subtitles can still be placed. Speakers are kept
    as each piece's transcript names them. Usage is summed over the pieces; the cost is
    unknown (``None``) if any piece's is.

    Args:
        pieces: The pieces, in order (from :func:`plan_pieces`).
        transcripts: Each piece's transcript on the piece's own clock, or ``None`` for a
            piece that was not transcribed (it is left out).
        duration: The recording's length (default: the end of the last piece).

    Raises:
        ConfigurationError: ``pieces`` and ``transcripts`` differ in length.
    """
    if len(pieces) != len(transcripts):
        raise ConfigurationError(
            f"stitch() needs one transcript (or None) per piece: got {len(transcripts)} for "
            f"{len(pieces)} pieces"
        )
    texts: list[str] = []
    segments: list[Segment] = []
    words: list[Word] = []
    for _, text, segs, ws in _pieces_text(pieces, transcripts):
        texts.append(text)
        segments.extend(segs)
        words.extend(ws)
    done = [t for t in transcripts if t is not None]
    return Transcript(
        _join_texts(texts),
        language=_most_common(t.language for t in done),
        duration=duration if duration is not None else (pieces[-1].end if pieces else 0.0),
        segments=segments,
        words=words,
        logprobs=_logprobs(done),
        usage=_usage(done),
        model=_most_common(t.model for t in done),
    )


def _most_common(values: Iterable[str | None]) -> str | None:
    counts = Counter(v for v in values if v)
    return counts.most_common(1)[0][0] if counts else None


def _logprobs(done: Sequence[Transcript]) -> tuple[Logprob, ...] | None:
    if all(t.logprobs is None for t in done):
        return None
    return tuple(lp for t in done for lp in (t.logprobs or ()))


def _usage(done: Sequence[Transcript]) -> Usage:
    if not done:
        return Usage(stage="transcribe", cost_usd=0.0)
    items = []
    for t in done:
        if t.usage is not None:
            items.append(t.usage)
        else:
            who = t.model or "a transcriber"
            items.append(
                Usage(
                    stage="transcribe",
                    model=t.model,
                    unpriced=(f"{who} (it reported no usage)",),
                )
            )
    return Usage.total(items)


def _pieces_text(
    pieces: Sequence[Piece],
    transcripts: Sequence[Transcript | None],
    only: range | None = None,
) -> list[tuple[int, str, list[Segment], list[Word]]]:
    """Each transcribed piece's part of the whole, as (index, text, segments, words).

    Trimmed at hard cuts, on the recording's clock; for the pieces in ``only`` (default:
    all), which needs only their neighbours.
    """
    wanted = range(len(pieces)) if only is None else only
    near = sorted({i for j in wanted for i in (j - 1, j, j + 1) if 0 <= i < len(pieces)})
    placed: dict[int, _Placed] = {}
    for i in near:
        transcript = transcripts[i]
        if transcript is not None:
            placed[i] = _place(pieces[i], transcript)
    boundaries: dict[int, _Boundary] = {}  # between piece i and i + 1
    for i in placed:
        if i + 1 in placed and pieces[i + 1].overlap > 0:
            boundaries[i] = _boundary(placed[i], placed[i + 1])
    many = len(pieces) > 1
    out = []
    for i, item in placed.items():
        if i not in wanted:
            continue
        left, right = boundaries.get(i - 1), boundaries.get(i)
        lo = left.right_start if left else 0
        hi = right.left_end if right else len(item.text)
        t_lo = left.time if left else -math.inf
        t_hi = right.time if right else math.inf
        text, segs, ws = _trim(item, lo, hi, t_lo, t_hi)
        if many and text and not segs:
            start = max(item.piece.start, t_lo)
            end = min(item.piece.end, t_hi)
            segs = [Segment(text=text, start=start, end=max(start, end), words=tuple(ws))]
        out.append((i, text, segs, ws))
    return out


# --------------------------------------------------------------------------------------------
# Retries
# --------------------------------------------------------------------------------------------

_TRANSIENT: Final = (
    RateLimitError,
    ServerError,
    APITimeoutError,
    APIConnectionError,
    StreamInterruptedError,
    ConnectionError,
    TimeoutError,
    asyncio.TimeoutError,  # not the built-in TimeoutError before Python 3.11
)
# Errors that every other piece would meet too: stop sending pieces.
_FATAL: Final = (
    AuthenticationError,
    NotFoundError,
    ConfigurationError,
    MissingDependencyError,
    ProtocolError,
)


def _retry_delay(exc: BaseException, attempt: int, backoff: float) -> float:
    """Seconds to wait before retry number ``attempt + 1``.

    The server's ``retry_after`` if it gave one, else exponential backoff with jitter.
    """
    if isinstance(exc, RateLimitError) and exc.retry_after is not None:
        return max(0.0, float(exc.retry_after))
    wait = backoff * (2.0**attempt) * (1.0 + 0.25 * random.random())
    return float(min(wait, _MAX_BACKOFF))


def _takes_prompt(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "prompt" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _prompt_tail(text: str) -> str | None:
    """The end of a transcript, to carry into the next piece's prompt (about 400 chars)."""
    text = text.strip()
    if len(text) <= _PROMPT_CHARS:
        return text or None
    tail = text[-_PROMPT_CHARS:]
    space = tail.find(" ")
    if 0 <= space < len(tail) // 2:
        tail = tail[space + 1 :]
    return tail


def _clock(seconds: float) -> str:
    """``h:mm:ss.s``."""
    tenths = round(max(0.0, seconds) * 10)
    hours, rest = divmod(tenths, 36000)
    minutes, rest = divmod(rest, 600)
    return f"{hours}:{minutes:02d}:{rest / 10:04.1f}"


# --------------------------------------------------------------------------------------------
# The engine shared by the sync and async faces
# --------------------------------------------------------------------------------------------


class _Skipped(Exception):
    """A piece not sent because an earlier one failed in a way every piece would."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(cause)
        self.cause = cause


@attrs.define(eq=False)
class _Job:
    audio: Audio
    pieces: tuple[Piece, ...]
    results: list[Transcript | None]
    errors: dict[int, BaseException] = attrs.Factory(dict)

    def event(
        self,
        index: int | None = None,
        error: BaseException | None = None,
    ) -> TranscriptionProgress:
        done = [i for i, r in enumerate(self.results) if r is not None]
        return TranscriptionProgress(
            done_seconds=sum(self.pieces[i].duration for i in done),
            total_seconds=sum(p.duration for p in self.pieces),
            pieces_done=len(done),
            pieces_failed=len(self.errors),
            pieces_total=len(self.pieces),
            piece=None if index is None else self.pieces[index],
            transcript=None if index is None else self.results[index],
            error=error,
        )

    def missing(self) -> list[int]:
        """The pieces not transcribed yet; their old errors are forgotten."""
        out = [i for i, r in enumerate(self.results) if r is None]
        for index in out:
            self.errors.pop(index, None)
        return out

    def record(self, index: int, outcome: Transcript | BaseException) -> None:
        if isinstance(outcome, Transcript):
            self.results[index] = outcome
            self.errors.pop(index, None)
        else:
            self.errors[index] = outcome.cause if isinstance(outcome, _Skipped) else outcome

    def stable_upto(self) -> int:
        """How many pieces, from the first, have text that can no longer change.

        That is every piece up to the first missing one, less the last if a hard cut
        follows it (its end is trimmed once the next piece is in).
        """
        first_missing = next(
            (i for i, r in enumerate(self.results) if r is None), len(self.results)
        )
        if first_missing < len(self.pieces) and self.pieces[first_missing].overlap > 0:
            return first_missing - 1
        return first_missing

    def texts(self, start: int, stop: int) -> list[str]:
        """The stitched text of pieces ``start`` to ``stop`` (each trimmed at hard cuts)."""
        parts = _pieces_text(self.pieces, self.results, range(start, stop))
        return [text for _, text, _, _ in parts]

    def stitched(self) -> Transcript:
        return stitch(self.pieces, self.results, duration=self.audio.duration)


class _Engine:
    """Options, planning, and the sync and async drivers over one job."""

    def __init__(
        self,
        transcriber: Any,
        *,
        max_piece_seconds: float | None,
        max_piece_bytes: int | None,
        bytes_per_second: float | None,
        overlap: float,
        concurrency: int,
        carry_prompt: bool,
        retries: int,
        backoff: float,
        progress: ProgressCallback | None,
        min_pause: float,
        threshold_db: float | None,
    ) -> None:
        method = getattr(transcriber, "transcribe", None)
        if method is None or not callable(method):
            raise TypeError(
                "LongTranscriber wraps a transcriber: an object with a transcribe(audio) "
                f"method, not {type(transcriber).__name__}"
            )
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError(
                f"concurrency must be a whole number of pieces in flight >= 1, not {concurrency!r}"
            )
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigurationError(f"retries must be a whole number >= 0, not {retries!r}")
        if progress is not None and not callable(progress):
            raise ConfigurationError(
                "progress must be a callable taking a TranscriptionProgress, e.g. "
                f"chainvoice.ProgressBar(), not {progress!r}"
            )
        self.asynchronous = inspect.iscoroutinefunction(method)
        if carry_prompt and not _takes_prompt(method):
            raise ConfigurationError(
                f"carry_prompt=True needs a transcriber whose transcribe() takes a prompt "
                f"keyword (transcribe(audio, prompt=...)); {type(transcriber).__name__} "
                "does not"
            )
        self.transcriber = transcriber
        self.user_limits = _check_limit_args(
            max_piece_seconds,
            max_piece_bytes,
            DEFAULT_BYTES_PER_SECOND if bytes_per_second is None else bytes_per_second,
            DEFAULT_MARGIN,
        )
        self.overlap = _number(overlap, "overlap")
        self.concurrency = concurrency
        self.carry_prompt = bool(carry_prompt)
        self.retries = retries
        self.backoff = _number(backoff, "backoff")
        self.progress = progress
        self.min_pause = _number(min_pause, "min_pause", strict=True)
        self.threshold_db = (
            None
            if threshold_db is None
            else _number(threshold_db, "threshold_db", minimum=-math.inf)
        )

    def with_transcriber(self, transcriber: Any) -> _Engine:
        twin = object.__new__(_Engine)
        twin.__dict__.update(self.__dict__)
        method = getattr(transcriber, "transcribe", None)
        if method is None or not callable(method):
            raise TypeError(f"retry() takes a transcriber, not {type(transcriber).__name__}")
        if self.carry_prompt and not _takes_prompt(method):
            raise ConfigurationError("carry_prompt=True needs transcribe(audio, prompt=...)")
        twin.transcriber = transcriber
        twin.asynchronous = inspect.iscoroutinefunction(method)
        return twin

    # ------------------------------------------------------------------ planning

    def limits(self, audio: Audio) -> PieceLimits:
        limits = self.user_limits
        hook = getattr(self.transcriber, "piece_limits", None)
        if callable(hook):
            theirs = hook(audio)
            if not isinstance(theirs, PieceLimits):
                raise ProtocolError(
                    f"{type(self.transcriber).__name__}.piece_limits() returned "
                    f"{type(theirs).__name__}; it must return a chainvoice PieceLimits"
                )
            limits = limits.combine(theirs)
        if limits.max_seconds is None and limits.max_bytes is None:
            limits = attrs.evolve(limits, max_seconds=DEFAULT_MAX_PIECE_SECONDS)
        return limits

    def plan(self, audio: Audio) -> tuple[Piece, ...]:
        if not isinstance(audio, Audio):
            raise TypeError(f"transcribe() takes an Audio, not {type(audio).__name__}")
        limits = self.limits(audio)
        return plan_pieces(
            audio,
            max_seconds=limits.max_seconds,
            max_bytes=limits.max_bytes,
            bytes_per_second=limits.bytes_per_second,
            overlap=self.overlap,
            min_pause=self.min_pause,
            threshold_db=self.threshold_db,
        )

    def job(self, audio: Audio) -> _Job:
        pieces = self.plan(audio)
        return _Job(audio, pieces, [None] * len(pieces))

    def notify(
        self, job: _Job, index: int | None = None, error: BaseException | None = None
    ) -> None:
        if self.progress is not None:
            self.progress(job.event(index, error))

    def prompt_for(self, job: _Job, index: int) -> str | None:
        if not self.carry_prompt:
            return None
        for earlier in range(index - 1, -1, -1):
            done = job.results[earlier]
            if done is not None:
                return _prompt_tail(done.text)
        return None

    @staticmethod
    def checked(result: object) -> Transcript:
        if not isinstance(result, Transcript):
            raise ProtocolError(
                f"transcribe() returned {type(result).__name__}; return a chainvoice.Transcript"
            )
        return result

    # ------------------------------------------------------------------ sync

    def call_sync(self, piece: Piece, prompt: str | None) -> Transcript:
        kwargs = {} if prompt is None else {"prompt": prompt}
        result = self.transcriber.transcribe(piece.audio, **kwargs)
        if inspect.isawaitable(result):
            close = getattr(result, "close", None)
            if callable(close):
                close()
            raise ConfigurationError(
                f"{type(self.transcriber).__name__}.transcribe() is async: use "
                "AsyncLongTranscriber (or atranscribe_long) for it"
            )
        return self.checked(result)

    def attempt_sync(self, piece: Piece, prompt: str | None, cancel: threading.Event) -> Transcript:
        attempt = 0
        while True:
            try:
                return self.call_sync(piece, prompt)
            except Exception as exc:
                if attempt >= self.retries or not isinstance(exc, _TRANSIENT) or cancel.is_set():
                    raise
                wait = _retry_delay(exc, attempt, self.backoff)
                attempt += 1
                if cancel.wait(wait):
                    raise

    def drive_sync(self, job: _Job, indices: Sequence[int]) -> Iterator[int]:
        """Transcribe the pieces at ``indices``; yield each index as its piece ends."""
        self.notify(job)
        if self.carry_prompt or len(indices) <= 1:
            yield from self._sequential_sync(job, indices)
            return
        cancel = threading.Event()
        pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=min(self.concurrency, len(indices)), thread_name_prefix="chainvoice-long"
        )
        abort: list[BaseException] = []

        def work(index: int) -> Transcript:
            if abort:
                raise _Skipped(abort[0])
            try:
                return self.attempt_sync(job.pieces[index], None, cancel)
            except _FATAL as exc:
                abort.append(exc)  # before this thread takes another piece
                raise

        futures = {pool.submit(work, i): i for i in indices}
        finished = False
        try:
            for future in concurrent.futures.as_completed(futures):
                index = futures[future]
                if future.cancelled():
                    outcome: Transcript | BaseException = _Skipped(abort[0])
                else:
                    error = future.exception()
                    outcome = future.result() if error is None else error
                if isinstance(outcome, _FATAL):
                    for other in futures:
                        other.cancel()
                job.record(index, outcome)
                self.notify(job, index, job.errors.get(index))
                yield index
            finished = True
        finally:
            if not finished:
                cancel.set()
            pool.shutdown(wait=finished, cancel_futures=True)

    def _sequential_sync(self, job: _Job, indices: Sequence[int]) -> Iterator[int]:
        cancel = threading.Event()
        abort: BaseException | None = None
        for index in indices:
            outcome: Transcript | BaseException
            if abort is not None:
                outcome = _Skipped(abort)
            else:
                try:
                    outcome = self.attempt_sync(
                        job.pieces[index], self.prompt_for(job, index), cancel
                    )
                except Exception as exc:
                    outcome = exc
                    if isinstance(exc, _FATAL):
                        abort = exc
            job.record(index, outcome)
            self.notify(job, index, job.errors.get(index))
            yield index

    # ------------------------------------------------------------------ async

    async def call_async(
        self,
        piece: Piece,
        prompt: str | None,
        executor: concurrent.futures.Executor | None,
    ) -> Transcript:
        kwargs = {} if prompt is None else {"prompt": prompt}
        method = self.transcriber.transcribe
        result: Any
        if self.asynchronous:
            result = await method(piece.audio, **kwargs)
        else:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(executor, lambda: method(piece.audio, **kwargs))
        if inspect.isawaitable(result):
            result = await result
        return self.checked(result)

    async def attempt_async(
        self,
        piece: Piece,
        prompt: str | None,
        executor: concurrent.futures.Executor | None,
    ) -> Transcript:
        attempt = 0
        while True:
            try:
                return await self.call_async(piece, prompt, executor)
            except Exception as exc:
                if attempt >= self.retries or not isinstance(exc, _TRANSIENT):
                    raise
                wait = _retry_delay(exc, attempt, self.backoff)
                attempt += 1
                await asyncio.sleep(wait)

    async def drive_async(self, job: _Job, indices: Sequence[int]) -> AsyncIterator[int]:
        """Transcribe the pieces at ``indices``; yield each index as its piece ends."""
        self.notify(job)
        executor = (
            None
            if self.asynchronous
            else concurrent.futures.ThreadPoolExecutor(
                max_workers=min(self.concurrency, max(1, len(indices))),
                thread_name_prefix="chainvoice-long",
            )
        )
        try:
            if self.carry_prompt or len(indices) <= 1:
                async for index in self._sequential_async(job, indices, executor):
                    yield index
                return
            semaphore = asyncio.Semaphore(self.concurrency)
            abort: list[BaseException] = []

            async def work(index: int) -> Transcript:
                async with semaphore:
                    if abort:
                        raise _Skipped(abort[0])
                    try:
                        return await self.attempt_async(job.pieces[index], None, executor)
                    except _FATAL as exc:
                        abort.append(exc)
                        raise

            tasks = {asyncio.ensure_future(work(i)): i for i in indices}
            pending = set(tasks)
            try:
                while pending:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    for task in sorted(done, key=lambda t: tasks[t]):
                        index = tasks[task]
                        error = task.exception()
                        outcome: Transcript | BaseException = (
                            task.result() if error is None else error
                        )
                        job.record(index, outcome)
                        self.notify(job, index, job.errors.get(index))
                        yield index
            finally:
                for task in pending:
                    task.cancel()
                if pending:
                    await asyncio.gather(*pending, return_exceptions=True)
        finally:
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)

    async def _sequential_async(
        self,
        job: _Job,
        indices: Sequence[int],
        executor: concurrent.futures.Executor | None,
    ) -> AsyncIterator[int]:
        abort: BaseException | None = None
        for index in indices:
            outcome: Transcript | BaseException
            if abort is not None:
                outcome = _Skipped(abort)
            else:
                try:
                    outcome = await self.attempt_async(
                        job.pieces[index], self.prompt_for(job, index), executor
                    )
                except Exception as exc:
                    outcome = exc
                    if isinstance(exc, _FATAL):
                        abort = exc
            job.record(index, outcome)
            self.notify(job, index, job.errors.get(index))
            yield index

    # ------------------------------------------------------------------ results

    def finish(self, job: _Job) -> Transcript:
        """The stitched transcript, or the error that keeps it when a piece failed.

        Raises:
            PartialTranscriptionError: A piece failed (with more than one piece).
            Exception: The single piece's own error, when the audio was one piece.
        """
        if not job.errors:
            if len(job.pieces) == 1 and job.pieces[0].audio is job.audio:
                result = job.results[0]
                assert result is not None
                return result
            if not job.pieces:
                return Transcript(
                    "",
                    duration=job.audio.duration,
                    usage=Usage(stage="transcribe", cost_usd=0.0),
                )
            return job.stitched()
        if len(job.pieces) == 1:
            raise job.errors[0]
        failed = [
            (job.pieces[i].start, job.pieces[i].end, job.errors[i]) for i in sorted(job.errors)
        ]
        error = PartialTranscriptionError(
            job.stitched(),
            failed,
            pieces=len(job.pieces),
            retry=lambda transcriber=None: self._retry_sync(job, transcriber),
            aretry=lambda transcriber=None: self._retry_async(job, transcriber),
        )
        raise error from failed[0][2]

    def _engine_for(self, transcriber: Any) -> _Engine:
        return self if transcriber is None else self.with_transcriber(transcriber)

    def _retry_sync(self, job: _Job, transcriber: Any) -> Transcript:
        engine = self._engine_for(transcriber)
        if engine.asynchronous:
            raise ConfigurationError(
                "these pieces were transcribed by an async transcriber: use `await error.aretry()`"
            )
        for _ in engine.drive_sync(job, job.missing()):
            pass
        return engine.finish(job)

    async def _retry_async(self, job: _Job, transcriber: Any) -> Transcript:
        engine = self._engine_for(transcriber)
        async for _ in engine.drive_async(job, job.missing()):
            pass
        return engine.finish(job)


# --------------------------------------------------------------------------------------------
# Public faces
# --------------------------------------------------------------------------------------------


class _Emitter:
    """The text of a job, handed out as it becomes final, in order, each part once."""

    def __init__(self, job: _Job) -> None:
        self.job = job
        self.emitted = ""
        self.next = 0  # the first piece whose text is not out yet

    def more(self) -> str:
        upto = self.job.stable_upto()
        if upto <= self.next:
            return ""
        text = _join_texts([self.emitted, *self.job.texts(self.next, upto)])
        self.next = upto
        delta, self.emitted = text[len(self.emitted) :], text
        return delta

    def rest(self, final: Transcript) -> str:
        if len(final.text) > len(self.emitted) and final.text.startswith(self.emitted):
            return final.text[len(self.emitted) :]
        return ""


class _LongBase:
    _engine: _Engine

    def __init__(
        self,
        transcriber: Transcriber | AsyncTranscriber,
        *,
        max_piece_seconds: float | None = None,
        max_piece_bytes: int | None = None,
        bytes_per_second: float | None = None,
        overlap: float = DEFAULT_OVERLAP,
        concurrency: int = DEFAULT_CONCURRENCY,
        carry_prompt: bool = False,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        progress: ProgressCallback | None = None,
        min_pause: float = DEFAULT_MIN_PAUSE,
        threshold_db: float | None = None,
    ) -> None:
        self._engine = _Engine(
            transcriber,
            max_piece_seconds=max_piece_seconds,
            max_piece_bytes=max_piece_bytes,
            bytes_per_second=bytes_per_second,
            overlap=overlap,
            concurrency=concurrency,
            carry_prompt=carry_prompt,
            retries=retries,
            backoff=backoff,
            progress=progress,
            min_pause=min_pause,
            threshold_db=threshold_db,
        )

    @property
    def transcriber(self) -> Any:
        """The wrapped transcriber."""
        return self._engine.transcriber

    @property
    def concurrency(self) -> int:
        """Pieces in flight at once (1 with ``carry_prompt``)."""
        return 1 if self._engine.carry_prompt else self._engine.concurrency

    def limits(self, audio: Audio) -> PieceLimits:
        """The limits a piece of ``audio`` must fit: the caller's and the transcriber's."""
        return self._engine.limits(audio)

    def plan(self, audio: Audio) -> tuple[Piece, ...]:
        """The pieces ``audio`` would be cut into (see :func:`plan_pieces`)."""
        return self._engine.plan(audio)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._engine.transcriber!r}, "
            f"concurrency={self.concurrency}, carry_prompt={self._engine.carry_prompt}, "
            f"retries={self._engine.retries})"
        )


class LongTranscriber(_LongBase):
    """A transcriber that takes recordings of any length, by cutting them into pieces.

    It wraps a (sync) transcriber and is one itself, so it plugs into a ``Chain``. Audio
    that fits the limits goes to the wrapped transcriber unchanged, in one request; longer
    audio is cut at pauses (:func:`plan_pieces`), the pieces are transcribed concurrently
    in a thread pool (``concurrency`` at a time) with retries, and the transcripts are
    stitched in order on the recording's clock (:func:`stitch`). For an async transcriber,
    use :class:`AsyncLongTranscriber`.

    Args:
        transcriber: The transcriber to send pieces to.
        max_piece_seconds: The longest piece, in seconds. By default the transcriber's own
            limits (its ``piece_limits(audio)``, as the OpenAI transcribers have), else 10
            minutes. A value above the transcriber's limit is lowered to it.
        max_piece_bytes: The largest upload of a piece (e.g. 25 MB for OpenAI).
        bytes_per_second: Upload bytes per second of audio, to turn ``max_piece_bytes``
            into seconds (default: 32 000, 16 kHz mono 16-bit WAV).
        overlap: Seconds shared by the two pieces of a hard cut (made only where there is
            no pause before the limit); the words heard twice are kept once.
        concurrency: Pieces in flight at once (default 4).
        carry_prompt: Send the end of each piece's transcript as the next piece's
            ``prompt``, for continuity of spelling and style. This makes the work
            **sequential** (one piece at a time), so it is slower; the transcriber's
            ``transcribe`` must take a ``prompt`` keyword.
        retries: How many times a piece that fails with a transient error (rate limit,
            server error, timeout, lost connection) is sent again.
        backoff: Seconds before the first retry; it doubles with each retry (with a little
            jitter, at most 30 s). A server's ``retry_after`` is used instead when given.
        progress: Called with a :class:`TranscriptionProgress` when the work starts and
            after each piece (e.g. :class:`ProgressBar`); called in the caller's thread.
        min_pause: The shortest quiet stretch, in seconds, that counts as a pause to cut in.
        threshold_db: The level in dBFS below which audio counts as quiet (default: read
            from the recording).

    Raises:
        TypeError: ``transcriber`` has no ``transcribe`` method.
        ConfigurationError: An option out of range, or ``carry_prompt`` with a transcriber
            that takes no prompt.
    """

    def __init__(
        self,
        transcriber: Transcriber,
        *,
        max_piece_seconds: float | None = None,
        max_piece_bytes: int | None = None,
        bytes_per_second: float | None = None,
        overlap: float = DEFAULT_OVERLAP,
        concurrency: int = DEFAULT_CONCURRENCY,
        carry_prompt: bool = False,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        progress: ProgressCallback | None = None,
        min_pause: float = DEFAULT_MIN_PAUSE,
        threshold_db: float | None = None,
    ) -> None:
        super().__init__(
            transcriber,
            max_piece_seconds=max_piece_seconds,
            max_piece_bytes=max_piece_bytes,
            bytes_per_second=bytes_per_second,
            overlap=overlap,
            concurrency=concurrency,
            carry_prompt=carry_prompt,
            retries=retries,
            backoff=backoff,
            progress=progress,
            min_pause=min_pause,
            threshold_db=threshold_db,
        )
        if self._engine.asynchronous:
            raise ConfigurationError(
                f"{type(transcriber).__name__}.transcribe() is async: wrap it in "
                "AsyncLongTranscriber instead"
            )

    def transcribe(self, audio: Audio) -> Transcript:
        """Transcribe ``audio`` of any length.

        Returns:
            The whole transcript on the recording's clock, usage summed over the pieces.

        Raises:
            PartialTranscriptionError: Some pieces failed after their retries; it keeps
                the transcript of the others and can retry just the failed ones.
            Exception: With audio that fits in one piece, whatever the wrapped transcriber
                raises (after the retries).
        """
        job = self._engine.job(audio)
        for _ in self._engine.drive_sync(job, range(len(job.pieces))):
            pass
        return self._engine.finish(job)

    def transcribe_stream(self, audio: Audio) -> Iterator[str | Usage | Transcript]:
        """Yield the text as it becomes final, piece by piece in order, then the Transcript.

        Audio that fits in one piece is streamed by the wrapped transcriber itself when it
        can stream. Raises as :meth:`transcribe` does, after the text that was final.
        """
        engine = self._engine
        job = engine.job(audio)
        streamer = getattr(engine.transcriber, "transcribe_stream", None)
        if len(job.pieces) == 1 and job.pieces[0].audio is audio and callable(streamer):
            engine.notify(job)
            for item in streamer(audio):
                if isinstance(item, Transcript):
                    job.record(0, item)
                    engine.notify(job, 0)
                yield item
            return
        text = _Emitter(job)
        for _ in engine.drive_sync(job, range(len(job.pieces))):
            delta = text.more()
            if delta:
                yield delta
        final = engine.finish(job)
        delta = text.rest(final)
        if delta:
            yield delta
        yield final


class AsyncLongTranscriber(_LongBase):
    """The async twin of :class:`LongTranscriber`; it wraps a sync or an async transcriber.

    Pieces of an async transcriber run as tasks, at most ``concurrency`` at a time; a sync
    transcriber's run in a thread pool of that size. The arguments are those of
    :class:`LongTranscriber`.

    Raises:
        TypeError: ``transcriber`` has no ``transcribe`` method.
        ConfigurationError: An option out of range, or ``carry_prompt`` with a transcriber
            that takes no prompt.
    """

    async def transcribe(self, audio: Audio) -> Transcript:
        """Transcribe ``audio`` of any length; see :meth:`LongTranscriber.transcribe`."""
        job = self._engine.job(audio)
        async for _ in self._engine.drive_async(job, range(len(job.pieces))):
            pass
        return self._engine.finish(job)

    async def transcribe_stream(self, audio: Audio) -> AsyncIterator[str | Usage | Transcript]:
        """Yield final text piece by piece, then the Transcript (as the sync twin)."""
        engine = self._engine
        job = engine.job(audio)
        streamer = getattr(engine.transcriber, "transcribe_stream", None)
        if (
            len(job.pieces) == 1
            and job.pieces[0].audio is audio
            and callable(streamer)
            and engine.asynchronous  # a sync stream would block the event loop
        ):
            engine.notify(job)
            async for item in streamer(audio):
                if isinstance(item, Transcript):
                    job.record(0, item)
                    engine.notify(job, 0)
                yield item
            return
        text = _Emitter(job)
        async for _ in engine.drive_async(job, range(len(job.pieces))):
            delta = text.more()
            if delta:
                yield delta
        final = engine.finish(job)
        delta = text.rest(final)
        if delta:
            yield delta
        yield final


def transcribe_long(transcriber: Transcriber, audio: Audio, **options: Any) -> Transcript:
    """Transcribe ``audio`` of any length with a sync transcriber.

    The same as ``LongTranscriber(transcriber, **options).transcribe(audio)``; the options
    are those of :class:`LongTranscriber`.
    """
    return LongTranscriber(transcriber, **options).transcribe(audio)


async def atranscribe_long(
    transcriber: Transcriber | AsyncTranscriber, audio: Audio, **options: Any
) -> Transcript:
    """Transcribe ``audio`` of any length with a sync or an async transcriber, from async code.

    The same as ``await AsyncLongTranscriber(transcriber, **options).transcribe(audio)``.
    """
    return await AsyncLongTranscriber(transcriber, **options).transcribe(audio)


# --------------------------------------------------------------------------------------------
# Progress bar
# --------------------------------------------------------------------------------------------


class ProgressBar:
    """A one-line progress bar for :class:`TranscriptionProgress` events, on a terminal.

    Pass it as ``progress=`` to :class:`LongTranscriber`. It draws only when ``file`` is a
    terminal (unless ``force``), so it is safe in scripts whose output is redirected.

    Args:
        file: Where to draw (default: ``sys.stderr`` at the time of each event).
        label: The text before the bar.
        width: The bar's width in characters.
        force: Draw even when ``file`` is not a terminal.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> bar = ProgressBar(out, force=True, width=10)
        >>> bar(TranscriptionProgress(done_seconds=30.0, total_seconds=60.0, pieces_done=1,
        ...                           pieces_failed=0, pieces_total=2))
        >>> out.getvalue().strip()
        'Transcribing [#####-----]  50% 0:00:30/0:01:00 of audio, 1/2 pieces'
    """

    def __init__(
        self,
        file: IO[str] | None = None,
        *,
        label: str = "Transcribing",
        width: int = 28,
        force: bool = False,
    ) -> None:
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ConfigurationError(f"width must be a positive whole number, not {width!r}")
        self.file = file
        self.label = label
        self.width = width
        self.force = force
        self._shown = 0
        self._lock = threading.Lock()

    def _target(self) -> IO[str]:
        return self.file if self.file is not None else sys.stderr

    def __call__(self, event: TranscriptionProgress) -> None:
        out = self._target()
        if not self.force:
            isatty = getattr(out, "isatty", None)
            if not (callable(isatty) and isatty()):
                return
        filled = round(self.width * event.fraction)
        bar = "#" * filled + "-" * (self.width - filled)
        line = (
            f"{self.label} [{bar}] {round(100 * event.fraction):3d}% "
            f"{_clock(event.done_seconds)[:-2]}/{_clock(event.total_seconds)[:-2]} of audio, "
            f"{event.pieces_done}/{event.pieces_total} pieces"
        )
        if event.pieces_failed:
            line += f", {event.pieces_failed} failed"
        with self._lock:
            pad = max(0, self._shown - len(line))
            out.write("\r" + line + " " * pad)
            self._shown = len(line)
            if event.finished:
                out.write("\n")
                self._shown = 0
            out.flush()
