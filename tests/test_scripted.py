"""The scripted fakes of chainvoice.testing: scripting, recording, errors, timing, threads."""

from __future__ import annotations

import asyncio
import pickle
import queue
import subprocess
import sys
import threading
import time

import attrs
import numpy as np
import pytest

import chainvoice as cv
import chainvoice.testing as cvt
from chainvoice.testing import (
    AsyncScriptedResponder,
    AsyncScriptedSynthesizer,
    AsyncScriptedTranscriber,
    AsyncStreamingScriptedTranscriber,
    Pause,
    ScriptedResponder,
    ScriptedSynthesizer,
    ScriptedTranscriber,
    ScriptError,
    StreamingScriptedTranscriber,
    UnconsumedScriptError,
    UnexpectedCallError,
    Wait,
    WaitTimeoutError,
)

AUDIO = cv.Audio.silence(0.5, rate=16000)


def convo(text: str = "hi") -> cv.Conversation:
    return cv.Conversation(instructions="Be brief.").add("user", text)


async def alist(ait):
    return [item async for item in ait]


# --------------------------------------------------------------------------- transcriber


def test_transcriber_plays_its_script_in_order_and_records_calls():
    exact = cv.Transcript("exact", language="fr", duration=9.0)
    boom = cv.APIConnectionError("down")
    fake = ScriptedTranscriber(["hello world", exact, boom], model="m1", language="en")

    first = fake.transcribe(AUDIO)
    assert first == cv.Transcript("hello world", language="en", duration=0.5, model="m1")
    assert fake.transcribe(AUDIO) is exact
    with pytest.raises(cv.APIConnectionError) as info:
        fake.transcribe(AUDIO)
    assert info.value is boom

    calls = fake.calls
    assert [c.index for c in calls] == [0, 1, 2]
    assert [c.status for c in calls] == ["done", "done", "raised"]
    assert calls[0].audio is AUDIO and calls[0].method == "transcribe"
    assert calls[0].transcript == first and calls[0].deltas == ()
    assert calls[2].error is boom and calls[2].transcript is None
    assert all(c.ended_at is not None and c.ended_at >= c.started_at for c in calls)
    fake.assert_complete()


def test_transcriber_without_stream_has_no_transcribe_stream_attribute():
    fake = ScriptedTranscriber(["x"])
    assert not hasattr(fake, "transcribe_stream")
    assert isinstance(fake, cv.Transcriber)
    assert not isinstance(fake, cv.StreamingTranscriber)
    assert not hasattr(AsyncScriptedTranscriber(["x"]), "transcribe_stream")


def test_stream_true_gives_a_streaming_subclass():
    fake = ScriptedTranscriber(["  Hello,  big\nworld. "], stream=True)
    assert type(fake) is StreamingScriptedTranscriber
    assert isinstance(fake, ScriptedTranscriber)
    assert isinstance(fake, cv.StreamingTranscriber)
    items = list(fake.transcribe_stream(AUDIO))
    *deltas, final = items
    assert deltas == ["  ", "Hello,  ", "big\n", "world. "]
    assert "".join(deltas) == final.text == "  Hello,  big\nworld. "
    assert fake.calls[0].method == "transcribe_stream"
    assert fake.calls[0].deltas == tuple(deltas) and fake.calls[0].transcript == final
    # the streaming class can also be built directly, and keeps streaming
    assert hasattr(StreamingScriptedTranscriber(["x"]), "transcribe_stream")


def test_streaming_transcriber_script_exception_is_raised_by_the_stream():
    fake = ScriptedTranscriber([ValueError("bad audio")], stream=True)
    stream = fake.transcribe_stream(AUDIO)
    assert fake.calls[0].status == "pending"
    with pytest.raises(ValueError, match="bad audio"):
        next(iter(stream))
    assert fake.calls[0].status == "raised"


