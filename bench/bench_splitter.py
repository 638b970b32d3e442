"""Micro-benchmark of chainvoice.SentenceSplitter against a naive regex splitter.

Feeds a long, realistic reply (Markdown, abbreviations, numbers, quotes, a CJK part) as
small token-like deltas, and reports throughput in MB/s (UTF-8 bytes of reply text) and
pieces/s, the cost per push, and how much text each splitter needs before it releases its
first piece. A second table feeds replies of growing length one character at a time, to
show that a push costs time in proportion to the new text, not to the whole reply.

The baseline is the usual ``re.split(r"(?<=[.!?])\\s+", text)`` applied incrementally: it
is shown for speed only (it drops whitespace and cuts at "Dr." and "U.S.").

Run: ``python bench/bench_splitter.py`` (about ten seconds).
"""

# The reply has a Chinese paragraph with full-width punctuation on purpose.
# ruff: noqa: RUF001

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable

from chainvoice import SentenceSplitter

PARAGRAPHS = [
    "Sure! I can help you plan the trip. Here's what I'd suggest, based on what you told "
    "me about the budget (roughly $2,500) and the dates you mentioned.",
    "## Day 1: Arrival\n\nYou land at 9:45 a.m. at the airport. Dr. Ramos, the guide, meets "
    "you at gate 3.14 (yes, really, the gate numbers there use decimals). From there it's "
    "about 40 minutes to the hotel, i.e. you should be checked in before noon.",
    "## Day 2: The old town\n\n1. Start at the cathedral, which opens at 8 a.m. on weekdays.\n"
    "2. Walk down to the market, e.g. for lunch; the stalls close around 3 p.m.\n"
    "3. In the evening, see the show at the U.S. consulate's cultural center.\n",
    "**A few tips:**\n\n- Carry cash; many places don't take cards.\n- The tap water is "
    "safe, but bottled water costs only 0.50 euros.\n- Tipping is around 10%, etc. "
    'Locals say "slowly, slowly." Take their advice!',
    "If you'd like, I can also look at flights. Prices on example.com were about 420 dollars "
    "last week... but they change daily. Mr. and Mrs. Okafor, who wrote the guide by "
    "J. R. Ellis, recommend booking at least six weeks ahead. Would that work for you?",
    "我们明天早上九点出发。路上大约需要两个小时，请提前准备好护照和车票！有问题吗？",
]
REPLY = "\n\n".join(PARAGRAPHS * 12)
TOKEN = re.compile(r"\s*[^\s]{1,4}|\s+")  # LLM-like deltas: a few characters with a leading space


def deltas_of(text: str) -> list[str]:
    return TOKEN.findall(text)


class NaiveSplitter:
    """The common baseline: split the buffer at [.!?] + whitespace after every push."""

    _END = re.compile(r"(?<=[.!?])\s+")

    def __init__(self) -> None:
        self._buf = ""

    def push(self, delta: str) -> list[str]:
        self._buf += delta
        parts = self._END.split(self._buf)
        self._buf = parts[-1]
        return parts[:-1]

    def flush(self) -> list[str]:
        rest, self._buf = self._buf, ""
        return [rest] if rest else []


def run(make: Callable[[], SentenceSplitter | NaiveSplitter], deltas: list[str]) -> list[str]:
    splitter = make()
    pieces: list[str] = []
    for delta in deltas:
        pieces += splitter.push(delta)
    return pieces + splitter.flush()


def best_time(fn: Callable[[], object], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def first_release(make: Callable[[], SentenceSplitter | NaiveSplitter], deltas: list[str]) -> int:
    """How many characters had been pushed when the first piece came out."""
    splitter = make()
    pushed = 0
    for delta in deltas:
        pushed += len(delta)
        if splitter.push(delta):
            return pushed
    return pushed


def main() -> None:
    deltas = deltas_of(REPLY)
    assert "".join(deltas) == REPLY
    size_mb = len(REPLY.encode()) / 1e6
    print(f"Python {sys.version.split()[0]}")
    print(
        f"reply: {len(REPLY):,} characters ({size_mb * 1e3:.1f} kB UTF-8), "
        f"{len(deltas):,} deltas of {len(REPLY) / len(deltas):.1f} characters on average\n"
    )
    makers: dict[str, Callable[[], SentenceSplitter | NaiveSplitter]] = {
        "SentenceSplitter() defaults": SentenceSplitter,
        "SentenceSplitter(0, 0, no limits)": lambda: SentenceSplitter(
            first_min_chars=0, min_chars=0, max_chars=None, first_max_chars=None
        ),
        "naive re.split baseline": NaiveSplitter,
    }
    print(
        f"{'splitter':36} {'MB/s':>7} {'pieces/s':>11} {'us/push':>8} {'pieces':>7} {'1st at':>7}"
    )
    for name, make in makers.items():
        pieces = run(make, deltas)
        seconds = best_time(lambda make=make: run(make, deltas))  # type: ignore[misc]
        print(
            f"{name:36} {size_mb / seconds:7.2f} {len(pieces) / seconds:11,.0f} "
            f"{seconds / len(deltas) * 1e6:8.2f} {len(pieces):7,} "
            f"{first_release(make, deltas):7,}"
        )
        if isinstance(make(), SentenceSplitter):
            assert "".join(pieces) == REPLY

    print("\nThe whole text in one push (cost per character should stay flat):")
    print(f"{'case':52} {'chars':>8} {'us/char':>8}")
    for n in (100_000, 800_000):
        whole = (REPLY * (n // len(REPLY) + 1))[:n]
        seconds = best_time(lambda whole=whole: run(SentenceSplitter, [whole]), repeat=3)  # type: ignore[misc]
        print(f"{'realistic reply, defaults':52} {n:8,} {seconds / n * 1e6:8.2f}")

    print("\nOne character per push (cost per character should stay flat as replies grow):")
    print(f"{'case':52} {'chars':>8} {'us/char':>8}")
    prose = (REPLY * 10)[:100_000]
    cases: list[tuple[str, str, dict[str, int | None]]] = [
        ("realistic reply, defaults", prose, {}),
        (
            "no terminators, no limit (the buffer only grows)",
            "word " * 20_000,
            {"max_chars": None, "first_max_chars": None},
        ),
        ("one 100k-character word (over the limit)", "x" * 100_000, {}),
    ]
    for name, text, options in cases:
        for n in (10_000, 100_000):
            chars = list(text[:n])
            seconds = best_time(
                lambda chars=chars, options=options: run(  # type: ignore[misc]
                    lambda: SentenceSplitter(**options),
                    chars,
                ),
                repeat=3,
            )
            print(f"{name:52} {n:8,} {seconds / n * 1e6:8.2f}")


if __name__ == "__main__":
    main()
