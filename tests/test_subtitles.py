"""Subtitles, JSON and text from transcripts: readable cues that never overlap."""

from __future__ import annotations

import itertools
import json
import math
import re

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chainvoice as cv
from chainvoice._subtitles import (
    CUE_LINES,
    CUE_SECONDS,
    LINE_CHARS,
    MIN_CUE_SECONDS,
    SHORTEST_CUE_SECONDS,
    _width,
    cues,
    to_json,
    to_srt,
    to_text,
    to_vtt,
)

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
        segments=[
            cv.Segment(text=" ".join(w.text for w in words), start=0, end=10, words=tuple(words))
        ],
    )
    got = cues(t)
    assert [c.text for c in got] == ["one two three four five six seven", "eight nine ten"]
    assert got[0].start == 0.0 and got[0].end == pytest.approx(6.8)
    assert got[1].start == 7.0 and got[1].end == 10.0


def test_untimed_text_uses_the_duration_and_no_times_at_all_is_a_clear_error() -> None:
    assert _srt_blocks(to_srt(cv.Transcript("hello world", duration=2.0))) == [
        (0, 2000, ["hello world"])
    ]
    for write in (to_srt, to_vtt, cues):
        with pytest.raises(cv.ConfigurationError, match=r"no times.*duration=audio\.duration"):
            write(cv.Transcript("hello world"))
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


INTERJECTION = cv.Transcript(
    "...",
    segments=[
        cv.Segment(
            text="So I went down to the harbour early in the morning, and I waited there "
            "for the boat, which was late again, as it always is, for a while here.",
            start=0.0,
            end=20.0,
            speaker="A",
        ),
        cv.Segment(text="Mm-hmm.", start=3.0, end=3.5, speaker="B"),
        cv.Segment(text="Then it came.", start=20.0, end=22.0, speaker="A"),
    ],
)


def test_an_interjection_gets_its_own_cue_at_its_own_time_with_its_speaker() -> None:
    blocks = _srt_blocks(to_srt(INTERJECTION))
    # A's segment is split around B's "Mm-hmm.", which shows from 3.0 s to 3.5 s.
    assert blocks[0][0] == 0 and blocks[0][1] == 3000 and blocks[0][2][0].startswith("A: So ")
    assert blocks[1] == (3000, 3500, ["B: Mm-hmm."])
    assert blocks[2][0] == 3500 and blocks[2][2][0].startswith("A: ")
    assert blocks[-1] == (20000, 22000, ["Then it came."])  # A goes on: no new label
    for (_, end, _), (start, _, _) in itertools.pairwise(blocks):
        assert end <= start
    text = " ".join(" ".join(lines) for _, _, lines in blocks)
    words = " ".join(s.text for s in INTERJECTION.segments).split()
    assert [w for w in text.split() if w not in ("A:", "B:", "Mm-hmm.")] == [
        w for w in words if w != "Mm-hmm."
    ]
    # No cue is crammed: every A cue is within the limits and at least one line long.
    assert all(1 <= len(lines) <= CUE_LINES for _, _, lines in blocks)

    vtt = to_vtt(INTERJECTION).split("\n\n")
    assert vtt[2] == "00:00:03.000 --> 00:00:03.500\n<v B>Mm-hmm."
    assert vtt[3].split("\n")[1].startswith("<v A>")


def test_an_interjection_at_the_same_moment_comes_first_not_after_the_long_segment() -> None:
    t = cv.Transcript(
        "...",
        segments=[
            cv.Segment(text="one two three four five six " * 4, start=0.0, end=12.0, speaker="A"),
            cv.Segment(text="Right.", start=0.0, end=0.6, speaker="B"),
            cv.Segment(text="Sure.", start=5.0, end=5.4, speaker="C"),
        ],
    )
    got = cues(t)
    assert (got[0].text, got[0].speaker, got[0].start) == ("Right.", "B", 0.0)
    assert got[0].end == pytest.approx(0.6)
    assert got[1].speaker == "A" and got[1].start == pytest.approx(0.6)
    sure = next(c for c in got if c.speaker == "C")
    assert sure.start == 5.0 and sure.text == "Sure."
    assert all(a.end <= b.start for a, b in itertools.pairwise(got))