def test_transcriber_usage_reports():
    fake = ScriptedTranscriber(["a", "b"], usage=True, model="stt-x")
    usage = fake.transcribe(cv.Audio.silence(2.0)).usage
    assert usage is not None
    assert (usage.stage, usage.model, usage.audio_seconds, usage.requests) == (
        "transcribe",
        "stt-x",
        2.0,
        1,
    )
    assert usage.cost_usd == pytest.approx(0.0002)
    given = cv.Usage(stage="transcribe", cost_usd=1.5)
    assert ScriptedTranscriber(["a"], usage=given).transcribe(AUDIO).usage is given
    # a scripted Transcript keeps its own usage
    own = cv.Transcript("t", usage=cv.Usage(requests=7))
    assert ScriptedTranscriber([own], usage=True).transcribe(AUDIO).usage.requests == 7


def test_transcriber_checks_its_input_and_script():
    with pytest.raises(TypeError, match=r"expects chainvoice\.Audio, got bytes"):
        ScriptedTranscriber(["x"]).transcribe(b"RIFF")  # type: ignore[arg-type]
    with pytest.raises(cv.ConfigurationError, match="script item 1 is 42"):
        ScriptedTranscriber(["ok", 42])  # type: ignore[list-item]
    with pytest.raises(cv.ConfigurationError, match="delay must be"):
        ScriptedTranscriber(["ok"], delay=-1)


def test_async_transcriber_and_stream():
    async def main():
        fake = AsyncScriptedTranscriber(["one two", "three"], stream=True)
        assert type(fake) is AsyncStreamingScriptedTranscriber
        assert isinstance(fake, cv.AsyncStreamingTranscriber)
        t = await fake.transcribe(AUDIO)
        items = await alist(fake.transcribe_stream(AUDIO))
        return fake, t, items

    fake, t, items = asyncio.run(main())
    assert t.text == "one two"
    assert items[:-1] == ["three"] and items[-1].text == "three"
    assert [c.method for c in fake.calls] == ["transcribe", "transcribe_stream"]
    fake.assert_complete()


# --------------------------------------------------------------------------- script errors


def test_unexpected_call_says_which_call_and_what_was_scripted():
    fake = ScriptedResponder(["Only reply."])
    list(fake.respond(convo()))
    with pytest.raises(UnexpectedCallError) as info:
        fake.respond(convo("again?"))
    err = info.value
    assert isinstance(err, AssertionError) and isinstance(err, ScriptError)
    assert not isinstance(err, cv.ChainvoiceError)
    assert (err.stage, err.call_index, err.scripted) == ("ScriptedResponder", 1, 1)
    message = str(err)
    assert "call #1" in message and "'again?'" in message
    assert "only 1 item(s)" in message and "'Only reply.'" in message
    assert fake.calls[1].status == "raised" and fake.calls[1].error is err


def test_assert_complete_reports_unused_items():
    fake = ScriptedResponder(["a", "b", ValueError("c")])
    list(fake.respond(convo()))
    assert fake.remaining == 2
    with pytest.raises(UnconsumedScriptError) as info:
        fake.assert_complete()
    assert info.value.remaining == 2
    assert "2 of 3 script item(s) were never used" in str(info.value)
    assert "#1 'b'" in str(info.value) and "ValueError('c')" in str(info.value)


def test_long_scripts_are_listed_briefly():
    fake = ScriptedResponder([f"reply {i}" for i in range(12)])
    list(fake.respond(convo()))
    with pytest.raises(UnconsumedScriptError) as info:
        fake.assert_complete()
    assert "#1 'reply 1'" in str(info.value) and "#5 'reply 5'" in str(info.value)
    assert "'reply 6'" not in str(info.value) and "and 6 more" in str(info.value)


def test_assert_complete_reports_an_unexpected_call_even_if_it_was_swallowed():
    fake = ScriptedTranscriber([])
    with pytest.raises(UnexpectedCallError):
        fake.transcribe(AUDIO)
    with pytest.raises(UnexpectedCallError, match="1 call"):
        fake.assert_complete()


