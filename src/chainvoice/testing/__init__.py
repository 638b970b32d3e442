"""Tools for testing code built on chainvoice, and for testing your own stages.

- Scripted fakes of the three stages (:class:`ScriptedTranscriber`,
  :class:`ScriptedResponder`, :class:`ScriptedSynthesizer` and their ``Async`` twins)
  play a script, record every call as a frozen snapshot, and check with
  ``assert_complete()`` that the script was used up.
- Conformance checks (:func:`check_transcriber`, :func:`check_responder`,
  :func:`check_synthesizer`) run your own stage, sync or async, and raise a
  :class:`ConformanceError` listing every way it breaks its protocol's contract.
- :class:`FakeOpenAI` answers the ``openai`` client in OpenAI's wire formats, without
  a network; ``FakeOpenAI.serve()`` puts it behind a real loopback HTTP server
  (:class:`FakeOpenAIServer`).
- :mod:`chainvoice.testing.strategies` holds hypothesis strategies for audio (it needs
  ``hypothesis``; ``chainvoice.testing`` itself does not).

Example:
    >>> import chainvoice as cv
    >>> from chainvoice.testing import ScriptedSynthesizer, check_synthesizer
    >>> check_synthesizer(ScriptedSynthesizer()).asynchronous
    False
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from chainvoice.testing._conformance import (
    ConformanceError,
    ConformanceReport,
    Violation,
    check_responder,
    check_synthesizer,
    check_transcriber,
)
from chainvoice.testing._fake_latency import LatencyProfile
from chainvoice.testing._scripted import (
    AsyncScriptedResponder,
    AsyncScriptedSynthesizer,
    AsyncScriptedTranscriber,
    AsyncStreamingScriptedTranscriber,
    Pause,
    ResponderCall,
    ScriptedResponder,
    ScriptedSynthesizer,
    ScriptedTranscriber,
    ScriptError,
    StreamingScriptedTranscriber,
    SynthesizerCall,
    TranscriberCall,
    UnconsumedScriptError,
    UnexpectedCallError,
    Wait,
    WaitTimeoutError,
)

if TYPE_CHECKING:
    from chainvoice.testing import strategies as strategies
    from chainvoice.testing._fake_openai import (
        FakeOpenAI,
        RecordedFile,
        RecordedRequest,
        RequestViolation,
        ResponseProgress,
    )
    from chainvoice.testing._fake_server import FakeOpenAIHandler, FakeOpenAIServer

__all__ = [
    "AsyncScriptedResponder",
    "AsyncScriptedSynthesizer",
    "AsyncScriptedTranscriber",
    "AsyncStreamingScriptedTranscriber",
    "ConformanceError",
    "ConformanceReport",
    "FakeOpenAI",
    "FakeOpenAIHandler",
    "FakeOpenAIServer",
    "LatencyProfile",
    "Pause",
    "RecordedFile",
    "RecordedRequest",
    "RequestViolation",
    "ResponderCall",
    "ResponseProgress",
    "ScriptError",
    "ScriptedResponder",
    "ScriptedSynthesizer",
    "ScriptedTranscriber",
    "StreamingScriptedTranscriber",
    "SynthesizerCall",
    "TranscriberCall",
    "UnconsumedScriptError",
    "UnexpectedCallError",
    "Violation",
    "Wait",
    "WaitTimeoutError",
    "check_responder",
    "check_synthesizer",
    "check_transcriber",
]
# ``strategies`` is a submodule reached as an attribute; it stays out of ``__all__`` so
# that ``from chainvoice.testing import *`` works without hypothesis installed.

# Show the public name in reprs, tracebacks and the API reference.
for _name in __all__:
    _obj = globals().get(_name)
    if isinstance(_obj, type) and _obj.__module__.startswith("chainvoice.testing._"):
        _obj.__module__ = "chainvoice.testing"


_FAKE_OPENAI_NAMES = frozenset(
    {"FakeOpenAI", "RecordedFile", "RecordedRequest", "RequestViolation", "ResponseProgress"}
)

_FAKE_SERVER_NAMES = frozenset({"FakeOpenAIHandler", "FakeOpenAIServer"})


def __getattr__(name: str) -> Any:
    # Imported on first use: ``strategies`` needs hypothesis, ``FakeOpenAI`` needs openai.
    if name == "strategies":
        module = importlib.import_module("chainvoice.testing.strategies")
        globals()[name] = module
        return module
    if name in _FAKE_OPENAI_NAMES or name in _FAKE_SERVER_NAMES:
        where = "_fake_server" if name in _FAKE_SERVER_NAMES else "_fake_openai"
        cls = getattr(importlib.import_module(f"chainvoice.testing.{where}"), name)
        if cls.__module__.startswith("chainvoice.testing._"):
            cls.__module__ = "chainvoice.testing"
        globals()[name] = cls
        return cls
    raise AttributeError(f"module 'chainvoice.testing' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, "strategies"])
