"""Speech to text with OpenAI's transcription endpoint: :class:`OpenAITranscriber` and its twins.

The upload is 16 kHz mono 16-bit WAV by default. WAV is written by numpy in microseconds
and needs no ffmpeg (which a fresh machine may not have); 16 kHz mono is what the
transcription models work at, so nothing they would use is lost. It costs 32 kB per second,
so 25 MB (OpenAI's upload limit) holds about 13 minutes; somewhat longer audio is sent as
FLAC (about half the size, lossless) when ffmpeg is available. FLAC for every upload would
save ~50% of a short upload's bytes (tens of milliseconds on a normal link) but costs an
ffmpeg process start, which takes longer than that.

Audio over the model's duration limit, or too large for one upload, is cut at pauses into
pieces that fit and transcribed concurrently by :class:`chainvoice.LongTranscriber`, which
stitches the pieces back on the recording's clock (wrap a transcriber in it yourself to
choose the concurrency, retries or a progress callback).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

from chainvoice._audio import Audio
from chainvoice._codecs import find_ffmpeg
from chainvoice._errors import (
    AudioError,
    ConfigurationError,
    EmptyAudioError,
    FFmpegNotFoundError,
    StreamInterruptedError,
    UnsupportedParameterError,
)
from chainvoice._long import AsyncLongTranscriber, LongTranscriber, PieceLimits
from chainvoice._types import Logprob, Segment, Transcript, Usage, Word
from chainvoice.openai._client import ClientSettings
from chainvoice.openai._common import (
    OpenAIStage,
    SseDecoder,
    StageSetup,
    TokenCounts,
    astream_with_retries,
    field,
    int_or_zero,
    make_usage,
    stage_repr,
    stream_with_retries,
)
from chainvoice.openai._direct import DirectResponse, json_body
from chainvoice.openai._httpx import httpx
from chainvoice.openai._models import (
    DEFAULT_TRANSCRIPTION_MODEL,
    MODELS,
    UPLOAD_LIMIT_BYTES,
    Price,
    check_format,
    check_params,
    lookup,
)
from chainvoice.openai._transport import body_chunks

if TYPE_CHECKING:
    from openai import AsyncOpenAI, OpenAI
    from typing_extensions import Self

__all__ = [
    "AsyncOpenAIStreamingTranscriber",
    "AsyncOpenAITranscriber",
    "OpenAIStreamingTranscriber",
    "OpenAITranscriber",
]

UPLOAD_RATE = 16000
"""Sample rate of the WAV upload; audio at a lower rate is sent at its own rate."""

UploadFormat = Literal["auto", "wav", "flac"]
ResponseFormat = Literal["json", "text", "verbose_json", "diarized_json"]
Granularity = Literal["word", "segment"]

_STRUCTURED = ("json", "text", "verbose_json", "diarized_json")
_DIARIZE_NEEDS_CHUNKING_AFTER = 30.0  # seconds; OpenAI requires chunking_strategy beyond this
_MAX_KNOWN_SPEAKERS = 4


def wants_stream(
    model: str,
    stream: bool | None,
    response_format: str | None,
    timestamp_granularities: Sequence[str] | None,
) -> bool:
    """Whether a transcriber with these options streams (has ``transcribe_stream``).

    ``stream=None`` streams when the model is known to stream and nothing asked for a
    format that cannot (timestamps need ``verbose_json``; ``text`` has no final event).
    """
    if stream is not None:
        return bool(stream)
    info = lookup(model, "transcription")
    if info is None or not info.streaming:
        return False
    return not timestamp_granularities and response_format in (None, "json", "diarized_json")


def _data_url(name: str, ref: Audio | bytes | str) -> str:
    if isinstance(ref, str):
        if not ref.startswith("data:"):
            raise ConfigurationError(
                f"known speaker {name!r}: a string reference must be a data URL "
                "('data:audio/wav;base64,...'); pass an Audio to have it encoded"
            )
        return ref
    if isinstance(ref, Audio):
        if not 2.0 <= ref.duration <= 10.0:
            raise ConfigurationError(
                f"known speaker {name!r}: a reference sample must last 2 to 10 seconds, "
                f"not {ref.duration:.2f} s"
            )
        _, data, ctype = _encode_upload(ref, "wav", limit=None)
        return f"data:{ctype};base64," + base64.b64encode(data).decode("ascii")
    if isinstance(ref, (bytes, bytearray)):
        return _data_url(name, Audio.from_bytes(bytes(ref)))
    raise ConfigurationError(
        f"known speaker {name!r}: a reference must be an Audio, audio file bytes or a data "
        f"URL, not {type(ref).__name__}"
    )


def _encode_upload(
    audio: Audio, upload_format: UploadFormat, *, limit: int | None
) -> tuple[str, bytes, str]:
    """(filename, bytes, content type) for ``audio``, within ``limit`` bytes.

    Raises:
        EmptyAudioError: No frames.
        AudioError: Too large for the limit even as FLAC, or FLAC needs a missing ffmpeg.
    """
    if audio.frames == 0:
        raise EmptyAudioError("there is no audio to transcribe (0 frames)")
    mono = audio.to_mono()
    if mono.rate > UPLOAD_RATE:
        mono = mono.resample(UPLOAD_RATE)
    if upload_format in ("auto", "wav"):
        wav = mono.to_wav()
        if limit is None or len(wav) <= limit or upload_format == "wav":
            if limit is not None and len(wav) > limit:
                raise _TooBig(_too_big(audio, len(wav), limit, "WAV", "upload_format='flac'"))
            return "audio.wav", wav, "audio/wav"
    try:
        flac = mono.encode("flac")
    except FFmpegNotFoundError as exc:
        raise AudioError(
            f"{audio.duration / 60:.1f} minutes of audio do not fit OpenAI's upload limit as "
            f"WAV and FLAC needs ffmpeg, which was not found ({exc}). Install ffmpeg "
            "(pip install 'chainvoice[ffmpeg]') or send shorter pieces."
        ) from exc
    if limit is not None and len(flac) > limit:
        raise _TooBig(_too_big(audio, len(flac), limit, "FLAC", None))
    return "audio.flac", flac, "audio/flac"


class _TooBig(AudioError):
    """An upload over the size limit (the transcriber then sends the audio in pieces)."""


def _too_big(audio: Audio, size: int, limit: int, what: str, hint: str | None) -> str:
    tip = f" or pass {hint}" if hint else ""
    return (
        f"{audio.duration / 60:.1f} minutes of audio encode to {size / 1e6:.1f} MB of {what}, "
        f"over the {limit / 1e6:.1f} MB upload limit; send shorter pieces{tip}"
    )


def _logprobs(items: object) -> tuple[Logprob, ...] | None:
    if not isinstance(items, (list, tuple)):
        return None
    out: list[Logprob] = []
    for item in items:
        token = field(item, "token")
        logprob = field(item, "logprob")
        if token is None or logprob is None:
            continue
        raw = field(item, "bytes")
        out.append(
            Logprob(
                token=str(token),
                logprob=float(logprob),
                bytes=tuple(int(b) for b in raw) if isinstance(raw, (list, tuple)) else None,
            )
        )
    return tuple(out)


def _tokens(usage: object) -> TokenCounts | None:
    if usage is None or field(usage, "type", "tokens") != "tokens":
        return None
    total_in = int_or_zero(field(usage, "input_tokens"))
    details = field(usage, "input_token_details")
    if details is not None:
        audio_in = int_or_zero(field(details, "audio_tokens"))
        text_in = int_or_zero(field(details, "text_tokens"))
        if audio_in + text_in < total_in:
            audio_in = total_in - text_in
    else:  # without a breakdown, the input is (nearly all) the audio
        audio_in, text_in = total_in, 0
    return TokenCounts(
        input_text=text_in,
        input_audio=audio_in,
        output_text=int_or_zero(field(usage, "output_tokens")),
    )


def _language(response: object) -> str | None:
    """The response's language as a code (``"en"``): ``whisper-1`` names it (``"english"``)."""
    language = field(response, "language")
    if isinstance(language, str) and language.strip():
        return language_code(language)
    languages = field(response, "languages")
    if isinstance(languages, (list, tuple)) and languages:
        code = field(languages[0], "code")
        return language_code(str(code)) if code else None
    return None


