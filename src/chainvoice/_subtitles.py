"""Transcripts as subtitles (SRT, WebVTT), JSON and plain text.

Cues are made readable:

- At most two lines of at most 42 characters (a wide CJK character counts as two, and in
  SRT the ``Speaker: `` label that starts a change of speaker counts too) and at most 7
  seconds each. A longer segment is split, at word times when the transcript has them,
  else in proportion to its characters, preferring punctuation.
- A cue stays at least 5/6 of a second when the time until the next cue allows it, and
  never less than 0.3 seconds: when the next cue would start sooner, it starts that much
  later instead.
- Cues never overlap, and each text is shown from when it is said (never earlier, and
  later only while an earlier cue still holds the screen). When speakers overlap (an
  interjection such as "Mm-hmm." inside someone else's segment), the later speaker gets
  their own cue from the moment they start, and the earlier speaker's segment is split
  around it: their words said before the interjection are shown before it, the rest after
  it ends. Of segments that start together, the one that ends first is shown first.
- In SRT a change of speaker starts the cue with ``Speaker: ``; WebVTT marks every cue
  that has a speaker with a ``<v Speaker>`` voice tag.

Times must be finite: a NaN, infinite or absurd (over 10**9 seconds) time raises
:class:`ConfigurationError`. A negative time is taken as 0, and a segment that ends before
it starts as one that ends where it starts. Times are written to the millisecond.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from chainvoice._errors import ConfigurationError

if TYPE_CHECKING:
    from chainvoice._types import Transcript, Word

__all__ = ["Cue", "cues", "to_json", "to_srt", "to_text", "to_vtt"]

LINE_CHARS = 42
"""The longest subtitle line, in characters (a common broadcast guideline)."""
CUE_LINES = 2
"""The most lines in one cue."""
CUE_SECONDS = 7.0
"""The longest a cue stays on screen."""
MIN_CUE_SECONDS = 5 / 6
"""The shortest a cue stays on screen when the next cue leaves time for it."""
SHORTEST_CUE_SECONDS = 0.3
"""The shortest a cue ever stays on screen; the next cue waits for it if need be."""

_CUE_CHARS = LINE_CHARS * CUE_LINES
_MAX_SECONDS = 1e9  # about 32 years: anything later is a broken time
_LABEL_ROOM = LINE_CHARS // 2  # the least room a speaker label leaves on a first line
_SPACE = re.compile(r"\s+")
_CJK_CLAUSE = re.compile("(?<=[\u3002\uff01\uff1f\u3001\uff0c])")
# Punctuation after which a cue may end (with the CJK full stop, comma, ! and ?).
_BREAK_AFTER = tuple(".!?\u2026;:,\u3002\uff01\uff1f\u3001\uff0c")


@attrs.frozen
class Cue:
    """One subtitle: its text and times in seconds.

    Attributes:
        start: When it appears.
        end: When it disappears (always later than ``start``).
        text: What it says, on one line.
        speaker: Who says it, when the transcript tells.
        lines: The text as it is written: one or two lines of at most 42 characters
            (in SRT a ``Speaker: `` label goes before the first line when the speaker
            changes, and room is kept for it).
    """

    start: float
    end: float
    text: str
    speaker: str | None = None
    lines: tuple[str, ...] = attrs.field()

    @lines.default
    def _one_line(self) -> tuple[str, ...]:
        return (self.text,)


@attrs.frozen
class _Timed:
    text: str
    start: float
    end: float
    glued: bool = False  # joins the previous unit with no space (a piece of a long word)


@attrs.frozen
class _Seg:
    """A segment ready to be cued: clean text, sane times, and its units."""

    start: float
    end: float
    speaker: str | None
    units: tuple[_Timed, ...]


@attrs.define
class _Run:
    """Consecutive units of one segment, shown without another segment between them."""

    seg: _Seg
    units: list[_Timed]
    last: bool = False  # holds the segment's last unit


@attrs.define
class _Open:
    """A segment being shown: its next unit, and the earliest time it may resume."""

    seg: _Seg
    at: int = 0
    resume: float = 0.0


def _clean(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def _width(text: str) -> int:
    """Display width: wide (CJK) characters count twice."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _cut(word: str, width: int) -> list[str]:
    """``word`` in pieces no wider than ``width``."""
    pieces = [""]
    for char in word:
        if pieces[-1] and _width(pieces[-1] + char) > width:
            pieces.append("")
        pieces[-1] += char
    return pieces


