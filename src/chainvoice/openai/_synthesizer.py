"""Text to speech with OpenAI's speech endpoint: :class:`OpenAISynthesizer` and its async twin.

Audio is passed on chunk by chunk as it arrives. Raw PCM (the default, for the lowest
latency) and WAV are decoded as they stream, an odd byte at a chunk boundary carried to the
next chunk; compressed formats (mp3, opus, aac, flac) need the whole file to decode and
arrive as one chunk at the end. The format is taken from the response's Content-Type (and
the first bytes) rather than from what was asked, so OpenAI-compatible servers that answer
with WAV or MP3 when PCM was asked still work.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import struct
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from chainvoice import _codecs
from chainvoice._audio import Audio
from chainvoice._errors import (
    AudioFormatError,
    ConfigurationError,
    ServerError,
    StreamInterruptedError,
)
from chainvoice._pace import ahead, gather_lead, hold_needs
from chainvoice._types import Usage
from chainvoice.openai._client import ClientSettings
from chainvoice.openai._common import (
    DEFAULT_GATHER,
    OpenAIStage,
    SseDecoder,
    StageSetup,
    TokenCounts,
    astream_with_retries,
    check_gather,
    field,
    int_or_zero,
    make_usage,
    stage_repr,
    stream_with_retries,
)
from chainvoice.openai._direct import json_body
from chainvoice.openai._models import (
    DEFAULT_SPEECH_MODEL,
    SPEECH_INPUT_LIMIT,
    Price,
    check_format,
    check_params,
    lookup,
)
from chainvoice.openai._transport import body_chunks

if TYPE_CHECKING:
    from openai import AsyncOpenAI, OpenAI

__all__ = ["FRAGMENT_GUARD", "AsyncOpenAISynthesizer", "OpenAISynthesizer", "split_for_speech"]

OPENAI_PCM_RATE = 24000
"""OpenAI's raw PCM is 24 kHz mono signed 16-bit little-endian."""

DEFAULT_VOICE = "coral"
"""A built-in voice every OpenAI speech model has."""

FRAGMENT_GUARD = (
    "The text may be one fragment of a longer reply, read in several parts: read exactly "
    "what is written, do not add, complete or comment on anything, and keep the same voice, "
    "pace and tone so that the parts join seamlessly."
)
"""Added to the instructions of models that take them (turn off with ``fragment_guard=False``)."""

AudioFormat = Literal["pcm", "wav", "mp3", "opus", "aac", "flac"]
StreamFormat = Literal["audio", "sse"]
Voice = str | Mapping[str, str]

#: Streams faster than this many times real time are never held.
_GATHER_MAX_RATE = 8.0
_SPEECH_ACCEPT = "application/octet-stream"  # as the SDK asks for speech
_FORMATS = ("pcm", "wav", "mp3", "opus", "aac", "flac")
_INSTRUCTIONS_LIMIT = 4096
_SENTENCE_END = re.compile(r"[.!?…。！？]+[\"')\]」』”’]*(?=\s|$)|[。！？]")  # noqa: RUF001

_CTYPE_FORMATS = {
    "audio/pcm": "pcm",
    "audio/l16": "pcm",
    "audio/raw": "pcm",
    "audio/x-pcm": "pcm",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/vnd.wave": "wav",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/ogg": "ogg",
    "audio/opus": "ogg",
    "audio/aac": "aac",
    "audio/x-aac": "aac",
    "audio/mp4": "mp4",
    "audio/flac": "flac",
    "audio/x-flac": "flac",
    "audio/webm": "webm",
}


