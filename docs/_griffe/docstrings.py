"""Griffe extensions for the API reference, so that chainvoice's docstrings render well.

chainvoice's docstrings follow the Google style, read by Sphinx (napoleon) as well as by
mkdocstrings. Two habits of that style need help in mkdocstrings:

- ``Example:`` (singular) is a Google section, but griffe reads only ``Examples:`` as
  one; the singular becomes a note in which ``>>>`` lines run together as quoted text.
  :class:`GoogleExamples` renames it before griffe parses the docstring, and turns the
  reStructuredText ``text::`` that introduces an indented literal block into ``text:``
  (the indented block is code in Markdown already).
- Sphinx roles such as ``:class:`~chainvoice.Audio``` or ``:meth:`close``` are not
  Markdown. :class:`SphinxRoles` turns each into a link to the object, found the way
  Sphinx finds it (the current class, then the module, then the package), or into plain
  code when the object is not in the reference.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_SINGULAR = re.compile(r"^(?P<indent>[ \t]*)Example:[ \t]*$", re.MULTILINE)
# A paragraph that ends with "::" introduces a literal block in reStructuredText; in
# Markdown the indented block is already code, and the "::" must become ":".
_LITERAL_INTRO = re.compile(r"(?<=\S)( ?)::[ \t]*\n(?=[ \t]*\n)")

_ROLE = re.compile(
    r":(?:py:)?(?P<role>class|meth|func|attr|mod|exc|data|obj|const|type):"
    r"`(?P<tilde>~?)(?P<name>[\w.]+)(?:\(\))?`"
)
_CALLABLE_ROLES = frozenset({"meth", "func"})


def _literal_intro(match: re.Match[str]) -> str:
    return "\n" if match[1] else ":\n"  # "text ::" -> "text", "text::" -> "text:"


class GoogleExamples(griffe.Extension):
    """Rename ``Example:`` sections to ``Examples:``, and end literal-block intros with ":"."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite the docstring of each object as it is loaded."""
        if obj.docstring is not None:
            value = _SINGULAR.sub(r"\g<indent>Examples:", obj.docstring.value)
            obj.docstring.value = _LITERAL_INTRO.sub(_literal_intro, value)


def _lookup(scope: griffe.Object | griffe.Alias, dotted: str) -> str | None:
    """The path of ``dotted`` as seen from ``scope`` and its parents, or None."""
    head, _, rest = dotted.partition(".")
    node: griffe.Object | griffe.Alias | None = scope
    while node is not None:
        members = node.members if node.is_class or node.is_module else {}
        if head in members:
            member = members[head]
            base = member.target_path if isinstance(member, griffe.Alias) else member.path
            return f"{base}.{rest}" if rest else base
        node = node.parent
    return None


def _link(role: str, tilde: str, name: str, scope: griffe.Object) -> str:
    shown = name.rpartition(".")[2] if tilde else name
    if role in _CALLABLE_ROLES:
        shown += "()"
    code = f"<code>{html.escape(shown)}</code>"
    target = name if name.startswith("chainvoice") else _lookup(scope, name)
    if target is None:
        return code
    # "optional": no warning when the target is not rendered; the text stays plain code.
    return f'<autoref identifier="{html.escape(target)}" optional>{code}</autoref>'


class SphinxRoles(griffe.Extension):
    """Turn Sphinx cross-reference roles in docstrings into reference links."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Rewrite the docstrings of the whole package once it is loaded."""
        self._walk(pkg, set())

    def _walk(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None and ":" in obj.docstring.value:
            scope = obj if obj.is_class or obj.is_module else obj.parent or obj
            obj.docstring.value = _ROLE.sub(
                lambda m: _link(m["role"], m["tilde"], m["name"], scope), obj.docstring.value
            )
        for member in obj.members.values():
            if not isinstance(member, griffe.Alias):
                self._walk(member, seen)