def test_a_fully_used_script_is_complete():
    fake = ScriptedResponder(["x", ["y"]])
    list(fake.respond(convo()))
    list(fake.respond(convo()))
    fake.assert_complete()
    assert ScriptedResponder().remaining == 0
    ScriptedResponder().assert_complete()


# --------------------------------------------------------------------------- responder


def test_responder_streams_words_keeping_whitespace():
    text = "Hello,  there!\n\nHow are you?  "
    fake = ScriptedResponder([text])
    deltas = list(fake.respond(convo()))
    assert len(deltas) > 3 and "".join(deltas) == text
    assert fake.calls[0].text == text and fake.calls[0].finished


def test_responder_steps_usage_and_mid_stream_error():
    usage = cv.Usage(stage="respond", output_tokens=3)
    boom = cv.StreamInterruptedError("cut")
    fake = ScriptedResponder([["First. ", usage, "Second ", boom, "never"]])
    stream = fake.respond(convo())
    assert next(stream) == "First. "
    assert next(stream) is usage
    assert next(stream) == "Second "
    with pytest.raises(cv.StreamInterruptedError):
        next(stream)
    call = fake.calls[0]
    assert call.deltas == ("First. ", "Second ") and call.usage == (usage,)
    assert call.status == "raised" and call.error is boom and not call.stopped_early


def test_responder_exception_item_raises_before_any_text():
    fake = ScriptedResponder([cv.RateLimitError("slow down", retry_after=1.0)])
    with pytest.raises(cv.RateLimitError):
        list(fake.respond(convo()))
    assert fake.calls[0].deltas == ()


def test_responder_usage_true_reports_tokens_after_the_text():
    fake = ScriptedResponder(["one two three"], usage=True, model="llm-x")
    items = list(fake.respond(convo("a b c d")))
    *text, usage = items
    assert text == ["one ", "two ", "three"]
    assert isinstance(usage, cv.Usage)
    # "Be brief." (2 words) + "a b c d" (4 words) in, 3 deltas out
    assert (usage.stage, usage.model, usage.input_tokens, usage.output_tokens) == (
        "respond",
        "llm-x",
        6,
        3,
    )
    assert usage.cost_usd == pytest.approx((6 + 4 * 3) * 1e-6)


def test_responder_records_early_close_and_pending_calls():
    fake = ScriptedResponder(["a b c", "d e"])
    stream = fake.respond(convo())
    assert fake.calls[0].status == "pending"
    assert next(stream) == "a "
    assert fake.calls[0].status == "running"
    stream.close()
    call = fake.calls[0]
    assert call.status == "closed" and call.stopped_early and not call.finished
    assert call.deltas == ("a ",)
    assert call.ended_at is not None

    # dropping a started generator closes it too (CPython finalizes it at once)
    stream = fake.respond(convo())
    next(stream)
    del stream
    assert fake.calls[1].status == "closed"


def test_responder_checks_its_input_and_script():
    with pytest.raises(TypeError, match=r"expects chainvoice\.Conversation, got str"):
        ScriptedResponder(["x"]).respond("hi")  # type: ignore[arg-type]
    with pytest.raises(cv.ConfigurationError, match=r"step 1 of script item 0 is b'x'"):
        ScriptedResponder([["ok", b"x"]])  # type: ignore[list-item]
    with pytest.raises(cv.ConfigurationError, match="script item 0 is 3"):
        ScriptedResponder([3])  # type: ignore[list-item]


def test_calls_are_frozen_snapshots():
    fake = ScriptedResponder(["a b"])
    stream = fake.respond(convo())
    before = fake.calls[0]
    list(stream)
    assert before.deltas == () and before.status == "pending"
    assert fake.calls[0].deltas == ("a ", "b")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        before.status = "done"  # type: ignore[misc]
    assert "calls=1" in repr(fake) and "remaining=0" in repr(fake)


# --------------------------------------------------------------------------- waits and delays