def split_for_speech(text: str, limit: int = SPEECH_INPUT_LIMIT) -> list[str]:
    """Cut ``text`` into pieces of at most ``limit`` characters, at sentence ends if possible.

    A piece ends at the last sentence end within the limit; failing that at the last
    whitespace; failing that (one enormous word) at the limit. Joining the pieces gives
    back the text, and pieces that are only whitespace are left out.

    Example:
        >>> split_for_speech("One. Two. Three.", limit=10)
        ['One. Two.', ' Three.']
    """
    if limit < 1:
        raise ConfigurationError(f"limit must be positive, not {limit}")
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = 0
        # One character more, so that a "." at the window's edge is judged by what follows.
        for match in _SENTENCE_END.finditer(rest[: limit + 1]):
            if match.end() <= limit:
                cut = match.end()
        if cut == 0:
            space = max(window.rfind(" "), window.rfind("\n"), window.rfind("\t"))
            cut = space if space > 0 else limit
        pieces.append(rest[:cut])
        rest = rest[cut:]
    pieces.append(rest)
    return [p for p in pieces if p.strip()]


# --------------------------------------------------------------------------------- decoding


def _format_of(content_type: str | None) -> tuple[str | None, dict[str, str]]:
    if not content_type:
        return None, {}
    main, *params = (p.strip() for p in content_type.split(";"))
    values = {}
    for p in params:
        if "=" in p:
            k, v = p.split("=", 1)
            values[k.strip().lower()] = v.strip().strip('"')
    return _CTYPE_FORMATS.get(main.lower()), values


class _PcmReader:
    """16-bit little-endian PCM, any chunking; a partial frame is carried to the next chunk."""

    def __init__(self, rate: int, channels: int) -> None:
        self.rate = rate
        self.channels = channels
        self.carry = b""

    def feed(self, data: bytes) -> list[Audio]:
        data = self.carry + data
        usable = len(data) - len(data) % (2 * self.channels)
        self.carry = data[usable:]
        if not usable:
            return []
        return [Audio.from_pcm16(data[:usable], rate=self.rate, channels=self.channels)]

    def finish(self) -> list[Audio]:
        # A stray byte at the very end is half a sample: nothing to play.
        return []


class _WavReader:
    """A WAV stream: the header is parsed as it arrives, then frames pass through."""

    def __init__(self) -> None:
        self.head = b""
        self.fmt: Any = None
        self.pcm: _WavFrames | None = None
        self.buffered: _BufferedReader | None = None

    def feed(self, data: bytes) -> list[Audio]:
        if self.pcm is not None:
            return self.pcm.feed(data)
        if self.buffered is not None:
            return self.buffered.feed(data)
        self.head += data
        pos = 12
        raw = self.head
        if len(raw) >= 12 and (raw[:4] not in (b"RIFF", b"RF64") or raw[8:12] != b"WAVE"):
            raise AudioFormatError("the server sent audio labelled WAV that is not WAV")
        while pos + 8 <= len(raw):
            chunk_id = raw[pos : pos + 4]
            size = struct.unpack_from("<I", raw, pos + 4)[0]
            body = pos + 8
            if chunk_id == b"data":
                if self.fmt is None:
                    raise AudioFormatError("the server's WAV stream has no fmt chunk before data")
                self.pcm = _WavFrames(self.fmt)
                self.head = b""
                return self.pcm.feed(raw[body:])
            if body + size > len(raw):
                return []  # wait for the rest of this chunk
            if chunk_id == b"fmt ":
                try:
                    self.fmt = _codecs._parse_fmt(raw[body : body + size])
                except _codecs._NeedsFFmpeg:
                    self.buffered = _BufferedReader("wav")
                    self.head = b""
                    return self.buffered.feed(raw)
            pos = body + size + (size & 1)
        return []

    def finish(self) -> list[Audio]:
        if self.pcm is not None:
            return []
        if self.buffered is not None:
            return self.buffered.finish()
        if self.head:
            raise AudioFormatError(
                f"the server's WAV stream ended inside its header ({len(self.head)} bytes)"
            )
        return []


class _WavFrames:
    def __init__(self, fmt: Any) -> None:
        self.fmt = fmt
        self.frame = fmt.sample_bytes * fmt.channels
        self.carry = b""

    def feed(self, data: bytes) -> list[Audio]:
        data = self.carry + data
        frames = len(data) // self.frame
        self.carry = data[frames * self.frame :]
        if not frames:
            return []
        samples = _codecs._decode_samples(data, 0, frames, self.fmt)
        return [Audio(samples, self.fmt.rate)]