def _join(items: Sequence[_Timed]) -> str:
    out = ""
    for item in items:
        out += item.text if (item.glued or not out) else " " + item.text
    return out


def _split_unit(unit: _Timed, width: int) -> list[_Timed]:
    """``unit`` in glued pieces no wider than ``width``, its time shared by their widths."""
    pieces = _cut(unit.text, max(2, width))
    if len(pieces) == 1:
        return [unit]
    total = sum(_width(p) for p in pieces)
    out = []
    at = unit.start
    for i, piece in enumerate(pieces):
        step = (unit.end - unit.start) * _width(piece) / total
        out.append(_Timed(piece, at, at + step, unit.glued if i == 0 else True))
        at += step
    return out


def _lines(items: Sequence[_Timed], first: int) -> tuple[str, ...] | None:
    """``items`` on one line, or on two balanced lines, if they fit; else None.

    ``first`` is the room on the first line; the second has :data:`LINE_CHARS`.
    """
    widths = [_width(item.text) for item in items]
    seps = [0] + [0 if item.glued else 1 for item in items[1:]]
    total = sum(widths) + sum(seps)
    if total <= first:
        return (_join(items),)
    best: tuple[bool, int, int] | None = None
    left = 0
    for i in range(1, len(items)):
        left += seps[i - 1] + widths[i - 1]
        right = total - left - seps[i]
        if left <= first and right <= LINE_CHARS:
            key = (items[i].glued, abs(left - right), i)  # between words, then balanced
            best = key if best is None or key < best else best
    if best is None:
        return None
    i = best[2]
    return (_join(items[:i]), _join(items[i:]))


def _chunk(items: Sequence[_Timed], first: int) -> list[tuple[list[_Timed], tuple[str, ...]]]:
    """Group timed units into cues within the line and duration limits, with their lines.

    ``first`` is the room on the first line of the first cue (less than a line when a
    speaker label goes before it). Every unit fits a line on its own.
    """
    groups: list[tuple[list[_Timed], tuple[str, ...]]] = []
    current: list[_Timed] = []
    lines: tuple[str, ...] = ()
    for item in items:
        room = LINE_CHARS if groups else first
        if current:
            joined = _lines([*current, item], room)
            too_long = joined is None or item.end - current[0].start > CUE_SECONDS
            filled = sum(_width(line) for line in lines)
            at_punct = current[-1].text.endswith(_BREAK_AFTER) and filled >= _CUE_CHARS // 2
            if joined is not None and not (too_long or at_punct):
                current.append(item)
                lines = joined
                continue
            groups.append((current, lines))
            room = LINE_CHARS
        current = [item]
        lines = _lines(current, room) or (item.text,)
    if current:
        groups.append((current, lines))
    return groups


def _fit(units: Sequence[_Timed]) -> list[_Timed]:
    """``units`` with any unit wider than a line cut into glued pieces."""
    return [piece for unit in units for piece in _split_unit(unit, LINE_CHARS)]


def _words_in(words: Sequence[Word], start: float, end: float) -> list[_Timed]:
    out = []
    for w in words:
        text = _clean(w.text)
        if text and start - 1e-6 <= w.start <= end + 1e-6:
            at = min(max(w.start, start), end)
            out.append(_Timed(text, at, min(max(at, w.end), end)))
    return out


def _spread(text: str, start: float, end: float) -> list[_Timed]:
    """Units of ``text`` with times spread over [start, end] in proportion to their length.

    A unit is a word; a word longer than a line (as in text without spaces) is cut into
    line-long pieces.
    """
    units: list[tuple[str, bool]] = []
    for word in text.split(" "):
        clauses = [c for c in _CJK_CLAUSE.split(word) if c]
        pieces = [piece for clause in clauses for piece in _cut(clause, LINE_CHARS)] or [word]
        units.extend((piece, i > 0) for i, piece in enumerate(pieces))
    total = sum(_width(u) + 1 for u, _ in units)
    span = max(0.0, end - start)
    out = []
    at = start
    for unit, glued in units:
        step = span * (_width(unit) + 1) / total
        out.append(_Timed(unit, at, min(at + step, end), glued))
        at += step
    return out


