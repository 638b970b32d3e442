"""Chain and AsyncChain behaviour, tested without timing assumptions."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest

import chainvoice as cv
from chainvoice import _chain

RATE = 24000


def tone(seconds: float = 0.05, rate: int = RATE) -> cv.Audio:
    t = np.arange(int(seconds * rate)) / rate
    return cv.Audio((0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate)


class Transcriber:
    def __init__(self, text: str = "what time is it", usage: cv.Usage | None = None) -> None:
        self.text = text
        self.usage = usage
        self.calls: list[cv.Audio] = []

    def transcribe(self, audio: cv.Audio) -> cv.Transcript:
        self.calls.append(audio)
        return cv.Transcript(self.text, usage=self.usage)


class StreamingTranscriber(Transcriber):
    def transcribe_stream(self, audio: cv.Audio) -> Iterator[str | cv.Usage | cv.Transcript]:
        self.calls.append(audio)
        words = self.text.split(" ")
        for i, word in enumerate(words):
            yield word if i == 0 else " " + word
        yield cv.Usage(model="stt", audio_seconds=audio.duration)
        yield cv.Transcript(self.text)


class Responder:
    """Yields scripted deltas; records whether it was closed early."""

    def __init__(self, *deltas: str | cv.Usage) -> None:
        self.deltas = deltas or ("It is noon. ", "Have a nice day.")
        self.closed_early = False
        self.finished = False
        self.conversations: list[cv.Conversation] = []

    def respond(self, conversation: cv.Conversation) -> Iterator[str | cv.Usage]:
        self.conversations.append(conversation)
        try:
            yield from self.deltas
            self.finished = True
        except GeneratorExit:
            self.closed_early = True
            raise


class Synthesizer:
    """One chunk per word of each piece; records every call."""

    def __init__(self, delay: float = 0.0, fail_on: str | None = None) -> None:
        self.delay = delay
        self.fail_on = fail_on
        self.texts: list[str] = []
        self.active = 0
        self.max_active = 0
        self.closed_early = 0
        self._lock = threading.Lock()

    def synthesize(self, text: str) -> Iterator[cv.Audio | cv.Usage]:
        with self._lock:
            self.texts.append(text)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            if self.fail_on is not None and self.fail_on in text:
                raise RuntimeError("voice exploded")
            for _ in text.split():
                if self.delay:
                    time.sleep(self.delay)
                yield tone()
            yield cv.Usage(model="tts", characters=len(text), cost_usd=0.001)
        except GeneratorExit:
            with self._lock:
                self.closed_early += 1
            raise
        finally:
            with self._lock:
                self.active -= 1


def kinds(events: list[cv.Event]) -> list[str]:
    return [type(e).__name__ for e in events]


# -- whole turns ---------------------------------------------------------------------


def test_text_turn_with_plain_function_responder() -> None:
    chain = cv.Chain(None, lambda c: "You said " + c.last_user_text)
    turn = chain.run(text="hello")
    assert turn.reply.text == "You said hello"
    assert turn.transcript is None
    assert turn.reply.audio is None
    assert turn.user_text == "hello"
    assert [m.role for m in chain.conversation.messages] == ["user", "assistant"]


def test_full_voice_turn_sync() -> None:
    synth = Synthesizer()
    chain = cv.Chain(
        Transcriber(),
        Responder(),
        synth,
        instructions="Be brief.",
        splitter=lambda: cv.SentenceSplitter(first_min_chars=5, min_chars=5),
    )
    turn = chain.run(tone(0.5))
    assert turn.transcript is not None and turn.transcript.text == "what time is it"
    assert turn.reply.text == "It is noon. Have a nice day."
    assert turn.reply.audio is not None
    # one chunk per word: 3 + 4 words
    assert turn.reply.audio.frames == 7 * tone().frames
    assert synth.texts == ["It is noon.", "Have a nice day."]
    assert chain.conversation.instructions == "Be brief."
    assert chain.conversation.as_dicts()[0] == {"role": "system", "content": "Be brief."}


def test_event_order_and_audio_in_text_order() -> None:
    # Later pieces finish first (earlier pieces are slower); audio must still be in order.
    class SlowFirst(Synthesizer):
        def synthesize(self, text: str) -> Iterator[cv.Audio | cv.Usage]:
            delay = {"One.": 0.05, "Two.": 0.02}.get(text.split()[0], 0.0)
            time.sleep(delay)
            yield cv.Audio(np.full(10, len(self.texts) + 1, dtype=np.float32) / 100, RATE)
            with self._lock:
                self.texts.append(text)

    responder = Responder("One. This is the first. ", "Two. And the second. ", "Three. Done.")
    chain = cv.Chain(
        Transcriber(),
        responder,
        SlowFirst(),
        splitter=lambda: cv.SentenceSplitter(first_min_chars=1, min_chars=1),
    )
    events = list(chain.stream(tone()))
    names = kinds(events)
    assert names[0] == "TranscriptDone"
    assert names[-1] == "TurnDone"
    assert names.index("ReplyDone") > max(i for i, n in enumerate(names) if n == "ReplyDelta")
    chunks = [e for e in events if isinstance(e, cv.AudioChunk)]
    assert [c.piece for c in chunks] == sorted(c.piece for c in chunks)
    assert [c.text for c in chunks][:2] == ["One.", "This is the first."]


def test_streaming_transcriber_emits_deltas_and_usage_is_hidden() -> None:
    chain = cv.Chain(StreamingTranscriber("hello big world"), Responder("Hi."), Synthesizer())
    events = list(chain.stream(tone()))
    deltas = [e.text for e in events if isinstance(e, cv.TranscriptDelta)]
    assert "".join(deltas) == "hello big world"
    assert not any(isinstance(e, cv.Usage) for e in events)
    turn = events[-1].turn  # type: ignore[union-attr]
    assert turn.usage_by_stage["transcribe"].model == "stt"


def test_usage_is_summed_per_turn_and_per_chain() -> None:
    stt = cv.Usage(model="stt", audio_seconds=1.0, cost_usd=0.01)
    chain = cv.Chain(
        Transcriber(usage=stt),
        Responder("Hi. ", cv.Usage(model="llm", input_tokens=5, output_tokens=2, cost_usd=0.02)),
        Synthesizer(),
    )
    turn = chain.run(tone())
    assert turn.usage.input_tokens == 5
    assert turn.usage.audio_seconds == 1.0
    assert turn.usage.cost_usd == pytest.approx(0.031)
    assert set(turn.usage_by_stage) == {"transcribe", "respond", "synthesize"}
    chain.run(tone())
    assert chain.usage.cost_usd == pytest.approx(0.062)


def test_unknown_cost_is_none_not_zero() -> None:
    chain = cv.Chain(None, Responder("Hi. ", cv.Usage(model="x", unpriced=("x",))))
    turn = chain.run(text="hi")
    assert turn.usage.cost_usd is None
    assert "x" in turn.usage.cost_note


def test_responder_may_return_one_string_or_list_or_async() -> None:
    async def async_fn(c: cv.Conversation) -> str:
        await asyncio.sleep(0)
        return "async str"

    async def async_gen(c: cv.Conversation) -> AsyncIterator[str]:
        yield "async "
        yield "gen"

    class AsyncResponder:
        async def respond(self, c: cv.Conversation) -> AsyncIterator[str | cv.Usage]:
            yield "method "
            yield cv.Usage(model="m")
            yield "gen"

    for responder, expected in [
        (lambda c: ["a", "b"], "ab"),
        (async_fn, "async str"),
        (async_gen, "async gen"),
        (AsyncResponder(), "method gen"),
    ]:
        assert cv.Chain(None, responder).run(text="x").reply.text == expected
        assert asyncio.run(cv.AsyncChain(None, responder).run(text="x")).reply.text == expected


def test_async_stages_under_sync_chain_and_sync_stages_under_async_chain() -> None:
    class AsyncTranscriber:
        async def transcribe(self, audio: cv.Audio) -> cv.Transcript:
            await asyncio.sleep(0)
            return cv.Transcript("async hi")

    class AsyncSynth:
        async def synthesize(self, text: str) -> AsyncIterator[cv.Audio]:
            await asyncio.sleep(0)
            yield tone()

    turn = cv.Chain(AsyncTranscriber(), Responder("Yes."), AsyncSynth()).run(tone())
    assert turn.transcript is not None and turn.transcript.text == "async hi"
    assert turn.reply.audio is not None

    async def main() -> cv.Turn:
        async with cv.AsyncChain(Transcriber(), Responder("Yes."), Synthesizer()) as chain:
            return await chain.run(tone())

    turn = asyncio.run(main())
    assert turn.reply.text == "Yes."
    assert turn.reply.audio is not None


def test_whole_reply_audio_is_the_streamed_chunks_joined() -> None:
    class Words:
        """One chunk per word, each word's its own tone."""

        def synthesize(self, text: str) -> Iterator[cv.Audio]:
            for i, _ in enumerate(text.split()):
                yield tone(0.01 * (i + 1)).gain(-i)

    chain = cv.Chain(
        Transcriber(),
        Responder(),
        Words(),
        splitter=lambda: cv.SentenceSplitter(first_min_chars=5, min_chars=5),
    )
    events = list(chain.stream(tone(0.5)))
    chunks = [e.audio for e in events if isinstance(e, cv.AudioChunk)]
    turn = next(e.turn for e in events if isinstance(e, cv.TurnDone))
    assert len(chunks) == 7
    audio = turn.reply.audio
    assert audio is not None and isinstance(audio, cv.Audio)
    assert audio.frames == sum(c.frames for c in chunks)  # known before joining
    assert audio == cv.Audio.concat(chunks)
    assert repr(audio).startswith("Audio(duration=")