class _BufferedReader:
    """Compressed audio: gathered, and decoded once the stream ends."""

    def __init__(self, hint: str | None) -> None:
        self.hint = hint
        self.parts: list[bytes] = []

    def feed(self, data: bytes) -> list[Audio]:
        self.parts.append(data)
        return []

    def finish(self) -> list[Audio]:
        data = b"".join(self.parts)
        if not data:
            return []
        return [Audio.from_bytes(data, format=self.hint)]


_Reader = _PcmReader | _WavReader | _BufferedReader


class _AudioReader:
    """Chooses the decoder from the Content-Type, the first bytes and the format asked for."""

    def __init__(self, content_type: str | None, requested: str, pcm_rate: int) -> None:
        self.declared, self.params = _format_of(content_type)
        self.requested = requested
        self.pcm_rate = pcm_rate
        self.reader: _Reader | None = None
        self.pending = b""
        self.seconds = 0.0

    def _choose(self, head: bytes) -> _Reader:
        kind = self.declared
        sniffed = _codecs.sniff(head)
        if sniffed == "wav":  # a RIFF/WAVE header is unmistakable, whatever the label says
            kind = "wav"
        elif kind != "pcm":  # raw PCM can look like anything, so other guesses yield to it
            kind = sniffed or kind or self.requested
        if kind == "pcm":
            rate = int(self.params.get("rate", self.pcm_rate))
            channels = int(self.params.get("channels", 1))
            return _PcmReader(rate, channels)
        if kind == "wav":
            return _WavReader()
        return _BufferedReader(kind)

    def feed(self, data: bytes) -> list[Audio]:
        if self.reader is None:
            self.pending += data
            if len(self.pending) < 12:
                return []
            self.reader = self._choose(self.pending)
            data, self.pending = self.pending, b""
        return self._count(self.reader.feed(data))

    def finish(self) -> list[Audio]:
        if self.reader is None:
            if not self.pending:
                return []
            self.reader = self._choose(self.pending)
            out = self.reader.feed(self.pending)
            self.pending = b""
            return self._count(out + self.reader.finish())
        return self._count(self.reader.finish())

    def _count(self, chunks: list[Audio]) -> list[Audio]:
        self.seconds += sum(c.duration for c in chunks)
        return chunks


