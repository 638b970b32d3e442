"""The httpx package the installed ``openai`` is built on (``httpx2``, or ``httpx`` before).

``from chainvoice.openai._httpx import httpx`` gives that module; type checkers see
``httpx2``.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

__all__ = ["httpx", "httpx_module"]


def httpx_module() -> ModuleType:
    """The httpx package the installed ``openai`` is built on (``httpx2`` or ``httpx``)."""
    import openai

    for klass in openai.DefaultHttpxClient.__mro__:
        name = klass.__module__.partition(".")[0]
        if name in ("httpx", "httpx2"):
            return importlib.import_module(name)
    return importlib.import_module("httpx2")  # pragma: no cover - every openai has one


if TYPE_CHECKING:
    import httpx2 as httpx
else:
    httpx = httpx_module()