def test_wait_step_holds_the_stream_until_the_test_sets_the_event():
    go = threading.Event()
    fake = ScriptedResponder([["First sentence. ", Wait(go), "Second sentence."]])
    seen: queue.Queue[str] = queue.Queue()

    def consume():
        for delta in fake.respond(convo()):
            seen.put(delta)

    worker = threading.Thread(target=consume)
    worker.start()
    assert seen.get(timeout=5) == "First sentence. "
    time.sleep(0.05)
    assert seen.empty() and fake.calls[0].status == "running"
    go.set()
    assert seen.get(timeout=5) == "Second sentence."
    worker.join(5)
    assert fake.calls[0].finished


def test_wait_step_times_out_with_a_clear_error():
    fake = ScriptedSynthesizer([[Wait(threading.Event(), timeout=0.05)]])
    with pytest.raises(WaitTimeoutError, match=r"not set within 0\.05 s"):
        list(fake.synthesize("x"))
    assert isinstance(fake.calls[0].error, WaitTimeoutError)


def test_delay_and_chunk_delay_and_pause():
    fake = ScriptedResponder(["a b c"], delay=0.05, chunk_delay=0.03)
    start = time.monotonic()
    stamps = [time.monotonic() - start for _ in fake.respond(convo())]
    assert stamps[0] >= 0.05
    assert stamps[1] - stamps[0] >= 0.03 and stamps[2] - stamps[1] >= 0.03

    fake = ScriptedResponder([["a", Pause(0.05), "b"]])
    start = time.monotonic()
    stamps = [time.monotonic() - start for _ in fake.respond(convo())]
    assert stamps[1] - stamps[0] >= 0.05


def test_transcriber_delay():
    fake = ScriptedTranscriber(["x"], delay=0.05)
    start = time.monotonic()
    fake.transcribe(AUDIO)
    assert time.monotonic() - start >= 0.05


# --------------------------------------------------------------------------- synthesizer


def test_synthesizer_speaks_any_text_deterministically():
    fake = ScriptedSynthesizer()
    text = "Hello there."
    chunks = list(fake.synthesize(text))
    assert len(chunks) == 3
    assert all(isinstance(c, cv.Audio) and c.rate == 24000 and c.channels == 1 for c in chunks)
    joined = cv.Audio.concat(chunks)
    assert joined == fake.audio_for(text) == fake.calls[0].audio
    assert joined.duration == pytest.approx(len(text) * 0.01, abs=1 / 24000)
    assert 0 < float(np.abs(joined.samples).max()) <= 0.1 + 1e-6
    # longer text gives longer audio, another text other audio
    assert fake.audio_for(text * 2).duration > joined.duration
    assert fake.audio_for("Goodbye now.") != joined
    assert list(fake.synthesize("   ")) == [] and fake.audio_for("") is None
    assert fake.remaining is None
    fake.assert_complete()


def test_synthesizer_format_options():
    fake = ScriptedSynthesizer(rate=16000, channels=2, chunks=5, seconds_per_char=0.02)
    chunks = list(fake.synthesize("abcde"))
    assert len(chunks) == 5
    assert {(c.rate, c.channels) for c in chunks} == {(16000, 2)}
    assert sum(c.frames for c in chunks) == 5 * 0.02 * 16000
    assert len(list(ScriptedSynthesizer(chunks=10).synthesize("a"))) == 10
    with pytest.raises(cv.ConfigurationError, match="chunks must be a positive integer"):
        ScriptedSynthesizer(chunks=0)
    with pytest.raises(cv.ConfigurationError, match="rate must be a positive integer"):
        ScriptedSynthesizer(rate=24000.0)  # type: ignore[arg-type]
    with pytest.raises(cv.ConfigurationError, match="fail_on takes texts"):
        ScriptedSynthesizer(fail_on=[1.5])  # type: ignore[list-item]