def test_zero_length_and_reversed_segments_get_a_readable_duration() -> None:
    t = cv.Transcript(
        "...",
        segments=[
            cv.Segment(text="Zero.", start=40.0, end=40.0),
            cv.Segment(text="Reversed.", start=50.0, end=45.0),
            cv.Segment(text="Squeezed.", start=60.0, end=60.0),
            cv.Segment(text="Right after.", start=60.1, end=61.5),
        ],
        duration=70.0,
    )
    blocks = _srt_blocks(to_srt(t))
    minimum = round(MIN_CUE_SECONDS * 1000)
    assert blocks[0] == (40000, 40000 + minimum, ["Zero."])
    assert blocks[1] == (50000, 50000 + minimum, ["Reversed."])
    # No room before the next cue: the shortest duration, and the next cue waits for it.
    shortest = round(SHORTEST_CUE_SECONDS * 1000)
    assert blocks[2] == (60000, 60000 + shortest, ["Squeezed."])
    assert blocks[3] == (60000 + shortest, 61500, ["Right after."])


def test_a_short_cue_is_lengthened_only_into_free_time_and_not_past_the_end() -> None:
    t = cv.Transcript(
        "...",
        segments=[
            cv.Segment(text="Yes.", start=1.0, end=1.2),
            cv.Segment(text="No.", start=1.5, end=1.7),
            cv.Segment(text="Bye.", start=9.5, end=9.6),
        ],
        duration=10.0,
    )
    minimum = round(MIN_CUE_SECONDS * 1000)
    assert [(start, end) for start, end, _ in _srt_blocks(to_srt(t))] == [
        (1000, 1500),  # up to the next cue
        (1500, 1500 + minimum),  # into the free time after it
        (9500, 10000),  # up to the end of the audio
    ]


@pytest.mark.parametrize(
    ("transcript", "match"),
    [
        (
            cv.Transcript("a", segments=[cv.Segment(text="a", start=math.nan, end=1.0)]),
            r"segment 0 \('a'\) has start=nan",
        ),
        (
            cv.Transcript(
                "a b",
                segments=[
                    cv.Segment(text="a", start=0.0, end=1.0),
                    cv.Segment(text="b", start=1.0, end=math.inf),
                ],
            ),
            r"segment 1 \('b'\) has end=inf",
        ),
        (
            cv.Transcript(
                "a",
                segments=[
                    cv.Segment(
                        text="a",
                        start=0.0,
                        end=1.0,
                        words=(cv.Word(text="a", start=0, end=math.nan),),
                    )
                ],
            ),
            r"word 0 \('a'\) of segment 0 has end=nan",
        ),
        (cv.Transcript("a", words=[cv.Word(text="a", start=-math.inf, end=1)]), "start=-inf"),
        (cv.Transcript("a", duration=math.nan), "duration=nan"),
        (
            cv.Transcript("a", segments=[cv.Segment(text="a", start=1e306, end=1e306)]),
            r"start=1e\+306.*at most 1e\+09",
        ),
    ],
)
def test_non_finite_times_are_a_clear_error(transcript: cv.Transcript, match: str) -> None:
    for write in (to_srt, to_vtt, cues):
        with pytest.raises(cv.ConfigurationError, match=match) as caught:
            write(transcript)
        assert "finite" in str(caught.value)


def test_negative_times_start_at_zero() -> None:
    t = cv.Transcript("hi", segments=[cv.Segment(text="hi", start=-0.4, end=1.0)])
    assert _srt_blocks(to_srt(t)) == [(0, 1000, ["hi"])]


