"""The public API: curated, sorted, complete, documented, and its examples run.

As httpx does, ``chainvoice/__init__.py`` and ``chainvoice/testing/__init__.py`` list the
public names in ``__all__``. These tests keep that list honest: sorted, holding every
public object the package exposes, each with a docstring (methods and properties of
public classes too), each shown under its public module, each in the API reference, and
every ``>>>`` example in the docstrings runs as a doctest.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import inspect
import itertools
import pkgutil
import re
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import chainvoice
import chainvoice.testing

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "chainvoice"
REFERENCE = ROOT / "docs" / "reference"

PUBLIC_MODULES = [chainvoice, chainvoice.testing]

# Modules whose docstring examples run as doctests. The backends' modules are added when
# they import: chainvoice.local imports without its models (they load on first use).
DOCTEST_MODULES = [
    "chainvoice",
    "chainvoice.testing",
    "chainvoice.testing.strategies",
    "chainvoice.openai",
    "chainvoice.local",
]


def _public(module: types.ModuleType) -> list[str]:
    return [name for name in module.__all__ if name != "__version__"]


def _defined_in_chainvoice(obj: object) -> bool:
    return (getattr(obj, "__module__", None) or "").startswith("chainvoice")


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_all_is_sorted_and_unique(module: types.ModuleType) -> None:
    assert module.__all__ == sorted(set(module.__all__)), (
        f"{module.__name__}.__all__ must be sorted (plain string order) without duplicates"
    )


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_all_names_resolve(module: types.ModuleType) -> None:
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{module.__name__}.{name}"


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_all_is_complete(module: types.ModuleType) -> None:
    """Every public class, function or constant the module holds is in ``__all__``."""
    for name in module.__all__:
        getattr(module, name)  # load the lazy ones, so that they are checked too
    missing = [
        name
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and not isinstance(obj, types.ModuleType)
        and _defined_in_chainvoice(obj)
        and name not in module.__all__
    ]
    assert not missing, f"public names missing from {module.__name__}.__all__: {missing}"
    # dir() lists __all__, plus at most submodules kept out of it on purpose (e.g.
    # chainvoice.testing.strategies, so that `import *` does not need hypothesis).
    extra = sorted(set(dir(module)) - set(module.__all__))
    not_modules = [n for n in extra if not isinstance(getattr(module, n), types.ModuleType)]
    assert not not_modules, f"dir({module.__name__}) lists names not in __all__: {not_modules}"
    assert dir(module) == sorted(dir(module))


def test_every_subpackage_is_public() -> None:
    subpackages = sorted(
        info.name
        for info in pkgutil.iter_modules([str(PACKAGE)])
        if info.ispkg and not info.name.startswith("_")
    )
    assert subpackages, "no subpackages found"
    for name in subpackages:
        # Reachable as an attribute (imported on first use) and listed by dir(); it may
        # stay out of __all__ so that `from chainvoice import *` imports no backend.
        assert isinstance(getattr(chainvoice, name), types.ModuleType)
        assert name in dir(chainvoice), f"dir(chainvoice) does not list chainvoice.{name}"


@pytest.mark.parametrize(
    ("module", "public_module"),
    [(chainvoice, "chainvoice"), (chainvoice.testing, "chainvoice.testing")],
    ids=["chainvoice", "chainvoice.testing"],
)
def test_classes_show_their_public_module(module: types.ModuleType, public_module: str) -> None:
    """Reprs, tracebacks and the reference name ``chainvoice.Chain``, not ``chainvoice._chain``."""
    for name in _public(module):
        obj = getattr(module, name)
        if isinstance(obj, type):
            assert obj.__module__ == public_module, f"{name}.__module__ is {obj.__module__}"


def _documented_assignments() -> set[tuple[str, str]]:
    """(module, name) of module-level assignments followed by a docstring, in the package."""
    found: set[tuple[str, str]] = set()
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        body = ast.parse(path.read_text(encoding="utf-8")).body
        for node, after in itertools.pairwise(body):
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AnnAssign):
                targets = [node.target]
            documented = (
                isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
                and after.value.value.strip()
            )
            for target in targets:
                if isinstance(target, ast.Name) and documented:
                    found.add((module.removesuffix(".__init__"), target.id))
    return found


def _docstring_problem(name: str, obj: Any, documented: set[str]) -> str | None:
    if isinstance(obj, (type, types.ModuleType)) or inspect.isroutine(obj):
        doc = obj.__doc__
    else:  # a constant or type alias: documented by a string after its assignment
        return None if name in documented else f"{name}: no docstring after its assignment"
    if not doc or not doc.strip():
        return f"{name}: no docstring"
    return None


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_every_public_name_has_a_docstring(module: types.ModuleType) -> None:
    documented = {name for _, name in _documented_assignments()}
    problems = [
        problem
        for name in _public(module)
        if (problem := _docstring_problem(name, getattr(module, name), documented))
    ]
    assert not problems, "\n".join(problems)


def _public_members(cls: type) -> Iterator[tuple[str, Any]]:
    """Public methods and properties of ``cls``, also those inherited from chainvoice bases."""
    seen: set[str] = set()
    for klass in cls.__mro__:
        if not _defined_in_chainvoice(klass):
            continue
        for name, member in vars(klass).items():
            if name.startswith("_") or name in seen:
                continue
            seen.add(name)
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if isinstance(member, property) or inspect.isfunction(member):
                yield name, member


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_public_methods_and_properties_have_docstrings(module: types.ModuleType) -> None:
    problems = []
    for name in _public(module):
        cls = getattr(module, name)
        if not isinstance(cls, type):
            continue
        for member_name, member in _public_members(cls):
            doc = member.__doc__
            if not doc or not doc.strip():
                problems.append(f"{module.__name__}.{name}.{member_name}")
    assert not problems, "public members without a docstring:\n" + "\n".join(problems)


def _referenced() -> set[str]:
    names: set[str] = set()
    for page in REFERENCE.glob("*.md"):
        names.update(re.findall(r"^:::\s*([\w.]+)\s*$", page.read_text(encoding="utf-8"), re.M))
    return names


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_every_public_name_is_in_the_api_reference(module: types.ModuleType) -> None:
    referenced = _referenced()
    subpackages = {"local", "openai", "testing"} if module is chainvoice else set()
    missing = [
        f"{module.__name__}.{name}"
        for name in _public(module)
        if name not in subpackages and f"{module.__name__}.{name}" not in referenced
    ]
    assert not missing, f"add `::: NAME` to a page under docs/reference/ for: {missing}"


def _doctests() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests: dict[str, doctest.DocTest] = {}
    names = list(DOCTEST_MODULES)
    names += [
        info.name
        for info in pkgutil.walk_packages([str(PACKAGE)], prefix="chainvoice.")
        if info.name.rpartition(".")[2].startswith("_")
        and info.name not in ("chainvoice.__main__",)
    ]
    for name in names:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        for test in finder.find(module, name):
            if test.examples:
                tests.setdefault(test.name.replace("chainvoice._", "chainvoice."), test)
    return sorted(tests.values(), key=lambda t: t.name)


def test_docstring_examples_are_found() -> None:
    found = {test.name for test in _doctests()}
    assert "chainvoice" in found
    assert "chainvoice.Chain" in found
    assert any(name.startswith("chainvoice.testing.") for name in found)


# Subpackages whose examples need an optional extra (dependencies, models) to run.
OPTIONAL_SUBPACKAGES = ("chainvoice.local", "chainvoice.openai")


class _NeedsExtra(Exception):
    """An example stopped on a MissingDependencyError from an optional subpackage."""


class _Runner(doctest.DocTestRunner):
    def report_unexpected_exception(
        self, out: Any, test: doctest.DocTest, example: doctest.Example, exc_info: Any
    ) -> None:
        exc = exc_info[1]
        optional = test.name.startswith(tuple(f"{p}." for p in OPTIONAL_SUBPACKAGES))
        if optional and isinstance(exc, chainvoice.MissingDependencyError):
            raise _NeedsExtra(str(exc)) from exc  # the later examples would only cascade
        super().report_unexpected_exception(out, test, example, exc_info)


@pytest.mark.parametrize("test", _doctests(), ids=lambda t: t.name)
def test_docstring_example_runs(test: doctest.DocTest) -> None:
    runner = _Runner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out: list[str] = []
    test.globs = dict(test.globs)
    try:
        runner.run(test, out=out.append, clear_globs=True)
    except _NeedsExtra as exc:
        pytest.skip(f"an optional extra is not installed: {exc}")
    assert runner.failures == 0, "".join(out)


def test_a_missing_extra_skips_only_an_optional_subpackages_example() -> None:
    def example_test(name: str) -> doctest.DocTest:
        source = (
            ">>> raise chainvoice.MissingDependencyError('install chainvoice[local]')\n>>> 1\n1\n"
        )
        return doctest.DocTestParser().get_doctest(
            source, {"chainvoice": chainvoice}, name, None, 0
        )

    with pytest.raises(_NeedsExtra, match=r"chainvoice\[local\]"):
        _Runner().run(example_test("chainvoice.local.Thing"), out=lambda _: None)
    core = _Runner()
    core.run(example_test("chainvoice.Thing"), out=lambda _: None)
    assert core.failures == 1  # the core needs no extra: there it is a failure


def test_the_docstring_checks_catch_what_is_missing() -> None:
    class Undocumented:
        def method(self) -> None:
            pass

        @property
        def prop(self) -> int:
            return 1

        def _private(self) -> None:
            pass

    Undocumented.__module__ = "chainvoice.example"
    missing = [name for name, member in _public_members(Undocumented) if not member.__doc__]
    assert missing == ["method", "prop"]
    assert _docstring_problem("Undocumented", Undocumented, set()) == "Undocumented: no docstring"
    assert _docstring_problem("LIMIT", 3, set()) == "LIMIT: no docstring after its assignment"
    assert _docstring_problem("LIMIT", 3, {"LIMIT"}) is None