def language_code(name: str) -> str:
    """The ISO 639-1 code for a language name Whisper uses, or ``name`` itself if unknown.

    ``"english"`` and ``"English"`` give ``"en"``; a code (``"en"``) or a name Whisper does
    not use is returned unchanged. Hawaiian and Cantonese, which have no ISO 639-1 code,
    give their ISO 639-3 codes (``"haw"``, ``"yue"``), as Whisper itself uses.
    """
    return _LANGUAGE_CODES.get(name.strip().lower(), name)


# Whisper's language names (the ``language`` of a ``verbose_json`` transcription), and the
# other names it accepts for some of them, by code.
_LANGUAGE_NAMES: Final[Mapping[str, tuple[str, ...]]] = {
    "af": ("afrikaans",),
    "am": ("amharic",),
    "ar": ("arabic",),
    "as": ("assamese",),
    "az": ("azerbaijani",),
    "ba": ("bashkir",),
    "be": ("belarusian",),
    "bg": ("bulgarian",),
    "bn": ("bengali",),
    "bo": ("tibetan",),
    "br": ("breton",),
    "bs": ("bosnian",),
    "ca": ("catalan", "valencian"),
    "cs": ("czech",),
    "cy": ("welsh",),
    "da": ("danish",),
    "de": ("german",),
    "el": ("greek",),
    "en": ("english",),
    "es": ("spanish", "castilian"),
    "et": ("estonian",),
    "eu": ("basque",),
    "fa": ("persian", "farsi"),
    "fi": ("finnish",),
    "fo": ("faroese",),
    "fr": ("french",),
    "gl": ("galician",),
    "gu": ("gujarati",),
    "ha": ("hausa",),
    "haw": ("hawaiian",),
    "he": ("hebrew",),
    "hi": ("hindi",),
    "hr": ("croatian",),
    "ht": ("haitian creole", "haitian"),
    "hu": ("hungarian",),
    "hy": ("armenian",),
    "id": ("indonesian",),
    "is": ("icelandic",),
    "it": ("italian",),
    "ja": ("japanese",),
    "jv": ("javanese",),
    "ka": ("georgian",),
    "kk": ("kazakh",),
    "km": ("khmer",),
    "kn": ("kannada",),
    "ko": ("korean",),
    "la": ("latin",),
    "lb": ("luxembourgish", "letzeburgesch"),
    "ln": ("lingala",),
    "lo": ("lao",),
    "lt": ("lithuanian",),
    "lv": ("latvian",),
    "mg": ("malagasy",),
    "mi": ("maori",),
    "mk": ("macedonian",),
    "ml": ("malayalam",),
    "mn": ("mongolian",),
    "mr": ("marathi",),
    "ms": ("malay",),
    "mt": ("maltese",),
    "my": ("myanmar", "burmese"),
    "ne": ("nepali",),
    "nl": ("dutch", "flemish"),
    "nn": ("nynorsk",),
    "no": ("norwegian",),
    "oc": ("occitan",),
    "pa": ("punjabi", "panjabi"),
    "pl": ("polish",),
    "ps": ("pashto", "pushto"),
    "pt": ("portuguese",),
    "ro": ("romanian", "moldavian", "moldovan"),
    "ru": ("russian",),
    "sa": ("sanskrit",),
    "sd": ("sindhi",),
    "si": ("sinhala", "sinhalese"),
    "sk": ("slovak",),
    "sl": ("slovenian",),
    "sn": ("shona",),
    "so": ("somali",),
    "sq": ("albanian",),
    "sr": ("serbian",),
    "su": ("sundanese",),
    "sv": ("swedish",),
    "sw": ("swahili",),
    "ta": ("tamil",),
    "te": ("telugu",),
    "tg": ("tajik",),
    "th": ("thai",),
    "tk": ("turkmen",),
    "tl": ("tagalog",),
    "tr": ("turkish",),
    "tt": ("tatar",),
    "uk": ("ukrainian",),
    "ur": ("urdu",),
    "uz": ("uzbek",),
    "vi": ("vietnamese",),
    "yi": ("yiddish",),
    "yo": ("yoruba",),
    "yue": ("cantonese",),
    "zh": ("chinese", "mandarin"),
}
_LANGUAGE_CODES: Final[Mapping[str, str]] = {
    **{name: code for code, names in _LANGUAGE_NAMES.items() for name in names},
    "jw": "jv",  # Whisper's own code for Javanese
}