def test_chain_works_inside_a_running_event_loop() -> None:
    async def notebook_cell() -> str:
        chain = cv.Chain(None, lambda c: "from inside a loop")
        return chain.run(text="x").reply.text

    assert asyncio.run(notebook_cell()) == "from inside a loop"


def test_sync_stage_does_not_block_the_event_loop() -> None:
    async def main() -> int:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.005)

        task = asyncio.ensure_future(ticker())
        chain = cv.AsyncChain(None, Responder("One two three four."), Synthesizer(delay=0.05))
        await chain.run(text="x")
        stop.set()
        await task
        return ticks

    # The synthesizer sleeps 4 x 50 ms in a worker thread; the loop keeps ticking.
    assert asyncio.run(main()) >= 10


def test_timings() -> None:
    turn = cv.Chain(Transcriber(), Responder(), Synthesizer()).run(tone())
    t = turn.timings
    assert t.transcribe is not None and t.respond is not None and t.synthesize is not None
    assert t.transcribe.end is not None and t.transcribe.end <= t.respond.start
    assert t.first_audio is not None and t.respond.start <= t.first_audio <= t.total
    assert t.synthesize.first_output == t.first_audio
    assert "first audio" in str(t)


# -- streaming overlap, without timing -------------------------------------------------


@pytest.mark.parametrize("face", ["sync", "async"])
def test_first_audio_arrives_while_the_responder_is_still_running(face: str) -> None:
    seen_audio = threading.Event()
    waited: list[bool] = []

    def responder(c: cv.Conversation) -> Iterator[str]:
        yield "Hello there, nice to meet you. "
        # Wait until the consumer has seen the first audio chunk: if the chain waited
        # for the whole reply before synthesizing, this would time out.
        waited.append(seen_audio.wait(timeout=10))
        yield "How are you?"

    if face == "sync":
        chain = cv.Chain(None, responder, Synthesizer())
        for event in chain.stream(text="hi"):
            if isinstance(event, cv.AudioChunk):
                seen_audio.set()
    else:

        async def main() -> None:
            chain = cv.AsyncChain(None, responder, Synthesizer())
            async for event in chain.stream(text="hi"):
                if isinstance(event, cv.AudioChunk):
                    seen_audio.set()

        asyncio.run(main())
    assert waited == [True]


