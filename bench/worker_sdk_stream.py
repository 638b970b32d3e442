"""Worker for a hand-rolled streaming chain on the bare ``openai`` async SDK.

The same requests as chainvoice's streaming turn, with nothing else: a streamed
transcription, a streamed reply (Responses API), and a streamed speech request (24 kHz PCM)
for each sentence the moment it is complete, read concurrently, their raw bytes handed to
the application in sentence order as they arrive. No value types, no usage, no retries,
no error handling, no decoding of the PCM: it shows what the SDK itself costs for the work
of a turn, the floor under any chain built on it. (See ``_worker.py`` for the protocol.)
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from _worker import TurnClock, arguments, read_wav, serve, wav_bytes

t_import = time.perf_counter()
import openai  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - t_import

TRANSCRIPTION_MODEL = "gpt-transcribe"
REPLY_MODEL = "gpt-6-luna"
SPEECH_MODEL = "gpt-4o-mini-tts"
PCM_BYTES_PER_SECOND = 24000 * 2
SENTENCE_END = re.compile(r"[.!?](?=\s)")


def main() -> None:
    args = arguments(__doc__.split("\n\n")[0])
    pcm, rate, channels = read_wav(args.audio)
    question = wav_bytes(pcm, rate, channels)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    client = openai.AsyncOpenAI(base_url=args.base_url, api_key="sk-bench")

    async def speak(text: str, out: asyncio.Queue[bytes | None]) -> None:
        async with client.audio.speech.with_streaming_response.create(
            model=SPEECH_MODEL, voice="coral", input=text, response_format="pcm"
        ) as response:
            async for data in response.iter_bytes():
                out.put_nowait(data)
        out.put_nowait(None)

    async def aturn() -> dict[str, Any]:
        clock = TurnClock()
        clock.start()
        transcript = ""
        stream = await client.audio.transcriptions.create(
            model=TRANSCRIPTION_MODEL, file=("question.wav", question, "audio/wav"), stream=True
        )
        async for event in stream:
            if event.type == "transcript.text.done":
                transcript = event.text
        queues: list[asyncio.Queue[bytes | None]] = []
        tasks: list[asyncio.Task[None]] = []
        changed = asyncio.Event()

        def start(text: str) -> None:
            queue: asyncio.Queue[bytes | None] = asyncio.Queue()
            queues.append(queue)
            tasks.append(asyncio.ensure_future(speak(text, queue)))
            changed.set()

        async def reply() -> str:
            text, cut = "", 0
            events = await client.responses.create(
                model=REPLY_MODEL, input=[{"role": "user", "content": transcript}], stream=True
            )
            async for event in events:
                if event.type == "response.output_text.delta":
                    text += event.delta
                    for match in SENTENCE_END.finditer(text, cut):
                        start(text[cut : match.end()].strip())
                        cut = match.end()
            if text[cut:].strip():
                start(text[cut:].strip())
            return text

        replying = asyncio.ensure_future(reply())
        replying.add_done_callback(lambda _: changed.set())
        played = 0
        while True:
            if played < len(queues):
                while (data := await queues[played].get()) is not None:
                    clock.audio(len(data) / PCM_BYTES_PER_SECOND)
                played += 1
            elif replying.done():
                break
            else:
                changed.clear()
                await changed.wait()  # the next sentence has not started yet
        await asyncio.gather(*tasks)
        return clock.done(reply=replying.result(), transcript=transcript)

    def turn() -> dict[str, Any]:
        return loop.run_until_complete(aturn())

    serve(
        turn,
        import_seconds=IMPORT_SECONDS,
        packages=("openai", "httpx2"),
        reply_fd=args.reply_fd,
    )


if __name__ == "__main__":
    main()
