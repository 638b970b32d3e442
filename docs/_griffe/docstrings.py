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


_ATTRS_DECORATORS = frozenset(
    {
        "attrs.define",
        "attrs.frozen",
        "attrs.mutable",
        "attr.define",
        "attr.frozen",
        "attr.mutable",
        "attr.s",
        "attr.attrs",
        "attr.dataclass",
    }
)
_ATTRS_FIELDS = frozenset({"attrs.field", "attr.field", "attr.ib", "attr.attrib"})
_KEYWORD_ONLY = griffe.ParameterKind("keyword-only")
_POSITIONAL = griffe.ParameterKind("positional or keyword")


def _call_path(expr: object) -> str | None:
    if isinstance(expr, griffe.ExprCall):
        expr = expr.function
    return getattr(expr, "canonical_path", None)


def _call_args(expr: object) -> dict[str, Any]:
    if not isinstance(expr, griffe.ExprCall):
        return {}
    return {arg.name: arg.value for arg in expr.arguments if isinstance(arg, griffe.ExprKeyword)}


def _attrs_decorator(cls: griffe.Class) -> griffe.Decorator | None:
    for decorator in cls.decorators:
        if _call_path(decorator.value) in _ATTRS_DECORATORS:
            return decorator
    return None


def _attrs_fields(cls: griffe.Class) -> list[griffe.Parameter]:
    """The ``__init__`` parameters of one attrs class's own fields, in order."""
    decorator = _attrs_decorator(cls)
    if decorator is None:
        return []
    class_kw_only = str(_call_args(decorator.value).get("kw_only")) == "True"
    params = []
    for member in cls.members.values():
        if isinstance(member, griffe.Alias) or not member.is_attribute:
            continue
        attribute: griffe.Attribute = member  # type: ignore[assignment]
        annotation = attribute.annotation
        # A ClassVar is labelled a class attribute only; an attrs field is an instance one.
        if annotation is None or "instance-attribute" not in attribute.labels:
            continue
        value = attribute.value
        field = _call_args(value) if _call_path(value) in _ATTRS_FIELDS else None
        if field is not None and str(field.get("init")) == "False":
            continue
        kw_only = class_kw_only
        if field is not None and "kw_only" in field:
            kw_only = str(field["kw_only"]) == "True"
        default: str | griffe.Expr | None
        if field is None:
            default = value
        elif "default" in field:
            default = field["default"]
        elif "factory" in field:
            default = griffe.ExprCall(function=field["factory"], arguments=[])
        else:
            default = None
        params.append(
            griffe.Parameter(
                attribute.name.lstrip("_"),
                annotation=annotation,
                kind=_KEYWORD_ONLY if kw_only else _POSITIONAL,
                default=default,
            )
        )
    return params


class AttrsInit(griffe.Extension):
    """Give attrs classes the ``__init__`` signature attrs generates for them.

    The reference then shows, for example, ``Transcript(text, *, language=None, ...)``
    instead of a bare ``Transcript``. Fields come base classes first, as in attrs;
    keyword-only ones last. A class that writes its own ``__init__`` keeps it.
    """

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Add the signatures once the whole package is loaded."""
        self._walk(pkg, set())

    def _walk(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.is_class:
            self._set_init(obj)  # type: ignore[arg-type]
        for member in obj.members.values():
            if not isinstance(member, griffe.Alias):
                self._walk(member, seen)

    @staticmethod
    def _set_init(cls: griffe.Class) -> None:
        if _attrs_decorator(cls) is None or "__init__" in cls.members:
            return
        try:
            mro = [c for c in reversed(cls.mro()) if isinstance(c, griffe.Class)]
        except ValueError:
            mro = []
        params: dict[str, griffe.Parameter] = {}
        for klass in [*mro, cls]:
            for param in _attrs_fields(klass):
                params[param.name] = param
        ordered = sorted(params.values(), key=lambda p: p.kind is _KEYWORD_ONLY)
        init = griffe.Function(
            "__init__",
            lineno=0,
            endlineno=0,
            parent=cls,
            parameters=griffe.Parameters(
                griffe.Parameter("self", kind=_POSITIONAL),
                *ordered,
            ),
            returns="None",
        )
        cls.set_member("__init__", init)
        cls.labels.add("attrs")
