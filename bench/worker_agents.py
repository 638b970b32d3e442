"""Worker for the OpenAI Agents SDK voice pipeline (runs in ``bench/.venv-agents``).

``VoicePipeline`` with its OpenAI speech-to-text and text-to-speech models (from
``OpenAIVoiceModelProvider``) and a ``SingleAgentVoiceWorkflow`` around an ``Agent`` whose
model is the Responses API; all three share one ``AsyncOpenAI`` client pointed at the fake
server, tracing is disabled, and everything else is the SDK's default (its sentence
splitter, its TTS settings and audio buffering). The application gets each
``VoiceStreamEventAudio`` as ``result.stream()`` yields it.

A fresh workflow (and so an empty history) is made for every turn, before the clock starts,
as is the ``AudioInput`` (16-bit samples of the question). (See ``_worker.py`` for the
protocol.)
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from _worker import TurnClock, arguments, read_wav, serve

t_import = time.perf_counter()
import numpy as np  # noqa: E402
from agents import Agent, OpenAIResponsesModel, set_tracing_disabled  # noqa: E402
from agents.voice import (  # noqa: E402
    AudioInput,
    OpenAIVoiceModelProvider,
    SingleAgentVoiceWorkflow,
    VoicePipeline,
    VoicePipelineConfig,
)
from openai import AsyncOpenAI  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - t_import

TRANSCRIPTION_MODEL = "gpt-transcribe"
REPLY_MODEL = "gpt-6-luna"
SPEECH_MODEL = "gpt-4o-mini-tts"
OUTPUT_RATE = 24000  # the SDK's TTS output: 24 kHz mono


def main() -> None:
    args = arguments(__doc__.split("\n\n")[0])
    pcm, rate, channels = read_wav(args.audio)
    samples = np.frombuffer(pcm, dtype=np.int16)
    set_tracing_disabled(True)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    client = AsyncOpenAI(base_url=args.base_url, api_key="sk-bench")
    agent = Agent(
        name="Assistant", model=OpenAIResponsesModel(model=REPLY_MODEL, openai_client=client)
    )
    config = VoicePipelineConfig(
        model_provider=OpenAIVoiceModelProvider(openai_client=client), tracing_disabled=True
    )

    async def aturn() -> dict[str, Any]:
        pipeline = VoicePipeline(
            workflow=SingleAgentVoiceWorkflow(agent),
            stt_model=TRANSCRIPTION_MODEL,
            tts_model=SPEECH_MODEL,
            config=config,
        )
        audio_input = AudioInput(buffer=samples, frame_rate=rate, channels=channels)
        clock = TurnClock()
        clock.start()
        result = await pipeline.run(audio_input)
        async for event in result.stream():
            if event.type == "voice_stream_event_audio" and event.data is not None:
                clock.audio(len(event.data) / OUTPUT_RATE)
        return clock.done()

    def turn() -> dict[str, Any]:
        return loop.run_until_complete(aturn())

    serve(
        turn,
        import_seconds=IMPORT_SECONDS,
        packages=("openai-agents", "openai", "httpx2", "numpy"),
        reply_fd=args.reply_fd,
    )


if __name__ == "__main__":
    main()
