"""Long recordings through the local transcriber: pieces one after another, bounded memory.

Whisper is replaced by a stand-in that records what it is given, so that these tests run
in a blink; tests/test_local.py runs the real model.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import chainvoice as cv
from test_long import speechlike

pytest.importorskip("faster_whisper")


class FakeWhisper:
    """Answers like faster-whisper's model: a segment every 10 s of the audio it is given."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def transcribe(self, samples: np.ndarray[Any, Any], **_: Any) -> tuple[Any, Any]:
        self.calls.append(len(samples))
        seconds = len(samples) / 16000
        n = len(self.calls)
        segments = [
            SimpleNamespace(
                text=f" piece{n} second{i * 10}.", start=i * 10.0, end=i * 10.0 + 5, words=None
            )
            for i in range(int(seconds // 10))
        ]
        return iter(segments), SimpleNamespace(language="en")


@pytest.fixture
def local(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, FakeWhisper]:
    try:
        from chainvoice.local import LocalTranscriber

        transcriber = LocalTranscriber(language="en")
    except ImportError as exc:  # the models are not installed
        pytest.skip(str(exc))
    fake = FakeWhisper()
    monkeypatch.setattr(LocalTranscriber, "_model", lambda self: fake)
    return transcriber, fake


def test_a_long_recording_goes_to_whisper_in_pieces_of_at_most_ten_minutes(
    local: tuple[Any, FakeWhisper],
) -> None:
    transcriber, fake = local
    rec = speechlike(25 * 60.0, rate=8000, seed=51)
    seen: list[tuple[float, float]] = []
    items = list(
        transcriber.transcribe_stream(rec.audio, progress=lambda d, t: seen.append((d, t)))
    )
    final = items[-1]
    assert isinstance(final, cv.Transcript)
    assert len(fake.calls) == 3
    assert all(n <= 600 * 16000 for n in fake.calls)
    starts = [s.start for s in final.segments]
    assert starts == sorted(starts)
    assert final.segments[-1].start > 20 * 60
    assert [s.text.split()[0] for s in final.segments[:1]] == ["piece1"]
    assert final.text.startswith("piece1 second0.") and "piece3 second0." in final.text
    assert "".join(i for i in items[:-1] if isinstance(i, str)) == final.text
    assert final.duration == rec.audio.duration
    assert final.usage is not None and final.usage.cost_usd == 0.0
    done = [d for d, _ in seen]
    assert done == sorted(done) and seen[-1][0] == pytest.approx(seen[-1][1])
    assert seen[-1][1] <= rec.audio.duration


def test_a_recording_under_ten_minutes_is_one_call(local: tuple[Any, FakeWhisper]) -> None:
    transcriber, fake = local
    rec = speechlike(5 * 60.0, rate=16000, seed=52)
    transcript = transcriber.transcribe(rec.audio)
    assert fake.calls == [rec.audio.frames]
    assert transcript.segments[0].start == 0.0
