"""Validate --json output against docs/schema/*.json (JSON Schema draft 2020-12)."""

from __future__ import annotations

import functools
import json
import os
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "schema")
PREFIX = "urn:flight_profiler:schema:"


@functools.lru_cache(maxsize=1)
def schemas() -> dict[str, dict[str, Any]]:
    """Every schema by its short name (the file name without .json)."""
    found = {}
    for name in sorted(os.listdir(SCHEMA_DIR)):
        if name.endswith(".json"):
            with open(os.path.join(SCHEMA_DIR, name)) as fh:
                found[name[: -len(".json")]] = json.load(fh)
    return found


@functools.lru_cache(maxsize=None)
def validator(name: str) -> Draft202012Validator:
    registry: Registry = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in schemas().values()
    )
    return Draft202012Validator(schemas()[name], registry=registry)


def problems(record: dict[str, Any]) -> list[str]:
    """Why ``record`` (one --json line) does not match the envelope and its command's schema."""
    found = [_describe(error) for error in validator("envelope").iter_errors(record)]
    if found or "result" not in record:
        return found
    command = record["command"]
    if command not in schemas():
        return ["no schema for command %r in docs/schema" % command]
    return [_describe(error) for error in validator(command).iter_errors(record["result"])]


def _describe(error: Any) -> str:
    where = "/".join(str(part) for part in error.absolute_path) or "(top)"
    return "%s: %s" % (where, error.message)
