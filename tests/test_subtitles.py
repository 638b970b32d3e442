"""Subtitles, JSON and text from transcripts: readable cues that never overlap."""

from __future__ import annotations

import itertools
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chainvoice as cv
from chainvoice._subtitles import CUE_SECONDS, LINE_CHARS, cues, to_json, to_srt, to_text, to_vtt

SRT_TIME = re.compile(r"^(\d\d):(\d\d):(\d\d),(\d\d\d) --> (\d\d):(\d\d):(\d\d),(\d\d\d)$")
VTT_TIME = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d\d\d) --> (\d\d):(\d\d):(\d\d)\.(\d\d\d)$")


def _ms(h: str, m: str, s: str, ms: str) -> int:
    return ((int(h) * 60 + int(m)) * 60 + int(s)) * 1000 + int(ms)


def _srt_blocks(srt: str) -> list[tuple[int, int, list[str]]]:
    out = []
    for n, block in enumerate(srt.strip().split("\n\n"), 1):
        lines = block.split("\n")
        assert lines[0] == str(n)
        m = SRT_TIME.match(lines[1])
        assert m, lines[1]
        g = m.groups()
        out.append((_ms(*g[:4]), _ms(*g[4:]), lines[2:]))
    return out


def _long_transcript() -> cv.Transcript:
    long_text = (
        "This is a rather long segment that goes on and on for quite a while, more than "
        "two lines of subtitles can hold, so it has to be split into several cues."
    )
    return cv.Transcript(
        "Hello there. " + long_text,
        duration=14.0,
        segments=[
            cv.Segment(text="Hello there.", start=0.0, end=1.5, speaker="A"),
            cv.Segment(text=long_text, start=1.2, end=13.5, speaker="B"),
        ],
    )


def test_srt_splits_long_segments_into_readable_cues_that_do_not_overlap() -> None:
    blocks = _srt_blocks(to_srt(_long_transcript()))
    assert len(blocks) >= 3
    for start, end, lines in blocks:
        assert start <= end
        assert 1 <= len(lines) <= 2
        assert all(len(line) <= LINE_CHARS + len("B: ") for line in lines)
        assert end - start <= CUE_SECONDS * 1000
    for (_, end, _), (start, _, _) in itertools.pairwise(blocks):
        assert end <= start  # the second segment started before the first ended
    text = " ".join(" ".join(lines) for _, _, lines in blocks)
    assert text.startswith("A: Hello there. B: This is a rather long segment")
    assert text.endswith("several cues.")


def test_vtt_has_header_voice_tags_and_escapes_markup() -> None:
    t = cv.Transcript(
        "a <b> & c --> d",
        segments=[cv.Segment(text="a <b> & c --> d", start=0.0, end=2.0, speaker="Ann")],
    )
    vtt = to_vtt(t)
    assert vtt.startswith("WEBVTT\n\n")
    body = vtt.split("\n\n")[1].split("\n")
    assert VTT_TIME.match(body[0])
    assert body[1] == "<v Ann>a &lt;b&gt; &amp; c --&gt; d"


def test_word_times_place_the_cuts() -> None:
    words = [
        cv.Word(text=w, start=i * 1.0, end=i * 1.0 + 0.8)
        for i, w in enumerate(
            ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
        )
    ]
    t = cv.Transcript(
        "one two three four five six seven eight nine ten",
        segments=[cv.Segment(text=" ".join(w.text for w in words), start=0, end=10, words=words)],
    )
    got = cues(t)
    assert [c.text for c in got] == ["one two three four five six seven", "eight nine ten"]
    assert got[0].start == 0.0 and got[0].end == pytest.approx(6.8)
    assert got[1].start == 7.0 and got[1].end == 10.0


def test_untimed_text_uses_the_duration_and_no_times_at_all_is_a_clear_error() -> None:
    assert _srt_blocks(to_srt(cv.Transcript("hello world", duration=2.0))) == [
        (0, 2000, ["hello world"])
    ]
    with pytest.raises(cv.ConfigurationError, match="no times"):
        to_srt(cv.Transcript("hello world"))
    assert to_srt(cv.Transcript("")) == ""
    assert to_vtt(cv.Transcript("")) == "WEBVTT\n"


def test_text_without_spaces_is_cut_by_width() -> None:
    t = cv.Transcript("東京は日本の首都です。" * 10, duration=8.0)
    for _, _, lines in _srt_blocks(to_srt(t)):
        for line in lines:
            assert len(line) <= LINE_CHARS // 2
    joined = "".join("".join(lines) for _, _, lines in _srt_blocks(to_srt(t)))
    assert joined == "東京は日本の首都です。" * 10


def test_json_and_text() -> None:
    t = _long_transcript()
    data = json.loads(to_json(t))
    assert data["text"] == t.text
    assert data["duration"] == 14.0
    assert [s["speaker"] for s in data["segments"]] == ["A", "B"]
    assert to_text(t).splitlines()[0] == "A: Hello there."
    assert to_text(t).splitlines()[1].startswith("B: This is")
    assert to_text(cv.Transcript(" just text ")) == "just text\n"


segment_st = st.tuples(
    st.floats(0, 100, allow_nan=False),
    st.floats(0, 20, allow_nan=False),
    st.text(alphabet=st.sampled_from("abc de,.!?"), min_size=1, max_size=300),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(segment_st, min_size=1, max_size=8))
def test_cues_never_overlap_and_keep_every_word(
    items: list[tuple[float, float, str]],
) -> None:
    segments = [cv.Segment(text=text, start=s, end=s + d) for s, d, text in items]
    t = cv.Transcript(" ".join(text for _, _, text in items), segments=segments)
    blocks = _srt_blocks(to_srt(t)) if t.text.strip() else []
    for start, end, _ in blocks:
        assert start <= end
    for (_, end, _), (start, _, _) in itertools.pairwise(blocks):
        assert end <= start
    words_in = sorted(w for _, _, text in items for w in text.split())
    words_out = sorted(w for _, _, lines in blocks for line in lines for w in line.split())
    assert words_out == words_in
