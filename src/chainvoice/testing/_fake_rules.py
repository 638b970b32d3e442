"""What :class:`~chainvoice.testing.FakeOpenAI` checks in a request by itself.

Enough to serve it (the parameters the fake needs, the content type), the rules the real
API enforces beyond its schema (upload formats and size, ``stream_options`` only with
``stream``), and which parameters each known OpenAI model takes. The full schema check is
a hook (``check_request``); chainvoice's tests plug OpenAI's OpenAPI spec into it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, Literal

from chainvoice.testing._fake_audio import SPEECH_CONTENT_TYPES
from chainvoice.testing._fake_wire import RecordedFile

if TYPE_CHECKING:
    from chainvoice.testing._fake_openai import RecordedRequest

__all__ = [
    "MAX_UPLOAD_BYTES",
    "UPLOAD_EXTENSIONS",
    "Endpoint",
    "OPENAI_VOICES",
    "ModelProblem",
    "ViolationKind",
    "as_list",
    "builtin_problems",
    "model_rules",
    "truthy",
]

Endpoint = Literal["transcriptions", "responses", "chat", "speech"]
"""The four endpoints the fake serves."""


ViolationKind = Literal["spec", "api", "model", "limit", "stall", "response"]
"""Why a violation was recorded.

``spec``: the request breaks OpenAI's API contract (malformed body, unknown parameter,
wrong type or value, missing required parameter; also what a ``check_request`` hook
reports). ``api``: a rule the real API enforces beyond the schema. ``model``: a parameter
or value the named OpenAI model does not take. ``limit``: an upload or input over the
API's size limit. ``stall``: the client waited on a stalled stream with no read timeout.
``response``: the fake's own answer failed a ``check_response`` hook (a fake bug).
"""


#: The largest upload /audio/transcriptions accepts (25 MiB).
MAX_UPLOAD_BYTES: Final = 25 * 1024 * 1024
#: File extensions /audio/transcriptions accepts, as its error message lists them.
UPLOAD_EXTENSIONS: Final = (
    "flac",
    "m4a",
    "mp3",
    "mp4",
    "mpeg",
    "mpga",
    "oga",
    "ogg",
    "wav",
    "webm",
)
_SPEECH_FORMATS: Final = tuple(SPEECH_CONTENT_TYPES)
_TRANSCRIPTION_FORMATS: Final = ("json", "text", "srt", "verbose_json", "vtt", "diarized_json")


def truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return value is True


def as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


class ModelProblem(Exception):
    def __init__(self, message: str, param: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def _sdk_param_names(endpoint: Endpoint) -> frozenset[str] | None:
    """The top-level parameters the installed openai SDK knows for ``endpoint``."""
    try:
        if endpoint == "speech":
            from openai.types.audio import speech_create_params as mod

            typed: Any = mod.SpeechCreateParams
        elif endpoint == "transcriptions":
            from openai.types.audio import transcription_create_params as mod2

            typed = mod2.TranscriptionCreateParamsBase
        elif endpoint == "responses":
            from openai.types.responses import response_create_params as mod3

            typed = mod3.ResponseCreateParamsBase
        else:
            from openai.types.chat import completion_create_params as mod4

            typed = mod4.CompletionCreateParamsBase
    except (ImportError, AttributeError):  # pragma: no cover - a very different SDK
        return None
    return frozenset(typed.__required_keys__ | typed.__optional_keys__ | {"stream"})


_REQUIRED: Final[dict[Endpoint, tuple[str, ...]]] = {
    "transcriptions": ("file", "model"),
    "responses": ("model",),
    "chat": ("model", "messages"),
    "speech": ("model", "input", "voice"),
}


def builtin_problems(record: RecordedRequest) -> list[tuple[ViolationKind, str | None, str]]:
    """What the fake itself checks, without the spec: enough to serve, and the API's rules."""
    assert record.endpoint is not None
    endpoint = record.endpoint
    params = record.params
    problems: list[tuple[ViolationKind, str | None, str]] = []
    expected_type = "multipart/form-data" if endpoint == "transcriptions" else "application/json"
    if record.content_type != expected_type:
        problems.append(
            ("spec", None, f"{record.route} takes {expected_type}, not {record.content_type}")
        )
        return problems
    for name in _REQUIRED[endpoint]:
        if name == "model" and endpoint == "responses" and "prompt" in params:
            continue
        if params.get(name) in (None, ""):
            problems.append(("spec", name, f"Missing required parameter: '{name}'."))
    known = _sdk_param_names(endpoint)
    if known is not None:
        for name in params:
            if name not in known:
                problems.append(("spec", name, f"Unknown parameter: '{name}'."))
    if endpoint == "speech":
        problems.extend(_speech_problems(params))
    elif endpoint == "transcriptions":
        problems.extend(_transcription_problems(record))
    elif (
        endpoint == "chat"
        and params.get("stream_options") is not None
        and not truthy(params.get("stream"))
    ):
        message = "The 'stream_options' parameter is only allowed when 'stream' is enabled."
        problems.append(("api", "stream_options", message))
    return problems


