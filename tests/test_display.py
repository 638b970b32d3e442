"""Notebook renderings: Audio players, transcripts with segments, turns as tables."""

from __future__ import annotations

import asyncio

import numpy as np

import chainvoice as cv


def test_transcript_html_shows_text_and_segments_escaped() -> None:
    t = cv.Transcript(
        "Hi <b>there</b>",
        language="en",
        segments=[
            cv.Segment(text="Hi", start=0.0, end=0.5, speaker="A"),
            cv.Segment(text="<b>there</b>", start=61.0, end=62.25, speaker="B"),
        ],
    )
    out = t._repr_html_()
    assert "Hi &lt;b&gt;there&lt;/b&gt;" in out
    assert "<b>there</b>" not in out
    assert "1:01.000" in out and ">A<" in out and ">B<" in out


def test_transcript_html_caps_segments() -> None:
    segs = [cv.Segment(text=f"s{i}", start=i, end=i + 1) for i in range(250)]
    out = cv.Transcript("x", segments=segs)._repr_html_()
    assert "50 more segments" in out
    assert "s199" in out and "s200<" not in out


def test_turn_html_has_players_timings_and_cost() -> None:
    def synth_text(text: str) -> list[cv.Audio]:
        return [cv.Audio(np.zeros(2400, dtype=np.float32), 24000)]

    class Synth:
        def synthesize(self, text: str) -> list[cv.Audio | cv.Usage]:
            return [*synth_text(text), cv.Usage(model="m", cost_usd=0.5)]

    class Stt:
        def transcribe(self, audio: cv.Audio) -> cv.Transcript:
            return cv.Transcript("question")

    chain = cv.Chain(Stt(), lambda c: "An answer.", Synth())
    turn = chain.run(cv.Audio(np.zeros(1600, dtype=np.float32), 16000))
    out = turn._repr_html_()
    assert out.count("<audio") == 2  # the question and the reply
    assert "question" in out and "An answer." in out
    assert "first audio" in out
    assert "unknown" in out  # the transcriber reported no price: cost is unknown, not $0


def test_chain_run_inside_a_notebook_loop() -> None:
    # Jupyter runs cells inside a running event loop; Chain.run must still work there.
    async def cell() -> str:
        return cv.Chain(None, lambda c: "ok").run(text="hi").reply.text

    assert asyncio.run(cell()) == "ok"


def test_transcript_output_formats() -> None:
    t = cv.Transcript(
        "Hello there. General Kenobi.",
        segments=[
            cv.Segment(text="Hello there.", start=0.0, end=1.2, speaker="A"),
            cv.Segment(text="General Kenobi.", start=1.0, end=2.5, speaker="B"),
        ],
    )
    srt = t.to_srt()
    assert srt.startswith("1\n00:00:00,000 --> ")
    assert "General Kenobi." in srt
    vtt = t.to_vtt()
    assert vtt.startswith("WEBVTT")
    import json

    assert json.loads(t.to_json())["segments"][1]["speaker"] == "B"
    assert t.to_text() == "A: Hello there.\nB: General Kenobi.\n"
    # Overlapping segments never give overlapping cues.
    times = [line for line in srt.splitlines() if "-->" in line]
    first_end = times[0].split(" --> ")[1]
    second_start = times[1].split(" --> ")[0]
    assert first_end <= second_start
