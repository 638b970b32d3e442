"""Events a chain's ``stream()`` yields, in the order things happen."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, TypeAlias

import attrs

if TYPE_CHECKING:
    from chainvoice._audio import Audio
    from chainvoice._types import Transcript, Turn

__all__ = [
    "AudioChunk",
    "Event",
    "ReplyDelta",
    "ReplyDone",
    "TranscriptDelta",
    "TranscriptDone",
    "TurnDone",
]


@attrs.frozen
class TranscriptDelta:
    """A piece of the transcript, from a transcriber that streams.

    Attributes:
        text: The new text, to append to what came before.
    """

    type: ClassVar[str] = "transcript.delta"
    text: str


@attrs.frozen
class TranscriptDone:
    """The transcript is complete.

    Attributes:
        transcript: The final transcript.
    """

    type: ClassVar[str] = "transcript.done"
    transcript: Transcript


@attrs.frozen
class ReplyDelta:
    """A piece of the reply text as the responder produced it.

    Attributes:
        text: The new text, to append to what came before.
    """

    type: ClassVar[str] = "reply.delta"
    text: str


@attrs.frozen
class ReplyDone:
    """The reply text is complete (audio may still be coming).

    Attributes:
        text: The whole reply text.
    """

    type: ClassVar[str] = "reply.done"
    text: str


@attrs.frozen
class AudioChunk:
    """A chunk of reply audio, emitted as soon as it arrives and strictly in text order.

    Attributes:
        audio: The chunk.
        text: The speakable piece of the reply this chunk belongs to.
        piece: The index of that piece in the reply (0, 1, ...).
    """

    type: ClassVar[str] = "audio.chunk"
    audio: Audio
    text: str = ""
    piece: int = 0


@attrs.frozen
class TurnDone:
    """The turn is complete.

    Attributes:
        turn: Everything the turn produced.
    """

    type: ClassVar[str] = "turn.done"
    turn: Turn


Event: TypeAlias = (
    "TranscriptDelta | TranscriptDone | ReplyDelta | ReplyDone | AudioChunk | TurnDone"
)
"""Any event ``Chain.stream()`` yields."""
