"""The OpenAI models table: defaults, capabilities, prices, shutdown dates, the text table."""

from __future__ import annotations

import datetime as dt
import inspect
import re
import typing
import warnings

import pytest

import chainvoice as cv
from chainvoice.openai import (
    DEFAULT_REPLY_MODEL,
    DEFAULT_SPEECH_MODEL,
    DEFAULT_TRANSCRIPTION_MODEL,
    MODELS,
    PRICES,
    ModelShutdownWarning,
    OpenAIResponder,
    Price,
    _models,
    format_models,
    model_rows,
)
from chainvoice.testing import FakeOpenAI


def _literal_values(alias: object) -> set[str]:
    out: set[str] = set()
    for arg in typing.get_args(alias):
        if isinstance(arg, str):
            out.add(arg)
        else:
            out |= _literal_values(arg)
    return out


def _sdk_shutdowns(module: object) -> dict[str, dt.date]:
    """Model -> announced shutdown date, from the SDK's generated docstrings."""
    source = inspect.getsource(module)  # type: ignore[arg-type]
    out: dict[str, dt.date] = {}
    for block in re.split(r"\n- ", source):
        match = re.search(r"Announced\s+shutdown\s+date:\s*(\d{4}-\d{2}-\d{2})", block)
        if match:
            date = dt.date.fromisoformat(match.group(1))
            head = block[: match.start()]
            for name in re.findall(r'"([a-z0-9.\-]+)"', head):
                out[name] = date
    return out


def test_defaults_are_models_the_installed_sdk_lists() -> None:
    from openai.types.audio.speech_model import SpeechModel
    from openai.types.audio_model import AudioModel
    from openai.types.shared.chat_model import ChatModel

    assert DEFAULT_TRANSCRIPTION_MODEL in _literal_values(AudioModel)
    assert DEFAULT_SPEECH_MODEL in _literal_values(SpeechModel)
    assert DEFAULT_REPLY_MODEL in _literal_values(ChatModel)
    assert DEFAULT_TRANSCRIPTION_MODEL == "gpt-transcribe"
    assert DEFAULT_SPEECH_MODEL == "gpt-4o-mini-tts"
    assert MODELS[DEFAULT_TRANSCRIPTION_MODEL].streaming
    assert MODELS[DEFAULT_SPEECH_MODEL].accepts("instructions")
    assert MODELS[DEFAULT_REPLY_MODEL].kind == "reply"


def test_every_audio_model_the_sdk_lists_is_in_the_table() -> None:
    from openai.types.audio.speech_model import SpeechModel
    from openai.types.audio_model import AudioModel

    for name in _literal_values(AudioModel):
        assert MODELS[name].kind == "transcription", name
    for name in _literal_values(SpeechModel):
        assert MODELS[name].kind == "speech", name


def test_shutdown_dates_match_the_sdk() -> None:
    from openai.types import audio_model
    from openai.types.audio import speech_model
    from openai.types.shared import chat_model

    sdk: dict[str, dt.date] = {}
    for module in (audio_model, speech_model, chat_model):
        sdk.update(_sdk_shutdowns(module))
    assert sdk["gpt-4o-mini-tts"] == dt.date(2027, 1, 6)  # the parser works
    for info in MODELS.values():
        assert info.shutdown == sdk.get(info.name), info.name


def test_published_reference_prices() -> None:
    assert PRICES["gpt-4o-transcribe"].per_minute == 0.006
    assert PRICES["gpt-4o-mini-transcribe"].per_minute == 0.003
    assert PRICES["gpt-4o-mini-tts"].per_minute == 0.015
    assert PRICES["whisper-1"].per_minute == 0.006
    assert PRICES["gpt-4o-mini-tts"].audio_output_per_mtok == 12.0
    assert PRICES["tts-1"].per_mchar == 15.0
    luna = PRICES[DEFAULT_REPLY_MODEL]
    assert luna.input_per_mtok is not None and luna.output_per_mtok is not None
    # Every reply model with a price has both text token prices.
    for name, price in PRICES.items():
        if MODELS[name].kind == "reply":
            assert price.input_per_mtok is not None and price.output_per_mtok is not None


def test_price_tokens_cost() -> None:
    price = Price(input_per_mtok=1.0, cached_input_per_mtok=0.1, output_per_mtok=2.0)
    cost = price.tokens_cost(input_text=1_000_000, cached_input=500_000, output_text=1_000_000)
    assert cost == pytest.approx(0.5 + 0.05 + 2.0)
    assert price.tokens_cost() == 0.0
    # A kind of token with no rate makes the cost unknown rather than 0.
    assert price.tokens_cost(input_audio=10) is None
    no_cache_rate = Price(input_per_mtok=1.0, output_per_mtok=2.0)
    assert no_cache_rate.tokens_cost(input_text=10, cached_input=10) == pytest.approx(1e-5)


def test_check_params_names_the_models_that_take_it() -> None:
    with pytest.raises(cv.UnsupportedParameterError, match="keywords") as info:
        _models.check_params("whisper-1", "transcription", ["keywords"])
    assert "gpt-transcribe" in str(info.value)
    assert isinstance(info.value, ValueError)
    _models.check_params("gpt-transcribe", "transcription", ["keywords", "languages"])
    _models.check_params("my-own-model", "transcription", ["keywords", "anything"])


