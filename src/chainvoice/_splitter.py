"""Speakable pieces from streamed reply text (interim version; see issue #2)."""

from __future__ import annotations

import re

__all__ = ["SentenceSplitter"]

_END = re.compile(r"[.!?。！？]+\s+")


class SentenceSplitter:
    """Cuts streamed text into speakable pieces; joining the pieces gives back the text."""

    def __init__(self, *, first_min_chars: int = 20, min_chars: int = 40) -> None:
        self.first_min_chars = first_min_chars
        self.min_chars = min_chars
        self._buf = ""
        self._cuts = 0

    def push(self, delta: str) -> list[str]:
        """Add a text delta; return the pieces that are now complete."""
        self._buf += delta
        out: list[str] = []
        while True:
            need = self.first_min_chars if self._cuts == 0 else self.min_chars
            m = next((m for m in _END.finditer(self._buf) if m.end() >= need), None)
            if m is None:
                return out
            out.append(self._buf[: m.end()])
            self._buf = self._buf[m.end() :]
            self._cuts += 1

    def flush(self) -> list[str]:
        """Return what is left as a final piece (nothing if nothing is left)."""
        rest, self._buf = self._buf, ""
        return [rest] if rest else []