def test_a_speaker_label_counts_in_the_line_and_long_words_are_cut() -> None:
    url = "https://example.com/a/very/long/path/that/never/ends/index.html"
    words = [
        cv.Word(text=w, start=i * 0.5, end=i * 0.5 + 0.4)
        for i, w in enumerate(["see", url, "for", "the", "details", "of", "the", "whole", "thing"])
    ]
    t = cv.Transcript(
        "...",
        segments=[
            cv.Segment(text="Hi.", start=0.0, end=0.3, speaker="Agent"),
            cv.Segment(
                text=" ".join(w.text for w in words),
                start=0.5,
                end=5.0,
                speaker="Dr. Evelyn Mwangi-Okafor",
                words=tuple(attrs.evolve(w, start=w.start + 0.5, end=w.end + 0.5) for w in words),
            ),
        ],
    )
    blocks = _srt_blocks(to_srt(t))
    assert blocks[1][2][0].startswith("Dr. Evelyn Mwangi-Okafor: see")
    for _, _, lines in blocks:
        assert 1 <= len(lines) <= CUE_LINES
        assert all(_width(line) <= LINE_CHARS for line in lines), lines
    shown = " ".join(" ".join(lines) for _, _, lines in blocks)
    shown = shown.replace("Dr. Evelyn Mwangi-Okafor: ", "").replace("Agent: ", "")
    assert shown.replace(" ", "") == "Hi." + "".join(w.text for w in words)
    # A first word a line long is cut so that it fits after the label.
    t = cv.Transcript(
        "...", segments=[cv.Segment(text="x" * 42 + " y", start=0, end=2, speaker="A")]
    )
    assert _srt_blocks(to_srt(t))[0][2] == ["A: " + "x" * 39, "xxx y"]


# Each segment writes with its own characters, so every piece of output names its segment.
ALPHABETS = ["ab.", "cd,", "ef!", "gh?", "ij;", "kl:"]
SPEAKERS = [None, "A", "B", "Dr. Carol Smith"]
LABEL = re.compile(r"^(A|B|Dr\. Carol Smith): ")


@st.composite
def segments(draw: st.DrawFn) -> list[cv.Segment]:
    out = []
    for i in range(draw(st.integers(1, len(ALPHABETS)))):
        alphabet = ALPHABETS[i]
        words = draw(
            st.lists(st.text(alphabet=alphabet, min_size=1, max_size=60), min_size=1, max_size=30)
        )
        start = draw(st.floats(-2, 60, allow_nan=False, allow_infinity=False))
        end = start + draw(st.floats(-3, 25, allow_nan=False, allow_infinity=False))
        timed: list[cv.Word] = []
        if draw(st.booleans()):  # word times, in order, within the segment
            step = max(0.0, end - start) / len(words)
            timed = [
                cv.Word(text=w, start=start + k * step, end=start + (k + 0.8) * step)
                for k, w in enumerate(words)
            ]
        out.append(
            cv.Segment(
                text=" ".join(words),
                start=start,
                end=end,
                speaker=draw(st.sampled_from(SPEAKERS)),
                words=tuple(timed),
            )
        )
    return out


@settings(max_examples=80, deadline=None)
@given(segments(), st.one_of(st.none(), st.floats(0, 100)))
def test_cues_never_overlap_are_readable_and_keep_all_the_text_in_order(
    segs: list[cv.Segment], duration: float | None
) -> None:
    t = cv.Transcript(" ".join(s.text for s in segs), segments=segs, duration=duration)
    blocks = _srt_blocks(to_srt(t))
    items = cues(t)
    assert len(blocks) == len(items)
    for start, end, lines in blocks:
        assert start < end <= start + CUE_SECONDS * 1000  # a positive, bounded duration
        assert 1 <= len(lines) <= CUE_LINES
        assert all(_width(line) <= LINE_CHARS for line in lines), lines
    for (_, end, _), (start, _, _) in itertools.pairwise(blocks):
        assert end <= start
    # Every character of every segment is there once, in order, and never before it is said.
    said: dict[int, str] = {i: "" for i in range(len(segs))}
    for (start, _, lines), cue in zip(blocks, items, strict=True):
        assert [LABEL.sub("", lines[0]), *lines[1:]] == list(cue.lines)
        for token in cue.text.split():
            (i,) = {n for n, a in enumerate(ALPHABETS) if set(token) <= set(a)}
            said[i] += token
            assert start >= round(max(0.0, segs[i].start) * 1000)
    assert said == {i: s.text.replace(" ", "") for i, s in enumerate(segs)}
