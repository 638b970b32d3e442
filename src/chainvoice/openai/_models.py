"""OpenAI models as data: what each accepts, its limits, its price and its shutdown date.

Everything the OpenAI stages check before sending a request comes from :data:`MODELS`, so a
new model is one entry here. A model that is not in the table is still allowed and sent as
is (OpenAI-compatible servers name their models freely); it is simply not checked, and its
cost is unknown unless a price is given.

Prices are in US dollars, as OpenAI published them, and live in :data:`PRICES`, a plain
dict that users may update (``PRICES["my-model"] = Price(...)``); each stage also takes a
``prices=`` mapping that wins over this table. Against a server other than OpenAI's, only
the stage's own ``prices=`` are used: OpenAI's prices say nothing about another server.
"""

from __future__ import annotations

import datetime as _dt
import os
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from typing import Literal

import attrs

from chainvoice._errors import ConfigurationError, UnsupportedParameterError

__all__ = [
    "DEFAULT_REPLY_MODEL",
    "DEFAULT_SPEECH_MODEL",
    "DEFAULT_TRANSCRIPTION_MODEL",
    "MODELS",
    "PRICES",
    "ModelInfo",
    "ModelShutdownWarning",
    "Price",
    "format_models",
    "model_rows",
]

Kind = Literal["transcription", "speech", "reply"]

DEFAULT_TRANSCRIPTION_MODEL = "gpt-transcribe"
"""The newest transcription model the installed ``openai`` SDK lists; streams, takes keywords."""

DEFAULT_SPEECH_MODEL = "gpt-4o-mini-tts"
"""The newest speech model the installed SDK lists that takes ``instructions`` (steering)."""

DEFAULT_REPLY_MODEL = "gpt-6-luna"
"""OpenAI's current small, fast text model (the GPT-6 family's cost-efficient tier)."""

UPLOAD_LIMIT_BYTES = 25 * 1024 * 1024
"""OpenAI's upload limit for one transcription request (25 MB)."""

SPEECH_INPUT_LIMIT = 4096
"""OpenAI's limit on the characters of one speech request's ``input``."""

SHUTDOWN_WARNING_DAYS = 90
"""Naming a model this many days before its shutdown date (or later) warns."""


class ModelShutdownWarning(FutureWarning):
    """A model that was named explicitly is within 90 days of (or past) its shutdown date."""


@attrs.frozen(kw_only=True)
class Price:
    """What a model costs, in US dollars, per the units OpenAI bills.

    Any field may be ``None`` (not published, or not how the model is billed). Token prices
    are per million tokens.

    Attributes:
        input_per_mtok: Text input tokens.
        cached_input_per_mtok: Cached text input tokens (``None``: billed as uncached input).
        output_per_mtok: Text output tokens.
        audio_input_per_mtok: Audio input tokens (transcription).
        audio_output_per_mtok: Audio output tokens (speech).
        per_minute: Per minute of audio transcribed or produced; OpenAI bills some models
            this way and publishes it as the estimate for the token-billed audio models.
        per_mchar: Per million characters of speech input (``tts-1``, ``tts-1-hd``).

    Example:
        >>> Price(input_per_mtok=0.10, output_per_mtok=0.50).output_per_mtok
        0.5
    """

    input_per_mtok: float | None = None
    cached_input_per_mtok: float | None = None
    output_per_mtok: float | None = None
    audio_input_per_mtok: float | None = None
    audio_output_per_mtok: float | None = None
    per_minute: float | None = None
    per_mchar: float | None = None

    def describe(self) -> str:
        """A short human-readable summary, e.g. ``"text in $0.10, out $0.50 per 1M"``."""
        parts: list[str] = []
        text = [
            f"{label} {_money(value)}"
            for label, value in (
                ("in", self.input_per_mtok),
                ("cached", self.cached_input_per_mtok),
                ("out", self.output_per_mtok),
            )
            if value is not None
        ]
        if text:
            parts.append("text " + ", ".join(text) + " per 1M")
        if self.audio_input_per_mtok is not None:
            parts.append(f"audio in {_money(self.audio_input_per_mtok)} per 1M")
        if self.audio_output_per_mtok is not None:
            parts.append(f"audio out {_money(self.audio_output_per_mtok)} per 1M")
        if self.per_minute is not None:
            parts.append(f"{_money(self.per_minute)}/min")
        if self.per_mchar is not None:
            parts.append(f"{_money(self.per_mchar)} per 1M chars")
        return "; ".join(parts) if parts else "-"

    def tokens_cost(
        self,
        *,
        input_text: int = 0,
        cached_input: int = 0,
        output_text: int = 0,
        input_audio: int = 0,
        output_audio: int = 0,
    ) -> float | None:
        """The cost of these token counts, or ``None`` if a count that is non-zero has no price.

        ``cached_input`` is the part of ``input_text`` that was served from the cache.
        """
        uncached = max(input_text - cached_input, 0)
        cached_rate = (
            self.cached_input_per_mtok
            if self.cached_input_per_mtok is not None
            else self.input_per_mtok
        )
        total = 0.0
        for count, rate in (
            (uncached, self.input_per_mtok),
            (min(cached_input, input_text), cached_rate),
            (output_text, self.output_per_mtok),
            (input_audio, self.audio_input_per_mtok),
            (output_audio, self.audio_output_per_mtok),
        ):
            if count:
                if rate is None:
                    return None
                total += count * rate / 1_000_000
        return total


