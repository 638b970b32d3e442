"""Every Python code block in the docs (``docs/**/*.md``) and in README.md runs here.

How a page is run
-----------------
Each page's ```` ```python ```` blocks run in order, in one namespace, in a fresh Python
process (``__name__ == "__main__"``), with the current directory set to an empty temporary
directory. A block may use top-level ``await`` (as in a notebook or ``python -m asyncio``);
all of a page's async blocks share one event loop. Tracebacks point at the Markdown file
and line. The process has no network: connecting anywhere but the loopback interface
raises ``ConnectionRefusedError``, and the OpenAI client is pointed at a closed local port
with a dummy key, so that nothing can reach a real service.

Markers
-------
Markers are HTML comments, invisible on the site and on GitHub:

``<!-- test: skip REASON -->``
    Just before a block: show it, do not run it. Keep these rare (writing to a speaker,
    a deliberately incomplete snippet); the reason is required.
``<!-- test: requires NAME ... -->``
    Just before a block: run it only if every NAME is available, else skip it with the
    reason. ``local`` means the offline models of ``chainvoice[local]`` are installed
    (``chainvoice.local.stages()`` works). ``fake-openai`` routes every OpenAI client the
    page makes without an ``http_client`` to one ``chainvoice.testing.FakeOpenAI``
    (available to hidden code as ``fake_openai``), so ``cv.Chain.openai()`` runs as
    written. That fake checks every request against OpenAI's OpenAPI spec
    (``tests/openapi/``), like the ``fake_openai`` fixture: the page fails if any request
    broke it. Any other NAME is a module that must be importable.
``<!-- test-page: requires NAME ... -->``
    Anywhere in a page: the same, for every block of the page.
``<!-- test-code`` ... ``-->``
    Hidden code, run at that point in the page's namespace: setup before a block (make an
    input file, define a stand-in), or checks after one. A ``requires`` marker may come
    just before it.
``<!-- test: output -->``
    Just before a ```` ```text ```` block: it must equal what the previous Python block
    printed (trailing whitespace ignored).

Blocks in other languages (bash, text without an ``output`` marker, ...) are not run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

#: Deliberately unrunnable blocks across the whole site; raise only with a good reason.
MAX_SKIPPED_BLOCKS = 6

PAGE_TIMEOUT = 120.0

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*(?P<scope>test|test-page):\s*(?P<body>.*?)\s*-->\s*$")
_HIDDEN_START = re.compile(r"^\s*<!--\s*test-code\s*$")
_KNOWN_REQUIREMENTS_HELP = "local, fake-openai, or an importable module name"


class DocsSyntaxError(Exception):
    """A malformed marker or fence in a docs page."""


def _parse_info(info: str) -> str:
    words = info.strip().split()
    return words[0].lstrip(".{").rstrip("}").lower() if words else ""


def parse_page(path: Path) -> dict[str, Any]:
    """The runnable items of a page, in order, with the page-wide requirements."""
    lines = path.read_text(encoding="utf-8").splitlines()
    items: list[dict[str, Any]] = []
    page_requires: list[str] = []
    pending: dict[str, Any] = {}
    pending_line = 0
    i = 0

    def fail(line: int, message: str) -> DocsSyntaxError:
        return DocsSyntaxError(f"{_page_id(path)}:{line}: {message}")

    while i < len(lines):
        line = lines[i]
        if _HIDDEN_START.match(line):
            start = i + 1
            j = start
            while j < len(lines) and lines[j].strip() != "-->":
                j += 1
            if j == len(lines):
                raise fail(i + 1, "<!-- test-code has no closing --> on a line of its own")
            if pending.keys() - {"requires"}:
                raise fail(pending_line, "only `requires` may mark hidden code")
            items.append(
                {"kind": "code", "line": start + 1, "source": "\n".join(lines[start:j])}
                | {"hidden": True, "skip": None, "requires": pending.get("requires", [])}
            )
            pending = {}
            i = j + 1
            continue
        marker = _MARKER.match(line)
        if marker:
            scope, body = marker["scope"], marker["body"]
            verb, _, rest = body.partition(" ")
            if verb == "requires":
                names = rest.split()
                if not names:
                    raise fail(i + 1, f"requires what? ({_KNOWN_REQUIREMENTS_HELP})")
                if scope == "test-page":
                    page_requires.extend(names)
                else:
                    pending.setdefault("requires", []).extend(names)
            elif scope == "test" and verb == "skip":
                if not rest.strip():
                    raise fail(i + 1, "a skipped block needs a reason: <!-- test: skip REASON -->")
                pending["skip"] = rest.strip()
            elif scope == "test" and verb == "output" and not rest:
                pending["output"] = True
            else:
                raise fail(i + 1, f"unknown marker {line.strip()!r}")
            pending_line = i + 1
            i += 1
            continue
        fence = _FENCE.match(line)
        if fence:
            indent, mark, info = fence["indent"], fence["fence"], fence["info"]
            lang = _parse_info(info)
            body: list[str] = []
            j = i + 1
            while j < len(lines):
                closing = lines[j].strip()
                if closing.startswith(mark[0] * len(mark)) and not closing.strip(mark[0]):
                    break
                text = lines[j]
                body.append(text[len(indent) :] if text.startswith(indent) else text.lstrip())
                j += 1
            if j == len(lines):
                raise fail(i + 1, "code fence is not closed")
            source = "\n".join(body)
            if pending.get("output"):
                if lang not in ("text", "console", "output"):
                    raise fail(i + 1, "<!-- test: output --> must come before a ```text block")
                if not items or items[-1]["kind"] != "code":
                    raise fail(i + 1, "an output block must follow a Python block")
                items.append({"kind": "output", "line": i + 2, "expected": source})
            elif lang in ("python", "py", "python3"):
                items.append(
                    {
                        "kind": "code",
                        "line": i + 2,
                        "source": source,
                        "hidden": False,
                        "skip": pending.get("skip"),
                        "requires": pending.get("requires", []),
                    }
                )
            elif pending:
                raise fail(pending_line, f"marker before a ```{lang or '(plain)'} block")
            pending = {}
            i = j + 1
            continue
        if pending and line.strip():
            raise fail(pending_line, "a block marker must be followed by its code block")
        i += 1
    if pending:
        raise fail(pending_line, "a block marker at the end of the page, with no block")
    return {"path": str(path.resolve()), "items": items, "requires": page_requires}


def pages() -> list[Path]:
    found = sorted(DOCS.rglob("*.md"))
    readme = ROOT / "README.md"
    return ([readme] if readme.exists() else []) + found


def _page_id(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _runnable(page: dict[str, Any]) -> bool:
    return any(item["kind"] == "code" and not item["hidden"] for item in page["items"])


def test_docs_exist() -> None:
    assert (DOCS / "index.md").exists(), "docs/index.md is missing"
    assert len(pages()) > 5


@pytest.mark.parametrize("path", pages(), ids=_page_id)
def test_markers_are_well_formed(path: Path) -> None:
    parse_page(path)


def test_site_builds_strictly(tmp_path: Path) -> None:
    """``mkdocs build --strict``, as scripts/docs runs it: no broken link or reference."""
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        pytest.importorskip(module, reason=f"{module} is not installed; it is in the docs extra")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "reference" / "chain" / "index.html").exists()


def test_reference_signatures_of_attrs_classes_match_the_runtime() -> None:
    """The docs' griffe extension gives attrs classes the signature attrs generates."""
    griffe = pytest.importorskip(
        "griffe", reason="griffe is not installed; it is in the docs extra"
    )
    import importlib.util
    import inspect

    import attrs

    import chainvoice
    import chainvoice.testing

    spec = importlib.util.spec_from_file_location("docs_ext", DOCS / "_griffe" / "docstrings.py")
    assert spec is not None and spec.loader is not None
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)
    loader = griffe.GriffeLoader(
        extensions=griffe.load_extensions(ext.AttrsInit()), search_paths=[str(ROOT / "src")]
    )
    loader.load("chainvoice")
    loader.resolve_aliases(implicit=False, external=False)
    checked = 0
    for module in (chainvoice, chainvoice.testing):
        for name in module.__all__:
            obj = getattr(module, name)
            if not (isinstance(obj, type) and attrs.has(obj)):
                continue
            runtime = [(p.name, p.kind.name) for p in inspect.signature(obj).parameters.values()]
            init = loader.modules_collection[f"{module.__name__}.{name}"].members["__init__"]
            documented = [
                (p.name, p.kind.name.upper()) for p in init.parameters if p.name != "self"
            ]
            assert documented == runtime, name
            checked += 1
    assert checked > 10


