"""Worker for pipecat (runs in ``bench/.venv-pipecat``).

A pipecat ``Pipeline`` with no transport::

    OpenAISTTService -> TranscriptToContext -> OpenAILLMService -> OpenAITTSService -> Sink

run by a ``PipelineWorker`` under a ``WorkerRunner`` that stays up for the whole run. The
three OpenAI services are pipecat's own, each pointed at the fake server with ``base_url``
and otherwise at their defaults (the segmented STT uploads the utterance as WAV with its
default 0.5 s of trailing silence; the TTS aggregates text by sentence, its default, and
asks for 24 kHz PCM). Models are the same as in the other scenarios.

Turn-taking is not part of what is compared (chainvoice has none: a turn starts when the
caller hands over the audio), so pipecat's user context aggregator, whose default stop
strategy runs a local smart-turn model, is replaced by ``TranscriptToContext``: on the
transcript it puts the user message in the ``LLMContext`` and pushes an
``LLMContextFrame`` at once, which is what the aggregator does when it decides that the
turn has ended, without any wait. This can only make pipecat faster.

A turn: ``VADUserStartedSpeakingFrame``, the question as 20 ms ``InputAudioRawFrame``s,
and once the STT service has buffered all of it, the clock starts and
``VADUserStoppedSpeakingFrame`` is queued (the moment a VAD would say the user stopped).
First and last audio are the first and last ``TTSAudioRawFrame`` reaching the sink; the
turn ends with the ``LLMFullResponseEndFrame``, which the TTS service queues behind the
turn's audio. Logging is at WARNING (loguru's default, DEBUG, would print every frame's
text, as no application in production does). (See ``_worker.py`` for the protocol.)
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from _worker import TurnClock, arguments, read_wav, serve

t_import = time.perf_counter()
from loguru import logger  # noqa: E402
from pipecat.frames.frames import (  # noqa: E402
    Frame,
    InputAudioRawFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline  # noqa: E402
from pipecat.pipeline.worker import PipelineParams, PipelineWorker  # noqa: E402
from pipecat.processors.aggregators.llm_context import LLMContext  # noqa: E402
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor  # noqa: E402
from pipecat.services.openai.llm import OpenAILLMService  # noqa: E402
from pipecat.services.openai.stt import OpenAISTTService  # noqa: E402
from pipecat.services.openai.tts import OpenAITTSService  # noqa: E402
from pipecat.workers.runner import WorkerRunner  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - t_import

TRANSCRIPTION_MODEL = "gpt-transcribe"
REPLY_MODEL = "gpt-6-luna"
SPEECH_MODEL = "gpt-4o-mini-tts"
FRAME_SECONDS = 0.02


class TranscriptToContext(FrameProcessor):
    """Hands each final transcript to the LLM at once (see the module docstring)."""

    def __init__(self, context: LLMContext) -> None:
        super().__init__()
        self.context = context

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TranscriptionFrame):
            self.context.add_message({"role": "user", "content": frame.text})
            await self.push_frame(LLMContextFrame(context=self.context))
        else:
            await self.push_frame(frame, direction)


class Sink(FrameProcessor):
    """The end of the pipeline: times the audio frames and notices the end of the reply."""

    def __init__(self) -> None:
        super().__init__()
        self.clock: TurnClock | None = None
        self.done = asyncio.Event()
        self.errors: list[str] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if self.clock is not None:
            if isinstance(frame, TTSAudioRawFrame):
                self.clock.audio(len(frame.audio) / (2 * frame.num_channels * frame.sample_rate))
            elif isinstance(frame, LLMFullResponseEndFrame):
                self.done.set()
        await self.push_frame(frame, direction)


def main() -> None:
    args = arguments(__doc__.split("\n\n")[0])
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    pcm, rate, channels = read_wav(args.audio)
    step = int(rate * FRAME_SECONDS) * 2 * channels
    frames = [pcm[i : i + step] for i in range(0, len(pcm), step)]
    key = "sk-bench"
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    context = LLMContext()
    sink = Sink()
    started = asyncio.Event()

    async def start() -> tuple[Any, Any, Any, asyncio.Task[None]]:
        # pipecat's services and runner need a running event loop to be made.
        stt = OpenAISTTService(
            api_key=key,
            base_url=args.base_url,
            settings=OpenAISTTService.Settings(model=TRANSCRIPTION_MODEL),
        )
        llm = OpenAILLMService(
            api_key=key,
            base_url=args.base_url,
            settings=OpenAILLMService.Settings(model=REPLY_MODEL),
        )
        tts = OpenAITTSService(
            api_key=key,
            base_url=args.base_url,
            settings=OpenAITTSService.Settings(model=SPEECH_MODEL),
        )
        pipeline = Pipeline([stt, TranscriptToContext(context), llm, tts, sink])
        worker = PipelineWorker(
            pipeline,
            params=PipelineParams(audio_in_sample_rate=rate, audio_out_sample_rate=24000),
            cancel_on_idle_timeout=False,
            idle_timeout_secs=None,
        )

        @worker.event_handler("on_pipeline_started")
        async def _started(_worker: Any, _frame: Any) -> None:
            started.set()

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        run_task = asyncio.ensure_future(runner.run())
        await asyncio.wait_for(started.wait(), 30)
        return stt, worker, runner, run_task

    stt, worker, runner, run_task = loop.run_until_complete(start())

    async def aturn() -> dict[str, Any]:
        context.set_messages([])
        sink.done.clear()
        await worker.queue_frame(VADUserStartedSpeakingFrame())
        for chunk in frames:
            await worker.queue_frame(
                InputAudioRawFrame(audio=chunk, sample_rate=rate, num_channels=channels)
            )
        deadline = time.monotonic() + 10
        while len(stt._audio_buffer) < len(pcm):  # the whole utterance is in the STT's buffer
            if time.monotonic() > deadline:
                raise TimeoutError("pipecat's STT did not buffer the question in 10 s")
            await asyncio.sleep(0.002)
        clock = TurnClock()
        sink.clock = clock
        clock.start()
        await worker.queue_frame(VADUserStoppedSpeakingFrame())
        await asyncio.wait_for(sink.done.wait(), 60)
        sink.clock = None
        return clock.done()

    def turn() -> dict[str, Any]:
        return loop.run_until_complete(aturn())

    try:
        serve(
            turn,
            import_seconds=IMPORT_SECONDS,
            packages=("pipecat-ai", "openai", "httpx2", "numpy"),
            reply_fd=args.reply_fd,
        )
    finally:
        loop.run_until_complete(runner.cancel())
        loop.run_until_complete(asyncio.gather(run_task, return_exceptions=True))


if __name__ == "__main__":
    main()