def _words(items: object) -> tuple[Word, ...]:
    if not isinstance(items, (list, tuple)):
        return ()
    return tuple(
        Word(
            text=str(field(w, "word", "")),
            start=float(field(w, "start", 0.0)),
            end=float(field(w, "end", 0.0)),
        )
        for w in items
    )


def _segments(items: object, words: tuple[Word, ...]) -> tuple[Segment, ...]:
    if not isinstance(items, (list, tuple)):
        return ()
    out: list[Segment] = []
    for s in items:
        start = float(field(s, "start", 0.0))
        end = float(field(s, "end", 0.0))
        speaker = field(s, "speaker")
        inside = tuple(w for w in words if start <= w.start < end or (w.start == end == start))
        out.append(
            Segment(
                text=str(field(s, "text", "")).strip(),
                start=start,
                end=end,
                speaker=str(speaker) if speaker is not None else None,
                words=inside,
            )
        )
    return tuple(out)


class _TranscriberCore:
    """Options, request building and response reading; no I/O."""

    def __init__(
        self,
        setup: StageSetup,
        *,
        language: str | None,
        languages: Sequence[str] | None,
        prompt: str | None,
        temperature: float | None,
        keywords: Sequence[str] | None,
        include: Sequence[str] | None,
        timestamp_granularities: Sequence[Granularity] | None,
        response_format: ResponseFormat | None,
        chunking_strategy: str | Mapping[str, Any] | None,
        known_speakers: Mapping[str, Audio | bytes | str] | None,
        stream: bool | None,
        upload_format: UploadFormat,
        extra_body: Mapping[str, Any] | None,
    ) -> None:
        self.setup = setup
        model = setup.model
        info = lookup(model, "transcription")
        used: list[str] = []
        self.options: dict[str, Any] = {}
        if language is not None:
            used.append("language")
            self.options["language"] = _nonempty_str(language, "language")
        if languages is not None:
            used.append("languages")
            self.options["languages"] = _str_list(languages, "languages", minimum=1)
        if prompt is not None:
            used.append("prompt")
            self.options["prompt"] = _nonempty_str(prompt, "prompt")
        if temperature is not None:
            used.append("temperature")
            if not isinstance(temperature, (int, float)) or not 0.0 <= float(temperature) <= 1.0:
                raise ConfigurationError(
                    f"temperature must be between 0 and 1, not {temperature!r}"
                )
            self.options["temperature"] = float(temperature)
        if keywords is not None:
            used.append("keywords")
            self.options["keywords"] = _str_list(keywords, "keywords", minimum=0)
        self.logprobs = False
        if include is not None:
            items = _str_list(include, "include", minimum=0)
            unknown = sorted(set(items) - {"logprobs"})
            if unknown:
                raise ConfigurationError(
                    f"include takes only 'logprobs' for transcriptions, not {unknown}"
                )
            if items:
                used.append("logprobs")
                self.logprobs = True
                self.options["include"] = ["logprobs"]
        if timestamp_granularities is not None:
            grains = _str_list(timestamp_granularities, "timestamp_granularities", minimum=1)
            bad = sorted(set(grains) - {"word", "segment"})
            if bad:
                raise ConfigurationError(
                    f"timestamp_granularities takes 'word' and/or 'segment', not {bad}"
                )
            used.append("timestamp_granularities")
            self.options["timestamp_granularities"] = list(dict.fromkeys(grains))
        if chunking_strategy is not None:
            used.append("chunking_strategy")
            if chunking_strategy != "auto" and not (
                isinstance(chunking_strategy, Mapping)
                and chunking_strategy.get("type") == "server_vad"
            ):
                raise ConfigurationError(
                    "chunking_strategy must be 'auto' or {'type': 'server_vad', ...}, not "
                    f"{chunking_strategy!r}"
                )
            self.options["chunking_strategy"] = (
                dict(chunking_strategy)
                if isinstance(chunking_strategy, Mapping)
                else chunking_strategy
            )
        if known_speakers is not None:
            if not isinstance(known_speakers, Mapping) or not known_speakers:
                raise ConfigurationError(
                    "known_speakers must map speaker names to reference audio, e.g. "
                    "{'agent': Audio.from_file('agent.wav')}"
                )
            if len(known_speakers) > _MAX_KNOWN_SPEAKERS:
                raise ConfigurationError(
                    f"at most {_MAX_KNOWN_SPEAKERS} known speakers are supported, not "
                    f"{len(known_speakers)}"
                )
            used.append("known_speakers")
            self.options["known_speaker_names"] = [str(n) for n in known_speakers]
            self.options["known_speaker_references"] = [
                _data_url(str(n), ref) for n, ref in known_speakers.items()
            ]
        # The response format follows from what was asked for, unless given.
        if response_format is None:
            if info is not None and info.accepts("diarization"):
                response_format = "diarized_json"
            elif timestamp_granularities:
                response_format = "verbose_json"
            else:
                response_format = "json"
        if response_format not in _STRUCTURED:
            raise ConfigurationError(
                f"response_format must be one of {', '.join(_STRUCTURED)}, not "
                f"{response_format!r}; for subtitles, make them from the Transcript"
            )
        if response_format == "diarized_json":
            used.append("diarization")
        if timestamp_granularities and response_format != "verbose_json":
            raise ConfigurationError(
                "timestamp_granularities need response_format='verbose_json' (whisper-1)"
            )
        if self.logprobs and response_format != "json":
            raise ConfigurationError("include=['logprobs'] needs response_format='json'")
        self.response_format: str = response_format
        self.stream = wants_stream(model, stream, response_format, timestamp_granularities)
        if self.stream and response_format in ("verbose_json", "text"):
            raise ConfigurationError(
                f"response_format={response_format!r} cannot be streamed; pass stream=False"
            )
        check_params(model, "transcription", used)
        if info is not None and self.stream and not info.streaming:
            streamers = [
                m.name for m in MODELS.values() if m.kind == "transcription" and m.streaming
            ]
            raise UnsupportedParameterError(
                f"model {model!r} does not stream; pass stream=False, or use a model that "
                f"streams: {', '.join(streamers)}"
            )
        check_format(model, "transcription", response_format)
        if upload_format not in ("auto", "wav", "flac"):
            raise ConfigurationError(
                f"upload_format must be 'auto', 'wav' or 'flac', not {upload_format!r}"
            )
        self.upload_format: UploadFormat = upload_format
        self.limit = (info.max_upload_bytes if info is not None else None) or UPLOAD_LIMIT_BYTES
        self.max_seconds = info.max_audio_seconds if info is not None else None
        self.diarizes = info is not None and info.accepts("diarization")
        self.extra_body = dict(extra_body) if extra_body else None

    def piece_limits(self, audio: Audio) -> PieceLimits:
        """What one request takes, for ``audio`` sent as WAV at its rate (at most 16 kHz)."""
        rate = min(audio.rate, UPLOAD_RATE)
        return PieceLimits(
            max_seconds=self.max_seconds, max_bytes=self.limit, bytes_per_second=2.0 * rate
        )

    def needs_pieces(self, audio: Audio) -> bool:
        """Whether ``audio`` is too long or too large for one request.

        Audio whose WAV is over the size limit but within twice it is still sent in one
        request as FLAC (which about halves speech) when the format allows and ffmpeg is
        there; if the FLAC turns out too large, the transcriber falls back to pieces.
        """
        if not isinstance(audio, Audio) or audio.frames == 0:
            return False
        if self.max_seconds is not None and audio.duration > self.max_seconds:
            return True
        frames = audio.frames if audio.rate <= UPLOAD_RATE else audio.duration * UPLOAD_RATE
        wav_bytes = 44 + 2 * frames
        if wav_bytes <= self.limit:
            return False
        if self.upload_format == "wav" or wav_bytes > 2 * self.limit:
            return True
        try:
            find_ffmpeg()
        except FFmpegNotFoundError:
            return True
        return False

    def request(self, audio: Audio, *, stream: bool, prompt: str | None = None) -> dict[str, Any]:
        """Keyword arguments for ``client.audio.transcriptions.create``.

        Args:
            audio: The audio to send.
            stream: Ask for a stream.
            prompt: Text to add after the transcriber's own prompt (e.g. the end of the
                previous piece's transcript).

        Raises:
            EmptyAudioError: No frames.
            AudioError: Longer than the model takes, or too large to upload.
            UnsupportedParameterError: A ``prompt`` for a model that takes none.
        """
        if not isinstance(audio, Audio):
            raise TypeError(f"transcribe() takes an Audio, not {type(audio).__name__}")
        if self.max_seconds is not None and audio.duration > self.max_seconds:
            raise AudioError(
                f"{audio.duration:.0f} s of audio is longer than the {self.max_seconds:.0f} s "
                f"model {self.setup.model!r} takes in one request; send shorter pieces"
            )
        name, data, ctype = _encode_upload(audio, self.upload_format, limit=self.limit)
        kwargs: dict[str, Any] = {
            "file": (name, data, ctype),
            "model": self.setup.model,
            "response_format": self.response_format,
            **self.options,
        }
        if prompt:
            check_params(self.setup.model, "transcription", ["prompt"])
            own = self.options.get("prompt")
            kwargs["prompt"] = f"{own}\n{prompt}" if own else prompt
        if (
            self.diarizes
            and "chunking_strategy" not in kwargs
            and audio.duration > _DIARIZE_NEEDS_CHUNKING_AFTER
        ):
            kwargs["chunking_strategy"] = "auto"
        if stream:
            kwargs["stream"] = True
        if self.extra_body:
            kwargs["extra_body"] = self.extra_body
        return kwargs

    def usage(self, tokens: TokenCounts | None, seconds: float | None, audio: Audio) -> Usage:
        """The usage item for one request."""
        return make_usage(
            stage="transcribe",
            model=self.setup.model,
            price=self.setup.price,
            tokens=tokens,
            audio_seconds=seconds if seconds is not None else audio.duration,
            minutes_billed=True,
        )

    def parse(self, response: object, audio: Audio) -> Transcript:
        """The transcript from a non-streamed response (an SDK object, a dict or text)."""
        if isinstance(response, str):
            text = response
            response = {}
        else:
            text = str(field(response, "text", "") or "")
        raw_usage = field(response, "usage")
        tokens = _tokens(raw_usage)
        seconds = field(raw_usage, "seconds") if raw_usage is not None else None
        duration = field(response, "duration")
        duration = float(duration) if isinstance(duration, (int, float)) else None
        used_seconds = float(seconds) if isinstance(seconds, (int, float)) else duration
        words = _words(field(response, "words"))
        return Transcript(
            text.strip(),
            language=_language(response),
            duration=duration if duration is not None else audio.duration,
            segments=_segments(field(response, "segments"), words),
            words=words,
            logprobs=_logprobs(field(response, "logprobs")) if self.logprobs else None,
            usage=self.usage(tokens, used_seconds, audio),
            model=self.setup.model,
        )

    def reader(self, audio: Audio) -> _StreamReader:
        """A reader for one streamed response."""
        return _StreamReader(self, audio)