def test_skips_are_rare() -> None:
    skipped = [
        f"{_page_id(Path(page['path']))}:{item['line']}: {item['skip']}"
        for page in map(parse_page, pages())
        for item in page["items"]
        if item["kind"] == "code" and item["skip"]
    ]
    assert len(skipped) <= MAX_SKIPPED_BLOCKS, (
        "too many docs blocks are marked skip; make them run (hidden setup, the testing "
        "fakes) instead:\n" + "\n".join(skipped)
    )


def test_parser_finds_blocks_and_markers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# T\n<!-- test-page: requires numpy -->\n"
        "```python\nx = 1\nprint(x)\n```\n"
        "<!-- test: output -->\n```text\n1\n```\n"
        "<!-- test-code\nassert x == 1\n-->\n"
        "<!-- test: skip writes to a speaker -->\n"
        "```python\nspeaker.write(x)\n```\n"
        "```bash\nls\n```\n"
        "!!! note\n    ```python\n    y = 2\n    ```\n",
        encoding="utf-8",
    )
    parsed = parse_page(page)
    assert parsed["requires"] == ["numpy"]
    kinds = [(item["kind"], item["line"]) for item in parsed["items"]]
    assert kinds == [("code", 4), ("output", 9), ("code", 12), ("code", 16), ("code", 23)]
    assert parsed["items"][0]["source"] == "x = 1\nprint(x)"
    assert parsed["items"][2]["hidden"] is True
    assert parsed["items"][3]["skip"] == "writes to a speaker"
    assert parsed["items"][4]["source"] == "y = 2"


