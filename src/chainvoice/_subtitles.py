"""Transcripts as subtitles (SRT, WebVTT), JSON and plain text.

Cues are made readable: at most two lines of at most 42 characters (a wide CJK character
counts as two) and at most 7 seconds each. A longer segment is split, at word times when
the transcript has them, else in proportion to its characters, preferring punctuation; and
cues never overlap.
"""

from __future__ import annotations

import json
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

_CUE_CHARS = LINE_CHARS * CUE_LINES
_SPACE = re.compile(r"\s+")
_CJK_CLAUSE = re.compile("(?<=[\u3002\uff01\uff1f\u3001\uff0c])")
# Punctuation after which a cue may end (with the CJK full stop, comma, ! and ?).
_BREAK_AFTER = tuple(".!?\u2026;:,\u3002\uff01\uff1f\u3001\uff0c")


@attrs.frozen
class Cue:
    """One subtitle: its text and times in seconds.

    Attributes:
        start: When it appears.
        end: When it disappears.
        text: What it says, on one line (it is wrapped when written).
        speaker: Who says it, when the transcript tells.
    """

    start: float
    end: float
    text: str
    speaker: str | None = None


@attrs.frozen
class _Timed:
    text: str
    start: float
    end: float
    glued: bool = False  # joins the previous unit with no space (a piece of a long word)


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


def _chunk(items: Sequence[_Timed]) -> list[list[_Timed]]:
    """Group timed units into cues within the length and duration limits."""
    groups: list[list[_Timed]] = []
    current: list[_Timed] = []
    for item in items:
        if current:
            length = _width(_join([*current, item]))
            too_long = length > _CUE_CHARS or item.end - current[0].start > CUE_SECONDS
            filled = _width(_join(current))
            at_punct = current[-1].text.endswith(_BREAK_AFTER) and filled >= _CUE_CHARS // 2
            if too_long or at_punct:
                groups.append(current)
                current = []
        current.append(item)
    if current:
        groups.append(current)
    return groups


def _words_in(words: Sequence[Word], start: float, end: float) -> list[_Timed]:
    return [
        _Timed(_clean(w.text), w.start, max(w.start, w.end))
        for w in words
        if _clean(w.text) and start - 1e-6 <= w.start <= end + 1e-6
    ]


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
        out.append(_Timed(unit, at, at + step, glued))
        at += step
    return out


def cues(transcript: Transcript) -> list[Cue]:
    """The transcript as readable, non-overlapping subtitle cues, in time order.

    Raises:
        ConfigurationError: The transcript has text but no times (no segments and no
            duration), so cues cannot be placed.
    """
    segments = [
        (s.start, max(s.start, s.end), _clean(s.text), s.speaker, s.words)
        for s in transcript.segments
        if _clean(s.text)
    ]
    if not segments:
        text = _clean(transcript.text)
        if not text:
            return []
        if transcript.duration is None:
            raise ConfigurationError(
                "this transcript has no times (no segments and no duration), so it cannot be "
                "written as subtitles; ask the transcriber for segments or timestamps"
            )
        segments = [(0.0, max(0.0, transcript.duration), text, None, ())]
    segments.sort(key=lambda s: (s[0], s[1]))
    out: list[Cue] = []
    for start, end, text, speaker, seg_words in segments:
        timed = _words_in(seg_words or transcript.words, start, end)
        if not timed or _join(timed) != text:
            timed = _spread(text, start, end)
        groups = _chunk(timed)
        for i, group in enumerate(groups):
            cue_end = end if i == len(groups) - 1 else group[-1].end
            out.append(Cue(group[0].start, max(cue_end, group[0].start), _join(group), speaker))
    return _no_overlap(out)


def _no_overlap(items: list[Cue]) -> list[Cue]:
    """Cut each cue's end at the next cue's start; merge cues that would be left empty."""
    out: list[Cue] = []
    for cue in items:
        if out and cue.start <= out[-1].start + 1e-3:
            prev = out.pop()
            speaker = prev.speaker if prev.speaker == cue.speaker else None
            cue = Cue(prev.start, max(prev.end, cue.end), f"{prev.text} {cue.text}", speaker)
        out.append(cue)
    for i in range(len(out) - 1):
        if out[i].end > out[i + 1].start:
            out[i] = attrs.evolve(out[i], end=out[i + 1].start)
    return out


def _wrap(text: str) -> list[str]:
    """One or two balanced lines, each at most LINE_CHARS where the words allow."""
    total = _width(text)
    if total <= LINE_CHARS:
        return [text]
    spaces = [i for i, c in enumerate(text) if c == " "]
    if not spaces:  # text without spaces: cut in the middle
        return _cut(text, (total + 1) // 2)[:2] if total <= _CUE_CHARS else [text]

    def badness(i: int) -> tuple[bool, float]:
        left, right = _width(text[:i]), _width(text[i + 1 :])
        return (max(left, right) > LINE_CHARS, abs(left - right))

    best = min(spaces, key=badness)
    return [text[:best], text[best + 1 :]]


def _stamp(ms: int, sep: str) -> str:
    hours, rest = divmod(max(0, ms), 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{millis:03d}"


def _timed_cues(transcript: Transcript) -> list[tuple[int, int, Cue]]:
    """Cues with start and end in milliseconds that never overlap after rounding."""
    items = cues(transcript)
    out = []
    for i, cue in enumerate(items):
        start_ms = round(cue.start * 1000)
        end_ms = max(round(cue.end * 1000), start_ms)
        if i + 1 < len(items):
            end_ms = min(end_ms, round(items[i + 1].start * 1000))
        out.append((start_ms, end_ms, cue))
    return out


def _label(cue: Cue, previous: Cue | None) -> str | None:
    if cue.speaker is None or (previous is not None and previous.speaker == cue.speaker):
        return None
    return cue.speaker


def to_srt(transcript: Transcript) -> str:
    """The transcript as SubRip (``.srt``) subtitles.

    A change of speaker starts the cue with ``Speaker: ``.

    Raises:
        ConfigurationError: The transcript has no times.
    """
    blocks = []
    previous: Cue | None = None
    for n, (start_ms, end_ms, cue) in enumerate(_timed_cues(transcript), 1):
        label = _label(cue, previous)
        text = f"{label}: {cue.text}" if label else cue.text
        stamps = f"{_stamp(start_ms, ',')} --> {_stamp(end_ms, ',')}"
        blocks.append(f"{n}\n{stamps}\n" + "\n".join(_wrap(text)) + "\n")
        previous = cue
    return "\n".join(blocks)


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(transcript: Transcript) -> str:
    """The transcript as WebVTT (``.vtt``) subtitles; speakers become ``<v Name>`` voice tags.

    Raises:
        ConfigurationError: The transcript has no times.
    """
    blocks = ["WEBVTT\n"]
    for start_ms, end_ms, cue in _timed_cues(transcript):
        lines = [_vtt_escape(line) for line in _wrap(cue.text)]
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