def _money(value: float | None) -> str:
    if value is None:
        return "?"
    text = f"{value:.4f}".rstrip("0")
    if text.endswith("."):
        text += "00"
    elif len(text.split(".")[1]) == 1:
        text += "0"
    return "$" + text


def _names(values: Iterable[str]) -> frozenset[str]:
    return frozenset(values)


def _date(text: str | None) -> _dt.date | None:
    return None if text is None else _dt.date.fromisoformat(text)


@attrs.frozen(kw_only=True)
class ModelInfo:
    """What one OpenAI model accepts and its limits.

    Attributes:
        name: The model id sent to the API.
        kind: ``"transcription"``, ``"speech"`` or ``"reply"``.
        summary: One line on what it is for.
        params: The optional parameters it takes, by chainvoice's names (e.g. ``"keywords"``,
            ``"instructions"``, ``"reasoning_effort"``); a stage refuses one it does not take.
        response_formats: The response formats it can return.
        streaming: Whether it can stream its output.
        reasoning_efforts: For reply models that reason, the efforts they accept (empty:
            accepted values not listed here, so not checked); ``None`` when it does not reason.
        max_upload_bytes: Largest upload for one request (transcription).
        max_audio_seconds: Longest audio for one request (transcription), where published.
        max_input_chars: Longest text for one request (speech).
        shutdown: The announced shutdown date, if any.
        replacement: The model OpenAI recommends instead, where it named one.
    """

    name: str
    kind: Kind
    summary: str
    params: frozenset[str] = attrs.field(converter=_names, default=frozenset())
    response_formats: tuple[str, ...] = ()
    streaming: bool = False
    reasoning_efforts: tuple[str, ...] | None = None
    max_upload_bytes: int | None = None
    max_audio_seconds: float | None = None
    max_input_chars: int | None = None
    shutdown: _dt.date | None = attrs.field(default=None, converter=_date)
    replacement: str | None = None

    def accepts(self, param: str) -> bool:
        """Whether the model takes the optional parameter ``param``."""
        return param in self.params


_TRANSCRIBE_FORMATS_GPT = ("json",)
_SPEECH_FORMATS = ("pcm", "wav", "mp3", "opus", "aac", "flac")
_EFFORTS_2026 = ("none", "low", "medium", "high", "xhigh", "max")
_EFFORTS_GPT5 = ("minimal", "low", "medium", "high")
_GPT4O_TRANSCRIBE_PARAMS = ("language", "prompt", "temperature", "logprobs", "chunking_strategy")