class _StreamReader:
    """Turns transcription stream events into text deltas and one final transcript."""

    def __init__(self, core: _TranscriberCore, audio: Audio) -> None:
        self.core = core
        self.audio = audio
        self.parts: list[str] = []
        self.segments: list[object] = []
        self.logprobs: list[object] = []
        self.final: Transcript | None = None

    def feed(self, event: object) -> list[str | Transcript]:
        """What the user should see for one event: deltas, or the final transcript."""
        kind = field(event, "type")
        if kind == "transcript.text.delta":
            delta = field(event, "delta") or ""
            lp = field(event, "logprobs")
            if isinstance(lp, (list, tuple)):
                self.logprobs.extend(lp)
            if delta:
                self.parts.append(str(delta))
                return [str(delta)]
            return []
        if kind == "transcript.text.segment":
            self.segments.append(event)
            return []
        if kind == "transcript.text.done":
            text = field(event, "text")
            lp = field(event, "logprobs")
            done_logprobs = lp if isinstance(lp, (list, tuple)) and lp else self.logprobs
            segments = _segments(self.segments, ())
            self.final = Transcript(
                str(text if text is not None else "".join(self.parts)).strip(),
                language=_language(event),
                duration=self.audio.duration,
                segments=segments,
                logprobs=_logprobs(done_logprobs) if self.core.logprobs else None,
                usage=self.core.usage(_tokens(field(event, "usage")), None, self.audio),
                model=self.core.setup.model,
            )
            return [self.final]
        return []

    def finish(self) -> None:
        """Check the stream ended properly.

        Raises:
            StreamInterruptedError: It ended before its final event.
        """
        if self.final is None:
            raise StreamInterruptedError(
                f"the transcription stream from {self.core.setup.base_url} ended before its "
                f"final event (transcript.text.done) after {len(self.parts)} deltas"
            )