def _finite(what: str, **times: float | None) -> None:
    for name, value in times.items():
        if value is not None and not (math.isfinite(value) and abs(value) <= _MAX_SECONDS):
            shown = ", ".join(f"{k}={v!r}" for k, v in times.items())
            raise ConfigurationError(
                f"{what} has {name}={value!r} ({shown}): subtitle times must be finite "
                f"seconds (at most {_MAX_SECONDS:.0e}); repair or drop it before writing "
                "subtitles, e.g. attrs.evolve(transcript, segments=[...])"
            )


def _check(transcript: Transcript) -> None:
    """Raise ConfigurationError for a time that is NaN, infinite or absurdly large."""
    _finite("the transcript", duration=transcript.duration)
    for i, seg in enumerate(transcript.segments):
        _finite(f"segment {i} ({seg.text[:30]!r})", start=seg.start, end=seg.end)
        for j, w in enumerate(seg.words):
            _finite(f"word {j} ({w.text!r}) of segment {i}", start=w.start, end=w.end)
    for j, w in enumerate(transcript.words):
        _finite(f"word {j} ({w.text!r})", start=w.start, end=w.end)


def _segments(transcript: Transcript) -> list[_Seg]:
    """The transcript's segments with text, or its whole text over its duration."""
    _check(transcript)
    raw: list[tuple[float, float, str, str | None, Sequence[Word]]] = [
        (s.start, s.end, _clean(s.text), s.speaker, s.words or transcript.words)
        for s in transcript.segments
        if _clean(s.text)
    ]
    if not raw:
        text = _clean(transcript.text)
        if not text:
            return []
        if transcript.duration is None:
            raise ConfigurationError(
                "this transcript has no times (no segments and no duration), so its "
                "subtitles cannot be placed: give it the audio's duration, e.g. "
                "attrs.evolve(transcript, duration=audio.duration), or ask the "
                "transcriber for segment timestamps"
            )
        raw = [(0.0, transcript.duration, text, None, transcript.words)]
    out = []
    for start, end, text, speaker, words in raw:
        start = max(0.0, start)
        end = max(start, end)
        timed = _words_in(words, start, end)
        if not timed or _join(timed) != text:
            timed = _spread(text, start, end)
        out.append(_Seg(start, end, speaker, tuple(_fit(timed))))
    return out


def _runs(segs: Sequence[_Seg]) -> list[_Run]:
    """The segments' units in the order they are shown, as runs of one segment each.

    A segment that starts while another is being said interrupts it: all its units are
    shown, then the interrupted segment resumes no earlier than the interruption ended.
    Of segments that start at the same time, the one that ends first is shown first.
    """
    order = sorted(range(len(segs)), key=lambda i: (segs[i].start, segs[i].end, i))
    runs: list[_Run] = []
    stack: list[_Open] = []
    k = 0
    while k < len(order) or stack:
        if not stack:
            stack.append(_Open(segs[order[k]]))
            k += 1
            continue
        top = stack[-1]
        seg = top.seg
        if top.at == len(seg.units):
            stack.pop()
            if stack:
                stack[-1].resume = max(stack[-1].resume, top.resume, seg.end)
            continue
        unit = seg.units[top.at]
        if k < len(order):
            nxt = segs[order[k]]
            if nxt.start <= max(unit.start, top.resume):
                if nxt.start > seg.start:  # it interrupts
                    stack.append(_Open(nxt))
                else:  # it starts with the current one and ends later: it comes next
                    stack.insert(len(stack) - 1, _Open(nxt))
                k += 1
                continue
        if unit.start < top.resume:
            unit = attrs.evolve(unit, start=top.resume, end=max(unit.end, top.resume))
        if runs and runs[-1].seg is seg:
            runs[-1].units.append(unit)
        else:
            runs.append(_Run(seg, [unit]))
        top.at += 1
        runs[-1].last = top.at == len(seg.units)
    return runs


def _label_width(speaker: str) -> int:
    return _width(speaker) + 2  # "Speaker: "


