"""The chainvoice error tree.

Every error chainvoice raises derives from :class:`ChainvoiceError`, and also from the
built-in exception a caller would naturally catch, so ``except ValueError`` keeps working
around code that hands chainvoice bad input::

    ChainvoiceError
    ├── AudioError (ValueError)                  bad audio in, or audio that cannot be made
    │   ├── EmptyAudioError                      no data, or zero frames
    │   ├── AudioFormatError                     unknown, unsupported or corrupt container/codec
    │   ├── InvalidSamplesError                  NaN/Inf samples, wrong shape or dtype
    │   ├── SampleRateError                      rates outside 1 kHz-768 kHz, or mismatched
    │   └── FFmpegNotFoundError                  a compressed format needs ffmpeg and none is found
    ├── ConfigurationError (ValueError)          an option or combination that cannot work
    │   └── UnsupportedParameterError            a model does not take a parameter
    ├── MissingDependencyError (ImportError)     an optional extra is not installed
    ├── ProtocolError (TypeError)                a stage broke its protocol (wrong return type, ...)
    ├── ChainBusyError (RuntimeError)            a turn started while the chain ran another
    ├── ChainClosedError (RuntimeError)          the chain was closed while a turn was running
    ├── StageError (RuntimeError)                a stage failed during a turn; carries ``.partial``
    ├── PartialTranscriptionError (RuntimeError) pieces of a long recording failed; keeps
    │                                            the rest on ``.transcript``; ``.retry()``
    └── APIError                                 a backend service failed
        ├── AuthenticationError (PermissionError)    bad or missing key, or no permission
        ├── NotFoundError (LookupError)              unknown model or resource
        ├── BadRequestError (ValueError)             the server rejected the request
        ├── RateLimitError                           HTTP 429; carries ``retry_after``
        ├── ServerError                              HTTP 5xx
        ├── APITimeoutError (TimeoutError)           no answer in time
        ├── APIConnectionError (ConnectionError)     the server could not be reached
        └── StreamInterruptedError (ConnectionError) a stream was cut after it had started
            └── StreamTimeoutError (TimeoutError)    it stalled after output, and timed out

A :class:`StageError` always keeps the original exception as ``__cause__`` and as
``.error``; its ``.partial`` holds the part of the turn produced before the failure (the
transcript survives a failed reply, the reply text survives a failed synthesis).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from chainvoice._types import Transcript, Turn

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AudioError",
    "AudioFormatError",
    "AuthenticationError",
    "BadRequestError",
    "ChainBusyError",
    "ChainClosedError",
    "ChainvoiceError",
    "ConfigurationError",
    "EmptyAudioError",
    "FFmpegNotFoundError",
    "InvalidSamplesError",
    "MissingDependencyError",
    "NotFoundError",
    "PartialTranscriptionError",
    "ProtocolError",
    "RateLimitError",
    "SampleRateError",
    "ServerError",
    "StageError",
    "StreamInterruptedError",
    "StreamTimeoutError",
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
    """A sample rate is not a whole number of Hz from 1000 to 768000, or does not match."""


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


class ChainBusyError(ChainvoiceError, RuntimeError):
    """A turn was started while another turn of the same chain was still running.

    A chain keeps one conversation, so its turns run one at a time: wait for the running
    turn (or close its stream), or use a separate chain for each conversation.
    """


class ChainClosedError(ChainvoiceError, RuntimeError):
    """The chain was closed (``Chain.close()``) while a turn was running.

    The turn stopped where it was; the conversation records only what was produced.
    """


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
                verb = "is" if len(bits) == 1 else "are"
                kept = f"; {' and '.join(bits)} {verb} kept on .partial"
        super().__init__(f"the {stage} stage failed: {type(error).__name__}: {error}{kept}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.stage, self.error, self.partial))


def _clock(seconds: float) -> str:
    tenths = round(max(0.0, seconds) * 10)
    hours, rest = divmod(tenths, 36000)
    minutes, rest = divmod(rest, 600)
    return f"{hours}:{minutes:02d}:{rest / 10:04.1f}"


class PartialTranscriptionError(ChainvoiceError, RuntimeError):
    """Some pieces of a long recording could not be transcribed; the others are kept.

    Raised by ``LongTranscriber`` (and the transcribers that use it for long audio) once
    the failed pieces have used up their retries. Nothing already transcribed is lost:
    ``.transcript`` is the stitched transcript of every piece that succeeded, and
    ``.retry()`` sends only the failed pieces again.

    Attributes:
        transcript: The transcript of the pieces that succeeded, on the recording's clock.
        failed: ``(start, end, exception)`` for each failed piece, in seconds of the
            recording, in order.
        pieces: How many pieces the recording was cut into.
    """

    def __init__(
        self,
        transcript: Transcript,
        failed: Sequence[tuple[float, float, BaseException]],
        *,
        pieces: int,
        retry: Callable[..., Transcript] | None = None,
        aretry: Callable[..., Awaitable[Transcript]] | None = None,
    ) -> None:
        self.transcript = transcript
        self.failed = [(float(a), float(b), exc) for a, b, exc in failed]
        self.pieces = pieces
        self._retry = retry
        self._aretry = aretry
        shown = [
            f"{_clock(a)}-{_clock(b)} ({type(exc).__name__}: {exc})"
            for a, b, exc in self.failed[:5]
        ]
        if len(self.failed) > 5:
            shown.append(f"and {len(self.failed) - 5} more")
        kept = pieces - len(self.failed)
        super().__init__(
            f"{len(self.failed)} of {pieces} pieces of the recording could not be "
            f"transcribed: {'; '.join(shown)}. The transcript of the other {kept} "
            f"piece{'s' if kept != 1 else ''} is kept on .transcript; call .retry() (or "
            "`await .aretry()` in async code) to transcribe only the failed pieces once the "
            "cause is fixed (e.g. after waiting out a rate limit)"
        )

    def retry(self, transcriber: object | None = None) -> Transcript:
        """Transcribe only the failed pieces again, and return the whole transcript.

        Args:
            transcriber: Another transcriber to use (e.g. one with a fixed key); by
                default the one that failed.

        Raises:
            PartialTranscriptionError: Some pieces failed again (a new error, holding all
                that succeeded so far).
            ConfigurationError: The error was unpickled, or came from async code (use
                :meth:`aretry`).
        """
        if self._retry is None:
            raise ConfigurationError(
                "this error has lost its pieces (it was copied or unpickled), so it cannot "
                "retry; transcribe the failed time ranges yourself"
            )
        return self._retry(transcriber)

    async def aretry(self, transcriber: object | None = None) -> Transcript:
        """The async form of :meth:`retry`."""
        if self._aretry is None:
            raise ConfigurationError(
                "this error has lost its pieces (it was copied or unpickled), so it cannot "
                "retry; transcribe the failed time ranges yourself"
            )
        return await self._aretry(transcriber)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_partial, (self.transcript, self.failed, self.pieces))


def _rebuild_partial(
    transcript: Transcript, failed: Sequence[tuple[float, float, BaseException]], pieces: int
) -> PartialTranscriptionError:
    return PartialTranscriptionError(transcript, failed, pieces=pieces)


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


class StreamTimeoutError(StreamInterruptedError, TimeoutError):
    """A stream stalled after output had been delivered, and the read timed out.

    It is a :class:`StreamInterruptedError` (what arrived is kept, and it is not retried)
    that ``except TimeoutError`` also catches.
    """