def test_synthesizer_fail_on_text_and_index():
    fake = ScriptedSynthesizer(fail_on=["bad", 3], fail_after=1)
    assert len(list(fake.synthesize("fine"))) == 3
    stream = fake.synthesize("a bad piece")
    assert isinstance(next(stream), cv.Audio)
    with pytest.raises(RuntimeError, match=r"call #1 \('a bad piece'\)"):
        next(stream)
    list(fake.synthesize("fine again"))
    with pytest.raises(RuntimeError, match="call #3"):
        list(fake.synthesize("fourth"))
    assert [c.status for c in fake.calls] == ["done", "raised", "done", "raised"]
    assert len(fake.calls[1].chunks) == len(fake.calls[3].chunks) == 1

    custom = cv.ServerError("tts down", status_code=503)
    fake = ScriptedSynthesizer(fail_on="x", error=custom)
    with pytest.raises(cv.ServerError) as info:
        list(fake.synthesize("x"))
    assert info.value is custom


def test_synthesizer_script_and_usage():
    a = cv.Audio(np.full(100, 0.5, dtype=np.float32), 8000)
    fake = ScriptedSynthesizer([[a, a], cv.APITimeoutError("slow")], usage=True, model="tts-x")
    *chunks, usage = list(fake.synthesize("Hi!"))
    assert chunks == [a, a]
    assert (usage.stage, usage.model, usage.characters, usage.requests) == (
        "synthesize",
        "tts-x",
        3,
        1,
    )
    assert usage.audio_seconds == pytest.approx(200 / 8000)
    with pytest.raises(cv.APITimeoutError):
        list(fake.synthesize("again"))
    with pytest.raises(UnexpectedCallError, match="call #2"):
        fake.synthesize("third")
    with pytest.raises(cv.ConfigurationError, match="synthesizer item must be"):
        ScriptedSynthesizer(["text"])  # type: ignore[list-item]


def test_synthesizer_checks_its_input():
    with pytest.raises(TypeError, match="expects str, got NoneType"):
        ScriptedSynthesizer().synthesize(None)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- threads