def _placed(transcript: Transcript) -> list[tuple[int, int, Cue, bool]]:
    """The cues with start and end in milliseconds, and whether SRT labels the speaker."""
    drafts: list[tuple[int, int, Cue, bool]] = []
    previous: str | None = None
    for run in _runs(_segments(transcript)):
        speaker = run.seg.speaker
        labelled = speaker is not None and speaker != previous
        previous = speaker
        first = LINE_CHARS
        units = run.units
        if labelled and speaker is not None:
            first = max(_LABEL_ROOM, LINE_CHARS - _label_width(speaker))
            units = [*_split_unit(units[0], first), *units[1:]]
        groups = _chunk(units, first)
        for i, (group, lines) in enumerate(groups):
            end = group[-1].end
            if run.last and i == len(groups) - 1:
                end = max(end, run.seg.end)
            cue = Cue(0.0, 0.0, _join(group), speaker, lines)
            drafts.append((_ms(group[0].start), _ms(end), cue, labelled and i == 0))
    duration = None if transcript.duration is None else _ms(transcript.duration)
    out = []
    prev_end = 0
    for i, (want_start, want_end, cue, labelled) in enumerate(drafts):
        start = max(want_start, prev_end)
        end = min(max(want_end, start + _ms(MIN_CUE_SECONDS)), start + _ms(CUE_SECONDS))
        if i + 1 < len(drafts):
            end = min(end, drafts[i + 1][0])
        elif duration is not None:
            end = min(end, max(duration, want_end))
        end = max(end, start + _ms(SHORTEST_CUE_SECONDS))
        out.append((start, end, attrs.evolve(cue, start=start / 1000, end=end / 1000), labelled))
        prev_end = end
    return out


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def cues(transcript: Transcript) -> list[Cue]:
    """The transcript as readable, non-overlapping subtitle cues, in time order.

    Raises:
        ConfigurationError: A time is NaN or infinite, or the transcript has text but no
            times at all (no segments and no duration), so cues cannot be placed.
    """
    return [cue for _, _, cue, _ in _placed(transcript)]


def _stamp(ms: int, sep: str) -> str:
    hours, rest = divmod(max(0, ms), 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{millis:03d}"


def to_srt(transcript: Transcript) -> str:
    """The transcript as SubRip (``.srt``) subtitles.

    A change of speaker starts the cue with ``Speaker: ``.

    Raises:
        ConfigurationError: A time is NaN or infinite, or the transcript has no times.
    """
    blocks = []
    for n, (start_ms, end_ms, cue, labelled) in enumerate(_placed(transcript), 1):
        lines = list(cue.lines)
        if labelled:
            lines[0] = f"{cue.speaker}: {lines[0]}"
        stamps = f"{_stamp(start_ms, ',')} --> {_stamp(end_ms, ',')}"
        blocks.append(f"{n}\n{stamps}\n" + "\n".join(lines) + "\n")
    return "\n".join(blocks)


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(transcript: Transcript) -> str:
    """The transcript as WebVTT (``.vtt``) subtitles; speakers become ``<v Name>`` voice tags.

    Raises:
        ConfigurationError: A time is NaN or infinite, or the transcript has no times.
    """
    blocks = ["WEBVTT\n"]
    for start_ms, end_ms, cue, _ in _placed(transcript):
        lines = [_vtt_escape(line) for line in cue.lines]
        if cue.speaker:
            lines[0] = f"<v {_vtt_escape(cue.speaker)}>{lines[0]}"
        stamps = f"{_stamp(start_ms, '.')} --> {_stamp(end_ms, '.')}"
        blocks.append(f"{stamps}\n" + "\n".join(lines) + "\n")
    return "\n".join(blocks)


def _word_dict(word: Word) -> dict[str, Any]:
    out: dict[str, Any] = {"text": word.text, "start": word.start, "end": word.end}
    if word.speaker is not None:
        out["speaker"] = word.speaker
    if word.probability is not None:
        out["probability"] = word.probability
    return out


def to_json(transcript: Transcript) -> str:
    """The transcript as JSON: text, language, duration, model, segments (with words), words."""
    data: dict[str, Any] = {
        "text": transcript.text,
        "language": transcript.language,
        "duration": transcript.duration,
        "model": transcript.model,
        "segments": [
            {
                "start": s.start,
                "end": s.end,
                "text": s.text,
                "speaker": s.speaker,
                "words": [_word_dict(w) for w in s.words],
            }
            for s in transcript.segments
        ],
        "words": [_word_dict(w) for w in transcript.words],
    }
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def to_text(transcript: Transcript) -> str:
    """The transcript as plain text; with speakers, one ``Speaker: text`` line per turn."""
    if not transcript.speakers:
        return transcript.text.strip() + "\n" if transcript.text.strip() else ""
    lines: list[str] = []
    last: str | None = None
    for seg in transcript.segments:
        text = _clean(seg.text)
        if not text:
            continue
        if lines and seg.speaker == last:
            lines[-1] += " " + text
        else:
            lines.append(f"{seg.speaker}: {text}" if seg.speaker else text)
        last = seg.speaker
    return "\n".join(lines) + "\n"
