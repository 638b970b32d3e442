"""Worker for the naive chain: the plain ``openai`` SDK, one stage after the other.

Transcribe the question, then ask for the reply without streaming, then ask for the speech
of the whole reply without streaming (``response_format="pcm"``, the body read whole): the
code most people write first. The application gets the audio when the speech body has
arrived, so first and last audio are the same moment. The WAV bytes of the question are
read before the clock starts. (See ``_worker.py`` for the protocol.)
"""

from __future__ import annotations

import time
from typing import Any

from _worker import TurnClock, arguments, read_wav, serve, wav_bytes

t_import = time.perf_counter()
import openai  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - t_import

TRANSCRIPTION_MODEL = "gpt-transcribe"
REPLY_MODEL = "gpt-6-luna"
SPEECH_MODEL = "gpt-4o-mini-tts"
PCM_BYTES_PER_SECOND = 24000 * 2  # OpenAI's PCM: 24 kHz mono 16-bit


def main() -> None:
    args = arguments(__doc__.split("\n\n")[0])
    pcm, rate, channels = read_wav(args.audio)
    question = wav_bytes(pcm, rate, channels)
    client = openai.OpenAI(base_url=args.base_url, api_key="sk-bench")

    def turn() -> dict[str, Any]:
        clock = TurnClock()
        clock.start()
        transcript = client.audio.transcriptions.create(
            model=TRANSCRIPTION_MODEL, file=("question.wav", question, "audio/wav")
        )
        reply = client.responses.create(
            model=REPLY_MODEL, input=[{"role": "user", "content": transcript.text}]
        )
        text = reply.output_text
        speech = client.audio.speech.create(
            model=SPEECH_MODEL, voice="coral", input=text, response_format="pcm"
        )
        audio = speech.content
        clock.audio(len(audio) / PCM_BYTES_PER_SECOND)
        return clock.done(reply=text, transcript=transcript.text)

    serve(
        turn,
        import_seconds=IMPORT_SECONDS,
        packages=("openai", "httpx2"),
        reply_fd=args.reply_fd,
    )


if __name__ == "__main__":
    main()
