"""Wire formats for :class:`~chainvoice.testing.FakeOpenAI`: multipart parsing and SSE.

Nothing here imports httpx or openai; the transport itself lives in ``_fake_openai``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

__all__ = [
    "MultipartError",
    "RecordedFile",
    "form_params",
    "parse_multipart",
    "sse",
]


@attrs.frozen(repr=False)
class RecordedFile:
    """One file part of a multipart request, as the fake received it.

    Attributes:
        field: The form field name (``"file"`` for an upload to /audio/transcriptions).
        filename: The filename the client sent, or None if the part had none.
        content_type: The part's Content-Type, or None if it had none.
        data: The file's bytes.
    """

    field: str
    filename: str | None
    content_type: str | None
    data: bytes

    def __repr__(self) -> str:
        return (
            f"RecordedFile(field={self.field!r}, filename={self.filename!r}, "
            f"content_type={self.content_type!r}, size={len(self.data)})"
        )


class MultipartError(ValueError):
    """A multipart/form-data body that cannot be parsed."""


_PARAM = re.compile(r';\s*([A-Za-z0-9_*-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))')


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    """Split ``form-data; name="x"; filename="y"`` into its value and parameters."""
    head, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for match in _PARAM.finditer(";" + rest):
        quoted, bare = match.group(2), match.group(3)
        text = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        # Browsers and httpx percent-encode a quote in a field name or filename.
        params[match.group(1).lower()] = text.replace("%22", '"')
    return head.strip().lower(), params


def parse_multipart(
    body: bytes, content_type: str
) -> tuple[tuple[tuple[str, str], ...], tuple[RecordedFile, ...]]:
    """Parse a multipart/form-data body into its text fields and its files.

    Args:
        body: The request body.
        content_type: The request's Content-Type header, with its ``boundary``.

    Returns:
        The text fields as ``(name, value)`` pairs in the order sent, and the file parts
        (every part that has a filename, or a Content-Type other than text/plain).

    Raises:
        MultipartError: No boundary, no closing delimiter, a part without a name, or a
            text field that is not UTF-8.
    """
    media, params = _header_params(content_type)
    if media != "multipart/form-data":
        raise MultipartError(f"expected multipart/form-data, got {media or 'no content type'!r}")
    boundary = params.get("boundary")
    if not boundary:
        raise MultipartError("the multipart/form-data Content-Type has no boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    if not body.startswith(delimiter):
        raise MultipartError("the body does not start with the multipart boundary")
    chunks = body.split(b"\r\n" + delimiter)
    first = chunks[0][len(delimiter) :]
    parts = [first, *chunks[1:]]
    if not parts[-1].startswith(b"--"):
        raise MultipartError("the multipart body has no closing delimiter (truncated body?)")
    fields: list[tuple[str, str]] = []
    files: list[RecordedFile] = []
    for raw in parts[:-1]:
        if not raw.startswith(b"\r\n"):
            raise MultipartError("malformed multipart delimiter line")
        head, sep, data = raw[2:].partition(b"\r\n\r\n")
        if not sep:
            raise MultipartError("a multipart part has no blank line after its headers")
        headers: dict[str, str] = {}
        try:  # clients send non-ASCII filenames as raw UTF-8
            head_text = head.decode("utf-8")
        except UnicodeDecodeError:
            head_text = head.decode("latin-1")
        for line in head_text.split("\r\n"):
            name, colon, value = line.partition(":")
            if not colon:
                raise MultipartError(f"malformed multipart part header {line!r}")
            headers[name.strip().lower()] = value.strip()
        disposition, dparams = _header_params(headers.get("content-disposition", ""))
        if disposition != "form-data" or "name" not in dparams:
            raise MultipartError("a multipart part has no Content-Disposition form-data name")
        part_type = headers.get("content-type")
        filename = dparams.get("filename")
        if filename is not None or (part_type and not part_type.startswith("text/plain")):
            files.append(RecordedFile(dparams["name"], filename, part_type, data))
            continue
        try:
            fields.append((dparams["name"], data.decode("utf-8")))
        except UnicodeDecodeError as exc:
            raise MultipartError(f"form field {dparams['name']!r} is not UTF-8") from exc
    return tuple(fields), tuple(files)


_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def form_params(fields: Iterable[tuple[str, str]], files: Iterable[RecordedFile]) -> dict[str, Any]:
    """The request parameters a multipart body encodes, as the server reads them.

    ``name[]`` fields become lists, ``name[key]`` fields nested objects (the "brackets"
    encoding the openai SDK uses); values stay strings. A file part becomes its
    :class:`RecordedFile`.

    Raises:
        MultipartError: A field name that is not a valid bracket path, a plain field sent
            twice, or a name used both as a value and as a list or object.
    """
    out: dict[str, Any] = {}
    for name, value in fields:
        match = _KEY.match(name)
        if match is None:
            raise MultipartError(f"malformed form field name {name!r}")
        path = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        _insert(out, path, value, name)
    for file in files:
        if file.field in out:
            raise MultipartError(f"form field {file.field!r} is sent twice")
        out[file.field] = file
    return out


def _insert(node: dict[str, Any], path: list[str], value: str, name: str) -> None:
    key, rest = path[0], path[1:]
    if not rest:
        if key in node:
            raise MultipartError(f"form field {name!r} is sent twice; lists use {key}[]")
        node[key] = value
        return
    if rest[0] == "":
        if len(rest) > 1:
            raise MultipartError(f"form field {name!r}: only flat lists are supported")
        existing = node.setdefault(key, [])
        if not isinstance(existing, list):
            raise MultipartError(f"form field {key!r} is both a value and a list")
        existing.append(value)
        return
    child = node.setdefault(key, {})
    if not isinstance(child, dict):
        raise MultipartError(f"form field {key!r} is both a value and an object")
    _insert(child, rest, value, name)


def sse(data: Mapping[str, Any] | str, event: str | None = None) -> bytes:
    """One server-sent event: an optional ``event:`` line and one ``data:`` line."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()
