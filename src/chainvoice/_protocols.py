"""The three stage protocols and their async twins.

One method each is the whole contract for an adapter author:

- a **Transcriber** turns :class:`~chainvoice.Audio` into a :class:`~chainvoice.Transcript`;
  one that can stream also has ``transcribe_stream(audio)``, yielding text deltas (``str``),
  any number of :class:`~chainvoice.Usage` items, and then exactly one final ``Transcript``;
- a **Responder** turns a :class:`~chainvoice.Conversation` into reply text, as an iterable
  of text deltas or as one ``str``; a plain function works too;
- a **Synthesizer** turns text into an iterable of :class:`~chainvoice.Audio` chunks.

Stages report what they consumed by yielding ``Usage`` items among their output; the
chain sums them and passes only text and audio on. The async twins have the same method
names: ``async def transcribe``, and ``respond``/``synthesize`` returning async iterables
(an ``async def`` generator is the usual way to write one).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Protocol, TypeAlias, runtime_checkable

if TYPE_CHECKING:
    from chainvoice._audio import Audio
    from chainvoice._types import Conversation, Transcript, Usage

__all__ = [
    "AnyResponder",
    "AnySynthesizer",
    "AnyTranscriber",
    "AsyncResponder",
    "AsyncStreamingTranscriber",
    "AsyncSynthesizer",
    "AsyncTranscriber",
    "Responder",
    "StreamingTranscriber",
    "Synthesizer",
    "Transcriber",
]


@runtime_checkable
class Transcriber(Protocol):
    """Turns audio into text."""

    def transcribe(self, audio: Audio) -> Transcript:
        """Transcribe ``audio``.

        Args:
            audio: The speech to transcribe.

        Returns:
            The transcript; its ``usage`` says what the transcription consumed.
        """
        ...


@runtime_checkable
class StreamingTranscriber(Transcriber, Protocol):
    """A transcriber that can also yield text as it is recognised."""

    def transcribe_stream(self, audio: Audio) -> Iterable[str | Usage | Transcript]:
        """Yield text deltas, optionally ``Usage`` items, then exactly one final ``Transcript``."""
        ...


@runtime_checkable
class Responder(Protocol):
    """Turns a conversation into reply text."""

    def respond(self, conversation: Conversation) -> Iterable[str | Usage] | str:
        """Reply to the conversation's last user message.

        Args:
            conversation: The instructions and the messages so far, the user's last.

        Returns:
            Text deltas (``Usage`` items may be mixed in), or the whole reply as one ``str``.
        """
        ...


@runtime_checkable
class Synthesizer(Protocol):
    """Turns text into speech."""

    def synthesize(self, text: str) -> Iterable[Audio | Usage]:
        """Speak ``text``.

        Args:
            text: One speakable piece of a reply (a sentence or a few).

        Returns:
            Audio chunks in order (``Usage`` items may be mixed in).
        """
        ...


@runtime_checkable
class AsyncTranscriber(Protocol):
    """The async twin of :class:`Transcriber`."""

    async def transcribe(self, audio: Audio) -> Transcript:
        """Transcribe ``audio``."""
        ...


@runtime_checkable
class AsyncStreamingTranscriber(AsyncTranscriber, Protocol):
    """The async twin of :class:`StreamingTranscriber`."""

    def transcribe_stream(self, audio: Audio) -> AsyncIterable[str | Usage | Transcript]:
        """Yield text deltas, optionally ``Usage`` items, then exactly one final ``Transcript``."""
        ...


@runtime_checkable
class AsyncResponder(Protocol):
    """The async twin of :class:`Responder`."""

    def respond(self, conversation: Conversation) -> AsyncIterable[str | Usage]:
        """Reply to the conversation's last user message, as text deltas."""
        ...


@runtime_checkable
class AsyncSynthesizer(Protocol):
    """The async twin of :class:`Synthesizer`."""

    def synthesize(self, text: str) -> AsyncIterable[Audio | Usage]:
        """Speak ``text`` as audio chunks."""
        ...


AnyTranscriber: TypeAlias = "Transcriber | AsyncTranscriber"
"""Any transcriber a chain accepts, sync or async."""

AnyResponder: TypeAlias = (
    "Responder | AsyncResponder | Callable[[Conversation], str | Iterable[str | Usage] | "
    "AsyncIterable[str | Usage] | Awaitable[str]]"
)
"""Any responder a chain accepts: a stage object, sync or async, or a plain function."""

AnySynthesizer: TypeAlias = "Synthesizer | AsyncSynthesizer"
"""Any synthesizer a chain accepts, sync or async."""