_TABLE: tuple[tuple[ModelInfo, Price | None], ...] = (
    # --- transcription -------------------------------------------------------------------
    (
        ModelInfo(
            name="gpt-transcribe",
            kind="transcription",
            summary="High-accuracy speech to text with keyword and multi-language hints",
            params=(
                "language",
                "languages",
                "keywords",
                "prompt",
                "temperature",
                "chunking_strategy",
            ),
            response_formats=("json", "text"),
            streaming=True,
            max_upload_bytes=UPLOAD_LIMIT_BYTES,
        ),
        Price(per_minute=0.0045),
    ),
    (
        ModelInfo(
            name="gpt-4o-transcribe",
            kind="transcription",
            summary="Speech to text powered by GPT-4o",
            params=_GPT4O_TRANSCRIBE_PARAMS,
            response_formats=_TRANSCRIBE_FORMATS_GPT,
            streaming=True,
            max_upload_bytes=UPLOAD_LIMIT_BYTES,
            max_audio_seconds=1500,
            shutdown="2027-02-26",
            replacement="gpt-transcribe",
        ),
        Price(
            input_per_mtok=2.50, output_per_mtok=10.00, audio_input_per_mtok=6.00, per_minute=0.006
        ),
    ),
    (
        ModelInfo(
            name="gpt-4o-mini-transcribe",
            kind="transcription",
            summary="Cheaper, faster speech to text powered by GPT-4o mini",
            params=_GPT4O_TRANSCRIBE_PARAMS,
            response_formats=_TRANSCRIBE_FORMATS_GPT,
            streaming=True,
            max_upload_bytes=UPLOAD_LIMIT_BYTES,
            max_audio_seconds=1500,
            shutdown="2027-02-26",
            replacement="gpt-transcribe",
        ),
        Price(
            input_per_mtok=1.25, output_per_mtok=5.00, audio_input_per_mtok=3.00, per_minute=0.003
        ),
    ),
    (
        ModelInfo(
            name="gpt-4o-mini-transcribe-2025-12-15",
            kind="transcription",
            summary="Snapshot of gpt-4o-mini-transcribe",
            params=_GPT4O_TRANSCRIBE_PARAMS,
            response_formats=_TRANSCRIBE_FORMATS_GPT,
            streaming=True,
            max_upload_bytes=UPLOAD_LIMIT_BYTES,
            max_audio_seconds=1500,
            shutdown="2027-02-26",
            replacement="gpt-transcribe",
        ),
        Price(
            input_per_mtok=1.25, output_per_mtok=5.00, audio_input_per_mtok=3.00, per_minute=0.003
        ),
    ),
    (
        ModelInfo(
            name="gpt-4o-transcribe-diarize",
            kind="transcription",
            summary="Speech to text with speaker labels (diarized_json)",
            params=(
                "language",
                "temperature",
                "diarization",
                "chunking_strategy",
                "known_speakers",
            ),
            response_formats=("json", "text", "diarized_json"),
            streaming=True,
            max_upload_bytes=UPLOAD_LIMIT_BYTES,
            max_audio_seconds=1500,
            shutdown="2027-02-26",
            replacement="gpt-transcribe",
        ),
        Price(
            input_per_mtok=2.50, output_per_mtok=10.00, audio_input_per_mtok=6.00, per_minute=0.006
        ),
    ),
    (
        ModelInfo(
            name="whisper-1",
            kind="transcription",
            summary="Whisper V2; word and segment timestamps (verbose_json)",
            params=("language", "prompt", "temperature", "timestamp_granularities"),
            response_formats=("json", "text", "srt", "verbose_json", "vtt"),
            streaming=False,
            max_upload_bytes=UPLOAD_LIMIT_BYTES,
            shutdown="2027-02-26",
            replacement="gpt-transcribe",
        ),
        Price(per_minute=0.006),
    ),
    # --- speech --------------------------------------------------------------------------
    (
        ModelInfo(
            name="gpt-4o-mini-tts",
            kind="speech",
            summary="Text to speech that follows instructions (tone, accent, pace)",
            params=("instructions", "speed", "sse"),
            response_formats=_SPEECH_FORMATS,
            streaming=True,
            max_input_chars=SPEECH_INPUT_LIMIT,
            shutdown="2027-01-06",
        ),
        Price(input_per_mtok=0.60, audio_output_per_mtok=12.00, per_minute=0.015),
    ),
    (
        ModelInfo(
            name="gpt-4o-mini-tts-2025-12-15",
            kind="speech",
            summary="Snapshot of gpt-4o-mini-tts",
            params=("instructions", "speed", "sse"),
            response_formats=_SPEECH_FORMATS,
            streaming=True,
            max_input_chars=SPEECH_INPUT_LIMIT,
            shutdown="2027-01-06",
        ),
        Price(input_per_mtok=0.60, audio_output_per_mtok=12.00, per_minute=0.015),
    ),
    (
        ModelInfo(
            name="tts-1",
            kind="speech",
            summary="Text to speech, optimised for speed (no instructions)",
            params=("speed",),
            response_formats=_SPEECH_FORMATS,
            streaming=True,
            max_input_chars=SPEECH_INPUT_LIMIT,
            shutdown="2027-01-06",
        ),
        Price(per_mchar=15.00),
    ),
    (
        ModelInfo(
            name="tts-1-hd",
            kind="speech",
            summary="Text to speech, optimised for quality (no instructions)",
            params=("speed",),
            response_formats=_SPEECH_FORMATS,
            streaming=True,
            max_input_chars=SPEECH_INPUT_LIMIT,
            shutdown="2027-01-06",
        ),
        Price(per_mchar=30.00),
    ),
    # --- reply ---------------------------------------------------------------------------
    (
        ModelInfo(
            name="gpt-6-luna",
            kind="reply",
            summary="GPT-6's most efficient model, for focused high-volume tasks",
            params=("reasoning_effort", "temperature"),
            streaming=True,
            reasoning_efforts=_EFFORTS_2026,
        ),
        Price(input_per_mtok=0.10, cached_input_per_mtok=0.01, output_per_mtok=0.50),
    ),
    (
        ModelInfo(
            name="gpt-6-sol",
            kind="reply",
            summary="GPT-6 flagship",
            params=("reasoning_effort", "temperature"),
            streaming=True,
            reasoning_efforts=(),
        ),
        Price(input_per_mtok=2.00, cached_input_per_mtok=0.20, output_per_mtok=10.00),
    ),
    (
        ModelInfo(
            name="gpt-5.6-luna",
            kind="reply",
            summary="GPT-5.6 for cost-sensitive, high-volume work",
            params=("reasoning_effort", "temperature"),
            streaming=True,
            reasoning_efforts=_EFFORTS_2026,
        ),
        Price(input_per_mtok=0.20, cached_input_per_mtok=0.02, output_per_mtok=1.20),
    ),
    (
        ModelInfo(
            name="gpt-5.6-terra",
            kind="reply",
            summary="GPT-5.6 balanced between intelligence and cost",
            params=("reasoning_effort", "temperature"),
            streaming=True,
            reasoning_efforts=_EFFORTS_2026,
        ),
        Price(input_per_mtok=2.00, output_per_mtok=12.00),
    ),
    (
        ModelInfo(
            name="gpt-5.6-sol",
            kind="reply",
            summary="GPT-5.6 flagship",
            params=("reasoning_effort", "temperature"),
            streaming=True,
            reasoning_efforts=(),
        ),
        None,
    ),
    (
        ModelInfo(
            name="gpt-5.4-mini",
            kind="reply",
            summary="GPT-5.4 small model",
            params=("reasoning_effort", "temperature"),
            streaming=True,
            reasoning_efforts=(),
        ),
        None,
    ),
    (
        ModelInfo(
            name="gpt-5-mini",
            kind="reply",
            summary="GPT-5 small reasoning model (no temperature)",
            params=("reasoning_effort",),
            streaming=True,
            reasoning_efforts=_EFFORTS_GPT5,
            shutdown="2026-12-11",
        ),
        Price(input_per_mtok=0.25, cached_input_per_mtok=0.025, output_per_mtok=2.00),
    ),
    (
        ModelInfo(
            name="gpt-5-nano",
            kind="reply",
            summary="GPT-5 smallest reasoning model (no temperature)",
            params=("reasoning_effort",),
            streaming=True,
            reasoning_efforts=_EFFORTS_GPT5,
            shutdown="2026-12-11",
        ),
        Price(input_per_mtok=0.05, cached_input_per_mtok=0.005, output_per_mtok=0.40),
    ),
    (
        ModelInfo(
            name="gpt-4.1-mini",
            kind="reply",
            summary="GPT-4.1 small non-reasoning model",
            params=("temperature",),
            streaming=True,
            shutdown="2027-01-14",
            replacement="gpt-6-luna",
        ),
        Price(input_per_mtok=0.40, cached_input_per_mtok=0.10, output_per_mtok=1.60),
    ),
    (
        ModelInfo(
            name="gpt-4.1-nano",
            kind="reply",
            summary="GPT-4.1 smallest non-reasoning model",
            params=("temperature",),
            streaming=True,
            shutdown="2026-10-23",
        ),
        Price(input_per_mtok=0.10, cached_input_per_mtok=0.025, output_per_mtok=0.40),
    ),
    (
        ModelInfo(
            name="gpt-4o-mini",
            kind="reply",
            summary="GPT-4o small non-reasoning model",
            params=("temperature",),
            streaming=True,
            shutdown="2027-01-14",
            replacement="gpt-6-luna",
        ),
        Price(input_per_mtok=0.15, cached_input_per_mtok=0.075, output_per_mtok=0.60),
    ),
    (
        ModelInfo(
            name="gpt-4o",
            kind="reply",
            summary="GPT-4o non-reasoning model",
            params=("temperature",),
            streaming=True,
            shutdown="2027-01-14",
            replacement="gpt-6-luna",
        ),
        Price(input_per_mtok=2.50, cached_input_per_mtok=1.25, output_per_mtok=10.00),
    ),
)