@pytest.mark.parametrize(
    "text",
    [
        "<!-- test: skip -->\n```python\nx\n```\n",
        "<!-- test: sikp x -->\n```python\nx\n```\n",
        "<!-- test: requires -->\n```python\nx\n```\n",
        "<!-- test: skip reason -->\nsome prose\n```python\nx\n```\n",
        "<!-- test: output -->\n```text\n1\n```\n",
        "```python\nx = 1\n",
        "<!-- test-code\nx = 1\n",
    ],
)
def test_parser_rejects_bad_markers(tmp_path: Path, text: str) -> None:
    page = tmp_path / "page.md"
    page.write_text(text, encoding="utf-8")
    with pytest.raises(DocsSyntaxError):
        parse_page(page)


def run_page(page: dict[str, Any], workdir: Path) -> tuple[int, list[dict[str, Any]], str]:
    """Run a parsed page in a fresh process; return its exit code, results and stderr."""
    plan = workdir / "plan.json"
    results = workdir / "results.jsonl"
    plan.write_text(json.dumps(page), encoding="utf-8")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "AZURE_OPENAI")) and k != "PYTHONSTARTUP"
    }
    env["OPENAI_API_KEY"] = "sk-docs-test-not-a-real-key"
    env["OPENAI_BASE_URL"] = "http://127.0.0.1:9/v1"  # the discard port: nothing answers
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p
    )
    run_dir = workdir / "cwd"
    run_dir.mkdir()
    proc = subprocess.run(
        [sys.executable, "-W", "error", __file__, str(plan), str(results)],
        cwd=run_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=PAGE_TIMEOUT,
        check=False,
    )
    done = (
        [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()]
        if results.exists()
        else []
    )
    return proc.returncode, done, proc.stdout + proc.stderr


def pages_with_code() -> list[Path]:
    """The pages with Python blocks to run (and any page that does not parse)."""
    found = []
    for path in pages():
        try:
            if _runnable(parse_page(path)):
                found.append(path)
        except DocsSyntaxError:
            found.append(path)
    return found


@pytest.mark.parametrize("path", pages_with_code(), ids=_page_id)
def test_docs_code_runs(path: Path, tmp_path: Path) -> None:
    page = parse_page(path)
    code, results, output = run_page(page, tmp_path)
    if code != 0:
        failed = [r for r in results if r["status"] == "failed"]
        line = failed[0]["line"] if failed else 0  # 0: the page as a whole (spec violations)
        where = f"{_page_id(path)}:{line}" if line else _page_id(path)
        pytest.fail(f"a code block failed at {where}\n{output}", pytrace=False)
    visible = [r for r in results if not r.get("hidden")]
    skipped = [r for r in visible if r["status"] == "skipped"]
    if visible and len(skipped) == len(visible):
        reasons = sorted({r["reason"] for r in skipped})
        pytest.skip("every block skipped: " + "; ".join(reasons))


def test_runner_reports_failures_at_the_markdown_line(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# T\n\n```python\nvalue = 41\n```\n\n```python\nvalue += 1\nassert value == 0\n```\n",
        encoding="utf-8",
    )
    code, results, output = run_page(parse_page(page), tmp_path)
    assert code == 1
    assert [r["status"] for r in results] == ["ok", "failed"]
    assert f'File "{page}", line 9' in output
    assert "AssertionError" in output


