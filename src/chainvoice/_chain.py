"""Chain and AsyncChain (placeholder; being written)."""

from __future__ import annotations

__all__ = ["AsyncChain", "Chain"]


class Chain:
    """Placeholder."""


class AsyncChain:
    """Placeholder."""