def _speech_problems(params: Mapping[str, Any]) -> list[tuple[ViolationKind, str | None, str]]:
    problems: list[tuple[ViolationKind, str | None, str]] = []
    text = params.get("input")
    if text is not None and not isinstance(text, str):
        problems.append(("spec", "input", "input must be a string"))
    elif isinstance(text, str) and len(text) > 4096:
        problems.append(("limit", "input", f"input is {len(text)} characters; the maximum is 4096"))
    fmt = params.get("response_format", "mp3")
    if fmt not in _SPEECH_FORMATS:
        problems.append(
            (
                "spec",
                "response_format",
                f"Invalid value for 'response_format': {fmt!r}; "
                f"supported values are {', '.join(_SPEECH_FORMATS)}.",
            )
        )
    if params.get("stream_format", "audio") not in ("audio", "sse"):
        problems.append(
            ("spec", "stream_format", "Invalid value for 'stream_format': use 'audio' or 'sse'.")
        )
    speed = params.get("speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not 0.25 <= speed <= 4.0:
        problems.append(
            ("spec", "speed", f"speed must be a number from 0.25 to 4.0, not {speed!r}")
        )
    voice = params.get("voice")
    if voice is not None and not (
        (isinstance(voice, str) and voice)
        or (isinstance(voice, dict) and isinstance(voice.get("id"), str) and set(voice) == {"id"})
    ):
        problems.append(
            ("spec", "voice", f"voice must be a voice name or {{'id': ...}}, not {voice!r}")
        )
    return problems


def _transcription_problems(record: RecordedRequest) -> list[tuple[ViolationKind, str | None, str]]:
    params = record.params
    problems: list[tuple[ViolationKind, str | None, str]] = []
    file = params.get("file")
    if isinstance(file, str):
        problems.append(("spec", "file", "file must be uploaded as a file part, not a text field"))
    elif isinstance(file, RecordedFile):
        extension = (file.filename or "").rpartition(".")[2].lower()
        if not file.filename or "." not in file.filename or extension not in UPLOAD_EXTENSIONS:
            problems.append(
                (
                    "api",
                    "file",
                    f"Invalid file format {file.filename!r}. Supported formats: "
                    f"{list(UPLOAD_EXTENSIONS)} (the filename's extension names the format)",
                )
            )
        if len(file.data) > MAX_UPLOAD_BYTES:
            problems.append(
                (
                    "limit",
                    "file",
                    f"Maximum content size limit ({MAX_UPLOAD_BYTES}) exceeded "
                    f"({len(file.data)} bytes read)",
                )
            )
    for name in params:
        if name != "file" and isinstance(params[name], RecordedFile):
            problems.append(("spec", name, f"{name} must be a text field, not a file part"))
    fmt = params.get("response_format", "json")
    if fmt not in _TRANSCRIPTION_FORMATS:
        problems.append(
            (
                "spec",
                "response_format",
                f"Invalid value for 'response_format': {fmt!r}; "
                f"supported values are {', '.join(_TRANSCRIPTION_FORMATS)}.",
            )
        )
    return problems


# Which OpenAI models take what, as OpenAI documents it (the SDK's docstrings and the API
# reference). Unknown models are not checked.
_TRANSCRIPTION_MODEL_FORMATS: Final[dict[str, tuple[str, ...]]] = {
    "whisper-1": ("json", "text", "srt", "verbose_json", "vtt"),
    "gpt-4o-transcribe": ("json", "text"),
    "gpt-4o-mini-transcribe": ("json", "text"),
    "gpt-4o-mini-transcribe-2025-12-15": ("json", "text"),
    "gpt-4o-transcribe-diarize": ("json", "text", "diarized_json"),
}
_LOGPROB_MODELS: Final = (
    "gpt-transcribe",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-mini-transcribe-2025-12-15",
)
_NO_STEERING_TTS: Final = ("tts-1", "tts-1-hd")
#: OpenAI's built-in speech voices (the openai SDK's documentation of ``voice``).
OPENAI_VOICES: Final = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "onyx",
    "nova",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
)
_ISO_639_1: Final = re.compile(r"^[a-z]{2}$")
_NON_REASONING_PREFIXES: Final = ("gpt-4o", "gpt-4.1", "gpt-3.5", "gpt-4-")
_REASONING_O_SERIES: Final = re.compile(r"^o\d")


