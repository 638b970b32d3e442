"""Check requests (and the fake's answers) against OpenAI's OpenAPI spec.

The schemas come from ``openai-subset.json`` (see ``SOURCE.md``), exactly as upstream
wrote them minus documentation. Loading adapts OpenAPI's dialect to JSON Schema 2020-12,
which the ``jsonschema`` package validates:

- ``nullable: true`` (OpenAPI 3.0 style, still used in places) also allows ``null``;
- ``oneOf`` is read as ``anyOf``: the spec's unions overlap (an ``EasyInputMessage`` with a
  list content is also an ``InputMessage``), so "exactly one" would reject valid requests,
  while "at least one" still rejects every value no branch accepts;
- ``$recursiveRef: "#"`` (2019-09) becomes a ``$ref`` to the schema that declares it;
- vendor keywords (``x-oaiTypeLabel``, ``x-stainless-*``, ...) and ``discriminator`` are
  ignored, as JSON Schema ignores unknown keywords.

The real API refuses unknown top-level parameters even where the schema (built with
``allOf``) does not say ``additionalProperties: false``; the validator does too.
Multipart fields arrive as strings: each is read as the type its schema asks for (a
number, a boolean, a JSON object, or a list from repeated ``name[]`` fields) before
validation, as the server does.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

SUBSET = Path(__file__).with_name("openai-subset.json")
REF_PREFIX = "#/components/schemas/"
SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "dependentSchemas"})
SCHEMA_ONE = frozenset(
    {
        "items",
        "additionalProperties",
        "not",
        "propertyNames",
        "contains",
        "unevaluatedProperties",
        "unevaluatedItems",
        "if",
        "then",
        "else",
    }
)
SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})


def _normalize(schema: Any, owner: str) -> Any:
    """Adapt one OpenAPI schema to JSON Schema 2020-12 (see the module docstring)."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _normalize(sub, owner) for name, sub in value.items()}
        elif key in SCHEMA_ONE:
            out[key] = _normalize(value, owner)
        elif key in SCHEMA_LISTS and isinstance(value, list):
            out["anyOf" if key == "oneOf" else key] = [_normalize(sub, owner) for sub in value]
        elif key == "$recursiveRef":
            out["$ref"] = REF_PREFIX + owner
        elif key in ("$recursiveAnchor", "nullable", "discriminator"):
            continue
        else:
            out[key] = value
    if "oneOf" in schema and "anyOf" in schema:
        raise ValueError(f"{owner}: a schema with both oneOf and anyOf")
    if schema.get("nullable") is True:
        out = _allow_null(out)
    return out