def _nonempty_str(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{name} must be a non-empty string, not {value!r}")
    return value


def _str_list(value: object, name: str, *, minimum: int) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigurationError(f"{name} must be a list of strings, not {value!r}")
    items = list(value)
    if not all(isinstance(i, str) and i.strip() for i in items):
        raise ConfigurationError(f"{name} must hold non-empty strings, not {items!r}")
    if len(items) < minimum:
        raise ConfigurationError(f"{name} must hold at least {minimum} item(s)")
    return items


def _last_transcript(finals: list[Transcript]) -> Transcript:
    if not finals:  # the stream reader raises first; kept for a clear error regardless
        raise StreamInterruptedError("the transcription stream ended without a transcript")
    return finals[-1]


class _TranscriberBase(OpenAIStage):
    _stage = "transcription"
    _kind = "transcription"
    _default_model = DEFAULT_TRANSCRIPTION_MODEL
    _streaming_twin: ClassVar[type[_TranscriberBase] | None] = None
    _requires_stream: ClassVar[bool] = False
    _core: _TranscriberCore

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        target: type[Any] = cls
        twin = cls.__dict__.get("_streaming_twin")
        if twin is not None:
            model = args[0] if args else kwargs.get("model")
            if wants_stream(
                model if isinstance(model, str) else DEFAULT_TRANSCRIPTION_MODEL,
                kwargs.get("stream"),
                kwargs.get("response_format"),
                kwargs.get("timestamp_granularities"),
            ):
                target = twin
        made: Self = object.__new__(target)
        return made

    def __init__(
        self,
        model: str | None = None,
        *,
        language: str | None = None,
        languages: Sequence[str] | None = None,
        prompt: str | None = None,
        temperature: float | None = None,
        keywords: Sequence[str] | None = None,
        include: Sequence[str] | None = None,
        timestamp_granularities: Sequence[Granularity] | None = None,
        response_format: ResponseFormat | None = None,
        chunking_strategy: str | Mapping[str, Any] | None = None,
        known_speakers: Mapping[str, Audio | bytes | str] | None = None,
        stream: bool | None = None,
        upload_format: UploadFormat = "auto",
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
        self._core = _TranscriberCore(
            self._setup,
            language=language,
            languages=languages,
            prompt=prompt,
            temperature=temperature,
            keywords=keywords,
            include=include,
            timestamp_granularities=timestamp_granularities,
            response_format=response_format,
            chunking_strategy=chunking_strategy,
            known_speakers=known_speakers,
            stream=stream,
            upload_format=upload_format,
            extra_body=extra_body,
        )
        if self._requires_stream and not self._core.stream:
            raise ConfigurationError(
                f"model {self.model!r} with these options does not stream; use "
                f"{type(self).__name__.replace('Streaming', '')}, or pass stream=True for a "
                "server that streams"
            )
        self._built()

    @property
    def streams(self) -> bool:
        """Whether this transcriber streams text as it is recognised."""
        return self._core.stream

    def piece_limits(self, audio: Audio) -> PieceLimits:
        """What one request takes (the model's duration and upload limits), for ``audio``.

        :class:`chainvoice.LongTranscriber` cuts longer audio into pieces that fit.
        """
        return self._core.piece_limits(audio)

    def __repr__(self) -> str:
        return stage_repr(
            type(self).__name__,
            self._setup,
            language=self._core.options.get("language"),
            response_format=self._core.response_format,
        )


class OpenAITranscriber(_TranscriberBase):
    """Speech to text with OpenAI (or a compatible server), one request per call.

    Constructing one returns an :class:`OpenAIStreamingTranscriber` (a subclass that also has
    ``transcribe_stream``) when the transcriber streams: by default for models known to
    stream, never with ``stream=False``. The upload is 16 kHz mono WAV (see the module).

    Args:
        model: The model (default ``gpt-transcribe``); any name is sent as is.
        language: The spoken language as ISO-639-1 (e.g. ``"en"``); improves accuracy.
        languages: Possible languages (``gpt-transcribe``).
        prompt: Text that guides style or vocabulary, or continues a previous piece.
        temperature: Sampling temperature, 0 to 1.
        keywords: Words or phrases to listen for (``gpt-transcribe``).
        include: ``["logprobs"]`` for token log probabilities (gpt-4o transcribe models).
        timestamp_granularities: ``["word"]`` and/or ``["segment"]`` (``whisper-1``; the
            response format becomes ``verbose_json``).
        response_format: ``json``, ``text``, ``verbose_json`` or ``diarized_json``; chosen
            from the other options when not given (``diarized_json`` for diarizing models).
        chunking_strategy: ``"auto"`` or a ``{"type": "server_vad", ...}`` dict; sent as
            ``"auto"`` for a diarizing model and audio over 30 s when not given.
        known_speakers: Speaker names mapped to 2-10 s reference samples (an ``Audio``,
            audio file bytes or a data URL), for ``gpt-4o-transcribe-diarize``.
        stream: Stream text as it is recognised (``transcribe_stream``); by default on for
            models known to stream. ``False`` turns it off.
        upload_format: ``"auto"`` (16 kHz mono WAV, FLAC when that does not fit), ``"wav"``
            or ``"flac"`` (needs ffmpeg).
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
        ConfigurationError: An option out of range, or options that cannot go together.
        AuthenticationError: No API key anywhere.
    """

    _asynchronous = False

    def transcribe(self, audio: Audio, *, prompt: str | None = None) -> Transcript:
        """Transcribe ``audio`` of any length.

        Audio that fits the model's limits takes one request (streamed and collected when
        the model streams). Longer or larger audio is cut at pauses and its pieces sent
        concurrently (:class:`chainvoice.LongTranscriber`, with its defaults).

        Args:
            audio: The speech to transcribe.
            prompt: Text to send after this transcriber's own prompt, for this call only
                (e.g. what was said just before this audio).

        Raises:
            EmptyAudioError: ``audio`` has no frames.
            PartialTranscriptionError: Some pieces of a long recording failed; the
                transcript of the others is kept on it.
            APIError: The request failed (a subclass says how).
        """
        if self._core.needs_pieces(audio):
            return LongTranscriber(self).transcribe(audio)
        try:
            return self._transcribe_one(audio, prompt)
        except _TooBig:
            return LongTranscriber(self).transcribe(audio)

    def _transcribe_one(self, audio: Audio, prompt: str | None) -> Transcript:
        if self._core.stream:
            items = _sync_stream(self._setup, self._core, audio, collecting=True, prompt=prompt)
            return _last_transcript([item for item in items if isinstance(item, Transcript)])
        kwargs = self._core.request(audio, stream=False, prompt=prompt)
        try:
            response = self._setup.client.audio.transcriptions.create(**kwargs)
        except Exception as exc:
            raise self._setup.error(exc) from exc
        return self._core.parse(response, audio)


class OpenAIStreamingTranscriber(OpenAITranscriber):
    """An :class:`OpenAITranscriber` that also streams text as it is recognised."""

    _requires_stream = True

    def transcribe_stream(self, audio: Audio) -> Iterator[str | Transcript]:
        """Yield text deltas as they are recognised, then the final ``Transcript``.

        A cut stream is sent again (up to the client's ``max_retries``): transcription
        repeats itself, so after text was delivered the new stream's text must begin with
        that text, and only what follows it is yielded; if it differs,
        :class:`~chainvoice.StreamInterruptedError` is raised, as when the retries are
        spent. Audio over the model's limits is sent in pieces (see :meth:`transcribe`),
        and its text comes piece by piece, in order.
        """
        if self._core.needs_pieces(audio):
            return _no_usage(LongTranscriber(self).transcribe_stream(audio))
        return _sync_stream(self._setup, self._core, audio)


def _no_usage(items: Iterable[str | Usage | Transcript]) -> Iterator[str | Transcript]:
    return (item for item in items if not isinstance(item, Usage))


async def _ano_usage(
    items: AsyncIterable[str | Usage | Transcript],
) -> AsyncIterator[str | Transcript]:
    async for item in items:
        if not isinstance(item, Usage):
            yield item


def _sync_stream(
    setup: StageSetup,
    core: _TranscriberCore,
    audio: Audio,
    *,
    collecting: bool = False,
    prompt: str | None = None,
) -> Iterator[str | Transcript]:
    kwargs = core.request(audio, stream=True, prompt=prompt)

    def consume(stream: Iterable[object]) -> Iterator[str | Transcript]:
        reader = core.reader(audio)
        for event in stream:
            yield from reader.feed(event)
        reader.finish()

    return stream_with_retries(
        setup,
        lambda: setup.client.audio.transcriptions.create(**kwargs),
        consume,
        shows=lambda item: not collecting and isinstance(item, str),
        replay=True,
    )


class AsyncOpenAITranscriber(_TranscriberBase):
    """The async twin of :class:`OpenAITranscriber` (over an ``AsyncOpenAI`` client).

    Takes the same arguments; ``client`` is an ``AsyncOpenAI``. Constructing one returns an
    :class:`AsyncOpenAIStreamingTranscriber` when it streams.
    """

    _asynchronous = True

    async def transcribe(self, audio: Audio, *, prompt: str | None = None) -> Transcript:
        """Transcribe ``audio`` of any length; see :meth:`OpenAITranscriber.transcribe`."""
        if self._core.needs_pieces(audio):
            return await AsyncLongTranscriber(self).transcribe(audio)
        try:
            return await self._transcribe_one(audio, prompt)
        except _TooBig:
            return await AsyncLongTranscriber(self).transcribe(audio)

    async def _transcribe_one(self, audio: Audio, prompt: str | None) -> Transcript:
        if self._core.stream:
            items = _async_stream(self._setup, self._core, audio, collecting=True, prompt=prompt)
            return _last_transcript([item async for item in items if isinstance(item, Transcript)])
        kwargs = self._core.request(audio, stream=False, prompt=prompt)
        try:
            response = await self._setup.client.audio.transcriptions.create(**kwargs)
        except Exception as exc:
            raise self._setup.error(exc) from exc
        return self._core.parse(response, audio)


class AsyncOpenAIStreamingTranscriber(AsyncOpenAITranscriber):
    """An :class:`AsyncOpenAITranscriber` that also streams text as it is recognised."""

    _requires_stream = True

    def transcribe_stream(self, audio: Audio) -> AsyncIterator[str | Transcript]:
        """Yield text deltas as they are recognised, then the final ``Transcript``.

        Audio over the model's limits is sent in pieces; its text comes piece by piece.
        """
        if self._core.needs_pieces(audio):
            return _ano_usage(AsyncLongTranscriber(self).transcribe_stream(audio))
        return _async_stream(self._setup, self._core, audio)


def _async_stream(
    setup: StageSetup,
    core: _TranscriberCore,
    audio: Audio,
    *,
    collecting: bool = False,
    prompt: str | None = None,
) -> AsyncIterator[str | Transcript]:
    kwargs = core.request(audio, stream=True, prompt=prompt)
    direct = setup.direct

    async def open_stream() -> Any:
        if direct is not None:
            form = json_body(kwargs)
            return direct.post("audio/transcriptions", form=form, files={"file": form.pop("file")})
        return await setup.client.audio.transcriptions.create(**kwargs)

    async def consume(stream: Any) -> AsyncIterator[str | Transcript]:
        reader = core.reader(audio)
        events = _sse_events(stream) if isinstance(stream, DirectResponse) else stream
        async for event in events:
            for item in reader.feed(event):
                yield item
        reader.finish()

    return astream_with_retries(
        setup,
        open_stream,
        consume,
        shows=lambda item: not collecting and isinstance(item, str),
        replay=True,
    )


async def _sse_events(response: DirectResponse) -> AsyncIterator[Any]:
    """The events of a transcription stream sent direct, as the SDK's stream gives them.

    Raises:
        openai.APIError: An event carries an ``error``.
        openai.APITimeoutError: The body timed out.
        openai.APIConnectionError: The body was cut (as the SDK's stream raises them).
    """
    from openai import APIConnectionError, APITimeoutError

    decoder = SseDecoder("the transcription stream")
    request = response.http_response.request
    chunks = body_chunks(response)
    try:
        while True:
            try:
                data = await anext(chunks)
            except StopAsyncIteration:
                break
            except httpx.TimeoutException as exc:
                raise APITimeoutError(request=request) from exc
            except httpx.RequestError as exc:
                raise APIConnectionError(request=request) from exc
            for event in decoder.feed(data):
                _check_event(event, response)
                yield event
            if decoder.ended:
                return
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
    for event in decoder.finish():
        _check_event(event, response)
        yield event


def _check_event(event: Any, response: DirectResponse) -> None:
    error = event.get("error") if isinstance(event, Mapping) else None
    if error:
        from openai import APIError

        message = field(error, "message")
        if not message or not isinstance(message, str):
            message = "An error occurred during streaming"
        raise APIError(message, response.http_response.request, body=error)


OpenAITranscriber._streaming_twin = OpenAIStreamingTranscriber
AsyncOpenAITranscriber._streaming_twin = AsyncOpenAIStreamingTranscriber
