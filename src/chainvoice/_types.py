"""Value types that flow through a chain: transcripts, conversations, usage, timings, turns."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Literal

import attrs

from chainvoice._errors import ConfigurationError

if TYPE_CHECKING:
    from chainvoice._audio import Audio

__all__ = [
    "Conversation",
    "Logprob",
    "Message",
    "Reply",
    "Role",
    "Segment",
    "StageTiming",
    "Timings",
    "Transcript",
    "Turn",
    "Usage",
    "Word",
]

Role = Literal["system", "user", "assistant"]
_ROLES = ("system", "user", "assistant")


def _add_optional(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


@attrs.frozen(kw_only=True)
class Usage:
    """What one stage (or a sum of stages) consumed, and what it cost.

    A stage reports usage by yielding ``Usage`` items among its text or audio; the chain
    sums them. ``Usage`` values add with ``+`` and ``sum(items, Usage.zero())``.

    Attributes:
        stage: ``"transcribe"``, ``"respond"`` or ``"synthesize"`` for one stage's report;
            ``None`` for a sum over stages.
        model: The model that did the work, when one did.
        input_tokens: All input tokens (text and audio).
        output_tokens: All output tokens (text and audio).
        input_text_tokens: Input text tokens, where the service breaks them down.
        input_audio_tokens: Input audio tokens, where the service breaks them down.
        output_text_tokens: Output text tokens, where the service breaks them down.
        output_audio_tokens: Output audio tokens, where the service breaks them down.
        audio_seconds: Seconds of audio consumed (transcription) or produced (speech).
        characters: Characters of text consumed (speech) or produced.
        requests: Requests sent to a service.
        cost_usd: Cost in US dollars; ``None`` when it is not known (see ``unpriced``).
        unpriced: What has no known price (models, or stages that reported no usage), so
            the cost could not be computed.

    Example:
        >>> a = Usage(stage="respond", model="m", input_tokens=10, cost_usd=0.01)
        >>> (a + a).input_tokens
        20
    """

    stage: str | None = None
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    input_text_tokens: int = 0
    input_audio_tokens: int = 0
    output_text_tokens: int = 0
    output_audio_tokens: int = 0
    audio_seconds: float = 0.0
    characters: int = 0
    requests: int = 0
    cost_usd: float | None = None
    unpriced: tuple[str, ...] = ()

    @classmethod
    def zero(cls) -> Usage:
        """The neutral element of ``+``: nothing used, nothing spent (cost known to be 0)."""
        return cls(cost_usd=0.0)

    @classmethod
    def total(cls, items: Iterable[Usage]) -> Usage:
        """Sum usage items. The cost is ``None`` if any item's cost is unknown.

        Args:
            items: The usage items to add up.

        Returns:
            Their sum; an empty iterable sums to a usage whose cost is unknown, since
            nothing was reported.
        """
        out: Usage | None = None
        for item in items:
            out = item if out is None else out + item
        return out if out is not None else cls()

    def __add__(self, other: object) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            stage=self.stage if self.stage == other.stage else None,
            model=self.model if self.model == other.model else None,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            input_text_tokens=self.input_text_tokens + other.input_text_tokens,
            input_audio_tokens=self.input_audio_tokens + other.input_audio_tokens,
            output_text_tokens=self.output_text_tokens + other.output_text_tokens,
            output_audio_tokens=self.output_audio_tokens + other.output_audio_tokens,
            audio_seconds=self.audio_seconds + other.audio_seconds,
            characters=self.characters + other.characters,
            requests=self.requests + other.requests,
            cost_usd=_add_optional(self.cost_usd, other.cost_usd),
            unpriced=tuple(dict.fromkeys(self.unpriced + other.unpriced)),
        )

    def __radd__(self, other: object) -> Usage:
        if other == 0:  # lets the built-in sum() work without a start value
            return self
        return NotImplemented

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    @property
    def cost_note(self) -> str:
        """A sentence that says what the cost is, or why it is unknown."""
        if self.cost_usd is not None:
            return f"${self.cost_usd:.6f}"
        if self.unpriced:
            # Entries are a model name ("no price for m"), or say why in parentheses.
            bare = [u for u in self.unpriced if not u.endswith(")")]
            why = [u for u in self.unpriced if u.endswith(")")]
            parts = (["no price for " + ", ".join(bare)] if bare else []) + why
            return "unknown: " + "; ".join(parts)
        return "unknown: no stage reported a price"


@attrs.frozen(kw_only=True)
class Word:
    """One word of a transcript with its times in seconds from the start of the audio."""

    text: str
    start: float
    end: float
    speaker: str | None = None
    probability: float | None = None


@attrs.frozen(kw_only=True)
class Segment:
    """A stretch of a transcript (a phrase, or one speaker's turn) with its times in seconds."""

    text: str
    start: float
    end: float
    speaker: str | None = None
    words: tuple[Word, ...] = ()


@attrs.frozen(kw_only=True)
class Logprob:
    """The log probability of one token the transcription model produced."""

    token: str
    logprob: float
    bytes: tuple[int, ...] | None = None


def _tuple(value: Iterable[object] | None) -> tuple[object, ...]:
    return () if value is None else tuple(value)


@attrs.frozen(kw_only=True)
class Transcript:
    """The text heard in some audio, with whatever detail the transcriber gives.

    Attributes:
        text: The whole text.
        language: The language as an ISO 639-1 code where known (e.g. ``"en"``), else as
            the transcriber reported it.
        duration: Seconds of audio transcribed, when known.
        segments: Phrases or speaker turns with times, where the model gives them.
        words: Words with times, where the model gives them.
        logprobs: Token log probabilities, where they were asked for.
        usage: What the transcription consumed and cost.
        model: The model that transcribed.

    Example:
        >>> Transcript(text="hello there").text
        'hello there'
    """

    text: str = attrs.field(kw_only=False)
    language: str | None = None
    duration: float | None = None
    segments: tuple[Segment, ...] = attrs.field(default=(), converter=_tuple)
    words: tuple[Word, ...] = attrs.field(default=(), converter=_tuple)
    logprobs: tuple[Logprob, ...] | None = None
    usage: Usage | None = None
    model: str | None = None

    @property
    def speakers(self) -> tuple[str, ...]:
        """The distinct speakers in order of first appearance (empty without diarization)."""
        seen = dict.fromkeys(s.speaker for s in self.segments if s.speaker is not None)
        return tuple(seen)

    def to_srt(self) -> str:
        """The transcript as SubRip (``.srt``) subtitles.

        Cues are of readable length (at most two lines of 42 characters, at most 7
        seconds, and at least 5/6 of a second where the next cue leaves time) and never
        overlap. Each text shows from when it is said: a speaker who talks over another
        gets their own cue, and a change of speaker starts the cue with ``Speaker: ``.
        Without segments, the text is spread over the transcript's ``duration``.

        Raises:
            ConfigurationError: A time is NaN or infinite, or the transcript has text but
                neither segments nor a duration; give it one, e.g.
                ``attrs.evolve(transcript, duration=audio.duration)``.
        """
        from chainvoice._subtitles import to_srt

        return to_srt(self)

    def to_vtt(self) -> str:
        """The transcript as WebVTT (``.vtt``) subtitles, cued as :meth:`to_srt`."""
        from chainvoice._subtitles import to_vtt

        return to_vtt(self)

    def to_json(self) -> str:
        """The transcript as JSON: text, language, duration, model, segments and words."""
        from chainvoice._subtitles import to_json

        return to_json(self)

    def to_text(self) -> str:
        """The transcript as plain text (one line per speaker turn when diarized)."""
        from chainvoice._subtitles import to_text

        return to_text(self)

    def _repr_html_(self) -> str:
        from chainvoice._display import transcript_html

        return transcript_html(self)


def _check_role(_inst: object, _attr: object, value: str) -> None:
    if value not in _ROLES:
        raise ConfigurationError(f"a message role must be one of {_ROLES}, not {value!r}")


def _check_content(_inst: object, _attr: object, value: str) -> None:
    if not isinstance(value, str):
        raise ConfigurationError(
            f"a message's content must be a str, not {type(value).__name__}; "
            "convert it with str(...) first"
        )


@attrs.frozen
class Message:
    """One message of a conversation.

    Attributes:
        role: ``"user"``, ``"assistant"`` or ``"system"``.
        content: The text.
        interrupted: True when the message was cut short (barge-in, or a failed stage) and
            holds only the part actually produced.
    """

    role: Role = attrs.field(validator=_check_role)
    content: str = attrs.field(validator=_check_content)
    interrupted: bool = attrs.field(default=False, kw_only=True)


def _messages(value: Iterable[Message] | str | bytes) -> tuple[Message, ...]:
    if isinstance(value, (str, bytes)):
        raise ConfigurationError(
            "a conversation takes a list of Message objects, not a string; e.g. "
            'Conversation([Message("user", "hi")]) or Conversation().add("user", "hi")'
        )
    messages = tuple(value)
    for item in messages:
        if not isinstance(item, Message):
            raise ConfigurationError(
                f"a conversation holds chainvoice.Message objects, not "
                f"{type(item).__name__}; e.g. Message('user', {item!r})"
            )
    return messages


@attrs.frozen
class Conversation:
    """The system instructions and the messages exchanged so far; immutable.

    Attributes:
        messages: User and assistant messages, oldest first.
        instructions: The system prompt, or ``None``.

    Example:
        >>> c = Conversation(instructions="Be brief.").add("user", "Hi")
        >>> c.last_user_text
        'Hi'
        >>> c.as_dicts()[0]
        {'role': 'system', 'content': 'Be brief.'}
    """

    messages: tuple[Message, ...] = attrs.field(default=(), converter=_messages)
    instructions: str | None = attrs.field(default=None, kw_only=True)

    def add(self, role: Role, content: str, *, interrupted: bool = False) -> Conversation:
        """A new conversation with one more message.

        Args:
            role: ``"user"`` or ``"assistant"`` (or ``"system"``).
            content: The message text.
            interrupted: True when the message holds only part of what was meant.

        Returns:
            The longer conversation (this one is unchanged).
        """
        return attrs.evolve(
            self, messages=(*self.messages, Message(role, content, interrupted=interrupted))
        )

    def reset(self) -> Conversation:
        """The same instructions with no messages."""
        return attrs.evolve(self, messages=())

    @property
    def last_user_text(self) -> str:
        """The text of the latest user message ("" if there is none)."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message.content
        return ""

    def as_dicts(self) -> list[dict[str, str]]:
        """The conversation as ``{"role", "content"}`` dicts, the system message first."""
        out = (
            [] if self.instructions is None else [{"role": "system", "content": self.instructions}]
        )
        out.extend({"role": m.role, "content": m.content} for m in self.messages)
        return out

    def __len__(self) -> int:
        return len(self.messages)


@attrs.frozen
class Reply:
    """What the assistant answered: its text and, with a synthesizer, its audio.

    Attributes:
        text: The whole reply text (as far as it was produced).
        audio: All reply audio joined, or ``None`` when the chain has no synthesizer or
            no audio was produced. A chain's turn joins its chunks when the samples are
            first used (its length is known before), so a listener who streamed the turn
            does not pay for a copy it never reads.
    """

    text: str = ""
    audio: Audio | None = None


@attrs.frozen(kw_only=True)
class StageTiming:
    """When a stage started, first produced output, and ended.

    Times are seconds since the start of the turn.
    """

    start: float
    first_output: float | None = None
    end: float | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, or ``None`` if the stage did not end."""
        return None if self.end is None else self.end - self.start

    @property
    def to_first_output(self) -> float | None:
        """Seconds from the stage's start to its first output."""
        return None if self.first_output is None else self.first_output - self.start


@attrs.frozen(kw_only=True)
class Timings:
    """Per-stage timings of one turn, in seconds since the turn started.

    Attributes:
        transcribe: The transcription stage, or ``None`` when the turn began from text.
        respond: The reply stage.
        synthesize: Speech synthesis from the first piece's start to the last chunk.
        first_audio: Time to first audio of the turn (``None`` without audio).
        total: The whole turn.
    """

    transcribe: StageTiming | None = None
    respond: StageTiming | None = None
    synthesize: StageTiming | None = None
    first_audio: float | None = None
    total: float = 0.0

    def __str__(self) -> str:
        def fmt(name: str, t: StageTiming | None) -> str | None:
            if t is None:
                return None
            d = t.duration
            return f"{name} {d:.3f}s" if d is not None else f"{name} (unfinished)"

        parts = [
            fmt("transcribe", self.transcribe),
            fmt("respond", self.respond),
            fmt("synthesize", self.synthesize),
        ]
        if self.first_audio is not None:
            parts.append(f"first audio {self.first_audio:.3f}s")
        parts.append(f"total {self.total:.3f}s")
        return ", ".join(p for p in parts if p)


@attrs.frozen(kw_only=True)
class Turn:
    """One user utterance through a chain, and everything it produced.

    Attributes:
        user_text: What the user said (the transcript's text, or the text given).
        transcript: The transcript, or ``None`` when the turn began from text.
        reply: The reply's text and audio.
        timings: When each stage ran.
        usage: The turn's usage summed over stages.
        usage_items: The usage items as the stages reported them.
        input_audio: The audio the turn began from, if any.
        interrupted: True when the turn was stopped early (barge-in) or failed.
    """

    user_text: str
    transcript: Transcript | None = None
    reply: Reply = attrs.field(factory=Reply)
    timings: Timings = attrs.field(factory=Timings)
    usage: Usage = attrs.field(factory=Usage)
    usage_items: tuple[Usage, ...] = ()
    input_audio: Audio | None = None
    interrupted: bool = False

    @property
    def usage_by_stage(self) -> Mapping[str, Usage]:
        """The usage summed per stage (``"transcribe"``, ``"respond"``, ``"synthesize"``)."""
        out: dict[str, Usage] = {}
        for item in self.usage_items:
            key = item.stage or "other"
            out[key] = out[key] + item if key in out else item
        return out

    def _repr_html_(self) -> str:
        from chainvoice._display import turn_html

        return turn_html(self)
