"""OpenAI-backed stages: speech to text, reply text and text to speech, sync and async.

Each stage works against OpenAI or any OpenAI-compatible server (``base_url=``), takes a
ready ``openai`` client or builds one from its arguments and the usual environment
variables, checks its options against :data:`MODELS` before sending anything, and reports
what it used as :class:`~chainvoice.Usage` with a cost from :data:`PRICES`.

Example:
    >>> from chainvoice.openai import MODELS, DEFAULT_TRANSCRIPTION_MODEL
    >>> MODELS[DEFAULT_TRANSCRIPTION_MODEL].streaming
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from chainvoice._errors import ConfigurationError
from chainvoice.openai import _models
from chainvoice.openai._client import ClientSettings, make_client
from chainvoice.openai._models import (
    DEFAULT_REPLY_MODEL,
    DEFAULT_SPEECH_MODEL,
    DEFAULT_TRANSCRIPTION_MODEL,
    MODELS,
    PRICES,
    ModelInfo,
    ModelShutdownWarning,
    Price,
    format_models,
    model_rows,
)
from chainvoice.openai._responder import AsyncOpenAIResponder, OpenAIResponder
from chainvoice.openai._synthesizer import (
    FRAGMENT_GUARD,
    AsyncOpenAISynthesizer,
    OpenAISynthesizer,
    split_for_speech,
)
from chainvoice.openai._transcriber import (
    AsyncOpenAIStreamingTranscriber,
    AsyncOpenAITranscriber,
    OpenAIStreamingTranscriber,
    OpenAITranscriber,
)

if TYPE_CHECKING:
    from openai import AsyncOpenAI, OpenAI

__all__ = [
    "DEFAULT_REPLY_MODEL",
    "DEFAULT_SPEECH_MODEL",
    "DEFAULT_TRANSCRIPTION_MODEL",
    "FRAGMENT_GUARD",
    "MODELS",
    "PRICES",
    "AsyncOpenAIResponder",
    "AsyncOpenAIStreamingTranscriber",
    "AsyncOpenAISynthesizer",
    "AsyncOpenAITranscriber",
    "ModelInfo",
    "ModelShutdownWarning",
    "OpenAIResponder",
    "OpenAIStreamingTranscriber",
    "OpenAISynthesizer",
    "OpenAITranscriber",
    "Price",
    "format_models",
    "model_rows",
    "split_for_speech",
    "stages",
]

for _name in __all__:
    _obj = globals().get(_name)
    if isinstance(_obj, type) and _obj.__module__.startswith("chainvoice.openai._"):
        _obj.__module__ = "chainvoice.openai"


def stages(
    *,
    asynchronous: bool,
    client: OpenAI | AsyncOpenAI | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    organization: str | None = None,
    project: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    transcription_model: str | None = None,
    reply_model: str | None = None,
    speech_model: str | None = None,
    voice: str | Mapping[str, str] | None = None,
    voice_instructions: str | None = None,
    prices: Mapping[str, Price] | None = None,
    transcriber_options: Mapping[str, Any] | None = None,
    responder_options: Mapping[str, Any] | None = None,
    synthesizer_options: Mapping[str, Any] | None = None,
) -> tuple[Any, Any, Any]:
    """The three OpenAI stages of a chain, sharing one client.

    This is what ``Chain.openai(...)`` and ``AsyncChain.openai(...)`` call. The chain keeps
    the system prompt itself (the responder reads it from ``conversation.instructions``).

    Args:
        asynchronous: Build the async twins over an ``AsyncOpenAI`` client.
        client: A ready client (``AsyncOpenAI`` when ``asynchronous``); else one is built
            from the settings below and the environment.
        api_key: API key; default ``OPENAI_API_KEY``.
        base_url: Server URL for OpenAI-compatible servers; default ``OPENAI_BASE_URL``.
        organization: OpenAI organization; default ``OPENAI_ORG_ID``.
        project: OpenAI project; default ``OPENAI_PROJECT_ID``.
        timeout: Seconds before a request times out.
        max_retries: Retries of failed requests.
        transcription_model: The transcriber's model (default ``gpt-transcribe``).
        reply_model: The responder's model (default ``gpt-6-luna``).
        speech_model: The synthesizer's model (default ``gpt-4o-mini-tts``).
        voice: The synthesizer's voice.
        voice_instructions: How the synthesizer speaks (its ``instructions``).
        prices: Prices by model name for all three stages.
        transcriber_options: More keyword arguments for the transcriber.
        responder_options: More keyword arguments for the responder.
        synthesizer_options: More keyword arguments for the synthesizer.

    Returns:
        ``(transcriber, responder, synthesizer)``.

    Raises:
        ConfigurationError: A conflicting or unknown option.
        AuthenticationError: No API key anywhere.
    """
    settings = ClientSettings(
        api_key=api_key,
        base_url=base_url,
        organization=organization,
        project=project,
        timeout=timeout,
        max_retries=max_retries,
    )
    where = "AsyncChain.openai" if asynchronous else "Chain.openai"
    shared = make_client(client, settings, where, asynchronous=asynchronous)
    t_opts = _options("transcriber_options", transcriber_options, {"model": transcription_model})
    r_opts = _options("responder_options", responder_options, {"model": reply_model})
    s_opts = _options(
        "synthesizer_options",
        synthesizer_options,
        {"model": speech_model, "voice": voice, "instructions": voice_instructions},
    )
    for opts in (t_opts, r_opts, s_opts):
        if prices is not None:
            opts.setdefault("prices", prices)
        opts["client"] = shared
    with _models.DeferredShutdownWarnings():  # a stage that fails keeps the others' warnings unused
        if asynchronous:
            return (
                AsyncOpenAITranscriber(**t_opts),
                AsyncOpenAIResponder(**r_opts),
                AsyncOpenAISynthesizer(**s_opts),
            )
        return OpenAITranscriber(**t_opts), OpenAIResponder(**r_opts), OpenAISynthesizer(**s_opts)


_CLIENT_KEYS = frozenset(
    {"client", "api_key", "base_url", "organization", "project", "timeout", "max_retries"}
)


def _options(
    name: str, given: Mapping[str, Any] | None, named: Mapping[str, Any]
) -> dict[str, Any]:
    opts = dict(given or {})
    clash = sorted(_CLIENT_KEYS & opts.keys())
    if clash:
        raise ConfigurationError(
            f"{name} must not set {', '.join(clash)}: the three stages share one client; "
            "pass these to Chain.openai() itself"
        )
    for key, value in named.items():
        if value is None:
            continue
        if key in opts and opts[key] != value:
            raise ConfigurationError(
                f"{key} is given twice ({value!r} and {name}[{key!r}]={opts[key]!r}); give it once"
            )
        opts[key] = value
    return opts