def model_rules(record: RecordedRequest) -> None:
    """Refuse what OpenAI refuses beyond the schema.

    That is: what a named model does not take, a voice that is not one of OpenAI's, a
    language that is not an ISO-639-1 code. Unknown models are not checked (they may be
    new, or a compatible server's).
    """
    params = record.params
    model = record.model or ""
    if record.endpoint == "transcriptions":
        _transcription_model_rules(model, params)
    elif record.endpoint == "speech":
        voice = params.get("voice")
        if isinstance(voice, str) and voice not in OPENAI_VOICES:
            raise ModelProblem(
                f"Invalid value for 'voice': {voice!r}. Use one of {', '.join(OPENAI_VOICES)}, "
                "or a custom voice as {'id': 'voice_...'}",
                "voice",
            )
        if model in _NO_STEERING_TTS and params.get("instructions"):
            raise ModelProblem(f"instructions are not supported by {model}", "instructions")
        if model in _NO_STEERING_TTS and params.get("stream_format") == "sse":
            raise ModelProblem(f"stream_format 'sse' is not supported by {model}", "stream_format")
    else:
        reasoning = params.get("reasoning") if record.endpoint == "responses" else None
        effort = params.get("reasoning_effort") if record.endpoint == "chat" else None
        if (reasoning or effort) and model.startswith(_NON_REASONING_PREFIXES):
            param = "reasoning.effort" if reasoning else "reasoning_effort"
            raise ModelProblem(
                f"Unsupported parameter: '{param}' is not supported with this model.", param
            )
        for name in ("temperature", "top_p"):
            if params.get(name) is not None and _REASONING_O_SERIES.match(model):
                raise ModelProblem(
                    f"Unsupported parameter: '{name}' is not supported with this model.", name
                )


def _transcription_model_rules(model: str, params: Mapping[str, Any]) -> None:
    language = params.get("language")
    if language is not None and not _ISO_639_1.match(str(language)):
        raise ModelProblem(
            f"Invalid language {language!r}. Language parameter must be specified in "
            "ISO-639-1 format (e.g. 'en').",
            "language",
        )
    fmt = str(params.get("response_format", "json"))
    formats = _TRANSCRIPTION_MODEL_FORMATS.get(model)
    if formats is not None and fmt not in formats:
        raise ModelProblem(
            f"response_format '{fmt}' is not compatible with model '{model}'; "
            f"use one of {', '.join(formats)}",
            "response_format",
        )
    if fmt == "diarized_json" and model != "gpt-4o-transcribe-diarize" and model in _KNOWN_STT:
        raise ModelProblem(
            "response_format 'diarized_json' needs model gpt-4o-transcribe-diarize",
            "response_format",
        )
    if params.get("timestamp_granularities") is not None and fmt != "verbose_json":
        raise ModelProblem(
            "timestamp_granularities needs response_format 'verbose_json'",
            "timestamp_granularities",
        )
    include = as_list(params.get("include"))
    if "logprobs" in include:
        if model in _KNOWN_STT and model not in _LOGPROB_MODELS:
            raise ModelProblem(
                f"include[]=logprobs is not supported by {model}; use one of "
                f"{', '.join(_LOGPROB_MODELS)}",
                "include",
            )
        if fmt != "json":
            raise ModelProblem("include[]=logprobs needs response_format 'json'", "include")
    if model == "gpt-4o-transcribe-diarize":
        for name in ("prompt", "timestamp_granularities"):
            if params.get(name) is not None:
                raise ModelProblem(f"{name} is not supported by {model}", name)
    else:
        for name in ("known_speaker_names", "known_speaker_references"):
            if params.get(name) is not None and model in _KNOWN_STT:
                raise ModelProblem(f"{name} needs model gpt-4o-transcribe-diarize", name)
    names = as_list(params.get("known_speaker_names"))
    references = as_list(params.get("known_speaker_references"))
    if len(names) != len(references):
        raise ModelProblem(
            f"known_speaker_names[] ({len(names)}) and known_speaker_references[] "
            f"({len(references)}) must have the same length",
            "known_speaker_references",
        )
    for reference in references:
        if not str(reference).startswith("data:"):
            raise ModelProblem(
                "known_speaker_references[] must be data URLs (data:audio/...;base64,...)",
                "known_speaker_references",
            )
    for name in ("keywords", "languages"):
        if params.get(name) is not None and model in _KNOWN_STT and model != "gpt-transcribe":
            raise ModelProblem(f"{name} is supported by gpt-transcribe only, not {model}", name)


_KNOWN_STT: Final = frozenset({*_TRANSCRIPTION_MODEL_FORMATS, "gpt-transcribe"})
