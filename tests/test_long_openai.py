"""Long recordings through the OpenAI transcribers, against the spec-checked FakeOpenAI.

The transcriber cuts audio over a model's limits (gpt-4o-transcribe: 1500 s; every model:
25 MB per upload) into pieces at pauses and sends them concurrently; every request the fake
receives is checked against OpenAI's OpenAPI spec.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import openai
import pytest

import chainvoice as cv
from chainvoice._errors import PartialTranscriptionError
from chainvoice._long import LongTranscriber, plan_pieces
from chainvoice.openai import (
    AsyncOpenAIStreamingTranscriber,
    AsyncOpenAITranscriber,
    OpenAITranscriber,
    _models,
)
from chainvoice.openai._httpx import httpx_module
from chainvoice.testing import FakeOpenAI
from test_long import speechlike

OFFICIAL = "https://api.openai.com/v1"
TEXT = "Hello, this is one piece of a long meeting."
MakeFake = Callable[..., FakeOpenAI]
httpx: Any = httpx_module()  # the httpx the installed openai is built on


@pytest.fixture(autouse=True)
def _before_any_shutdown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_models, "_today", lambda: dt.date(2026, 1, 1))


@pytest.fixture
def fake(make_fake_openai: MakeFake) -> FakeOpenAI:
    return make_fake_openai(base_url=OFFICIAL, default_transcript=TEXT)


class Gate(httpx.BaseTransport, httpx.AsyncBaseTransport):  # type: ignore[misc]
    """A transport in front of the fake that holds the first ``parties`` requests until
    that many are in flight at once; if they never are, it gives up after 10 s and says so.
    """

    def __init__(self, fake: FakeOpenAI, parties: int = 2) -> None:
        self.fake = fake
        self.barrier = threading.Barrier(parties, timeout=10)
        self.lock = threading.Lock()
        self.held = 0
        self.broken = False
        self.event: asyncio.Event | None = None
        self.waiting = 0

    def _should_hold(self) -> bool:
        with self.lock:
            hold = self.held < self.barrier.parties
            self.held += hold
            return hold

    def handle_request(self, request: Any) -> Any:
        if self._should_hold():
            try:
                self.barrier.wait()
            except threading.BrokenBarrierError:
                self.broken = True
        return self.fake.handle_request(request)

    async def handle_async_request(self, request: Any) -> Any:
        if self._should_hold():
            if self.event is None:
                self.event = asyncio.Event()
            self.waiting += 1
            if self.waiting >= self.barrier.parties:
                self.event.set()
            try:
                await asyncio.wait_for(self.event.wait(), timeout=10)
            except TimeoutError:
                self.broken = True
        return await self.fake.handle_async_request(request)


def client(fake: FakeOpenAI, gate: Gate | None = None) -> openai.OpenAI:
    return openai.OpenAI(
        api_key="sk-test",
        base_url=fake.base_url,
        max_retries=0,
        http_client=httpx.Client(transport=gate or fake),
    )


def async_client(fake: FakeOpenAI, gate: Gate | None = None) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key="sk-test",
        base_url=fake.base_url,
        max_retries=0,
        http_client=httpx.AsyncClient(transport=gate or fake),
    )


def uploads(fake: FakeOpenAI) -> list[cv.Audio]:
    out = []
    for record in fake.requests_to("transcriptions"):
        assert record.file is not None
        assert len(record.file.data) <= 25 * 1024 * 1024
        out.append(cv.Audio.from_bytes(record.file.data))
    return out


@pytest.mark.parametrize("stream", [None, False], ids=["streamed", "json"])
def test_two_hours_go_in_pieces_under_the_model_limit_with_requests_in_flight_together(
    fake: FakeOpenAI, stream: bool | None
) -> None:
    rec = speechlike(2 * 3600.0, seed=31)
    gate = Gate(fake, 2)
    transcriber = OpenAITranscriber("gpt-4o-transcribe", stream=stream, client=client(fake, gate))
    transcript = transcriber.transcribe(rec.audio)
    assert not gate.broken, "the pieces were not sent concurrently"
    sent = uploads(fake)
    assert len(sent) >= 5  # 7200 s over a 1500 s limit
    assert all(a.duration <= 1500.0 for a in sent)
    pieces = plan_pieces(
        rec.audio,
        max_seconds=1500.0,
        max_bytes=25 * 1024 * 1024,
        bytes_per_second=2 * rec.audio.rate,
    )
    assert sorted(a.frames for a in sent) == sorted(p.audio.frames for p in pieces)
    assert transcript.text == " ".join([TEXT] * len(sent))
    starts = [s.start for s in transcript.segments]
    assert starts == sorted(starts)
    assert [s.start for s in transcript.segments] == [p.start for p in pieces]
    assert transcript.usage is not None
    assert transcript.usage.requests == len(sent)
    assert transcript.usage.cost_usd is not None and transcript.usage.cost_usd > 0
    assert transcript.duration == rec.audio.duration


def test_an_upload_over_25_mb_goes_in_wav_pieces(fake: FakeOpenAI) -> None:
    rec = speechlike(16 * 60.0, rate=16000, seed=32)  # 30.7 MB as 16 kHz WAV
    transcriber = OpenAITranscriber("whisper-1", upload_format="wav", client=client(fake))
    transcript = transcriber.transcribe(rec.audio)
    sent = uploads(fake)
    assert len(sent) == 2
    assert all(
        r.file is not None and (r.file.filename or "").endswith(".wav")
        for r in fake.requests_to("transcriptions")
    )
    assert transcript.text == f"{TEXT} {TEXT}"


def test_word_times_come_back_on_the_recordings_clock(fake: FakeOpenAI) -> None:
    rec = speechlike(600.0, rate=8000, seed=33)
    inner = OpenAITranscriber(
        "whisper-1", timestamp_granularities=["word", "segment"], client=client(fake)
    )
    long = LongTranscriber(inner, max_piece_seconds=120.0)
    pieces = long.plan(rec.audio)
    transcript = long.transcribe(rec.audio)
    per_piece = len(TEXT.split())
    assert len(transcript.words) == per_piece * len(pieces)
    for n, piece in enumerate(pieces):
        words = transcript.words[n * per_piece : (n + 1) * per_piece]
        assert all(piece.start <= w.start <= w.end <= piece.end + 1e-6 for w in words)
    starts = [w.start for w in transcript.words]
    assert starts == sorted(starts)
    assert all(seg.words for seg in transcript.segments)


def test_a_recording_shorter_than_a_piece_takes_exactly_one_request(fake: FakeOpenAI) -> None:
    rec = speechlike(90.0, seed=34)
    transcript = OpenAITranscriber("gpt-4o-transcribe", client=client(fake)).transcribe(rec.audio)
    assert len(fake.requests_to("transcriptions")) == 1
    assert transcript.text == TEXT


def test_a_piece_that_fails_twice_then_succeeds(fake: FakeOpenAI) -> None:
    rec = speechlike(3600.0, seed=35)
    fake.fail("transcriptions", 500, times=1, nth=2)
    fake.fail("transcriptions", 429, times=1, nth=3, retry_after=0.01)
    inner = OpenAITranscriber("gpt-4o-transcribe", stream=False, client=client(fake))
    long = LongTranscriber(inner, concurrency=1, backoff=0.0)
    pieces = long.plan(rec.audio)
    transcript = long.transcribe(rec.audio)
    records = fake.requests_to("transcriptions")
    assert len(records) == len(pieces) + 2
    assert [r.progress.status_code for r in records[:4]] == [200, 500, 429, 200]
    # The retried piece was the second one, sent three times.
    second = {r.file.data for r in records[1:4] if r.file is not None}
    assert len(second) == 1
    assert transcript.text == " ".join([TEXT] * len(pieces))


def test_a_piece_that_always_fails_names_its_range_and_can_be_retried_alone(
    fake: FakeOpenAI,
) -> None:
    rec = speechlike(3600.0, seed=36)
    fake.fail("transcriptions", 503, times=3, nth=2, message="The engine is overloaded.")
    inner = OpenAITranscriber("gpt-4o-transcribe", stream=False, client=client(fake))
    long = LongTranscriber(inner, concurrency=1, retries=2, backoff=0.0)
    pieces = long.plan(rec.audio)
    with pytest.raises(PartialTranscriptionError) as caught:
        long.transcribe(rec.audio)
    error = caught.value
    assert [(a, b) for a, b, _ in error.failed] == [(pieces[1].start, pieces[1].end)]
    assert isinstance(error.failed[0][2], cv.ServerError)
    assert "overloaded" in str(error) and f"of {len(pieces)} pieces" in str(error)
    assert error.transcript.text == " ".join([TEXT] * (len(pieces) - 1))
    before = len(fake.requests_to("transcriptions"))
    transcript = error.retry()
    assert len(fake.requests_to("transcriptions")) == before + 1
    assert transcript.text == " ".join([TEXT] * len(pieces))
    assert transcript.usage is not None and transcript.usage.requests == len(pieces)


def test_a_recording_without_pauses_is_cut_hard_and_texts_are_not_merged_wrongly(
    fake: FakeOpenAI,
) -> None:
    rec = speechlike(3300.0, pauses=False, base=0.5, step=0.004, seed=37)
    transcriber = OpenAITranscriber("gpt-4o-transcribe", client=client(fake))
    transcript = transcriber.transcribe(rec.audio)
    sent = uploads(fake)
    assert len(sent) == 3
    assert all(a.duration <= 1500.0 for a in sent)
    # Nothing in common at the cuts (the fake says the same sentence for every piece, and
    # the overlap holds a second of it at most): the texts are joined whole.
    assert transcript.text == " ".join([TEXT] * 3)


def test_carry_prompt_sends_the_previous_pieces_end_as_the_prompt(fake: FakeOpenAI) -> None:
    rec = speechlike(3600.0, seed=38)
    inner = OpenAITranscriber(
        "gpt-4o-transcribe", prompt="Names: Ada, Grace.", stream=False, client=client(fake)
    )
    long = LongTranscriber(inner, carry_prompt=True)
    long.transcribe(rec.audio)
    prompts = [r.params.get("prompt") for r in fake.requests_to("transcriptions")]
    assert prompts[0] == "Names: Ada, Grace."
    assert all(p == f"Names: Ada, Grace.\n{TEXT}" for p in prompts[1:])


def test_async_twin_sends_pieces_concurrently(fake: FakeOpenAI) -> None:
    rec = speechlike(4000.0, seed=39)
    gate = Gate(fake, 3)
    transcriber = AsyncOpenAITranscriber("gpt-4o-transcribe", client=async_client(fake, gate))
    transcript = asyncio.run(transcriber.transcribe(rec.audio))
    assert not gate.broken
    assert len(uploads(fake)) == 3
    assert transcript.text == " ".join([TEXT] * 3)


def test_streaming_transcriber_streams_a_long_recording_piece_by_piece(
    fake: FakeOpenAI,
) -> None:
    rec = speechlike(3200.0, seed=40)
    transcriber = OpenAITranscriber("gpt-4o-transcribe", client=client(fake))
    assert hasattr(transcriber, "transcribe_stream")
    items = list(transcriber.transcribe_stream(rec.audio))
    final = items[-1]
    assert isinstance(final, cv.Transcript)
    deltas = [i for i in items[:-1] if isinstance(i, str)]
    assert "".join(deltas) == final.text == " ".join([TEXT] * 3)

    async def collect() -> list[object]:
        async_t = AsyncOpenAIStreamingTranscriber("gpt-4o-transcribe", client=async_client(fake))
        return [i async for i in async_t.transcribe_stream(rec.audio)]

    items = asyncio.run(collect())
    assert isinstance(items[-1], cv.Transcript) and items[-1].text == final.text


def test_the_limits_the_transcriber_reports(fake: FakeOpenAI) -> None:
    gpt = OpenAITranscriber("gpt-4o-transcribe", client=client(fake))
    limits = gpt.piece_limits(cv.Audio.silence(1.0, 48000))
    assert limits.max_seconds == 1500 and limits.max_bytes == 25 * 1024 * 1024
    assert limits.bytes_per_second == 32000
    whisper = OpenAITranscriber("whisper-1", client=client(fake))
    low = whisper.piece_limits(cv.Audio.silence(1.0, 8000))
    assert low.max_seconds is None and low.bytes_per_second == 16000
    diarize = OpenAITranscriber("gpt-4o-transcribe-diarize", client=client(fake))
    with pytest.raises(cv.UnsupportedParameterError, match="prompt"):
        diarize.transcribe(cv.Audio.silence(1.0), prompt="earlier text")