MODELS: dict[str, ModelInfo] = {info.name: info for info, _ in _TABLE}
"""Every model chainvoice knows, by name. Add an entry to teach it a new one."""

PRICES: dict[str, Price] = {info.name: price for info, price in _TABLE if price is not None}
"""Published prices by model name; update it to change what ``cost_usd`` uses everywhere."""

_WARNED: set[str] = set()


def _today() -> _dt.date:
    return _dt.date.today()


def lookup(model: str, kind: Kind) -> ModelInfo | None:
    """The table's entry for ``model`` if it is a model of this ``kind``, else ``None``."""
    info = MODELS.get(model)
    return info if info is not None and info.kind == kind else None


def check_params(model: str, kind: Kind, given: Iterable[str]) -> None:
    """Refuse, before any request, a parameter the (known) model does not take.

    Raises:
        UnsupportedParameterError: Naming the parameter, the model, and the models that take it.
    """
    info = lookup(model, kind)
    if info is None:
        return
    for param in given:
        if info.accepts(param):
            continue
        takers = [m.name for m in MODELS.values() if m.kind == kind and m.accepts(param)]
        where = (
            "it is taken by " + ", ".join(takers)
            if takers
            else f"no {kind} model in chainvoice's table takes it"
        )
        raise UnsupportedParameterError(
            f"model {model!r} does not take {_PARAM_LABELS.get(param, param)}; {where}. "
            "Choose one of those models or drop the option."
        )