def _allow_null(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if isinstance(kind, str) and set(schema) <= _SIMPLE_KEYWORDS:
        out = {**schema, "type": [kind, "null"]}
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        return out
    return {"anyOf": [schema, {"type": "null"}]}


# Keywords that only constrain one type: "type": [t, "null"] keeps their meaning.
_SIMPLE_KEYWORDS = frozenset(
    {
        "type",
        "enum",
        "default",
        "format",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "items",
        "properties",
        "required",
        "additionalProperties",
        "title",
        "deprecated",
        "x-oaiTypeLabel",
        "x-stainless-const",
        "x-oaiMeta",
    }
)


class SpecValidator:
    """Validates requests to, and answers from, the four operations chainvoice uses."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.source: Mapping[str, Any] = document["source"]
        raw = document["components"]["schemas"]
        self.schemas: dict[str, Any] = {name: _normalize(s, name) for name, s in raw.items()}
        self.root: dict[str, Any] = {"components": {"schemas": self.schemas}}
        self.operations: dict[tuple[str, str], tuple[str, str, str]] = {}
        for op_id, op in document["operations"].items():
            ((media, schema),) = op["request"].items()
            name = schema["$ref"][len(REF_PREFIX) :]
            self.operations[(op["method"], op["path"])] = (op_id, media, name)

    @classmethod
    @functools.cache
    def load(cls, path: Path = SUBSET) -> SpecValidator:
        """The validator for the committed subset (loaded once)."""
        return cls(json.loads(path.read_text(encoding="utf-8")))

    # ------------------------------------------------------------------ schema access

    @functools.cache  # noqa: B019 - one validator per process, by design
    def _validator(self, name: str) -> jsonschema.protocols.Validator:
        schema = {**self.root, "$ref": REF_PREFIX + name}
        return jsonschema.Draft202012Validator(schema)

    def _sub_validator(self, schema: Mapping[str, Any]) -> jsonschema.protocols.Validator:
        return jsonschema.Draft202012Validator({**self.root, **schema})

    def resolve(self, schema: Any) -> Any:
        """Follow ``$ref`` until a schema that is not only a reference."""
        while isinstance(schema, dict) and "$ref" in schema:
            ref = schema["$ref"]
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            target = self.schemas[ref[len(REF_PREFIX) :]]
            schema = {"allOf": [target, rest]} if rest else target
        return schema

    def leaves(self, schema: Any) -> Iterator[dict[str, Any]]:
        """Every alternative or part of ``schema`` that is not a combination itself."""
        schema = self.resolve(schema)
        if not isinstance(schema, dict):
            return
        combined = False
        for key in ("allOf", "anyOf"):
            for sub in schema.get(key, []):
                combined = True
                yield from self.leaves(sub)
        rest = {k: v for k, v in schema.items() if k not in ("allOf", "anyOf")}
        if rest or not combined:
            yield rest

    def property_names(self, name: str) -> set[str]:
        """Every top-level property the schema ``name`` declares, through allOf/anyOf."""
        names: set[str] = set()
        for leaf in self.leaves({"$ref": REF_PREFIX + name}):
            names.update(leaf.get("properties", {}))
        return names

    # ------------------------------------------------------------------------ checks

    def validate(self, name: str, instance: Any) -> list[str]:
        """Problems with ``instance`` against the component schema ``name``."""
        validator = self._validator(name)
        schema = self._discriminated(name, instance)
        if schema is not None:
            validator = self._sub_validator(schema)
        return [_describe(error) for error in validator.iter_errors(instance)]

    def _discriminated(self, name: str, instance: Any) -> dict[str, Any] | None:
        """For a union of event types, the one branch whose ``type`` matches (faster)."""
        schema = self.schemas.get(name, {})
        if not (isinstance(instance, dict) and isinstance(instance.get("type"), str)):
            return None
        if "anyOf" not in schema:
            return None
        for branch in schema["anyOf"]:
            target = self.resolve(branch)
            kind = target.get("properties", {}).get("type", {}) if isinstance(target, dict) else {}
            if instance["type"] in kind.get("enum", []):
                return dict(branch)
        return None

    def check_request(self, request: Any) -> list[str]:
        """Problems with a :class:`~chainvoice.testing.RecordedRequest` under the spec."""
        found = self.operations.get((request.method, request.route))
        if found is None:
            return [f"{request.method} {request.route} is not an operation of the spec subset"]
        op_id, media, name = found
        if request.content_type != media:
            return [f"{op_id}: body must be {media}, not {request.content_type}"]
        if media == "application/json":
            instance = request.json
        else:
            instance, problems = self.form_instance(name, request.params)
            if problems:
                return [f"{op_id}: {p}" for p in problems]
        problems = [f"{op_id}: {p}" for p in self.validate(name, instance)]
        if isinstance(instance, dict):
            known = self.property_names(name)
            problems += [
                f"{op_id}: Unknown parameter: '{key}'." for key in instance if key not in known
            ]
        return problems

    def check_response(self, name: str, payload: Any) -> list[str]:
        """Problems with a payload the fake sends, against component schema ``name``."""
        if name not in self.schemas:
            return [f"no schema {name!r} in the spec subset"]
        return self.validate(name, payload)

    # --------------------------------------------------------------------- multipart

    def form_instance(self, name: str, params: Mapping[str, Any]) -> tuple[Any, list[str]]:
        """The JSON value a multipart body stands for, typed as the schema says."""
        problems: list[str] = []
        properties: dict[str, Any] = {}
        for leaf in self.leaves({"$ref": REF_PREFIX + name}):
            properties.update(leaf.get("properties", {}))
        instance: dict[str, Any] = {}
        for key, value in params.items():
            schema = properties.get(key)
            if hasattr(value, "data"):  # a file part
                if schema is not None and not self._is_binary(schema):
                    problems.append(f"{key} must be a text field, not a file part")
                instance[key] = "<binary>"
                continue
            if schema is not None and self._is_binary(schema):
                problems.append(f"{key} must be uploaded as a file part, not a text field")
            instance[key] = self.coerce(value, schema) if schema is not None else value
        return instance, problems

    def _is_binary(self, schema: Any) -> bool:
        return any(leaf.get("format") == "binary" for leaf in self.leaves(schema))

    def coerce(self, value: Any, schema: Any) -> Any:
        """Read form ``value`` (strings, lists, dicts of them) as ``schema`` types it."""
        if isinstance(value, list):
            items = [leaf["items"] for leaf in self.leaves(schema) if "items" in leaf]
            union = {"anyOf": items} if items else {}
            return [self.coerce(v, union) for v in value]
        if isinstance(value, dict):
            out = {}
            for key, sub in value.items():
                options = [
                    leaf["properties"][key]
                    for leaf in self.leaves(schema)
                    if key in leaf.get("properties", {})
                ]
                out[key] = self.coerce(sub, {"anyOf": options}) if options else sub
            return out
        if not isinstance(value, str):
            return value
        candidates: list[Any] = [value]
        with contextlib.suppress(ValueError):
            candidates.append(json.loads(value))
        validator = self._sub_validator(schema)
        for candidate in candidates:
            if validator.is_valid(candidate):
                return candidate
        return (
            candidates[-1] if len(candidates) > 1 and not isinstance(candidates[-1], str) else value
        )


def _describe(error: ValidationError) -> str:
    best = best_match([error]) or error
    where = best.json_path.removeprefix("$.").removeprefix("$") or "body"
    message = best.message
    if len(message) > 300:  # a long instance in the message: keep both ends
        message = message[:150] + " ... " + message[-150:]
    return f"{where}: {message}"


__all__ = ["SUBSET", "SpecValidator"]
