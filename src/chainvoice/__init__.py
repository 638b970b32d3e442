"""chainvoice: speech in, spoken reply out, through a transcriber, a responder and a synthesizer.

The public API lives here; the backends are subpackages imported on first use, so that
``import chainvoice`` needs no optional dependency:

- ``chainvoice.openai``: OpenAI-backed stages (or any OpenAI-compatible server);
- ``chainvoice.local``: the embedded offline stages (extra ``chainvoice[local]``);
- ``chainvoice.testing``: scripted fakes, a wire-level fake OpenAI and conformance checks.

Example:
    >>> import chainvoice as cv
    >>> chain = cv.Chain(None, lambda conversation: "You said " + conversation.last_user_text)
    >>> chain.run(text="hello").reply.text
    'You said hello'
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

from chainvoice._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AudioError,
    AudioFormatError,
    AuthenticationError,
    BadRequestError,
    ChainBusyError,
    ChainClosedError,
    ChainvoiceError,
    ConfigurationError,
    EmptyAudioError,
    FFmpegNotFoundError,
    InvalidSamplesError,
    MissingDependencyError,
    NotFoundError,
    PartialTranscriptionError,
    ProtocolError,
    RateLimitError,
    SampleRateError,
    ServerError,
    StageError,
    StreamInterruptedError,
    StreamTimeoutError,
    UnsupportedParameterError,
)
from chainvoice._version import __version__

if TYPE_CHECKING:
    from chainvoice import local as local
    from chainvoice import openai as openai
    from chainvoice import testing as testing
    from chainvoice._audio import Audio
    from chainvoice._chain import AsyncChain, Chain, Splitter
    from chainvoice._events import (
        AudioChunk,
        Event,
        ReplyDelta,
        ReplyDone,
        TranscriptDelta,
        TranscriptDone,
        TurnDone,
    )
    from chainvoice._long import (
        AsyncLongTranscriber,
        LongTranscriber,
        Piece,
        PieceLimits,
        ProgressBar,
        TranscriptionProgress,
        atranscribe_long,
        plan_pieces,
        stitch,
        transcribe_long,
    )
    from chainvoice._protocols import (
        AsyncResponder,
        AsyncStreamingTranscriber,
        AsyncSynthesizer,
        AsyncTranscriber,
        Responder,
        StreamingTranscriber,
        Synthesizer,
        Transcriber,
    )
    from chainvoice._splitter import SentenceSplitter
    from chainvoice._types import (
        Conversation,
        Logprob,
        Message,
        Reply,
        Segment,
        StageTiming,
        Timings,
        Transcript,
        Turn,
        Usage,
        Word,
    )

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncChain",
    "AsyncLongTranscriber",
    "AsyncResponder",
    "AsyncStreamingTranscriber",
    "AsyncSynthesizer",
    "AsyncTranscriber",
    "Audio",
    "AudioChunk",
    "AudioError",
    "AudioFormatError",
    "AuthenticationError",
    "BadRequestError",
    "Chain",
    "ChainBusyError",
    "ChainClosedError",
    "ChainvoiceError",
    "ConfigurationError",
    "Conversation",
    "EmptyAudioError",
    "Event",
    "FFmpegNotFoundError",
    "InvalidSamplesError",
    "Logprob",
    "LongTranscriber",
    "Message",
    "MissingDependencyError",
    "NotFoundError",
    "PartialTranscriptionError",
    "Piece",
    "PieceLimits",
    "ProgressBar",
    "ProtocolError",
    "RateLimitError",
    "Reply",
    "ReplyDelta",
    "ReplyDone",
    "Responder",
    "SampleRateError",
    "Segment",
    "SentenceSplitter",
    "ServerError",
    "Splitter",
    "StageError",
    "StageTiming",
    "StreamInterruptedError",
    "StreamTimeoutError",
    "StreamingTranscriber",
    "Synthesizer",
    "Timings",
    "Transcriber",
    "Transcript",
    "TranscriptDelta",
    "TranscriptDone",
    "TranscriptionProgress",
    "Turn",
    "TurnDone",
    "UnsupportedParameterError",
    "Usage",
    "Word",
    "__version__",
    "atranscribe_long",
    "plan_pieces",
    "stitch",
    "transcribe_long",
]

_SUBPACKAGES = frozenset({"local", "openai", "testing"})

# Public names, and the private module each lives in: imported on first use (PEP 562), so
# that ``import chainvoice`` costs only what a program uses (the chain's asyncio machinery,
# attrs' value types and numpy's audio load when first touched).
_LAZY: dict[str, str] = {
    "AsyncChain": "chainvoice._chain",
    "AsyncLongTranscriber": "chainvoice._long",
    "AsyncResponder": "chainvoice._protocols",
    "AsyncStreamingTranscriber": "chainvoice._protocols",
    "AsyncSynthesizer": "chainvoice._protocols",
    "AsyncTranscriber": "chainvoice._protocols",
    "Audio": "chainvoice._audio",
    "AudioChunk": "chainvoice._events",
    "Chain": "chainvoice._chain",
    "Conversation": "chainvoice._types",
    "Event": "chainvoice._events",
    "Logprob": "chainvoice._types",
    "LongTranscriber": "chainvoice._long",
    "Message": "chainvoice._types",
    "Piece": "chainvoice._long",
    "PieceLimits": "chainvoice._long",
    "ProgressBar": "chainvoice._long",
    "Reply": "chainvoice._types",
    "ReplyDelta": "chainvoice._events",
    "ReplyDone": "chainvoice._events",
    "Responder": "chainvoice._protocols",
    "Segment": "chainvoice._types",
    "SentenceSplitter": "chainvoice._splitter",
    "Splitter": "chainvoice._chain",
    "StageTiming": "chainvoice._types",
    "StreamingTranscriber": "chainvoice._protocols",
    "Synthesizer": "chainvoice._protocols",
    "Timings": "chainvoice._types",
    "Transcriber": "chainvoice._protocols",
    "Transcript": "chainvoice._types",
    "TranscriptDelta": "chainvoice._events",
    "TranscriptDone": "chainvoice._events",
    "TranscriptionProgress": "chainvoice._long",
    "Turn": "chainvoice._types",
    "TurnDone": "chainvoice._events",
    "Usage": "chainvoice._types",
    "Word": "chainvoice._types",
    "atranscribe_long": "chainvoice._long",
    "plan_pieces": "chainvoice._long",
    "stitch": "chainvoice._long",
    "transcribe_long": "chainvoice._long",
}


def _publish(obj: Any) -> None:
    # Show the public name in reprs, tracebacks and the API reference, as httpx does.
    if isinstance(obj, type) and obj.__module__.startswith("chainvoice._"):
        obj.__module__ = "chainvoice"


for _name in __all__:
    _publish(globals().get(_name))


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        module = importlib.import_module(f"chainvoice.{name}")
        globals()[name] = module
        return module
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'chainvoice' has no attribute {name!r}")
    importlib.import_module(where)
    # Publish every public name whose module is now loaded (one import loads several).
    for other, module_name in _LAZY.items():
        loaded = sys.modules.get(module_name)
        if loaded is not None and other not in globals():
            obj = getattr(loaded, other)
            _publish(obj)
            globals()[other] = obj
    return globals()[name]


def __dir__() -> list[str]:
    return sorted([*__all__, *_SUBPACKAGES])
