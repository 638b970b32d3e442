"""What a chain tells the stages it runs about its listener (private).

A chain plays a reply's pieces one after another while the reply text is still arriving
and later pieces are still being synthesized, so a stage cannot see, on its own, how much
speech the listener already has in hand. :data:`AHEAD` carries that figure into the task
that runs the responder and into the task that synthesizes each piece; a stage reading the
network may then read less often (gather) while the figure is large, at no cost to what
the listener hears.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextvars import ContextVar

__all__ = [
    "AHEAD",
    "CHARACTERS_PER_SECOND",
    "GATHER_LEAD",
    "ahead",
    "gather_hold",
    "gather_lead",
    "hold_needs",
    "next_tick",
]

#: Inside a chain's responder task, or its synthesis of one piece: a function giving the
#: seconds of speech its listener has in hand beyond now, as if played at real time from
#: the turn's first audio. Unset outside a chain, and not seen by sync stages (they run in
#: worker threads, outside the chain's tasks); chainvoice's gathering uses it only in its
#: async stages.
AHEAD: ContextVar[Callable[[], float] | None] = ContextVar("chainvoice_ahead", default=None)

#: Speaking rate assumed for text sent to speech whose audio has not arrived yet (a
#: typical English voice says 14 to 16 characters a second).
CHARACTERS_PER_SECOND = 15.0

#: Speech in hand, in seconds, before a read may wait (at least; see :func:`gather_lead`).
GATHER_LEAD = 0.3


def ahead() -> float:
    """The figure :data:`AHEAD` gives in this context, or 0 outside a chain."""
    figure = AHEAD.get()
    return 0.0 if figure is None else figure()


def gather_lead(gather: float) -> float:
    """Speech in hand, in seconds, from which a read may wait ``gather`` seconds."""
    return max(GATHER_LEAD, 1.5 * gather)


def next_tick(period: float, now: float) -> float:
    """The first multiple of ``period`` seconds after ``now`` on the monotonic clock.

    A read held for ``period`` resumes then (reads held alike resume together).
    """
    tick = math.floor(now / period + 1.0) * period
    return tick if tick > now else tick + period  # ``now`` on a tick, give or take a bit


def hold_needs(gather: float, now: float) -> float:
    """Speech in hand, in seconds, from which a read at ``now`` may be held ``gather``.

    The held read resumes at the next tick (:func:`next_tick`), at most ``gather`` away;
    the speech in hand must outlast that wait by the margin a full hold has under
    :func:`gather_lead`. Right after a tick that is the lead itself; just before one, the
    margin alone.
    """
    return gather_lead(gather) - gather + (next_tick(gather, now) - now)


def gather_hold(gather: float) -> Callable[[], float]:
    """A ``hold`` for a body read under a chain (see ``body_chunks``).

    It answers ``gather`` seconds while the listener has enough speech in hand to wait
    for the next tick (:func:`hold_needs`), else 0; always 0 outside a chain.
    """

    def hold() -> float:
        return gather if ahead() >= hold_needs(gather, time.monotonic()) else 0.0

    return hold