def test_sync_stream_hands_each_burst_over_together_and_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Events made in one step of the chain's loop reach the caller's thread in one
    hand-over, and before the chain waits for more."""
    batches: list[list[str]] = []

    class Spy(queue.SimpleQueue):  # type: ignore[type-arg]
        def put(self, item: object, block: bool = True, timeout: float | None = None) -> None:
            if isinstance(item, tuple) and item[0] == 0:  # the chain's batch of events
                batches.append([type(e).__name__ for e in item[1]])
            super().put(item, block, timeout)

    monkeypatch.setattr(_chain.queue, "SimpleQueue", Spy)
    seen = threading.Event()

    async def responder(c: cv.Conversation) -> AsyncIterator[str]:
        for word in ("One, ", "two, ", "three. "):  # one step: nothing awaited between
            yield word
        for _ in range(1000):  # until the caller has the three (it has them at once)
            if seen.is_set():
                break
            await asyncio.sleep(0.01)
        yield "Four."

    got: list[cv.Event] = []
    with cv.Chain(StreamingTranscriber("one two"), responder, Synthesizer()) as chain:
        for event in chain.stream(tone(0.5)):
            got.append(event)
            if isinstance(event, cv.ReplyDelta) and event.text == "three. ":
                seen.set()
    assert seen.is_set() and got[-1].turn.reply.text == "One, two, three. Four."
    assert sum(len(b) for b in batches) == len(got)
    reply = [b for b in batches if "ReplyDelta" in b]
    assert reply[0] == ["ReplyDelta"] * 3  # alone: handed over before the wait


def test_synthesis_is_concurrent_but_bounded() -> None:
    synth = Synthesizer(delay=0.02)
    text = " ".join(f"Sentence number {i} is here." for i in range(8))
    chain = cv.Chain(
        None,
        Responder(text),
        synth,
        max_concurrent_synthesis=2,
        splitter=lambda: cv.SentenceSplitter(first_min_chars=1, min_chars=1),
    )
    turn = chain.run(text="go")
    assert len(synth.texts) == 8
    assert 1 < synth.max_active <= 2
    assert turn.reply.text == text


# -- barge-in and cancellation -----------------------------------------------------------


def test_closing_the_stream_stops_every_stage_and_records_only_what_was_produced() -> None:
    release = threading.Event()

    class Endless:
        def __init__(self) -> None:
            self.closed_early = False
            self.produced = 0

        def respond(self, c: cv.Conversation) -> Iterator[str]:
            try:
                yield "The first sentence is here. "
                while True:
                    release.wait(0.01)
                    self.produced += 1
                    yield "more "
            except GeneratorExit:
                self.closed_early = True
                raise

    responder = Endless()
    synth = Synthesizer(delay=0.01)
    chain = cv.Chain(Transcriber(), responder, synth)
    deltas: list[str] = []
    with contextlib.closing(chain.stream(tone())) as events:
        for event in events:
            if isinstance(event, cv.ReplyDelta):
                deltas.append(event.text)
            if isinstance(event, cv.AudioChunk):
                break
    assert responder.closed_early
    produced_after_close = responder.produced
    time.sleep(0.1)
    assert responder.produced == produced_after_close  # no work goes on
    last = chain.conversation.messages[-1]
    assert last.role == "assistant" and last.interrupted
    # With a synthesizer, an interrupted reply keeps the text whose audio reached the
    # caller: the first piece, not the words generated after it.
    assert last.content == "The first sentence is here."
    assert "".join(deltas).startswith(last.content)
    assert chain.conversation.messages[-2].content == "what time is it"
    # The chain is usable again afterwards.
    chain2_turn = cv.Chain(None, lambda c: "ok").run(text="again")
    assert chain2_turn.reply.text == "ok"


def test_repeated_early_closes_leave_no_threads_behind() -> None:
    chain = cv.Chain(
        None, Responder("Hello there, nice to meet you. ", "More text here. " * 20), Synthesizer()
    )

    def one() -> None:
        for event in chain.stream(text="hi"):
            if isinstance(event, cv.AudioChunk):
                break

    others = {t for t in threading.enumerate() if t.name.startswith("chainvoice")}
    before = threading.active_count()
    for _ in range(5):
        one()
    # One private loop thread plus a bounded pool of stage workers, reused by every turn.
    bound = before + 1 + chain._core.runtime._max_workers
    for _ in range(20):
        one()
        assert threading.active_count() <= bound
    chain.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        left = {t for t in threading.enumerate() if t.name.startswith("chainvoice")} - others
        if not left:
            break
        time.sleep(0.01)
    assert not left, left


def test_cancelling_an_async_turn_stops_the_stages() -> None:
    class Slow:
        def __init__(self) -> None:
            self.cancelled = False

        async def respond(self, c: cv.Conversation) -> AsyncIterator[str]:
            try:
                yield "This is the part that was spoken. "
                yield "This part was generated "
                await asyncio.sleep(30)
                yield "never"
            except asyncio.CancelledError:
                self.cancelled = True
                raise

    responder = Slow()

    async def main() -> cv.AsyncChain:
        chain = cv.AsyncChain(None, responder, Synthesizer())
        heard = asyncio.Event()

        async def consume() -> None:
            async for event in chain.stream(text="hi"):
                if isinstance(event, cv.AudioChunk):
                    heard.set()

        task = asyncio.ensure_future(consume())
        await asyncio.wait_for(heard.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return chain

    chain = asyncio.run(main())
    assert responder.cancelled
    last = chain.conversation.messages[-1]
    assert last.content == "This is the part that was spoken."
    assert last.interrupted


def test_interrupted_text_only_turn_keeps_the_text_produced() -> None:
    never = threading.Event()

    def responder(c: cv.Conversation) -> Iterator[str]:
        yield "Some text. "
        never.wait(0.5)  # still generating when the caller stops listening
        yield "More text."

    chain = cv.Chain(None, responder)
    with contextlib.closing(chain.stream(text="hi")) as events:
        for event in events:
            if isinstance(event, cv.ReplyDelta):
                break
    last = chain.conversation.messages[-1]
    assert last.role == "assistant" and last.interrupted
    # Without a synthesizer, the text produced is what the caller got.
    assert last.content == "Some text. "


def test_async_stream_aclose_stops_stages() -> None:
    responder = Responder("The first sentence is here. ", "Two sentences here. ", "Three.")
    synth = Synthesizer(delay=0.01)

    async def main() -> None:
        chain = cv.AsyncChain(None, responder, synth)
        events = chain.stream(text="hi")
        async for event in events:
            if isinstance(event, cv.AudioChunk):
                break
        await events.aclose()  # type: ignore[attr-defined]

    asyncio.run(main())
    assert synth.closed_early >= 1
    assert synth.active == 0


# -- failures keep what was produced -----------------------------------------------------


def test_failed_transcription_raises_stage_error() -> None:
    class Broken:
        def transcribe(self, audio: cv.Audio) -> cv.Transcript:
            raise ConnectionError("no network")

    chain = cv.Chain(Broken(), Responder(), Synthesizer())
    with pytest.raises(cv.StageError) as info:
        chain.run(tone())
    err = info.value
    assert err.stage == "transcribe"
    assert isinstance(err.__cause__, ConnectionError)
    assert err.partial is not None and err.partial.transcript is None
    assert len(chain.conversation) == 0


def test_failed_reply_keeps_the_transcript() -> None:
    def responder(c: cv.Conversation) -> Iterator[str]:
        yield "Half a "
        raise TimeoutError("model went away")

    chain = cv.Chain(Transcriber(), responder, Synthesizer())
    events: list[cv.Event] = []
    with pytest.raises(cv.StageError) as info:
        for event in chain.stream(tone()):
            events.append(event)
    err = info.value
    assert err.stage == "respond"
    assert isinstance(err.error, TimeoutError)
    assert err.partial is not None
    assert err.partial.transcript is not None
    assert err.partial.transcript.text == "what time is it"
    assert err.partial.reply.text == "Half a "
    assert "transcript" in str(err)
    assert any(isinstance(e, cv.TranscriptDone) for e in events)
    assert [m.role for m in chain.conversation.messages] == ["user", "assistant"]
    assert chain.conversation.messages[-1].interrupted


def test_failed_synthesis_keeps_the_whole_reply_text() -> None:
    chain = cv.Chain(
        Transcriber(),
        Responder("It is noon, time for lunch. ", "Have a nice day."),
        Synthesizer(fail_on="nice"),
    )
    with pytest.raises(cv.StageError) as info:
        chain.run(tone())
    err = info.value
    assert err.stage == "synthesize"
    assert err.partial is not None
    assert err.partial.reply.text == "It is noon, time for lunch. Have a nice day."
    assert err.partial.reply.audio is not None  # the first piece's audio survived
    assert err.partial.transcript is not None


@pytest.mark.parametrize("face", ["sync", "async"])
def test_failed_synthesis_in_a_stream_hands_over_everything_before_the_error(face: str) -> None:
    """The reply's text and the first piece's audio reach the caller, in order, then the
    error, whose partial turn holds the same."""

    def chain_parts() -> tuple[object, ...]:
        return (
            Transcriber(),
            Responder("It is noon, time for lunch. ", "Have a nice day."),
            Synthesizer(fail_on="nice"),
        )

    seen: list[cv.Event] = []
    if face == "sync":
        with pytest.raises(cv.StageError) as info:
            for event in cv.Chain(*chain_parts()).stream(tone()):
                seen.append(event)
    else:

        async def main() -> None:
            async for event in cv.AsyncChain(*chain_parts()).stream(tone()):
                seen.append(event)

        with pytest.raises(cv.StageError) as info:
            asyncio.run(main())
    err = info.value
    assert err.stage == "synthesize" and err.partial is not None
    text = "".join(e.text for e in seen if isinstance(e, cv.ReplyDelta))
    assert text == err.partial.reply.text == "It is noon, time for lunch. Have a nice day."
    chunks = [e for e in seen if isinstance(e, cv.AudioChunk)]
    assert [(c.text, c.piece) for c in chunks] == [("It is noon, time for lunch.", 0)] * 6
    assert err.partial.reply.audio == cv.Audio.concat([c.audio for c in chunks])
    kinds_seen = kinds(seen)
    assert kinds_seen[0] == "TranscriptDone" and "TurnDone" not in kinds_seen
    assert kinds_seen.index("AudioChunk") > kinds_seen.index("ReplyDelta")


def test_failed_synthesis_under_async_chain() -> None:
    async def main() -> None:
        chain = cv.AsyncChain(None, Responder("Boom. "), Synthesizer(fail_on="Boom"))
        with pytest.raises(cv.StageError) as info:
            await chain.run(text="x")
        assert info.value.stage == "synthesize"
        assert info.value.partial is not None and info.value.partial.reply.text == "Boom. "

    asyncio.run(main())


@pytest.mark.parametrize(
    ("responder", "message"),
    [
        (lambda c: [1, 2], "yielded int"),
        (lambda c: 42, "neither iterable"),
        (lambda c: [b"bytes"], "yielded bytes"),
    ],
)
def test_protocol_violations_become_stage_errors(responder: object, message: str) -> None:
    with pytest.raises(cv.StageError) as info:
        cv.Chain(None, responder).run(text="x")
    assert isinstance(info.value.error, cv.ProtocolError)
    assert message in str(info.value.error)


def test_transcriber_returning_str_is_a_protocol_error() -> None:
    class Wrong:
        def transcribe(self, audio: cv.Audio) -> str:
            return "text"

    with pytest.raises(cv.StageError) as info:
        cv.Chain(Wrong(), Responder()).run(tone())
    assert isinstance(info.value.error, cv.ProtocolError)
    assert "Transcript(text)" in str(info.value.error)


def test_stream_transcriber_must_end_with_one_transcript() -> None:
    class NoFinal:
        def transcribe(self, audio: cv.Audio) -> cv.Transcript:
            return cv.Transcript("x")

        def transcribe_stream(self, audio: cv.Audio) -> Iterator[str]:
            yield "x"

    with pytest.raises(cv.StageError, match="without a final Transcript"):
        cv.Chain(NoFinal(), Responder()).run(tone())


def test_synthesizer_yielding_bytes_is_caught() -> None:
    class Bytes:
        def synthesize(self, text: str) -> Iterator[bytes]:
            yield b"\x00\x00"

    with pytest.raises(cv.StageError) as info:
        cv.Chain(None, Responder("Hi."), Bytes()).run(text="x")
    assert info.value.stage == "synthesize"
    assert "yielded bytes" in str(info.value.error)


# -- conversation and configuration --------------------------------------------------------


def test_conversation_across_turns_reset_and_handover() -> None:
    responder = Responder("Sure.")
    chain = cv.Chain(None, responder, instructions="Be kind.")
    chain.run(text="one")
    chain.run(text="two")
    assert [m.content for m in chain.conversation.messages] == ["one", "Sure.", "two", "Sure."]
    assert responder.conversations[-1].last_user_text == "two"
    assert responder.conversations[-1].instructions == "Be kind."
    chain.reset()
    assert len(chain.conversation) == 0 and chain.instructions == "Be kind."
    chain.reset(cv.Conversation([cv.Message("user", "earlier")], instructions="New."))
    chain.run(text="three")
    assert responder.conversations[-1].messages[0].content == "earlier"
    assert chain.instructions == "New."
    with pytest.raises(cv.ConfigurationError):
        chain.conversation = "nope"  # type: ignore[assignment]


def test_empty_transcript_ends_the_turn_without_a_reply() -> None:
    responder = Responder()
    chain = cv.Chain(Transcriber(text="  "), responder, Synthesizer())
    turn = chain.run(tone())
    assert turn.reply.text == "" and turn.reply.audio is None
    assert responder.conversations == []
    assert len(chain.conversation) == 0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda ch: ch.run(), "either audio"),
        (lambda ch: ch.run(tone(), text="x"), "either audio"),
        (lambda ch: ch.run(42), "must be a chainvoice.Audio"),
    ],
)
def test_bad_turn_input(call: object, match: str) -> None:
    chain = cv.Chain(Transcriber(), Responder())
    with pytest.raises(cv.ConfigurationError, match=match):
        call(chain)  # type: ignore[operator]


def test_audio_without_transcriber_and_bad_stages() -> None:
    with pytest.raises(cv.ConfigurationError, match="no transcriber"):
        cv.Chain(None, Responder()).run(tone())
    with pytest.raises(cv.ConfigurationError, match="responder"):
        cv.Chain(None, None)
    with pytest.raises(cv.ConfigurationError, match="synthesize"):
        cv.Chain(None, Responder(), object())
    with pytest.raises(cv.ConfigurationError, match="transcribe"):
        cv.Chain(object(), Responder())
    with pytest.raises(cv.ConfigurationError, match="at least 1"):
        cv.Chain(None, Responder(), max_concurrent_synthesis=0)


def test_a_chain_runs_one_turn_at_a_time() -> None:
    release = threading.Event()

    def responder(c: cv.Conversation) -> Iterator[str]:
        yield "One. "
        release.wait(10)  # the first turn is still running while the second is tried
        yield "Two."

    chain = cv.Chain(None, responder, Synthesizer())
    first = chain.stream(text="a")
    next(first)
    with pytest.raises(cv.ChainBusyError, match="already running a turn"):
        chain.run(text="b")
    release.set()
    first.close()  # type: ignore[attr-defined]
    assert chain.run(text="c").reply.text == "One. Two."


def test_async_break_then_new_turn_waits_for_the_abandoned_stream() -> None:
    async def main() -> str:
        chain = cv.AsyncChain(
            None, Responder("First sentence of the reply. ", "More."), Synthesizer(delay=0.01)
        )
        async for event in chain.stream(text="a"):
            if isinstance(event, cv.AudioChunk):
                break  # the natural barge-in code: no aclose()
        turn = await chain.run(text="b")
        return turn.reply.text

    assert asyncio.run(main()) == "First sentence of the reply. More."


def test_close_during_a_run_is_a_clear_error() -> None:
    release = threading.Event()

    def responder(c: cv.Conversation) -> Iterator[str]:
        yield "Start. "
        release.wait(0.5)
        yield "End."

    chain = cv.Chain(None, responder)
    threading.Timer(0.1, chain.close).start()
    with pytest.raises(cv.ChainClosedError, match="closed while this turn was running"):
        chain.run(text="x")
    release.set()
    assert chain.run(text="again").reply.text == "Start. End."


def test_failed_streaming_transcription_keeps_the_text_heard() -> None:
    class Cut:
        def transcribe(self, audio: cv.Audio) -> cv.Transcript:
            raise AssertionError("the chain uses transcribe_stream")

        def transcribe_stream(self, audio: cv.Audio) -> Iterator[str]:
            yield "Hello, "
            yield "thi"
            raise ConnectionResetError("stream cut")

    with pytest.raises(cv.StageError) as info:
        cv.Chain(Cut(), Responder()).run(tone())
    partial = info.value.partial
    assert partial is not None and partial.transcript is not None
    assert partial.transcript.text == "Hello, thi"
    assert partial.user_text == "Hello, thi"


def test_failed_long_transcription_keeps_the_pieces_transcribed() -> None:
    class Flaky:
        def __init__(self) -> None:
            self.calls = 0
            self.lock = threading.Lock()

        def transcribe(self, audio: cv.Audio) -> cv.Transcript:
            with self.lock:
                self.calls += 1
                n = self.calls
            if n == 2:
                raise ConnectionError("lost one piece")
            return cv.Transcript(f"piece{n}")

    long = cv.LongTranscriber(Flaky(), max_piece_seconds=2.0, overlap=0.2, retries=0, concurrency=1)
    with pytest.raises(cv.StageError) as info:
        cv.Chain(long, Responder()).run(tone(5.5))
    err = info.value
    assert isinstance(err.error, cv.PartialTranscriptionError)
    assert err.partial is not None and err.partial.transcript is not None
    assert err.partial.transcript is err.error.transcript
    assert "piece1" in err.partial.transcript.text


def test_empty_audio_is_refused_before_any_stage_runs() -> None:
    transcriber = Transcriber()
    with pytest.raises(cv.EmptyAudioError, match="no frames"):
        cv.Chain(transcriber, Responder()).run(cv.Audio(np.zeros(0, dtype=np.float32), RATE))
    assert transcriber.calls == []


def test_unknown_factory_option_names_the_close_match() -> None:
    with pytest.raises(cv.ConfigurationError, match="did you mean 'voice'"):
        cv.Chain.openai(voise="coral", api_key="sk-test")


def test_chain_usage_before_any_turn_costs_nothing() -> None:
    assert cv.Chain(None, Responder()).usage.cost_usd == 0.0


def test_an_empty_handed_conversation_keeps_its_instructions() -> None:
    chain = cv.Chain(None, lambda c: "ok", instructions="old")
    chain.run(text="hi")
    chain.reset(cv.Conversation(instructions="NEW"))
    assert chain.instructions == "NEW" and len(chain.conversation) == 0
    fresh = cv.Chain(None, lambda c: "ok", conversation=cv.Conversation(instructions="SYS"))
    assert fresh.instructions == "SYS"
    with pytest.raises(cv.ConfigurationError):
        cv.Chain(None, lambda c: "ok", conversation=["hi"])  # type: ignore[arg-type]


def test_first_cut_can_be_tuned() -> None:
    synth = Synthesizer()
    chain = cv.Chain(
        None,
        Responder("Hi. ", "I am here to help you today. "),
        synth,
        splitter=lambda: cv.SentenceSplitter(first_min_chars=1, min_chars=1),
    )
    chain.run(text="x")
    assert synth.texts[0] == "Hi."


def test_repr_names_stages_and_import_is_light() -> None:
    chain = cv.Chain(Transcriber(), Responder(), Synthesizer())
    assert "Transcriber" in repr(chain) and "turns=0" in repr(chain)
    import subprocess
    import sys

    code = (
        "import sys, chainvoice; "
        "bad = [m for m in ('openai', 'pydub', 'httpx', 'hypothesis') if m in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