class _SseReader:
    """``stream_format="sse"``: base64 audio in ``speech.audio.delta``, usage at the end."""

    def __init__(self, audio: _AudioReader) -> None:
        self.audio = audio
        self.events = SseDecoder("the speech stream")
        self.done = False
        self.tokens: TokenCounts | None = None

    def feed(self, data: bytes) -> list[Audio]:
        out: list[Audio] = []
        for event in self.events.feed(data):
            out += self._event(event)
        return out

    def _event(self, event: Any) -> list[Audio]:
        kind = field(event, "type")
        if kind == "speech.audio.delta":
            try:
                chunk = base64.b64decode(field(event, "audio") or "", validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ServerError(f"the speech stream sent invalid base64 audio: {exc}") from None
            return self.audio.feed(chunk)
        if kind == "speech.audio.done":
            self.done = True
            usage = field(event, "usage")
            if usage is not None:
                self.tokens = TokenCounts(
                    input_text=int_or_zero(field(usage, "input_tokens")),
                    output_audio=int_or_zero(field(usage, "output_tokens")),
                )
            return []
        if kind == "error" or (isinstance(event, dict) and "error" in event):
            error = field(event, "error", event)
            raise ServerError(
                f"the speech stream reported an error: {field(error, 'message', error)}"
            )
        return []

    def finish(self) -> list[Audio]:
        out: list[Audio] = []
        for event in self.events.finish():
            out += self._event(event)
        if not self.done:
            raise StreamInterruptedError("the speech stream ended before speech.audio.done")
        return out + self.audio.finish()


# ------------------------------------------------------------------------------------- core


class _SynthesizerCore:
    """Options, request building and response reading; no I/O."""

    def __init__(
        self,
        setup: StageSetup,
        *,
        voice: Voice,
        instructions: str | None,
        fragment_guard: bool,
        speed: float | None,
        response_format: AudioFormat,
        stream_format: StreamFormat,
        pcm_rate: int,
        chunk_size: int | None,
        gather: float,
        extra_body: Mapping[str, Any] | None,
    ) -> None:
        self.setup = setup
        model = setup.model
        info = lookup(model, "speech")
        used: list[str] = []
        if isinstance(voice, str):
            if not voice.strip():
                raise ConfigurationError("voice must be a voice name such as 'coral', not empty")
            self.voice: Any = voice
        elif isinstance(voice, Mapping) and isinstance(voice.get("id"), str) and voice["id"]:
            self.voice = {"id": voice["id"]}
        else:
            raise ConfigurationError(
                "voice must be a built-in voice name or a custom voice {'id': ...}, not "
                f"{voice!r}"
            )
        if instructions is not None:
            if not isinstance(instructions, str):
                raise ConfigurationError(f"instructions must be a string, not {instructions!r}")
            used.append("instructions")
        takes_instructions = (
            info.accepts("instructions") if info is not None else bool(instructions)
        )
        guard = FRAGMENT_GUARD if fragment_guard and takes_instructions else None
        joined = "\n\n".join(p for p in (instructions, guard) if p)
        if len(joined) > _INSTRUCTIONS_LIMIT:
            raise ConfigurationError(
                f"instructions are {len(joined)} characters with the fragment guard; the limit "
                f"is {_INSTRUCTIONS_LIMIT}: shorten them (or pass fragment_guard=False)"
            )
        self.instructions = joined or None
        if speed is not None:
            if not isinstance(speed, (int, float)) or not 0.25 <= float(speed) <= 4.0:
                raise ConfigurationError(f"speed must be between 0.25 and 4.0, not {speed!r}")
            used.append("speed")
        self.speed = None if speed is None else float(speed)
        if response_format not in _FORMATS:
            raise ConfigurationError(
                f"response_format must be one of {', '.join(_FORMATS)}, not {response_format!r}"
            )
        self.response_format: str = response_format
        if stream_format not in ("audio", "sse"):
            raise ConfigurationError(
                f"stream_format must be 'audio' or 'sse', not {stream_format!r}"
            )
        if stream_format == "sse":
            used.append("sse")
        self.stream_format: str = stream_format
        check_params(model, "speech", used)
        check_format(model, "speech", response_format)
        if isinstance(pcm_rate, bool) or not isinstance(pcm_rate, int) or pcm_rate <= 0:
            raise ConfigurationError(f"pcm_rate must be a positive integer, not {pcm_rate!r}")
        self.pcm_rate = pcm_rate
        if chunk_size is not None and (
            isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 2
        ):
            raise ConfigurationError(
                f"chunk_size must be an integer of at least 2, not {chunk_size!r}"
            )
        self.chunk_size = chunk_size
        self.gather = check_gather(gather)
        self.limit = (info.max_input_chars if info is not None else None) or SPEECH_INPUT_LIMIT
        self.extra_body = dict(extra_body) if extra_body else None

    def pieces(self, text: str) -> list[str]:
        """The requests ``text`` needs: none for blank text, several for very long text."""
        if not isinstance(text, str):
            raise TypeError(f"synthesize() takes a str, not {type(text).__name__}")
        return split_for_speech(text, self.limit)

    def request(self, piece: str) -> dict[str, Any]:
        """Keyword arguments for ``audio.speech.with_streaming_response.create``."""
        kwargs: dict[str, Any] = {
            "model": self.setup.model,
            "voice": self.voice,
            "input": piece,
            "response_format": self.response_format,
        }
        if self.instructions is not None:
            kwargs["instructions"] = self.instructions
        if self.speed is not None:
            kwargs["speed"] = self.speed
        if self.stream_format == "sse":
            kwargs["stream_format"] = "sse"
        if self.extra_body:
            kwargs["extra_body"] = self.extra_body
        return kwargs

    def reader(self, content_type: str | None) -> _AudioReader | _SseReader:
        """A reader for one response, by its Content-Type."""
        main = (content_type or "").split(";")[0].strip().lower()
        if main == "text/event-stream":
            return _SseReader(_AudioReader(None, self.response_format, self.pcm_rate))
        if main.startswith(("application/json", "text/")):
            raise ServerError(
                f"the speech endpoint at {self.setup.base_url} answered with {main}, not audio"
            )
        return _AudioReader(content_type, self.response_format, self.pcm_rate)

    def usage(self, piece: str, reader: _AudioReader | _SseReader) -> Usage:
        """The usage item for one request."""
        audio = reader.audio if isinstance(reader, _SseReader) else reader
        tokens = reader.tokens if isinstance(reader, _SseReader) else None
        return make_usage(
            stage="synthesize",
            model=self.setup.model,
            price=self.setup.price,
            tokens=tokens,
            audio_seconds=audio.seconds,
            characters=len(piece),
            minutes_billed=True,
        )


class _Pacer:
    """How long a read may wait, from how far the audio read is ahead of real time.

    A listener who plays from the first chunk has ``ahead`` seconds of audio in hand (under
    a chain, counting the earlier pieces of the reply too). A read may wait ``gather``
    seconds (in fact until the next tick: :func:`chainvoice._pace.next_tick`) when that
    cannot leave them without audio: when what is in hand outlasts the wait by a margin
    (:func:`chainvoice._pace.hold_needs`; 0.3 s in hand right after a tick, 0.1 s just
    before one, for the default 0.2 s). Under a chain, a later piece's very first read may
    wait too, on the earlier pieces' audio alone. A stream arriving faster than
    :data:`_GATHER_MAX_RATE` times real time (judged once it has ``lead`` seconds of audio
    of its own: :func:`chainvoice._pace.gather_lead`) is never held: its reads are large
    anyway, and waiting would only slow it down.
    """

    def __init__(self, gather: float) -> None:
        self.gather = gather
        self.lead = gather_lead(gather)
        self.start: float | None = None  # the first read, or the hold before it
        self.seconds = 0.0

    def add(self, chunks: list[Audio]) -> None:
        """Count ``chunks`` as read now."""
        if self.start is None and chunks:
            self.start = time.monotonic()
        for chunk in chunks:
            self.seconds += chunk.duration

    def hold(self) -> float:
        """Seconds the next read may wait: ``gather`` when far enough ahead, else 0."""
        now = time.monotonic()
        needs = hold_needs(self.gather, now)
        if self.start is None:  # nothing read yet: wait only on the earlier pieces' audio
            if ahead() < needs:
                return 0.0
            self.start = now
            return self.gather
        in_hand = ahead()
        # Its own lead counts once it is judged not too fast to hold (fast: its reads are
        # large anyway). Judged once it has a lead of its own: right after a first read,
        # any stream would look fast.
        if self.seconds >= self.lead:
            elapsed = now - self.start
            if self.seconds > _GATHER_MAX_RATE * elapsed:
                return 0.0
            in_hand = max(in_hand, self.seconds - elapsed)
        return self.gather if in_hand >= needs else 0.0


class _Reading:
    """One speech response being read: bytes in, audio chunks out, then the usage item."""

    def __init__(self, core: _SynthesizerCore, piece: str, content_type: str | None) -> None:
        self.core = core
        self.piece = piece
        self.reader = core.reader(content_type)
        self.pacer: _Pacer | None = None

    def feed(self, data: bytes) -> list[Audio]:
        """Audio decoded from ``data``."""
        chunks = self.reader.feed(data)
        if self.pacer is not None and chunks:
            self.pacer.add(chunks)
        return chunks

    def finish(self) -> list[Audio | Usage]:
        """The last audio, then this request's usage.

        Raises:
            StreamInterruptedError: An SSE stream ended before ``speech.audio.done``.
        """
        out: list[Audio | Usage] = []
        out += self.reader.finish()
        out.append(self.core.usage(self.piece, self.reader))
        return out

    def consume(self, response: Any) -> Iterator[Audio | Usage]:
        """Read a sync ``with_streaming_response`` response."""
        for data in response.iter_bytes(self.core.chunk_size):
            yield from self.feed(data)
        yield from self.finish()

    async def aconsume(self, response: Any) -> AsyncIterator[Audio | Usage]:
        """Read an async ``with_streaming_response`` response."""
        hold = None
        if self.core.gather and self.core.chunk_size is None:
            self.pacer = _Pacer(self.core.gather)
            hold = self.pacer.hold
        async for data in body_chunks(response, self.core.chunk_size, hold):
            for chunk in self.feed(data):
                yield chunk
        for item in self.finish():
            yield item


def _consume(core: _SynthesizerCore, piece: str, response: Any) -> Iterator[Audio | Usage]:
    return _Reading(core, piece, response.headers.get("content-type")).consume(response)


def _aconsume(core: _SynthesizerCore, piece: str, response: Any) -> AsyncIterator[Audio | Usage]:
    return _Reading(core, piece, response.headers.get("content-type")).aconsume(response)


def _is_audio(item: object) -> bool:
    return isinstance(item, Audio)


class _SynthesizerBase(OpenAIStage):
    _stage = "speech"
    _kind = "speech"
    _default_model = DEFAULT_SPEECH_MODEL
    _core: _SynthesizerCore

    def __init__(
        self,
        model: str | None = None,
        *,
        voice: Voice = DEFAULT_VOICE,
        instructions: str | None = None,
        fragment_guard: bool = True,
        speed: float | None = None,
        response_format: AudioFormat = "pcm",
        stream_format: StreamFormat = "audio",
        pcm_rate: int = OPENAI_PCM_RATE,
        chunk_size: int | None = None,
        gather: float = DEFAULT_GATHER,
        extra_body: Mapping[str, Any] | None = None,
        prices: Mapping[str, Price] | None = None,
        client: OpenAI | AsyncOpenAI | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        organization: str | None = None,
        project: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> None:
        settings = ClientSettings(
            api_key=api_key,
            base_url=base_url,
            organization=organization,
            project=project,
            timeout=timeout,
            max_retries=max_retries,
        )
        self._setup = self._make_setup(model, client, settings, prices)
        self._core = _SynthesizerCore(
            self._setup,
            voice=voice,
            instructions=instructions,
            fragment_guard=fragment_guard,
            speed=speed,
            response_format=response_format,
            stream_format=stream_format,
            pcm_rate=pcm_rate,
            chunk_size=chunk_size,
            gather=gather,
            extra_body=extra_body,
        )
        self._built()

    @property
    def instructions(self) -> str | None:
        """The instructions sent with each request (the user's and the fragment guard)."""
        return self._core.instructions

    def __repr__(self) -> str:
        return stage_repr(
            type(self).__name__,
            self._setup,
            voice=self._core.voice,
            response_format=self._core.response_format,
        )


class OpenAISynthesizer(_SynthesizerBase):
    """Speech from OpenAI (or a compatible server), yielded chunk by chunk as it arrives.

    Args:
        model: The model (default ``gpt-4o-mini-tts``); any name is sent as is.
        voice: A built-in voice (``"coral"`` by default; ``alloy``, ``ash``, ``ballad``,
            ``cedar``, ``echo``, ``fable``, ``marin``, ``nova``, ``onyx``, ``sage``,
            ``shimmer``, ``verse``), a custom voice ``{"id": "voice_..."}``, or any name a
            compatible server knows.
        instructions: How to speak, e.g. ``"Speak like a warm, caring doctor."``
            (``gpt-4o-mini-tts``).
        fragment_guard: Add :data:`FRAGMENT_GUARD` to the instructions of models that take
            instructions, since a chain sends a reply sentence by sentence.
        speed: 0.25 to 4.0 (1.0 is normal).
        response_format: ``"pcm"`` (default, lowest latency), ``"wav"``, ``"mp3"``,
            ``"opus"``, ``"aac"`` or ``"flac"``; every format is decoded into ``Audio``
            (compressed ones need ffmpeg and arrive whole at the end).
        stream_format: ``"audio"`` (raw bytes, default) or ``"sse"`` (events that also
            report token usage).
        pcm_rate: Sample rate of raw PCM when the server does not say (OpenAI: 24000).
        chunk_size: Bytes per network read; ``None`` passes data on as it arrives.
        gather: Seconds a network read may wait (until the next multiple of ``gather`` on
            the monotonic clock) once the listener has audio in hand to outlast the wait by
            a margin (the larger of 0.3 s and 1.5 x ``gather``, less ``gather``): audio
            received minus time since the first chunk; under a chain, the earlier sentences
            count too. Speech arriving faster than real time so comes in fewer, larger
            chunks, at less CPU. A listener playing from the first chunk never runs out;
            the last chunk comes at most ``gather`` later. ``0`` passes every read on at
            once. Streams arriving over 8x real time are never held. Used by the async
            synthesizer on the HTTP transport chainvoice builds itself (see "The HTTP
            transport" in the docs), with ``chunk_size=None``.
        extra_body: More JSON fields to send, for parameters chainvoice does not name.
        prices: Prices by model name that win over :data:`chainvoice.openai.PRICES`.
        client: A ready ``OpenAI`` client (shared by the stages of a chain).
        api_key: API key; default ``OPENAI_API_KEY``. Never shown in a repr or message.
        base_url: Server URL for OpenAI-compatible servers; default ``OPENAI_BASE_URL``.
        organization: OpenAI organization; default ``OPENAI_ORG_ID``.
        project: OpenAI project; default ``OPENAI_PROJECT_ID``.
        timeout: Seconds before a request times out.
        max_retries: Retries of failed requests (the client's policy; 2 by default).

    Raises:
        UnsupportedParameterError: A known model does not take an option given.
        ConfigurationError: An option out of range.
        AuthenticationError: No API key anywhere.
    """

    _asynchronous = False

    def synthesize(self, text: str) -> Iterator[Audio | Usage]:
        """Yield audio chunks as they arrive and a ``Usage`` item per request.

        Blank text yields nothing and sends nothing; text over the input limit is sent as
        several requests, cut at sentence ends. A request whose stream fails before any
        audio is sent again (up to the client's ``max_retries``); one that fails after
        audio was delivered raises :class:`~chainvoice.StreamInterruptedError`.
        """
        core, setup = self._core, self._setup
        create = setup.client.audio.speech.with_streaming_response.create
        for piece in core.pieces(text):
            yield from stream_with_retries(
                setup,
                functools.partial(create, **core.request(piece)),
                functools.partial(_consume, core, piece),
                shows=_is_audio,
            )


class AsyncOpenAISynthesizer(_SynthesizerBase):
    """The async twin of :class:`OpenAISynthesizer` (over an ``AsyncOpenAI`` client).

    Takes the same arguments; ``client`` is an ``AsyncOpenAI``.
    """

    _asynchronous = True

    async def synthesize(self, text: str) -> AsyncIterator[Audio | Usage]:
        """Yield audio chunks as they arrive and a ``Usage`` item per request."""
        core, setup = self._core, self._setup
        create = setup.client.audio.speech.with_streaming_response.create
        direct = setup.direct
        for piece in core.pieces(text):
            kwargs = core.request(piece)

            async def open_stream(kwargs: dict[str, Any] = kwargs) -> Any:
                if direct is not None:
                    return direct.post(
                        "audio/speech", json_data=json_body(kwargs), accept=_SPEECH_ACCEPT
                    )
                return create(**kwargs)

            async for item in astream_with_retries(
                setup,
                open_stream,
                functools.partial(_aconsume, core, piece),
                shows=_is_audio,
            ):
                yield item
