"""Gathering network reads while the listener has speech in hand (``gather=``).

What is covered, from the bottom up:

* ``gather=`` validation on the four OpenAI stages that take it;
* ``LeanBody.hold`` / ``body_chunks(hold=...)`` over raw scripted loopback servers: fewer,
  larger reads, identical bytes, connection reuse, cancellation and server closes during a
  hold, and ``hold`` returning 0 changing nothing;
* the async synthesizer over ``FakeOpenAI.serve()``: fewer chunks when speech arrives
  faster than real time, the same audio, no later first chunk, a bounded later last
  chunk, and no hold on fast streams;
* ``chainvoice._pace`` and the synthesizer's ``_Pacer`` with a fake clock;
* what a chain tells its stages (``chainvoice._pace.ahead()``), sync and async, and the
  async responder's reads under a chain;
* ``Chain.stream`` handing a loop step's events over together;
* ``_close_idle_connections`` while ``chainvoice.openai._transport`` is half imported.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import math
import queue
import sys
import threading
import time
import types
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

import chainvoice as cv
from chainvoice import _chain, _pace
from chainvoice._pace import AHEAD, ahead, gather_hold, gather_lead, hold_needs, next_tick
from chainvoice.openai import (
    AsyncOpenAIResponder,
    AsyncOpenAISynthesizer,
    AsyncOpenAITranscriber,
    OpenAIResponder,
    OpenAISynthesizer,
    _responder,
    _synthesizer,
    _transport,
)
from chainvoice.openai._common import DEFAULT_GATHER
from chainvoice.openai._httpx import httpx
from chainvoice.openai._transport import LeanTransport, body_chunks
from chainvoice.testing import FakeOpenAI, LatencyProfile
from test_transport import (  # _no_proxy: the lean transport applies (autouse)
    CHUNKED_HEAD,
    MakeFake,
    RawServer,
    _no_proxy,  # noqa: F401
    response,
    wait_until,
)

KEY = "sk-gather-test-0123456789SECRET"
SPEECH_RATE = 24000  # the fake's PCM rate


# ---------------------------------------------------------------------------- fixtures


@dataclass
class LeakCheck:
    tolerated: bool = False


@pytest.fixture(autouse=True)
def _no_socket_left_open() -> Iterator[LeakCheck]:
    """Fail a test that leaves a socket or an asyncio transport open (as test_transport)."""
    check = LeakCheck()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        yield check
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    for w in caught:
        if not issubclass(w.category, ResourceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if not check.tolerated:
        assert not leaks, leaks


@pytest.fixture
def conn_holds(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The seconds of every ``_Connection.hold`` (a real pause of the socket) taken."""
    seen: list[float] = []
    original = _transport._Connection.hold

    def spy(self: Any, seconds: float) -> float:
        seen.append(seconds)
        return original(self, seconds)

    monkeypatch.setattr(_transport._Connection, "hold", spy)
    return seen


# -------------------------------------------------------------------------- validation


STAGES = [OpenAISynthesizer, AsyncOpenAISynthesizer, OpenAIResponder, AsyncOpenAIResponder]
BAD_GATHER = [-0.1, 2.5, True, False, "0.2", None, math.nan, math.inf, -math.inf]


def _build_stage(stage: type, **options: Any) -> Any:
    fake = FakeOpenAI()
    asynchronous = stage in (AsyncOpenAISynthesizer, AsyncOpenAIResponder)
    client = fake.async_client(api_key=KEY) if asynchronous else fake.client(api_key=KEY)
    return stage(client=client, **options)


@pytest.mark.parametrize("value", BAD_GATHER, ids=repr)
@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.__name__)
def test_gather_out_of_range_or_not_a_number_is_refused(stage: type, value: object) -> None:
    with pytest.raises(cv.ConfigurationError, match="gather") as caught:
        _build_stage(stage, gather=value)
    assert repr(value) in str(caught.value)  # says what it got
    assert "0 to 2" in str(caught.value)  # and what is accepted


@pytest.mark.parametrize("value", [0, 0.0, 2, 2.0, 0.2, 1e-9, np.float64(0.5)], ids=repr)
@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.__name__)
def test_gather_in_range_is_accepted(stage: type, value: float) -> None:
    built = _build_stage(stage, gather=value)
    assert built._core.gather == float(value)
    assert type(built._core.gather) is float


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.__name__)
def test_gather_defaults_to_a_fifth_of_a_second(stage: type) -> None:
    assert DEFAULT_GATHER == 0.2
    assert _build_stage(stage)._core.gather == 0.2


# -------------------------------------------------------------------------- raw server


CLOSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n"
PARTS = 40
GAP = 0.01


def part(i: int) -> bytes:
    return b"<%02d>" % i + bytes([65 + i % 26]) * 20


WHOLE = b"".join(part(i) for i in range(PARTS))


def trickle(
    parts: int = PARTS, gap: float = GAP, *, close_after: int | None = None, framed: bool = True
) -> Callable[[asyncio.StreamWriter], Awaitable[None]]:
    """A body of ``parts`` small pieces, one write each, ``gap`` seconds apart.

    ``framed``: chunked transfer encoding (else the body ends with the close). With
    ``close_after``, the connection is closed after that many pieces, mid-body.
    """

    async def reply(writer: asyncio.StreamWriter) -> None:
        writer.write(CHUNKED_HEAD if framed else CLOSE_HEAD)
        await writer.drain()
        for i in range(parts):
            if close_after is not None and i == close_after:
                writer.close()
                return
            await asyncio.sleep(gap)
            data = part(i)
            writer.write(b"%x\r\n%s\r\n" % (len(data), data) if framed else data)
            await writer.drain()
        if framed:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        else:
            writer.close()

    return reply


def lean_client(timeout: float = 2.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=LeanTransport(), timeout=httpx.Timeout(timeout))


class SdkResponse:
    """What ``body_chunks`` takes: an SDK streaming response (``http_response``, ``iter_bytes``)."""

    def __init__(self, http_response: httpx.Response) -> None:
        self.http_response = http_response
        self.iter_bytes_calls: list[int | None] = []

    def iter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        self.iter_bytes_calls.append(chunk_size)
        return self.http_response.aiter_bytes(chunk_size)