def test_runner_checks_output_awaits_and_blocks_the_network(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nimport asyncio\nawait asyncio.sleep(0)\nprint('hi')\n```\n"
        "<!-- test: output -->\n```text\nhi\n```\n"
        "```python\nimport socket\ntry:\n"
        "    socket.create_connection(('example.com', 80), timeout=1)\n"
        "except ConnectionRefusedError as exc:\n    print('blocked:', exc)\n```\n"
        "<!-- test: requires no_such_module_xyz -->\n```python\nraise SystemExit(3)\n```\n",
        encoding="utf-8",
    )
    code, results, output = run_page(parse_page(page), tmp_path)
    assert code == 0, output
    assert [r["status"] for r in results] == ["ok", "ok", "ok", "skipped"]
    assert "no_such_module_xyz" in results[-1]["reason"]
    assert "blocked: the docs tests have no network" in output

    page.write_text("```python\nprint('hello')\n```\n<!-- test: output -->\n```text\nbye\n```\n")
    again = tmp_path / "again"
    again.mkdir()
    code, results, output = run_page(parse_page(page), again)
    assert code == 1
    assert results[-1]["status"] == "failed"
    assert "printed" in output and "bye" in output


def test_runner_fails_a_page_whose_openai_requests_break_the_spec(tmp_path: Path) -> None:
    """The page's FakeOpenAI is spec-checked: a request the real API refuses fails the page."""
    pytest.importorskip("openai")
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- test-page: requires fake-openai -->\n"
        "```python\nimport openai\ntry:\n"
        "    openai.OpenAI().responses.create(\n"
        "        model='gpt-4.1-mini', input=[{'role': 'user', 'content': 5}])\n"
        "except openai.BadRequestError:\n    pass\n```\n",
        encoding="utf-8",
    )
    code, results, output = run_page(parse_page(page), tmp_path)
    assert code == 1, output
    assert [r["status"] for r in results] == ["ok", "failed"]
    assert "break the spec" in output and "input[0].content" in output

    page.write_text(
        page.read_text(encoding="utf-8")
        + "<!-- test-code\nassert len(fake_openai.take_violations()) == 1\n-->\n",
        encoding="utf-8",
    )
    again = tmp_path / "again"
    again.mkdir()
    code, results, output = run_page(parse_page(page), again)
    assert code == 0, output


# --------------------------------------------------------------------------------------
# The runner: executed as a script in the page's own process


def _guard_network() -> None:
    """Refuse every connection except to the loopback interface."""
    import ipaddress
    import socket

    def loopback(host: object) -> bool:
        if not isinstance(host, str):
            return True  # AF_UNIX paths and the like
        if host in ("localhost", ""):
            return True
        try:
            return ipaddress.ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            return False

    def refuse(host: object) -> ConnectionRefusedError:
        return ConnectionRefusedError(f"the docs tests have no network (tried {host!r})")

    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else address
        if not loopback(host):
            raise refuse(host)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        host = address[0] if isinstance(address, tuple) else address
        if not loopback(host):
            raise refuse(host)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, bytes):
            host = host.decode()
        if host is not None and not loopback(host):
            raise refuse(host)
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo


def _missing(name: str, cache: dict[str, str | None], namespace: dict[str, Any]) -> str | None:
    """Why requirement ``name`` is not available, or None when it is."""
    if name in cache:
        return cache[name]
    reason: str | None = None
    if name == "local":
        try:
            import chainvoice.local

            chainvoice.local.stages()
        except ImportError as exc:  # MissingDependencyError is an ImportError
            reason = f"the offline models are not installed ({exc})"
    elif name == "fake-openai":
        reason = _start_fake_openai(namespace)
    else:
        import importlib.util

        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        reason = None if found else f"{name} is not installed"
    cache[name] = reason
    return reason


#: The FakeOpenAI a page runs against (at most one); checked for violations at the end.
_FAKES: list[Any] = []


