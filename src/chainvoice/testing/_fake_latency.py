"""LatencyProfile: how long :class:`~chainvoice.testing.FakeOpenAI` takes to answer.

A plain value type with no heavy imports, so that benchmarks can name a profile without
importing the fake.
"""

from __future__ import annotations

import math

import attrs

from chainvoice import ConfigurationError

__all__ = ["LatencyProfile"]


def _non_negative(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ConfigurationError(
            f"LatencyProfile.{attribute.name} must be a finite number of seconds >= 0, "
            f"not {value!r}"
        )


@attrs.frozen
class LatencyProfile:
    """How long the fake takes to answer, per endpoint. All values are in seconds.

    With the default (all zero) the fake answers at once; tests that check streaming
    behaviour, time to first byte or timeouts use a profile, and the benchmarks use
    :meth:`openai_like`.

    Attributes:
        transcription_base: Time to the first byte of a transcription (for a stream, to
            the first text delta).
        transcription_per_audio_second: Extra time per second of uploaded audio; a stream
            spreads it over its text deltas.
        text_first_token: Time to the first token of a reply (responses, chat).
        text_per_token: Time between reply tokens; a non-streamed reply waits for all.
        speech_first_byte: Time to the first audio byte of speech.
        speech_realtime_factor: Wall seconds per second of speech produced after the first
            byte: 0 sends everything at once, 1.0 paces audio at real time, 0.25 at four
            times real time.
    """

    transcription_base: float = attrs.field(default=0.0, validator=_non_negative)
    transcription_per_audio_second: float = attrs.field(default=0.0, validator=_non_negative)
    text_first_token: float = attrs.field(default=0.0, validator=_non_negative)
    text_per_token: float = attrs.field(default=0.0, validator=_non_negative)
    speech_first_byte: float = attrs.field(default=0.0, validator=_non_negative)
    speech_realtime_factor: float = attrs.field(default=0.0, validator=_non_negative)

    @classmethod
    def openai_like(cls) -> LatencyProfile:
        """Delays of the order OpenAI's API shows from a nearby region (illustrative).

        About 0.3 s plus 0.05 s per audio second to transcribe, 0.4 s to a first reply
        token then 15 ms per token, 0.35 s to the first speech byte then four times real
        time. Real numbers vary by model, load and region; benchmarks name the profile
        they use.
        """
        return cls(
            transcription_base=0.3,
            transcription_per_audio_second=0.05,
            text_first_token=0.4,
            text_per_token=0.015,
            speech_first_byte=0.35,
            speech_realtime_factor=0.25,
        )

    def scaled(self, factor: float) -> LatencyProfile:
        """This profile with every delay multiplied by ``factor`` (e.g. 0.01 for tests)."""
        return LatencyProfile(*(value * factor for value in attrs.astuple(self)))