class Hold:
    """A ``hold`` answering ``seconds``, counting how often it is asked."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.asked = 0

    def __call__(self) -> float:
        self.asked += 1
        return self.seconds


async def read_body(
    client: httpx.AsyncClient, url: str, hold: Callable[[], float] | None, **kwargs: Any
) -> list[bytes]:
    """The body of a GET as ``body_chunks`` yields it."""
    sdk = SdkResponse(await client.send(client.build_request("GET", url), stream=True))
    try:
        return [data async for data in body_chunks(sdk, hold=hold, **kwargs)]
    finally:
        await sdk.http_response.aclose()


# ------------------------------------------------------------------ transport: hold


def test_hold_gathers_a_trickling_body_into_fewer_reads(conn_holds: list[float]) -> None:
    async def main() -> tuple[list[bytes], list[bytes], Hold]:
        replies = (trickle(), trickle(), response(b"after"))
        async with RawServer(*replies) as server, lean_client() as client:
            plain = await read_body(client, server.url, None)
            hold = Hold(0.1)
            held = await read_body(client, server.url, hold)
            # The held body ended cleanly: its connection serves the next request.
            assert (await client.get(server.url)).content == b"after"
        assert [r.connection for r in server.requests] == [1, 1, 1]
        return plain, held, hold

    plain, held, hold = asyncio.run(main())
    assert b"".join(plain) == b"".join(held) == WHOLE
    assert len(plain) >= PARTS * 3 // 4  # one read per write, about
    # 0.4 s of trickle in 0.1 s holds: about 5 reads (a few more on a slow machine).
    assert len(held) <= 12 < len(plain) // 2
    assert len(conn_holds) >= 3 and set(conn_holds) == {0.1}
    assert hold.asked >= len(conn_holds)


@pytest.mark.parametrize("answer", [0.0, -1.0], ids=["zero", "negative"])
def test_hold_answering_zero_reads_as_without_hold(conn_holds: list[float], answer: float) -> None:
    async def main() -> tuple[list[bytes], list[bytes], Hold]:
        async with RawServer(trickle(), trickle()) as server, lean_client() as client:
            plain = await read_body(client, server.url, None)
            hold = Hold(answer)
            zero = await read_body(client, server.url, hold)
        assert [r.connection for r in server.requests] == [1, 1]
        return plain, zero, hold

    plain, zero, hold = asyncio.run(main())
    assert b"".join(zero) == b"".join(plain) == WHOLE
    assert conn_holds == []  # the socket was never paused
    assert hold.asked >= len(zero) - 1  # asked each time the reader was ahead
    assert abs(len(zero) - len(plain)) <= PARTS // 4


def test_hold_is_not_asked_when_the_body_is_already_whole(conn_holds: list[float]) -> None:
    async def main() -> Hold:
        hold = Hold(0.5)
        async with RawServer(response(b"all at once" * 100)) as server, lean_client() as c:
            got = await read_body(c, server.url, hold)
        assert b"".join(got) == b"all at once" * 100
        return hold

    hold = asyncio.run(main())
    assert hold.asked == 0 and conn_holds == []


def test_hold_is_not_counted_against_the_read_timeout(conn_holds: list[float]) -> None:
    """A hold longer than the read timeout is the client's own wait, not a stalled server."""

    async def main() -> list[bytes]:
        async with RawServer(trickle(parts=10, gap=0.02)) as server, lean_client(0.1) as c:
            return await read_body(c, server.url, Hold(0.15))

    got = asyncio.run(main())
    assert b"".join(got) == b"".join(part(i) for i in range(10))
    assert conn_holds and set(conn_holds) == {0.15}


def test_a_real_stall_after_a_hold_still_times_out() -> None:
    async def stall(writer: asyncio.StreamWriter) -> None:
        writer.write(CHUNKED_HEAD + b"3\r\none\r\n")
        await writer.drain()
        await asyncio.Event().wait()

    async def main() -> float:
        async with RawServer(stall) as server, lean_client(0.2) as client:
            start = time.monotonic()
            with pytest.raises(httpx.ReadTimeout):
                await asyncio.wait_for(read_body(client, server.url, Hold(0.1)), 3)
            return time.monotonic() - start

    assert asyncio.run(main()) < 1.5


def test_hold_on_a_body_read_until_the_close() -> None:
    """The close that ends the body comes during a hold: seen after it, body whole."""

    async def main() -> list[bytes]:
        async with RawServer(trickle(framed=False), response(b"next")) as server:
            async with lean_client() as client:
                got = await read_body(client, server.url, Hold(0.1))
                assert (await client.get(server.url)).content == b"next"
            assert server.connections == 2  # read-to-close bodies are never reused
            return got

    got = asyncio.run(main())
    assert b"".join(got) == WHOLE and len(got) <= 12


def test_cancelling_a_read_during_a_hold_drops_the_connection(conn_holds: list[float]) -> None:
    async def main() -> None:
        async with RawServer(trickle(), response(b"next")) as server, lean_client() as client:
            sdk = SdkResponse(
                await client.send(client.build_request("GET", server.url), stream=True)
            )
            got: list[bytes] = []

            async def read() -> None:
                async for data in body_chunks(sdk, hold=Hold(0.5)):
                    got.append(data)

            task = asyncio.create_task(read())
            await wait_until(lambda: bool(conn_holds))
            await asyncio.sleep(0.05)  # well inside the half-second hold
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await sdk.http_response.aclose()
            # The next request gets a whole answer, on a new connection; the held one is
            # closed by the client, not kept to be reused half-read.
            assert (await asyncio.wait_for(client.get(server.url), 2)).content == b"next"
            await wait_until(lambda: 1 in server.reset_by_client)
            assert [r.connection for r in server.requests] == [1, 2]
            # (The first hold may come before any of the body: nothing received yet.)
            assert WHOLE.startswith(b"".join(got))

    asyncio.run(main())


def test_server_closing_mid_body_during_a_hold_is_an_error_not_a_hang(
    conn_holds: list[float],
) -> None:
    async def main() -> tuple[float, BaseException]:
        async with (
            RawServer(trickle(close_after=5), response(b"next")) as server,
            lean_client(5.0) as client,
        ):
            start = time.monotonic()
            with pytest.raises(httpx.RemoteProtocolError) as caught:
                await asyncio.wait_for(read_body(client, server.url, Hold(0.2)), 3)
            took = time.monotonic() - start
            assert (await client.get(server.url)).content == b"next"
            assert [r.connection for r in server.requests] == [1, 2]
            return took, caught.value

    took, error = asyncio.run(main())
    assert conn_holds  # the close came while a hold was on (5 writes, 10 ms apart)
    assert "complete message body" in str(error)
    assert took < 1.0  # seen when the hold ended, not at the 5 s read timeout


@pytest.mark.parametrize("case", ["chunk-size", "gzip", "other-transport"])
def test_body_chunks_ignores_hold_off_the_lean_transport_stream(
    case: str, conn_holds: list[float]
) -> None:
    import gzip

    body = WHOLE * 3
    if case == "gzip":
        reply = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
        packed = gzip.compress(body)
        raw = reply % len(packed) + packed
    else:
        raw = response(body)

    async def main() -> tuple[list[bytes], SdkResponse]:
        async with RawServer(raw) as server:
            transport: httpx.AsyncBaseTransport = (
                httpx.AsyncHTTPTransport() if case == "other-transport" else LeanTransport()
            )
            async with httpx.AsyncClient(transport=transport, timeout=2.0) as client:
                request = client.build_request("GET", server.url)
                sdk = SdkResponse(await client.send(request, stream=True))
                chunk_size = 64 if case == "chunk-size" else None
                hold = Hold(1.0)
                got = [d async for d in body_chunks(sdk, chunk_size, hold)]
                await sdk.http_response.aclose()
                assert hold.asked == 0
                return got, sdk

    got, sdk = asyncio.run(main())
    assert b"".join(got) == body
    assert len(sdk.iter_bytes_calls) == 1 and conn_holds == []