def test_check_effort() -> None:
    _models.check_effort("gpt-6-luna", "none")
    _models.check_effort("some-server-model", "whatever")
    with pytest.raises(cv.ConfigurationError, match="none, low"):
        _models.check_effort("gpt-6-luna", "minimal")
    with pytest.raises(cv.UnsupportedParameterError, match="reasoning_effort"):
        _models.check_effort("gpt-4o-mini", "low")
    assert _models.fastest_effort("gpt-6-luna") == "none"
    assert _models.fastest_effort("gpt-5-mini") == "minimal"
    assert _models.fastest_effort("gpt-4o-mini") is None
    assert _models.fastest_effort("unknown") is None


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_models, "_WARNED", set())


def test_shutdown_warning_once_with_the_date(
    fresh_warnings: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_models, "_today", lambda: dt.date(2026, 11, 1))
    with pytest.warns(ModelShutdownWarning, match=r"2027-01-06 \(in 66 days\)"):
        _models.warn_if_retiring("tts-1")
    _models.warn_if_retiring("tts-1")  # once per process: no second warning
    assert issubclass(ModelShutdownWarning, FutureWarning)


def test_shutdown_warning_window(fresh_warnings: None) -> None:
    far = dt.date(2026, 10, 1)  # 97 days before 2027-01-06
    _models.warn_if_retiring("tts-1", today=far)
    with pytest.warns(ModelShutdownWarning, match="was shut down on 2026-10-23"):
        _models.warn_if_retiring("gpt-4.1-nano", today=dt.date(2026, 11, 25))
    with pytest.warns(ModelShutdownWarning, match="recommends gpt-transcribe"):
        _models.warn_if_retiring("whisper-1", today=dt.date(2027, 1, 1))
    _models.warn_if_retiring("gpt-transcribe", today=dt.date(2030, 1, 1))  # no date: no warning
    _models.warn_if_retiring("not-in-table", today=dt.date(2030, 1, 1))


def _one_shutdown_warning(record: pytest.WarningsRecorder) -> warnings.WarningMessage:
    found = [w for w in record if issubclass(w.category, ModelShutdownWarning)]
    assert len(found) == 1, [str(w.message) for w in found]
    return found[0]


def test_shutdown_warning_points_at_the_users_line(
    fresh_warnings: None, monkeypatch: pytest.MonkeyPatch, fake_openai: FakeOpenAI
) -> None:
    """However deep in chainvoice the stage is built: directly, stages() or Chain.openai()."""
    monkeypatch.setattr(_models, "_today", lambda: dt.date(2026, 11, 1))
    client = fake_openai.client()
    with pytest.warns(ModelShutdownWarning) as record:
        line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
        OpenAIResponder("gpt-4.1-nano", client=client)
    assert (_one_shutdown_warning(record).filename, record[0].lineno) == (__file__, line)
    with pytest.warns(ModelShutdownWarning) as record:
        line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
        cv.openai.stages(asynchronous=False, client=client, speech_model="tts-1", voice="alloy")
    assert (_one_shutdown_warning(record).filename, record[0].lineno) == (__file__, line)
    monkeypatch.setattr(_models, "_WARNED", set())
    with pytest.warns(ModelShutdownWarning) as record:
        line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
        cv.Chain.openai(client=client, reply_model="gpt-4.1-nano")
    warning = _one_shutdown_warning(record)
    assert (warning.filename, warning.lineno) == (__file__, line)
    assert "gpt-4.1-nano" in str(warning.message)


def test_a_stage_that_fails_to_build_does_not_use_up_the_warning(
    fresh_warnings: None, monkeypatch: pytest.MonkeyPatch, fake_openai: FakeOpenAI
) -> None:
    monkeypatch.setattr(_models, "_today", lambda: dt.date(2026, 11, 1))
    client = fake_openai.client()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning here fails the test
        with pytest.raises(cv.UnsupportedParameterError):
            OpenAIResponder("gpt-4.1-nano", reasoning_effort="high", client=client)
        with pytest.raises(cv.ConfigurationError, match="speed"):  # the reply model built
            cv.openai.stages(
                asynchronous=False,
                client=client,
                reply_model="gpt-4.1-nano",
                synthesizer_options={"speed": 9},
            )
    assert set() == _models._WARNED
    with pytest.warns(ModelShutdownWarning, match="gpt-4.1-nano"):
        OpenAIResponder("gpt-4.1-nano", client=client)


def test_model_rows_and_text_table() -> None:
    rows = model_rows()
    assert rows[0][0] == "model"
    names = [r[0] for r in rows[1:]]
    assert names == list(MODELS)
    assert all(len(r) == len(rows[0]) for r in rows)
    text = format_models()
    assert "gpt-4o-transcribe" in text and "$0.006/min" in text
    assert "2027-01-06" in text
    assert "unknown" in text  # a model without a published price says so
    only_speech = format_models("speech")
    assert "tts-1-hd" in only_speech and "whisper-1" not in only_speech
    assert "reasoning_effort(none/low/medium/high/xhigh/max)" in format_models("reply")


def test_price_describe() -> None:
    assert Price().describe() == "-"
    assert PRICES["gpt-6-luna"].describe() == "text in $0.10, cached $0.01, out $0.50 per 1M"
    assert PRICES["gpt-4o-mini-tts"].describe() == (
        "text in $0.60 per 1M; audio out $12.00 per 1M; $0.015/min"
    )
    assert "$15.00 per 1M chars" in PRICES["tts-1"].describe()


def test_price_for_compatible_servers_uses_only_overrides() -> None:
    mine = Price(per_minute=0.001)
    assert _models.price_for("whisper-1", overrides=None, official=False) is None
    assert _models.price_for("whisper-1", overrides=None, official=True) == PRICES["whisper-1"]
    assert _models.price_for("whisper-1", overrides={"whisper-1": mine}, official=False) is mine
    assert _models.price_for("local", overrides={"local": mine}, official=True) is mine