_PARAM_LABELS = {
    "logprobs": "include=['logprobs']",
    "diarization": "diarization (response_format='diarized_json')",
    "known_speakers": "known speakers (known_speaker_names/known_speaker_references)",
    "sse": "stream_format='sse'",
    "stream": "streaming",
}


def check_format(model: str, kind: Kind, response_format: str) -> None:
    """Refuse a response format the (known) model does not return.

    Raises:
        UnsupportedParameterError: Naming the formats it does return.
    """
    info = lookup(model, kind)
    if info is None or not info.response_formats or response_format in info.response_formats:
        return
    takers = [
        m.name for m in MODELS.values() if m.kind == kind and response_format in m.response_formats
    ]
    raise UnsupportedParameterError(
        f"model {model!r} does not return response_format={response_format!r} "
        f"(it returns {', '.join(info.response_formats)}); "
        + (f"{response_format!r} is returned by {', '.join(takers)}." if takers else "")
    )


def check_effort(model: str, effort: str) -> None:
    """Refuse a reasoning effort the (known) model does not take.

    Raises:
        UnsupportedParameterError: The model does not reason.
        ConfigurationError: The model reasons but not at this effort.
    """
    check_params(model, "reply", ["reasoning_effort"])
    info = lookup(model, "reply")
    if info is not None and info.reasoning_efforts and effort not in info.reasoning_efforts:
        raise ConfigurationError(
            f"model {model!r} takes reasoning_effort in {', '.join(info.reasoning_efforts)}, "
            f"not {effort!r}"
        )


def fastest_effort(model: str) -> str | None:
    """The lowest-latency reasoning effort a known reasoning model takes, else ``None``."""
    info = lookup(model, "reply")
    if info is None or not info.reasoning_efforts:
        return None
    for effort in ("none", "minimal", "low"):
        if effort in info.reasoning_efforts:
            return effort
    return None


