"""Extract the part of OpenAI's OpenAPI spec that chainvoice's tests check requests against.

Run from the repository root when the upstream spec changes::

    python tests/openapi/extract.py ../shared/openai-openapi/openapi.yaml \
        --commit <sha> --date <YYYY-MM-DD>

It writes ``tests/openapi/openai-subset.json``: the four operations chainvoice calls
(createSpeech, createTranscription, createResponse, createChatCompletion), with their
request and 200-response schemas and every component schema they reference, resolved
recursively. Documentation-only keywords (``description``, ``example``, ``examples``,
``x-oaiMeta``) are dropped; every other keyword is kept exactly as upstream wrote it, so
the validator (``tests/openapi/validator.py``) sees the upstream schemas, and applies its
OpenAPI-to-JSON-Schema adjustments at load time where they are visible and documented.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

#: The operations chainvoice calls, by upstream operationId.
OPERATIONS = ("createSpeech", "createTranscription", "createResponse", "createChatCompletion")
#: Extra component schemas the tests use (error bodies).
EXTRA_SCHEMAS = ("ErrorResponse",)
#: Keywords that only document; dropping them does not change what validates.
DOC_KEYWORDS = frozenset({"description", "example", "examples", "x-oaiMeta"})
#: Keywords whose value maps names to schemas (the names must not be treated as keywords).
SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "dependentSchemas"})
#: Keywords whose value is one schema.
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
#: Keywords whose value is a list of schemas.
SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
REF_PREFIX = "#/components/schemas/"


def strip_docs(schema: Any) -> Any:
    """Return ``schema`` without documentation keywords, walking only schema positions."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in DOC_KEYWORDS:
            continue
        if key in SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: strip_docs(sub) for name, sub in value.items()}
        elif key in SCHEMA_ONE:
            out[key] = strip_docs(value)
        elif key in SCHEMA_LISTS and isinstance(value, list):
            out[key] = [strip_docs(sub) for sub in value]
        else:
            out[key] = value
    return out


def collect_refs(node: Any, schemas: dict[str, Any], found: set[str]) -> None:
    """Add to ``found`` every component schema ``node`` references, recursively."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if not ref.startswith(REF_PREFIX):
                raise ValueError(f"unsupported $ref {ref!r}")
            name = ref[len(REF_PREFIX) :]
            if name not in found:
                found.add(name)
                collect_refs(schemas[name], schemas, found)
        for value in node.values():
            collect_refs(value, schemas, found)
    elif isinstance(node, list):
        for value in node:
            collect_refs(value, schemas, found)


def extract(spec: dict[str, Any]) -> dict[str, Any]:
    """Return the subset document for :data:`OPERATIONS`."""
    schemas = spec["components"]["schemas"]
    operations: dict[str, Any] = {}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict) or op.get("operationId") not in OPERATIONS:
                continue
            request = {
                media: strip_docs(body["schema"])
                for media, body in op["requestBody"]["content"].items()
            }
            ok = op["responses"]["200"].get("content", {})
            responses = {media: strip_docs(body["schema"]) for media, body in ok.items()}
            operations[op["operationId"]] = {
                "method": method.upper(),
                "path": path,
                "request": request,
                "responses": responses,
            }
    missing = set(OPERATIONS) - set(operations)
    if missing:
        raise ValueError(f"operations not found upstream: {sorted(missing)}")
    found: set[str] = set(EXTRA_SCHEMAS)
    for name in EXTRA_SCHEMAS:
        collect_refs(schemas[name], schemas, found)
    collect_refs(operations, schemas, found)
    return {
        "operations": operations,
        "components": {"schemas": {name: strip_docs(schemas[name]) for name in sorted(found)}},
    }


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", type=Path, help="upstream openapi.yaml")
    parser.add_argument("--commit", required=True, help="upstream commit of the spec")
    parser.add_argument("--date", required=True, help="date of that commit (YYYY-MM-DD)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("openai-subset.json"))
    args = parser.parse_args()
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with args.spec.open("rb") as handle:
        spec = yaml.load(handle, Loader=loader)  # a safe loader (C-accelerated if available)
    subset = extract(spec)
    document = {
        "source": {
            "repository": "https://github.com/openai/openai-openapi",
            "file": "openapi.yaml",
            "commit": args.commit,
            "date": args.date,
            "spec_version": spec["info"]["version"],
            "extracted_by": "tests/openapi/extract.py",
        },
        **subset,
    }
    args.out.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {len(subset['components']['schemas'])} component schemas")


if __name__ == "__main__":
    main()
