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
from typing import TYPE_CHECKING, Any

from chainvoice._audio import Audio
from chainvoice._chain import AsyncChain, Chain, Splitter
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
from chainvoice._version import __version__

if TYPE_CHECKING:
    from chainvoice import local as local
    from chainvoice import openai as openai
    from chainvoice import testing as testing

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

# Show the public name in reprs, tracebacks and the API reference, as httpx does.
for _name in __all__:
    _obj = globals().get(_name)
    if isinstance(_obj, type) and _obj.__module__.startswith("chainvoice._"):
        _obj.__module__ = "chainvoice"


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        module = importlib.import_module(f"chainvoice.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'chainvoice' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, *_SUBPACKAGES])
