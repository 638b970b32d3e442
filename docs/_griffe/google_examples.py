"""A griffe extension for the API reference: read ``Example:`` like ``Examples:``.

chainvoice's docstrings follow the Google style, which allows both ``Example:`` and
``Examples:``. griffe reads only the plural as an examples section, whose ``>>>`` lines
become highlighted code; the singular becomes a note in which the doctest lines run
together as quoted text. This extension renames the section before griffe parses it.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_SINGULAR = re.compile(r"^(?P<indent>[ \t]*)Example:[ \t]*$", re.MULTILINE)


class GoogleExamples(griffe.Extension):
    """Rename a docstring's ``Example:`` section to ``Examples:``."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite the docstring of each object as it is loaded."""
        if obj.docstring is not None:
            obj.docstring.value = _SINGULAR.sub(r"\g<indent>Examples:", obj.docstring.value)