def _start_fake_openai(namespace: dict[str, Any]) -> str | None:
    """Route every OpenAI client to one FakeOpenAI; return why not, if it cannot be done.

    A client made without an ``http_client`` gets one over the fake, so that examples
    written as for the real service (``cv.Chain.openai()``) run unchanged. The fake is
    ``fake_openai`` in the page's namespace, for hidden setup and checks. It checks every
    request (and its own answers) against OpenAI's OpenAPI spec, as the ``fake_openai``
    fixture does: a page whose example sends something the real API would refuse fails
    at the end of the run, with the violations listed (hidden code that sends a bad
    request on purpose takes them with ``fake_openai.take_violations()``).
    """
    try:
        import openai

        from chainvoice.testing import FakeOpenAI
    except (ImportError, AttributeError) as exc:
        return f"chainvoice.testing.FakeOpenAI is not available ({exc})"
    try:
        from openapi.validator import SpecValidator  # tests/openapi, next to this script
    except ImportError as exc:  # a broken checkout: fail the page rather than skip it
        raise RuntimeError(f"cannot load the OpenAPI validator from tests/openapi ({exc})") from exc
    from chainvoice.openai._transport import LeanTransport

    spec = SpecValidator.load()
    fake = FakeOpenAI(check_request=spec.check_request, check_response=spec.check_response)
    _FAKES.append(fake)
    # Examples are written for the real service: without the closed-port base URL set for
    # pages that must not reach anything, prices apply as they would against OpenAI.
    os.environ.pop("OPENAI_BASE_URL", None)

    def route(cls: Any, make_http_client: Any) -> None:
        original = cls.__init__

        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            # Also the clients chainvoice makes on its own transport (which is tested
            # over real sockets in test_transport.py): the page has no network.
            given = kwargs.get("http_client")
            ours = isinstance(getattr(given, "_transport", None), LeanTransport)
            served = "://127.0.0.1:" in str(kwargs.get("base_url"))  # FakeOpenAI.serve()
            if (given is None or ours) and not served:
                kwargs["http_client"] = make_http_client()
            original(self, *args, **kwargs)

        cls.__init__ = __init__

    route(openai.OpenAI, fake.http_client)
    route(openai.AsyncOpenAI, fake.async_http_client)
    namespace["fake_openai"] = fake
    return None


class _Tee:
    def __init__(self, real: Any) -> None:
        self.real = real
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return int(self.real.write(text))

    def flush(self) -> None:
        self.real.flush()

    def take(self) -> str:
        out, self.parts = "".join(self.parts), []
        return out


def _normalise(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def _main(plan_path: str, results_path: str) -> int:
    import ast
    import asyncio
    import inspect
    import traceback

    _guard_network()
    unraisable: list[str] = []

    def record_unraisable(info: Any) -> None:
        # An exception in __del__ or a finalizer (an unclosed file, ...): pytest makes it
        # an error, and so does this runner.
        unraisable.append(f"{info.err_msg or 'Exception ignored in'}: {info.object!r}")
        traceback.print_exception(info.exc_type, info.exc_value, info.exc_traceback)

    sys.unraisablehook = record_unraisable
    page = json.loads(Path(plan_path).read_text(encoding="utf-8"))
    filename = page["path"]
    namespace: dict[str, Any] = {"__name__": "__main__", "__file__": filename}
    loop = asyncio.new_event_loop()
    cache: dict[str, str | None] = {}
    tee = _Tee(sys.stdout)
    sys.stdout = tee
    printed = ""
    status = 0
    with open(results_path, "w", encoding="utf-8") as results:

        def report(item: dict[str, Any], state: str, reason: str = "") -> None:
            entry = {"line": item["line"], "status": state, "reason": reason}
            entry["hidden"] = item.get("hidden", False)
            results.write(json.dumps(entry) + "\n")
            results.flush()

        for item in page["items"]:
            if item["kind"] == "output":
                if _normalise(printed) != _normalise(item["expected"]):
                    sys.stderr.write(
                        f"{filename}:{item['line']}: the block before printed\n{printed}\n"
                        f"but the page shows\n{item['expected']}\n"
                    )
                    report(item, "failed")
                    status = 1
                    break
                report(item, "ok")
                continue
            if item["skip"]:
                report(item, "skipped", item["skip"])
                printed = ""
                continue
            needs = page["requires"] + item["requires"]
            reasons = [r for r in (_missing(n, cache, namespace) for n in needs) if r]
            if reasons:
                report(item, "skipped", "; ".join(reasons))
                printed = ""
                continue
            source = "\n" * (item["line"] - 1) + item["source"]
            try:
                code = compile(
                    source,
                    filename,
                    "exec",
                    flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
                    dont_inherit=True,
                )
                tee.take()
                result = eval(code, namespace)
                if inspect.iscoroutine(result):
                    loop.run_until_complete(result)
            except BaseException:
                printed = tee.take()
                traceback.print_exc()
                report(item, "failed")
                status = 1
                break
            printed = tee.take()
            report(item, "ok")
        for fake in _FAKES:
            try:
                fake.assert_no_violations()
            except AssertionError as exc:
                sys.stderr.write(f"{filename}: the page's OpenAI requests break the spec:\n{exc}\n")
                report({"line": 0}, "failed", "OpenAPI spec violations")
                status = 1
    sys.stdout = tee.real
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
    namespace.clear()
    import gc

    gc.collect()
    if unraisable:
        sys.stderr.write("unraisable exceptions (an unclosed resource?):\n")
        sys.stderr.write("\n".join(unraisable) + "\n")
        return 1
    return status


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1], sys.argv[2]))