def warn_if_retiring(
    model: str, *, today: _dt.date | None = None, stacklevel: int | None = None
) -> None:
    """Warn once per process when ``model`` is within 90 days of (or past) its shutdown date.

    Args:
        model: The model a stage was built with.
        today: The date to compare with (tests); default today.
        stacklevel: As for :func:`warnings.warn`; by default the warning points at the
            first line outside chainvoice (the user's ``OpenAIResponder(...)`` or
            ``Chain.openai(...)``), however deep inside chainvoice the stage is built.
    """
    deferred = _DEFERRED.get()
    if deferred is not None:
        deferred.append(model)
        return
    info = MODELS.get(model)
    if info is None or info.shutdown is None or model in _WARNED:
        return
    today = today or _today()
    days = (info.shutdown - today).days
    if days > SHUTDOWN_WARNING_DAYS:
        return
    _WARNED.add(model)
    when = (
        f"was shut down on {info.shutdown.isoformat()}"
        if days < 0
        else f"shuts down on {info.shutdown.isoformat()} (in {days} days)"
    )
    instead = f"; OpenAI recommends {info.replacement}" if info.replacement else ""
    warnings.warn(
        f"OpenAI model {model!r} {when}{instead}. "
        "See https://platform.openai.com/docs/deprecations.",
        ModelShutdownWarning,
        stacklevel=stacklevel if stacklevel is not None else _caller_outside_package(),
    )


_DEFERRED: ContextVar[list[str] | None] = ContextVar("chainvoice_deferred_warnings", default=None)


class DeferredShutdownWarnings:
    """Hold back shutdown warnings until the block ends without an error.

    For building several stages at once (:func:`chainvoice.openai.stages`): if a later
    stage fails, the earlier ones do not use up their once-per-process warning. (A class,
    not ``contextlib.contextmanager``, so that no frame outside chainvoice stands between
    the warning and the user's line.)
    """

    def __enter__(self) -> None:
        self.pending: list[str] = []
        self.token = _DEFERRED.set(self.pending)

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        _DEFERRED.reset(self.token)
        if kind is None:
            for model in dict.fromkeys(self.pending):
                warn_if_retiring(model)


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _caller_outside_package() -> int:
    """The ``stacklevel`` of the first frame outside chainvoice, for the caller's ``warn``.

    Level 1 is the function that calls this one and then :func:`warnings.warn`.
    """
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return level


def price_for(model: str, *, overrides: Mapping[str, Price] | None, official: bool) -> Price | None:
    """The price to use: the stage's override, else the table's when talking to OpenAI."""
    if overrides is not None and model in overrides:
        return overrides[model]
    return PRICES.get(model) if official else None


def model_rows(kind: Kind | None = None) -> list[tuple[str, ...]]:
    """The models table as text rows, a header first: what ``chainvoice models`` prints.

    Args:
        kind: Only models of this kind, or all.
    """
    rows: list[tuple[str, ...]] = [
        ("model", "kind", "accepts", "formats", "streams", "price", "shutdown")
    ]
    for info in MODELS.values():
        if kind is not None and info.kind != kind:
            continue
        accepts = ", ".join(sorted(info.params)) or "-"
        if info.reasoning_efforts:
            accepts = accepts.replace(
                "reasoning_effort", "reasoning_effort(" + "/".join(info.reasoning_efforts) + ")"
            )
        price = PRICES.get(info.name)
        shutdown = info.shutdown.isoformat() if info.shutdown else "-"
        if info.shutdown and info.replacement:
            shutdown += f" (use {info.replacement})"
        rows.append(
            (
                info.name,
                info.kind,
                accepts,
                ", ".join(info.response_formats) or "-",
                "yes" if info.streaming else "no",
                price.describe() if price is not None else "unknown",
                shutdown,
            )
        )
    return rows


def format_models(kind: Kind | None = None) -> str:
    """The models table as aligned plain text, one model per line."""
    rows = model_rows(kind)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def known_names(kind: Kind) -> Sequence[str]:
    """Names of the table's models of ``kind``, in table order."""
    return [m.name for m in MODELS.values() if m.kind == kind]