def test_sync_synthesizer_is_safe_from_many_threads():
    fake = ScriptedSynthesizer(chunk_delay=0.001)
    texts = [f"Piece number {i}." for i in range(16)]
    results: dict[str, list[cv.Audio]] = {}
    barrier = threading.Barrier(len(texts))

    def run(text: str) -> None:
        barrier.wait(5)
        results[text] = list(fake.synthesize(text))

    threads = [threading.Thread(target=run, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    calls = fake.calls
    assert sorted(c.index for c in calls) == list(range(16))
    assert sorted(c.text for c in calls) == sorted(texts)
    for text in texts:
        assert cv.Audio.concat(results[text]) == fake.audio_for(text)


def test_sync_calls_run_at_the_same_time_without_a_global_lock():
    go = threading.Event()
    chunk = cv.Audio.silence(0.01, rate=24000)
    fake = ScriptedSynthesizer([[chunk, Wait(go), chunk]] * 2)
    threads = [threading.Thread(target=lambda: list(fake.synthesize("x"))) for _ in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and [len(c.chunks) for c in fake.calls] != [1, 1]:
        time.sleep(0.005)
    assert [(c.status, len(c.chunks)) for c in fake.calls] == [("running", 1)] * 2
    go.set()
    for t in threads:
        t.join(5)
    assert [c.status for c in fake.calls] == ["done", "done"]
    fake.assert_complete()


def test_each_script_item_goes_to_exactly_one_thread():
    items = [f"reply {i}" for i in range(20)]
    fake = ScriptedResponder(items)
    got: list[str] = []
    lock = threading.Lock()

    def run() -> None:
        text = "".join(fake.respond(convo()))
        with lock:
            got.append(text)

    threads = [threading.Thread(target=run) for _ in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(got) == sorted(items)
    fake.assert_complete()


# --------------------------------------------------------------------------- async


def test_async_responder_and_synthesizer():
    async def main():
        responder = AsyncScriptedResponder(["Hi there, friend."], usage=True)
        synth = AsyncScriptedSynthesizer(usage=True)
        assert isinstance(responder, cv.AsyncResponder)
        assert isinstance(synth, cv.AsyncSynthesizer)
        deltas = await alist(responder.respond(convo()))
        chunks = await alist(synth.synthesize("Hi there, friend."))
        return responder, synth, deltas, chunks

    responder, synth, deltas, chunks = asyncio.run(main())
    assert "".join(d for d in deltas if isinstance(d, str)) == "Hi there, friend."
    assert isinstance(deltas[-1], cv.Usage)
    assert cv.Audio.concat(c for c in chunks if isinstance(c, cv.Audio)) == synth.audio_for(
        "Hi there, friend."
    )
    responder.assert_complete()


def test_async_fakes_honour_cancellation_promptly():
    async def main():
        responder = AsyncScriptedResponder(["never"], delay=30)
        transcriber = AsyncScriptedTranscriber(["never"], delay=30)
        synth = AsyncScriptedSynthesizer([[Wait(threading.Event(), timeout=30)]])
        tasks = [
            asyncio.ensure_future(alist(responder.respond(convo()))),
            asyncio.ensure_future(transcriber.transcribe(AUDIO)),
            asyncio.ensure_future(alist(synth.synthesize("x"))),
        ]
        await asyncio.sleep(0.05)
        start = time.monotonic()
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        return time.monotonic() - start, results, (responder, transcriber, synth)

    elapsed, results, fakes = asyncio.run(main())
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    assert elapsed < 5  # not the 30 s of the delays
    for fake in fakes:
        assert fake.calls[0].status == "cancelled" and fake.calls[0].stopped_early


def test_async_wait_polls_without_blocking_the_loop():
    go = threading.Event()

    async def main():
        fake = AsyncScriptedResponder([["first ", Wait(go), "second"]])
        seen = []

        first_seen = asyncio.Event()

        async def release_after_five_ticks():
            # only a loop that keeps running while the fake waits can ever set the event
            await first_seen.wait()
            for _ in range(5):
                await asyncio.sleep(0.001)
            assert seen == ["first "]
            go.set()

        async def consume():
            async for delta in fake.respond(convo()):
                seen.append(delta)
                first_seen.set()

        await asyncio.wait_for(asyncio.gather(release_after_five_ticks(), consume()), 10)
        return fake, seen

    fake, seen = asyncio.run(main())
    assert seen == ["first ", "second"]
    assert fake.calls[0].finished


def test_async_early_close_is_recorded():
    async def main():
        fake = AsyncScriptedSynthesizer()
        stream = fake.synthesize("Hello there.")
        await stream.__anext__()
        await stream.aclose()
        return fake

    fake = asyncio.run(main())
    assert fake.calls[0].status == "closed" and len(fake.calls[0].chunks) == 1


# --------------------------------------------------------------------------- the package


def test_public_api_is_complete_and_sorted():
    assert cvt.__all__ == sorted(cvt.__all__)
    for name in cvt.__all__:
        obj = getattr(cvt, name)  # FakeOpenAI is imported here, on first use
        if isinstance(obj, type):
            assert obj.__module__ == "chainvoice.testing", name
    assert "strategies" in dir(cvt) and "FakeOpenAI" in dir(cvt)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        cvt.nope  # noqa: B018


def test_errors_pickle():
    err = pickle.loads(pickle.dumps(UnexpectedCallError("m", stage="S", call_index=2, scripted=1)))
    assert (str(err), err.stage, err.call_index, err.scripted) == ("m", "S", 2, 1)
    err2 = pickle.loads(pickle.dumps(UnconsumedScriptError("left", remaining=3)))
    assert (str(err2), err2.remaining) == ("left", 3)


def test_importing_the_testing_kit_needs_no_optional_dependency():
    code = (
        "import sys, chainvoice.testing; "
        "bad = [m for m in ('hypothesis', 'openai', 'pydub') if m in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
