"""HTML renderings of transcripts and turns for notebooks (IPython/Jupyter)."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chainvoice._types import StageTiming, Transcript, Turn

__all__ = ["transcript_html", "turn_html"]

#: At most this many segments are listed; a note says how many more there are.
MAX_SEGMENTS = 200

_STYLE = (
    "border-collapse:collapse;text-align:left;font-size:0.9em;margin:0.2em 0;border:1px solid #ccc"
)
_CELL = "padding:0.2em 0.6em;border:1px solid #ddd;vertical-align:top"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(max(seconds, 0.0), 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:06.3f}" if hours else f"{minutes}:{secs:06.3f}"


def _row(label: str, value_html: str) -> str:
    head = f'<th style="{_CELL}">{html.escape(label)}</th>'
    return f'<tr>{head}<td style="{_CELL}">{value_html}</td></tr>'


def transcript_html(transcript: Transcript) -> str:
    """The transcript's text, then its segments with times and speakers when it has them."""
    meta = [m for m in (transcript.language, transcript.model) if m]
    if transcript.duration is not None:
        meta.append(f"{transcript.duration:.2f} s")
    head = f"<small>{html.escape(' · '.join(meta))}</small><br>" if meta else ""
    text = html.escape(transcript.text) if transcript.text else "<em>(no speech)</em>"
    out = [f'<div class="chainvoice-transcript">{head}<p>{text}</p>']
    segments = transcript.segments
    if segments:
        rows = []
        for seg in segments[:MAX_SEGMENTS]:
            who = html.escape(seg.speaker) if seg.speaker else ""
            rows.append(
                f'<tr><td style="{_CELL}">{_clock(seg.start)}&ndash;{_clock(seg.end)}</td>'
                f'<td style="{_CELL}">{who}</td>'
                f'<td style="{_CELL}">{html.escape(seg.text)}</td></tr>'
            )
        more = len(segments) - MAX_SEGMENTS
        if more > 0:
            rows.append(
                f'<tr><td colspan="3" style="{_CELL}"><em>… {more} more segments</em></td></tr>'
            )
        out.append(
            f'<table style="{_STYLE}"><tr><th style="{_CELL}">time</th>'
            f'<th style="{_CELL}">speaker</th><th style="{_CELL}">text</th></tr>'
            + "".join(rows)
            + "</table>"
        )
    out.append("</div>")
    return "".join(out)


def _timing(t: StageTiming | None) -> str:
    if t is None:
        return "&ndash;"
    d = t.duration
    first = t.to_first_output
    text = "unfinished" if d is None else f"{d:.3f} s"
    if first is not None and d is not None and first < d:
        text += f" (first output {first:.3f} s)"
    return text


def turn_html(turn: Turn) -> str:
    """A compact table: what was heard, the reply, the audio players, timings and cost."""
    rows = []
    if turn.input_audio is not None:
        rows.append(_row("input", turn.input_audio._repr_html_()))
    heard = turn.transcript.text if turn.transcript is not None else turn.user_text
    rows.append(_row("heard" if turn.transcript is not None else "said", html.escape(heard)))
    reply = html.escape(turn.reply.text) if turn.reply.text else "<em>(no reply)</em>"
    rows.append(_row("reply", reply))
    if turn.reply.audio is not None:
        rows.append(_row("reply audio", turn.reply.audio._repr_html_()))
    t = turn.timings
    timing_rows = [
        f"transcribe: {_timing(t.transcribe)}",
        f"respond: {_timing(t.respond)}",
        f"synthesize: {_timing(t.synthesize)}",
    ]
    if t.first_audio is not None:
        timing_rows.append(f"<b>first audio: {t.first_audio:.3f} s</b>")
    timing_rows.append(f"total: {t.total:.3f} s")
    rows.append(_row("timings", "<br>".join(timing_rows)))
    rows.append(_row("cost", html.escape(turn.usage.cost_note)))
    if turn.interrupted:
        rows.append(_row("note", "interrupted: holds only what was produced"))
    return f'<table class="chainvoice-turn" style="{_STYLE}">{"".join(rows)}</table>'
