"""Worker for the chainvoice scenarios (see ``_worker.py`` for the protocol).

Modes:

- ``stream``: ``Chain.openai(...)`` and ``chain.stream(audio)``; the application gets each
  ``AudioChunk`` event as it arrives.
- ``async``: the same with ``AsyncChain.openai(...)`` and ``async for`` over
  ``chain.stream(audio)``.
- ``run``: ``chain.run(audio)``, which returns the whole turn: the application gets the
  first audio when ``run()`` returns.
- ``stream-async-stages``: ``Chain(*chainvoice.openai.stages(asynchronous=True, ...))`` and
  ``chain.stream(audio)``: the sync chain running the async OpenAI stages on its private
  event loop (no worker threads for the stages).

The chain is built once (one OpenAI client, kept-alive connections, as an application
would) and its conversation is reset before every turn, so every turn is the same first
turn of a conversation. The question is decoded into an ``Audio`` before the clock starts.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from _worker import TurnClock, arguments, serve

t_import = time.perf_counter()
import chainvoice as cv  # noqa: E402
import chainvoice.openai  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - t_import


def main() -> None:
    args = arguments(__doc__.split("\n\n")[0])
    audio = cv.Audio.from_file(args.audio)
    options: dict[str, Any] = {"base_url": args.base_url, "api_key": "sk-bench"}

    if args.mode in ("stream", "run", "stream-async-stages"):
        if args.mode == "stream-async-stages":
            chain = cv.Chain(*chainvoice.openai.stages(asynchronous=True, **options))
        else:
            chain = cv.Chain.openai(**options)

        def turn() -> dict[str, Any]:
            chain.reset()
            clock = TurnClock()
            if args.mode == "run":
                clock.start()
                result = chain.run(audio)
                assert result.reply.audio is not None
                clock.audio(result.reply.audio.duration)
            else:
                clock.start()
                result = None
                for event in chain.stream(audio):
                    if isinstance(event, cv.AudioChunk):
                        clock.audio(event.audio.duration)
                    elif isinstance(event, cv.TurnDone):
                        result = event.turn
                assert result is not None
            return clock.done(
                reply=result.reply.text,
                transcript=result.user_text,
                internal_first_audio=result.timings.first_audio,
            )

    elif args.mode == "async":
        loop = asyncio.new_event_loop()
        achain = cv.AsyncChain.openai(**options)

        async def aturn() -> dict[str, Any]:
            achain.reset()
            clock = TurnClock()
            clock.start()
            result = None
            async for event in achain.stream(audio):
                if isinstance(event, cv.AudioChunk):
                    clock.audio(event.audio.duration)
                elif isinstance(event, cv.TurnDone):
                    result = event.turn
            assert result is not None
            return clock.done(
                reply=result.reply.text,
                transcript=result.user_text,
                internal_first_audio=result.timings.first_audio,
            )

        def turn() -> dict[str, Any]:
            return loop.run_until_complete(aturn())

    else:
        raise SystemExit(f"unknown mode {args.mode!r}; use stream, async or run")

    serve(
        turn,
        import_seconds=IMPORT_SECONDS,
        packages=("chainvoice", "openai", "httpx2", "numpy"),
        reply_fd=args.reply_fd,
    )


if __name__ == "__main__":
    main()