# --------------------------------------------------------- the synthesizer over a socket


#: About 3.4 s of the fake's speech (0.06 s a character).
SPEECH_TEXT = "The quick brown fox jumps over the lazy dog. Pack my box."
#: Bytes per server write: 50 ms of 24 kHz 16-bit audio.
WRITE = 2400


@dataclass
class Synthesis:
    chunks: list[tuple[float, cv.Audio]] = field(default_factory=list)
    holds: list[float] = field(default_factory=list)

    @property
    def pcm(self) -> bytes:
        return b"".join(a.to_pcm16() for _, a in self.chunks)

    @property
    def first(self) -> float:
        return self.chunks[0][0]

    @property
    def last(self) -> float:
        return self.chunks[-1][0]


@pytest.fixture
def pacer_holds(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every answer of every ``_Pacer.hold``, in order."""
    seen: list[float] = []
    original = _synthesizer._Pacer.hold

    def spy(self: Any) -> float:
        answer = original(self)
        seen.append(answer)
        return answer

    monkeypatch.setattr(_synthesizer._Pacer, "hold", spy)
    return seen


def serve_speech(make_fake: MakeFake, realtime_factor: float) -> FakeOpenAI:
    latency = LatencyProfile(speech_realtime_factor=realtime_factor)
    return make_fake(latency=latency, chunk_size=WRITE)


async def synthesize(
    base_url: str, gather: float, pacer_holds: list[float], text: str = SPEECH_TEXT, **kw: Any
) -> Synthesis:
    """One synthesis over the lean transport, each chunk timed from the request's start."""
    synth = AsyncOpenAISynthesizer(
        base_url=base_url, api_key=KEY, gather=gather, timeout=5.0, max_retries=0, **kw
    )
    assert isinstance(synth._setup.client._client._transport, LeanTransport)
    try:
        async for _ in synth.synthesize("Warm up."):  # the connection is made here
            pass
        pacer_holds.clear()
        out = Synthesis()
        start = time.perf_counter()
        async for item in synth.synthesize(text):
            if isinstance(item, cv.Audio):
                out.chunks.append((time.perf_counter() - start, item))
        out.holds = list(pacer_holds)
        return out
    finally:
        await synth._setup.client.close()


def plain_and_gathered(fake: FakeOpenAI, pacer_holds: list[float]) -> tuple[Synthesis, Synthesis]:
    """The same speech from ``fake``, read with ``gather=0``, then with ``gather=0.2``."""
    with fake.serve() as server:

        async def main() -> tuple[Synthesis, Synthesis]:
            plain = await synthesize(server.base_url, 0, pacer_holds)
            gathered = await synthesize(server.base_url, 0.2, pacer_holds)
            return plain, gathered

        return asyncio.run(main())


def test_synthesizer_gathers_speech_arriving_at_twice_real_time(
    make_fake_openai: MakeFake, pacer_holds: list[float]
) -> None:
    fake = serve_speech(make_fake_openai, 0.5)
    plain, gathered = plain_and_gathered(fake, pacer_holds)
    duration = sum(a.duration for _, a in plain.chunks)
    writes = math.ceil(duration * SPEECH_RATE * 2 / WRITE)
    assert 3.0 < duration < 4.0
    # gather=0: no pacer at all, about one chunk per server write.
    assert plain.holds == []
    assert len(plain.chunks) >= writes * 3 // 4
    # gather=0.2: held once the audio is its lead ahead (as many seconds in, at 2x), then
    # every 0.2 s until the end.
    assert gathered.pcm == plain.pcm
    assert len(gathered.chunks) < len(plain.chunks) * 2 // 3
    assert set(gathered.holds) <= {0.0, 0.2} and gathered.holds.count(0.2) >= 3
    assert gathered.first <= plain.first + 0.15
    assert gathered.last <= plain.last + 0.2 + 0.15
    # Never behind real time: each chunk arrives before the audio before it is played out.
    played = 0.0
    for at, chunk in gathered.chunks:
        assert at <= gathered.first + played + 0.15, (at, played)
        played += chunk.duration


def test_synthesizer_with_chunk_size_is_never_held(
    make_fake_openai: MakeFake, pacer_holds: list[float]
) -> None:
    fake = serve_speech(make_fake_openai, 0.25)  # 4x real time: held without chunk_size
    with fake.serve() as server:
        got = asyncio.run(synthesize(server.base_url, 0.2, pacer_holds, chunk_size=4800))
    assert got.holds == []  # no pacer: chunk_size re-chunks through the SDK's reader
    assert {a.frames for _, a in got.chunks[:-1]} == {2400}


def test_unpaced_speech_is_not_slowed_down(
    make_fake_openai: MakeFake, pacer_holds: list[float]
) -> None:
    """All the speech is sent at once: the same audio, at most ``gather`` later.

    It is never held: it arrives far faster than 8x real time.
    """
    fake = serve_speech(make_fake_openai, 0.0)
    plain, gathered = plain_and_gathered(fake, pacer_holds)
    assert gathered.pcm == plain.pcm
    assert gathered.holds.count(0.2) == 0
    assert gathered.last <= plain.last + 0.15


@pytest.mark.parametrize("speed", [20, 50], ids=["20x", "50x"])
def test_speech_arriving_faster_than_8x_real_time_is_never_held(
    make_fake_openai: MakeFake, pacer_holds: list[float], speed: int
) -> None:
    fake = serve_speech(make_fake_openai, 1 / speed)
    plain, gathered = plain_and_gathered(fake, pacer_holds)
    assert gathered.pcm == plain.pcm
    assert gathered.holds and set(gathered.holds) == {0.0}
    assert gathered.last <= plain.last + 0.03


FIRST = "Hello there, my friend."  # 1.38 s of the fake's speech
SECOND = "And how are you doing on this fine and sunny day?"  # 2.94 s


def test_synthesizer_under_a_chain_counts_the_earlier_sentences(
    make_fake_openai: MakeFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Speech at real time is never ahead on its own; under a chain the second sentence's
    reads are held once the first sentence's audio is in hand."""
    seen: list[tuple[float, float]] = []  # (answer, ahead()) of each _Pacer.hold
    original = _synthesizer._Pacer.hold

    def spy(self: Any) -> float:
        answer = original(self)
        seen.append((answer, ahead()))
        return answer

    monkeypatch.setattr(_synthesizer._Pacer, "hold", spy)
    fake = make_fake_openai(
        reply=f"{FIRST} {SECOND}",
        latency=LatencyProfile(speech_realtime_factor=1.0),
        chunk_size=WRITE,
    )
    with fake.serve() as server:

        async def main() -> cv.Turn:
            chain = cv.AsyncChain.openai(
                base_url=server.base_url,
                api_key=KEY,
                timeout=5.0,
                splitter=lambda: cv.SentenceSplitter(first_min_chars=1, min_chars=1),
            )
            assert chain.synthesizer._core.gather == DEFAULT_GATHER
            try:
                return await chain.run(text="Hi.")
            finally:
                await chain.synthesizer._setup.client.close()
                await chain.aclose()

        turn = asyncio.run(main())
    assert [r.endpoint for r in fake.requests] == ["responses", "speech", "speech"]
    assert turn.reply.audio is not None
    assert turn.reply.audio.duration == pytest.approx(0.06 * len(FIRST + SECOND), abs=0.05)
    margin = gather_lead(DEFAULT_GATHER) - DEFAULT_GATHER
    held = [figure for answer, figure in seen if answer > 0]
    assert held, seen[-10:]
    assert set(answer for answer, _ in seen) == {0.0, DEFAULT_GATHER}
    # Each hold came with the chain's figure over the wait for the next tick plus the
    # margin: at real time, the stream's own lead (audio received minus time since its
    # first chunk) never gets there.
    assert min(held) >= margin


def test_speech_cut_during_a_hold_is_a_stream_interrupted_error(
    make_fake_openai: MakeFake, pacer_holds: list[float], conn_holds: list[float]
) -> None:
    fake = serve_speech(make_fake_openai, 0.5)
    # The second request (after the warm-up) is cut after 1.8 s of audio, ~0.9 s in: the
    # reads are held by then (from the lead, at most 0.5 s in).
    fake.cut("speech", after_bytes=WRITE * 36, nth=2)
    with fake.serve() as server:

        async def main() -> float:
            start = time.perf_counter()
            with pytest.raises(cv.StreamInterruptedError):
                await asyncio.wait_for(synthesize(server.base_url, 0.2, pacer_holds), 5)
            return time.perf_counter() - start

        took = asyncio.run(main())
    assert conn_holds and 0.2 in pacer_holds  # the connection was held before the cut
    assert took < 2.0  # seen at the end of a hold, not at the 5 s read timeout


# --------------------------------------------------------------------------- _pace


def run_with_ahead(figure: Callable[[], float] | None, fn: Callable[[], Any]) -> Any:
    """``fn()`` with AHEAD set to ``figure``, in a copy of this context."""

    def inner() -> Any:
        AHEAD.set(figure)
        return fn()

    return contextvars.copy_context().run(inner)


def test_ahead_is_zero_outside_a_chain() -> None:
    assert AHEAD.get() is None
    assert ahead() == 0.0
    assert run_with_ahead(lambda: 1.25, ahead) == 1.25
    assert run_with_ahead(lambda: -0.5, ahead) == -0.5
    assert run_with_ahead(None, ahead) == 0.0
    assert ahead() == 0.0  # the copies did not leak here


#: How many times ``gather`` the lead is for large ``gather`` (2 in 08add2f).
LEAD_FACTOR = gather_lead(100.0) / 100.0


def test_gather_lead_is_a_floor_or_a_multiple_of_gather() -> None:
    floor = _pace.GATHER_LEAD
    assert 0 < floor <= 1.0 and 1.0 < LEAD_FACTOR <= 4.0
    # Safe: a hold of ``gather`` never outlasts the speech in hand that allows it.
    for g in (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 1.0, 2.0):
        assert gather_lead(g) == pytest.approx(max(floor, LEAD_FACTOR * g))
        assert gather_lead(g) > g
    assert gather_lead(0.0) == floor
    assert gather_lead(2.0) == pytest.approx(2.0 * LEAD_FACTOR)
    assert _pace.CHARACTERS_PER_SECOND == 15


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    def after_tick(self, gather: float, later: float = 0.0, by: float = 0.001) -> None:
        """Set so that ``later`` seconds from now it is ``by`` past a tick of ``gather``."""
        self.now = 500 * gather + by - later

    def before_tick(self, gather: float, by: float) -> None:
        """Set to ``by`` seconds before a tick of ``gather``."""
        self.now = 501 * gather - by


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(_synthesizer, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    monkeypatch.setattr(_pace, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    return fake


@pytest.mark.parametrize("gather", [0.05, 0.1, 0.2, 0.5, 1.0])
def test_next_tick_is_the_next_multiple_of_gather(gather: float) -> None:
    for now in (0.0, 0.3 * gather, 17.0 + 0.999 * gather, 12345.678):
        tick = next_tick(gather, now)
        assert now < tick <= now + gather + 1e-9
        assert tick / gather == pytest.approx(round(tick / gather), abs=1e-6)
    # Reads held a little apart resume together.
    assert next_tick(gather, 50 * gather + 0.01 * gather) == next_tick(
        gather, 50 * gather + 0.9 * gather
    )


@pytest.mark.parametrize("gather", [0.1, 0.2, 0.5, 1.0])
def test_hold_needs_the_wait_for_the_next_tick_plus_a_margin(gather: float) -> None:
    lead = gather_lead(gather)
    margin = lead - gather
    assert margin > 0.05
    # Right after a tick the next is ``gather`` away: the whole lead.
    assert hold_needs(gather, 500 * gather + 1e-4) == pytest.approx(lead - 1e-4, abs=1e-6)
    # Half-way: half of ``gather`` plus the margin; just before a tick: the margin.
    assert hold_needs(gather, 500.5 * gather) == pytest.approx(margin + gather / 2, abs=1e-6)
    assert hold_needs(gather, 501 * gather - 0.01) == pytest.approx(margin + 0.01, abs=1e-6)
    # Never more than the lead: a hold is never asked more of than before ticks were known.
    for k in range(50):
        now = 321.0 + k * gather / 7
        assert margin < hold_needs(gather, now) <= lead + 1e-9
        # What is in hand when the held read resumes is at least the margin.
        assert hold_needs(gather, now) - (next_tick(gather, now) - now) == pytest.approx(margin)


def test_gather_hold_answers_gather_only_with_enough_in_hand(clock: Clock) -> None:
    for gather in (0.1, 0.2, 0.4, 1.0):
        hold = gather_hold(gather)
        lead = gather_lead(gather)
        margin = lead - gather
        clock.after_tick(gather)  # the next tick is ``gather`` away: the lead is needed
        assert hold() == 0.0  # outside a chain, whatever the lead
        assert run_with_ahead(lambda lead=lead: lead + 0.1, hold) == gather
        assert run_with_ahead(lambda lead=lead: lead, hold) == gather  # the lead is enough
        assert run_with_ahead(lambda lead=lead: lead - 0.01, hold) == 0.0
        assert run_with_ahead(lambda: -1.0, hold) == 0.0
        assert run_with_ahead(lambda: 0.0, hold) == 0.0
        clock.before_tick(gather, 0.02)  # the next tick is 20 ms away: the margin and that
        assert run_with_ahead(lambda margin=margin: margin + 0.03, hold) == gather
        assert run_with_ahead(lambda margin=margin: margin + 0.01, hold) == 0.0
        assert hold() == 0.0
    clock.after_tick(0.2)
    assert run_with_ahead(lambda: 0.6, gather_hold(0.2)) == 0.2  # the brief's example


def test_gather_hold_asks_the_figure_and_the_clock_each_time(clock: Clock) -> None:
    lead = gather_lead(0.2)
    clock.after_tick(0.2)
    figures = iter([0.0, lead + 1, lead - 0.05, 5.0])
    hold = gather_hold(0.2)
    got = run_with_ahead(lambda: next(figures), lambda: [hold() for _ in range(4)])
    assert got == [0.0, 0.2, 0.0, 0.2]
    clock.before_tick(0.2, 0.1)  # half-way: the margin (0.1 s) and the wait (0.1 s)
    assert run_with_ahead(lambda: lead - 0.05, hold) == 0.2
    assert run_with_ahead(lambda: 0.19, hold) == 0.0


def audio(seconds: float) -> cv.Audio:
    return cv.Audio.silence(seconds, rate=SPEECH_RATE)


def stream(pacer: Any, clock: Clock, elapsed: float, speed: float, first: float = 0.02) -> None:
    """``speed`` x real time into ``pacer``: a first chunk, then the rest ``elapsed`` later."""
    pacer.add([audio(first)])
    clock.now += elapsed
    pacer.add([audio(speed * elapsed - first)])


@pytest.mark.parametrize("gather", [0.1, 0.2, 0.5, 1.0])
@pytest.mark.parametrize("speed", [1.5, 2.0, 4.0])
def test_pacer_holds_once_its_own_lead_is_reached(
    clock: Clock, gather: float, speed: float
) -> None:
    lead = gather_lead(gather)
    # Ahead by (speed - 1) * elapsed: just under the lead, then just over it, asked right
    # after a tick (the next one ``gather`` away: the whole lead is needed).
    under = _synthesizer._Pacer(gather)
    assert under.hold() == 0.0  # nothing read yet
    elapsed = (lead - 0.03) / (speed - 1)
    clock.after_tick(gather, later=elapsed)
    stream(under, clock, elapsed, speed)
    assert under.hold() == 0.0
    over = _synthesizer._Pacer(gather)
    elapsed = (lead + 0.03) / (speed - 1)
    clock.after_tick(gather, later=elapsed)
    stream(over, clock, elapsed, speed)
    assert over.hold() == gather
    clock.now += lead + 0.1  # nothing more arrived: the audio in hand ran out
    assert over.hold() == 0.0


@pytest.mark.parametrize("gather", [0.1, 0.2, 0.5])
def test_pacer_needs_less_in_hand_the_nearer_the_next_tick(clock: Clock, gather: float) -> None:
    """A held read resumes on the next tick: near one, the margin and the wait suffice."""
    margin = gather_lead(gather) - gather
    in_hand = margin + 0.05
    clock.before_tick(gather, 0.04)
    assert run_with_ahead(lambda: in_hand, _synthesizer._Pacer(gather).hold) == gather
    clock.after_tick(gather)
    assert run_with_ahead(lambda: in_hand, _synthesizer._Pacer(gather).hold) == 0.0
    # Its own lead alike, once it has a lead of its own (``lead`` seconds of audio and more).
    own = _synthesizer._Pacer(gather)
    lead = gather_lead(gather)
    elapsed = lead + 0.01 - in_hand
    clock.after_tick(gather, later=elapsed)
    own.add([audio(lead + 0.01)])
    clock.now += elapsed  # ahead by in_hand
    assert own.hold() == 0.0  # right after a tick
    clock.before_tick(gather, 0.04)
    own.start = clock.now - elapsed
    assert own.hold() == gather


def test_pacer_does_not_count_its_own_lead_before_judging_its_speed(clock: Clock) -> None:
    """Under its own lead of audio a stream may still prove faster than 8x real time: its
    own audio holds it only once it is known not to be."""
    clock.before_tick(0.2, 0.01)  # the margin and 10 ms in hand would do
    pacer = _synthesizer._Pacer(0.2)
    pacer.add([audio(0.1)])
    clock.now += 0.005
    pacer.add([audio(0.1)])  # 0.2 s in 5 ms: not yet judged
    assert pacer.hold() == 0.0
    assert run_with_ahead(lambda: 0.2, pacer.hold) == 0.2  # the chain's figure counts


def test_pacer_counts_what_the_chain_has_in_hand(clock: Clock) -> None:
    pacer = _synthesizer._Pacer(0.2)
    lead = gather_lead(0.2)
    assert pacer.hold() == 0.0  # nothing read, nothing in hand
    assert run_with_ahead(lambda: lead - 0.05, pacer.hold) == 0.0
    pacer.add([audio(0.05)])
    clock.now += 0.05  # at real time: nothing ahead of its own
    assert pacer.hold() == 0.0
    assert run_with_ahead(lambda: lead + 0.05, pacer.hold) == 0.2
    assert run_with_ahead(lambda: lead - 0.05, pacer.hold) == 0.0


def test_pacer_holds_a_later_piece_before_its_first_read(clock: Clock) -> None:
    """Earlier pieces' audio in hand: the first read may wait too, and what it gathers is
    measured from the start of that wait (not taken for a stream over 8x real time)."""
    lead = gather_lead(0.2)
    pacer = _synthesizer._Pacer(0.2)
    assert run_with_ahead(lambda: lead + 0.05, pacer.hold) == 0.2
    clock.now += 0.2
    pacer.add([audio(0.4)])  # what two times real time gathered during the hold
    assert run_with_ahead(lambda: lead + 0.05, pacer.hold) == 0.2
    # A first read with the head, at once: too little to call the stream fast.
    first = _synthesizer._Pacer(0.2)
    first.add([audio(0.09)])
    assert run_with_ahead(lambda: lead + 0.05, first.hold) == 0.2
    assert first.hold() == 0.0  # on its own: 0.09 s in hand
    fast = _synthesizer._Pacer(0.2)
    assert run_with_ahead(lambda: 5.0, fast.hold) == 0.2
    clock.now += 0.2
    fast.add([audio(3.0)])  # 3 s in the 0.2 s hold: 15x
    assert run_with_ahead(lambda: 5.0, fast.hold) == 0.0


def test_pacer_does_not_hold_a_stream_over_8x_real_time_once_measured(clock: Clock) -> None:
    pacer = _synthesizer._Pacer(0.2)
    pacer.add([audio(0.1)])
    clock.now += 0.3
    pacer.add([audio(2.5)])  # 2.6 s in 0.3 s: 8.7x
    assert pacer.hold() == 0.0
    assert run_with_ahead(lambda: 10.0, pacer.hold) == 0.0  # whatever the chain holds


def test_pacer_does_not_hold_a_stream_over_8x_real_time_from_its_start(clock: Clock) -> None:
    pacer = _synthesizer._Pacer(0.2)
    pacer.add([audio(0.5)])
    clock.now += 0.01
    pacer.add([audio(0.5)])  # 1 s of audio in 10 ms: 100x real time
    assert pacer.hold() == 0.0


# ------------------------------------------------------------------- the chain's figure


S1 = "The first sentence is spoken now."
S2 = "A second one comes after it."
CHUNK = 0.5
CHUNKS = 3
#: Time the probe responder lets pass after the first sentence's audio (played meanwhile).
PLAYED = 0.2


@dataclass
class Seen:
    at: float  # perf_counter just before ahead() was asked
    after: float  # and just after
    value: float


def look() -> Seen:
    before = time.perf_counter()
    value = ahead()
    return Seen(before, time.perf_counter(), value)


class ProbeSynthesizer:
    """Async synthesis of CHUNKS chunks of CHUNK s, noting ahead() first and after each.

    The second sentence waits for the responder's word (``gate``), so that the responder
    sees the first sentence's audio while the second has none.
    """

    def __init__(self) -> None:
        self.seen: dict[str, list[Seen]] = {}
        self.first_yield: float | None = None
        self.first_done = asyncio.Event()
        self.gate = asyncio.Event()

    async def synthesize(self, text: str) -> AsyncIterator[cv.Audio]:
        seen = self.seen.setdefault(text, [])
        if text == S2:
            await self.gate.wait()
        seen.append(look())
        for _ in range(CHUNKS):
            if self.first_yield is None:
                self.first_yield = time.perf_counter()
            yield audio(CHUNK)
            seen.append(look())
        if text == S1:
            self.first_done.set()


class ProbeResponder:
    def __init__(self, synth: ProbeSynthesizer) -> None:
        self.synth = synth
        self.seen: dict[str, Seen] = {}

    async def respond(self, conversation: cv.Conversation) -> AsyncIterator[str]:
        self.seen["start"] = look()
        yield S1 + " "
        self.seen["one cut"] = look()  # the chain cut S1 and resumed us in the same step
        yield S2 + " "
        self.seen["two cut"] = look()
        await self.synth.first_done.wait()
        await asyncio.sleep(PLAYED)  # the listener plays meanwhile
        self.seen["first audio in"] = look()
        self.synth.gate.set()


def within(seen: Seen, heard: float, first_audio: float, slack: float = 0.05) -> bool:
    """Whether ``seen.value`` is ``heard`` minus the time played since ``first_audio``."""
    low = heard - (seen.after - first_audio) - slack
    high = heard - (seen.at - first_audio) + 0.001
    return low <= seen.value <= high


def probe_turn(face: str) -> tuple[ProbeSynthesizer, ProbeResponder, cv.Turn, list[float]]:
    synth = ProbeSynthesizer()
    responder = ProbeResponder(synth)
    options: dict[str, Any] = {
        "splitter": lambda: cv.SentenceSplitter(first_min_chars=1, min_chars=1),
        "max_concurrent_synthesis": 2,
    }
    outside: list[float] = []  # ahead() where the caller reads the events
    if face == "sync":
        with cv.Chain(None, responder, synth, **options) as chain:
            turn = None
            for event in chain.stream(text="go"):
                outside.append(ahead())
                if isinstance(event, cv.TurnDone):
                    turn = event.turn
    else:

        async def main() -> cv.Turn | None:
            async with cv.AsyncChain(None, responder, synth, **options) as chain:
                done = None
                async for event in chain.stream(text="go"):
                    outside.append(ahead())
                    if isinstance(event, cv.TurnDone):
                        done = event.turn
                outside.append(ahead())
                assert AHEAD.get() is None  # nothing leaked into the caller's context
                return done

        turn = asyncio.run(main())
    assert turn is not None
    return synth, responder, turn, outside


@pytest.mark.parametrize("face", ["sync", "async"])
def test_chain_tells_each_stage_the_speech_in_hand(face: str) -> None:
    synth, responder, turn, outside = probe_turn(face)
    assert turn.reply.text == f"{S1} {S2} "
    assert turn.reply.audio is not None
    assert turn.reply.audio.duration == pytest.approx(2 * CHUNKS * CHUNK)
    assert outside and set(outside) == {0.0}
    assert synth.first_yield is not None
    first_audio = synth.first_yield

    # The responder: pieces without audio at 15 characters a second, before any audio.
    assert responder.seen["start"].value == 0.0
    assert responder.seen["one cut"].value == pytest.approx(len(S1) / 15)
    assert responder.seen["two cut"].value == pytest.approx((len(S1) + len(S2)) / 15)
    # Then the first sentence's audio instead of its estimate, minus the time played.
    heard = CHUNKS * CHUNK + len(S2) / 15
    later = responder.seen["first audio in"]
    assert within(later, heard, first_audio), (responder.seen, first_audio)
    assert later.value < heard - PLAYED + 0.01  # played time is taken off

    # The first sentence: nothing before its audio, then its own audio, minus time played.
    one = synth.seen[S1]
    assert len(one) == CHUNKS + 1
    assert one[0].value == 0.0
    for n, seen in enumerate(one[1:], start=1):
        assert within(seen, n * CHUNK, first_audio), (n, seen, first_audio)
    # The second: the first's audio, then its own too (never the text estimate).
    two = synth.seen[S2]
    assert len(two) == CHUNKS + 1
    for n, seen in enumerate(two):
        assert within(seen, (CHUNKS + n) * CHUNK, first_audio), (n, seen, first_audio)
        assert seen.value < (CHUNKS + n) * CHUNK - PLAYED + 0.01


def test_stages_outside_a_chain_see_nothing_in_hand() -> None:
    synth = ProbeSynthesizer()

    async def main() -> list[float]:
        seen = [look().value]
        async for _ in synth.synthesize(S1):
            pass
        synth.gate.set()
        async for _ in synth.synthesize(S2):
            pass
        return seen

    assert asyncio.run(main()) == [0.0]
    assert [s.value for s in synth.seen[S1] + synth.seen[S2]] == [0.0] * (2 * (CHUNKS + 1))


def test_a_chain_without_a_synthesizer_tells_its_responder_nothing() -> None:
    seen: list[float] = []

    async def respond(conversation: cv.Conversation) -> AsyncIterator[str]:
        for text in (S1 + " ", S2 + " ", "And a third sentence. "):
            yield text
            seen.append(ahead())

    turn = cv.Chain(None, respond).run(text="go")
    assert turn.reply.text.startswith(S1) and seen == [0.0, 0.0, 0.0]


def test_a_pieces_audio_counts_for_later_pieces_only() -> None:
    """A piece still waiting for its audio is counted only by the responder's figure."""
    release = asyncio.Event()
    seen: dict[str, list[float]] = {"one": [], "two": []}

    class Synth:
        async def synthesize(self, text: str) -> AsyncIterator[cv.Audio]:
            if text == S1:
                seen["one"].append(ahead())
                await release.wait()
                seen["one"].append(ahead())
                yield audio(0.2)
                seen["one"].append(ahead())
            else:
                yield audio(1.0)  # the second sentence's audio arrives first
                seen["two"].append(ahead())
                release.set()

    chain = cv.Chain(
        None,
        lambda c: [S1 + " ", S2 + " "],
        Synth(),
        splitter=lambda: cv.SentenceSplitter(first_min_chars=1, min_chars=1),
    )
    turn = chain.run(text="go")
    chain.close()
    assert turn.reply.audio is not None and turn.reply.audio.duration == pytest.approx(1.2)
    # Nothing played yet (the first sentence's audio has not come): no time is subtracted.
    # The second sentence counts its own second, nothing for the first (no audio yet).
    assert seen["two"] == [pytest.approx(1.0)]
    # The later piece's audio is not the first's: nothing in hand before its own.
    assert seen["one"][:2] == [0.0, 0.0]
    assert seen["one"][2] == pytest.approx(0.2, abs=0.05)


# ----------------------------------------------------- the async responder's reads


REPLY = " ".join(
    [
        "The first sentence of the reply is here.",
        "Then comes a second one with a few more words in it.",
        "A third sentence follows, and it is also quite long.",
        "The fourth has words too, many of them, one after the other.",
        "And the last one ends the reply at last.",
    ]
)


@dataclass
class Reads:
    chunks: int = 0
    holds: list[float] = field(default_factory=list)
    with_hold: int = 0  # bodies read with a hold


@pytest.fixture
def reply_reads(monkeypatch: pytest.MonkeyPatch) -> Reads:
    """What the responder's ``body_chunks`` yields and what its ``hold`` answers."""
    reads = Reads()
    original = _responder.body_chunks

    def spy(
        response: Any, chunk_size: int | None = None, hold: Callable[[], float] | None = None
    ) -> AsyncIterator[bytes]:
        recorded = None
        if hold is not None:
            reads.with_hold += 1

            def recorded() -> float:
                answer = hold()
                reads.holds.append(answer)
                return answer

        stream = original(response, chunk_size, recorded)

        async def counted() -> AsyncIterator[bytes]:
            async for data in stream:
                reads.chunks += 1
                yield data

        return counted()

    monkeypatch.setattr(_responder, "body_chunks", spy)
    return reads


def reply_fake(make_fake: MakeFake) -> FakeOpenAI:
    return make_fake(reply=REPLY, latency=LatencyProfile(text_per_token=0.01))


async def async_chain_turn(base_url: str, gather: float) -> cv.Turn:
    chain = cv.AsyncChain.openai(
        base_url=base_url,
        api_key=KEY,
        timeout=5.0,
        max_retries=0,
        responder_options={"gather": gather},
    )
    client = chain.responder._setup.client
    try:
        return await chain.run(text="Tell me something.")
    finally:
        await client.close()
        await chain.aclose()


def test_async_responder_gathers_the_reply_under_a_speaking_chain(
    make_fake_openai: MakeFake, reply_reads: Reads
) -> None:
    fake = reply_fake(make_fake_openai)
    with fake.serve() as server:
        plain = asyncio.run(async_chain_turn(server.base_url, 0))
        plain_reads = Reads(reply_reads.chunks, list(reply_reads.holds), reply_reads.with_hold)
        reply_reads.chunks = reply_reads.with_hold = 0
        reply_reads.holds.clear()
        gathered = asyncio.run(async_chain_turn(server.base_url, 0.2))
    assert plain.reply.text == gathered.reply.text == REPLY
    assert plain.reply.audio is not None and gathered.reply.audio is not None
    assert gathered.reply.audio.frames == plain.reply.audio.frames
    assert plain_reads.with_hold == 0  # gather=0: no hold at all
    assert plain_reads.chunks >= 30  # about one read per token
    assert reply_reads.with_hold == 1
    assert 0.2 in reply_reads.holds and set(reply_reads.holds) <= {0.0, 0.2}
    # Before the first sentence is cut nothing is in hand: the first reads are not held.
    assert reply_reads.holds[0] == 0.0
    assert reply_reads.chunks < plain_reads.chunks // 2


def test_async_responder_is_not_held_outside_a_chain(
    make_fake_openai: MakeFake, reply_reads: Reads
) -> None:
    fake = reply_fake(make_fake_openai)
    with fake.serve() as server:

        async def main() -> str:
            responder = AsyncOpenAIResponder(
                base_url=server.base_url, api_key=KEY, gather=0.2, timeout=5.0
            )
            try:
                conversation = cv.Conversation().add("user", "Tell me something.")
                parts = [
                    item async for item in responder.respond(conversation) if isinstance(item, str)
                ]
                return "".join(parts)
            finally:
                await responder._setup.client.close()

        text = asyncio.run(main())
    assert text == REPLY
    assert reply_reads.with_hold == 1 and reply_reads.holds
    assert set(reply_reads.holds) == {0.0}
    assert reply_reads.chunks >= 30


def test_async_responder_is_not_held_under_a_chain_that_does_not_speak(
    make_fake_openai: MakeFake, reply_reads: Reads
) -> None:
    fake = reply_fake(make_fake_openai)
    with fake.serve() as server:

        async def main() -> cv.Turn:
            responder = AsyncOpenAIResponder(
                base_url=server.base_url, api_key=KEY, gather=0.2, timeout=5.0
            )
            try:
                async with cv.AsyncChain(None, responder) as chain:
                    return await chain.run(text="Tell me something.")
            finally:
                await responder._setup.client.close()

        turn = asyncio.run(main())
    assert turn.reply.text == REPLY
    assert reply_reads.holds and set(reply_reads.holds) == {0.0}


def test_sync_chain_openai_gathers_the_reply_too(
    make_fake_openai: MakeFake, reply_reads: Reads
) -> None:
    fake = reply_fake(make_fake_openai)
    with fake.serve() as server:
        chain = cv.Chain.openai(base_url=server.base_url, api_key=KEY, timeout=5.0)
        assert type(chain.responder).__name__ == "AsyncOpenAIResponder"
        assert chain.responder._core.gather == DEFAULT_GATHER
        try:
            turn = chain.run(text="Tell me something.")
        finally:
            client = chain.responder._setup.client
            chain._runner().submit(client.close()).result(5)
            chain.close()
    assert turn.reply.text == REPLY
    assert 0.2 in reply_reads.holds and reply_reads.chunks < 30


# ----------------------------------------------------------- Chain.stream batching


class BurstResponder:
    """An async responder: bursts of deltas (no await inside a burst)."""

    def __init__(self, bursts: int = 3, size: int = 50) -> None:
        self.bursts = bursts
        self.size = size
        self.calls = 0

    async def respond(self, conversation: cv.Conversation) -> AsyncIterator[str]:
        self.calls += 1
        for b in range(self.bursts):
            for i in range(self.size):
                yield f"w{b}.{i} "
            yield f"Burst {b} ends. "
            await asyncio.sleep(0)


class TickSynthesizer:
    async def synthesize(self, text: str) -> AsyncIterator[cv.Audio]:
        for i in range(3):
            await asyncio.sleep(0)
            yield cv.Audio(np.full(240, (i + 1) / 10, np.float32), SPEECH_RATE)


def describe(event: cv.Event) -> tuple[Any, ...]:
    if isinstance(event, (cv.ReplyDelta, cv.ReplyDone, cv.TranscriptDelta)):
        return (type(event).__name__, event.text)
    if isinstance(event, cv.AudioChunk):
        return ("AudioChunk", event.piece, event.text, event.audio.frames)
    if isinstance(event, cv.TranscriptDone):
        return ("TranscriptDone", event.transcript.text)
    if isinstance(event, cv.TurnDone):
        audio_frames = event.turn.reply.audio.frames if event.turn.reply.audio else 0
        return ("TurnDone", event.turn.reply.text, audio_frames)
    raise AssertionError(event)


def both_faces(
    make_stages: Callable[[], tuple[Any, Any, Any]], **options: Any
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with cv.Chain(*make_stages(), **options) as chain:
        sync = [describe(e) for e in chain.stream(text="go")]

    async def main() -> list[tuple[Any, ...]]:
        async with cv.AsyncChain(*make_stages(), **options) as chain:
            return [describe(e) async for e in chain.stream(text="go")]

    return sync, asyncio.run(main())


def test_sync_stream_gives_the_async_streams_events_in_order() -> None:
    sync, asynchronous = both_faces(
        lambda: (None, BurstResponder(), TickSynthesizer()),
        splitter=lambda: cv.SentenceSplitter(first_min_chars=1, min_chars=1),
    )
    assert sync == asynchronous
    assert len([e for e in sync if e[0] == "ReplyDelta"]) == 3 * 51
    pieces = {e[1] for e in sync if e[0] == "AudioChunk"}
    assert len(pieces) >= 3
    assert len([e for e in sync if e[0] == "AudioChunk"]) == 3 * len(pieces)
    assert sync[-1][0] == "TurnDone"


def test_sync_stream_gives_the_same_events_as_async_with_the_fake(
    make_fake_openai: MakeFake,
) -> None:
    fake = make_fake_openai(reply=REPLY)

    def stages() -> tuple[Any, Any, Any]:
        client = fake.async_client(api_key=KEY)
        return (
            AsyncOpenAITranscriber(client=client),
            AsyncOpenAIResponder(client=client),
            AsyncOpenAISynthesizer(client=client),
        )

    def run_both() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        with cv.Chain(*stages()) as chain:
            sync = [describe(e) for e in chain.stream(tone())]

        async def main() -> list[tuple[Any, ...]]:
            async with cv.AsyncChain(*stages()) as chain:
                return [describe(e) async for e in chain.stream(tone())]

        return sync, asyncio.run(main())

    sync, asynchronous = run_both()
    assert sorted(sync) == sorted(asynchronous)  # the same count of each
    for kind in ("TranscriptDelta", "ReplyDelta", "AudioChunk"):
        assert [e for e in sync if e[0] == kind] == [e for e in asynchronous if e[0] == kind]
    kinds = [e[0] for e in sync]
    assert kinds.index("TranscriptDone") < kinds.index("ReplyDelta")
    assert kinds[-1] == "TurnDone" and kinds.count("ReplyDone") == 1
    assert sync[-1] == asynchronous[-1]


def tone(seconds: float = 0.5) -> cv.Audio:
    t = np.arange(int(seconds * 16000)) / 16000
    return cv.Audio((0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)


def test_sync_stream_hands_a_burst_over_in_one_go(monkeypatch: pytest.MonkeyPatch) -> None:
    puts: list[int] = []

    class CountingQueue(queue.SimpleQueue):  # type: ignore[type-arg]
        def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
            kind, value = item
            puts.append(len(value) if kind == 0 else 0)
            super().put(item, block, timeout)

    monkeypatch.setattr(
        _chain, "queue", types.SimpleNamespace(SimpleQueue=CountingQueue, Empty=queue.Empty)
    )
    responder = BurstResponder(bursts=2, size=100)
    with cv.Chain(None, responder) as chain:
        events = list(chain.stream(text="go"))
    assert len(events) == 2 * 101 + 2  # deltas, ReplyDone, TurnDone
    # Each burst crosses at once (its 101 deltas in one hand-off), not event by event.
    assert len(puts) <= 6 and max(puts) >= 101
    assert sum(puts) == len(events)


@pytest.mark.parametrize("speaking", [False, True], ids=["text", "speaking"])
def test_breaking_out_of_a_sync_stream_mid_burst_leaves_the_chain_usable(
    speaking: bool,
) -> None:
    responder = BurstResponder(bursts=2, size=200)
    synth = TickSynthesizer() if speaking else None
    options: dict[str, Any] = {}
    if speaking:
        options["splitter"] = lambda: cv.SentenceSplitter(first_min_chars=1, min_chars=1)
    with cv.Chain(None, responder, synth, **options) as chain:
        first = None
        for event in chain.stream(text="one"):
            if isinstance(event, cv.ReplyDelta):
                first = event
                break
        assert first is not None and first.text == "w0.0 "
        turn = chain.run(text="two")
        assert responder.calls == 2
        assert turn.reply.text.startswith("w0.0 w0.1 ") and turn.reply.text.endswith(
            "Burst 1 ends. "
        )
        messages = chain.conversation.messages
        assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]
        assert messages[2].content == "two"
        # And again after that: nothing left behind from the abandoned stream.
        for event in chain.stream(text="three"):
            if isinstance(event, cv.ReplyDelta):
                break
        assert chain.run(text="four").reply.text == turn.reply.text


# ------------------------------------------------------ _close_idle_connections

TRANSPORT = "chainvoice.openai._transport"


def test_close_idle_connections_tolerates_a_half_imported_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, TRANSPORT, types.ModuleType(TRANSPORT))

    async def main() -> None:
        _chain._close_idle_connections()
        async with cv.AsyncChain(None, lambda c: "hi") as chain:
            assert (await chain.run(text="x")).reply.text == "hi"
        await chain.aclose()  # idempotent, same module

    asyncio.run(main())


def test_sync_chain_closes_its_loop_with_a_half_imported_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failures: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: failures.append(args.exc_value))
    chain = cv.Chain(None, lambda c: "hi")
    assert chain.run(text="x").reply.text == "hi"
    loop = chain._loop
    assert loop is not None
    monkeypatch.setitem(sys.modules, TRANSPORT, types.ModuleType(TRANSPORT))
    chain.close()
    assert not loop.thread.is_alive() and loop.loop.is_closed()
    assert failures == []
    # The chain starts a new loop and works on.
    assert chain.run(text="y").reply.text == "hi"
    chain.close()


def test_close_idle_connections_without_the_transport_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, TRANSPORT, raising=False)

    async def main() -> None:
        _chain._close_idle_connections()

    asyncio.run(main())
    assert TRANSPORT not in sys.modules  # and it did not import it
