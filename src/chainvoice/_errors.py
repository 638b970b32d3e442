"""The chainvoice error tree.

Every error chainvoice raises derives from :class:`ChainvoiceError`, and also from the
built-in exception a caller would naturally catch, so ``except ValueError`` keeps working
around code that hands chainvoice bad input::

    ChainvoiceError
    ├── AudioError (ValueError)                  bad audio in, or audio that cannot be made
    │   ├── EmptyAudioError                      no data, or zero frames
    │   ├── AudioFormatError                     unknown, unsupported or corrupt container/codec
    │   ├── InvalidSamplesError                  NaN/Inf samples, wrong shape or dtype
    │   ├── SampleRateError                      zero, negative or mismatched sample rates
    │   └── FFmpegNotFoundError                  a compressed format needs ffmpeg and none is found
    ├── ConfigurationError (ValueError)          an option or combination that cannot work
    │   └── UnsupportedParameterError            a model does not take a parameter
    ├── MissingDependencyError (ImportError)     an optional extra is not installed
    ├── ProtocolError (TypeError)                a stage broke its protocol (wrong return type, ...)
    ├── StageError (RuntimeError)                a stage failed during a turn; carries ``.partial``
    └── APIError                                 a backend service failed
        ├── AuthenticationError (PermissionError)    bad or missing key, or no permission
        ├── NotFoundError (LookupError)              unknown model or resource
        ├── BadRequestError (ValueError)             the server rejected the request
        ├── RateLimitError                           HTTP 429; carries ``retry_after``
        ├── ServerError                              HTTP 5xx
        ├── APITimeoutError (TimeoutError)           no answer in time
        ├── APIConnectionError (ConnectionError)     the server could not be reached
        └── StreamInterruptedError (ConnectionError) a stream was cut after it had started

A :class:`StageError` always keeps the original exception as ``__cause__`` and as
``.error``; its ``.partial`` holds the part of the turn produced before the failure (the
transcript survives a failed reply, the reply text survives a failed synthesis).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chainvoice._types import Turn

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AudioError",
    "AudioFormatError",
    "AuthenticationError",
    "BadRequestError",
    "ChainvoiceError",
    "ConfigurationError",
    "EmptyAudioError",
    "FFmpegNotFoundError",
    "InvalidSamplesError",
    "MissingDependencyError",
    "NotFoundError",
    "ProtocolError",
    "RateLimitError",
    "SampleRateError",
    "ServerError",
    "StageError",
    "StreamInterruptedError",
    "UnsupportedParameterError",
]


class ChainvoiceError(Exception):
    """Base class of every error chainvoice raises."""


class AudioError(ChainvoiceError, ValueError):
    """Audio that cannot be read, written or processed."""


class EmptyAudioError(AudioError):
    """The audio has no data (zero bytes or zero frames)."""


class AudioFormatError(AudioError):
    """The data is in an unknown, unsupported or corrupt format."""


class InvalidSamplesError(AudioError):
    """Samples are NaN or infinite, or have an unusable shape or dtype."""


class SampleRateError(AudioError):
    """A sample rate is zero, negative, not an integer, or does not match."""


class FFmpegNotFoundError(AudioError):
    """A compressed format needs ffmpeg, and no ffmpeg was found."""


class ConfigurationError(ChainvoiceError, ValueError):
    """An option, or a combination of options, that cannot work."""


class UnsupportedParameterError(ConfigurationError):
    """A model does not accept a parameter that was given."""


class MissingDependencyError(ChainvoiceError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class ProtocolError(ChainvoiceError, TypeError):
    """A stage returned something its protocol does not allow."""


class StageError(ChainvoiceError, RuntimeError):
    """A stage of a chain failed during a turn.

    Attributes:
        stage: ``"transcribe"``, ``"respond"`` or ``"synthesize"``.
        error: The original exception (also ``__cause__``).
        partial: The turn as far as it got: the transcript, the reply text and audio
            produced before the failure, timings and usage.
    """

    def __init__(self, stage: str, error: BaseException, partial: Turn | None = None) -> None:
        self.stage = stage
        self.error = error
        self.partial = partial
        kept = ""
        if partial is not None:
            bits = []
            if partial.transcript is not None:
                bits.append("the transcript")
            if partial.reply.text:
                bits.append("the reply text")
            if partial.reply.audio is not None:
                bits.append("the reply audio so far")
            if bits:
                kept = "; " + " and ".join(bits) + " are kept on .partial"
        super().__init__(f"the {stage} stage failed: {type(error).__name__}: {error}{kept}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.stage, self.error, self.partial))


class APIError(ChainvoiceError):
    """A backend service failed.

    Attributes:
        status_code: The HTTP status, when there was a response.
        request_id: The server's request id, when it sent one.
    """

    def __init__(
        self, message: str, *, status_code: int | None = None, request_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.request_id = request_id


class AuthenticationError(APIError, PermissionError):
    """The key is missing, wrong, or lacks permission for this request."""


class NotFoundError(APIError, LookupError):
    """The model or resource does not exist, or this key cannot see it."""


class BadRequestError(APIError, ValueError):
    """The server rejected the request; the message carries the server's explanation."""


class RateLimitError(APIError):
    """The server answered HTTP 429.

    Attributes:
        retry_after: Seconds the server asked to wait, when it said.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status_code: int | None = 429,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, request_id=request_id)
        self.retry_after = retry_after


class ServerError(APIError):
    """The server failed (HTTP 5xx)."""


class APITimeoutError(APIError, TimeoutError):
    """The server did not answer in time."""


class APIConnectionError(APIError, ConnectionError):
    """The server could not be reached."""


class StreamInterruptedError(APIError, ConnectionError):
    """A streamed response was cut after it had started; what arrived before is kept."""
