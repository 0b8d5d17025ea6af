"""A small JSON Schema validator for the subset of draft 2020-12 that nnvis's schema uses.

Blender extensions should not pull in third-party wheels just to validate one document, so the
reader validates against ``schema/nnvis-format-1.schema.json`` with this module. The test suite
checks it agrees with the ``jsonschema`` package on the same documents.
"""

from __future__ import annotations

import re
import reprlib
from typing import Any

SUPPORTED_KEYWORDS = frozenset({
    "$schema", "$id", "title", "description", "$defs", "$ref",
    "type", "enum", "const", "properties", "required", "additionalProperties",
    "items", "minItems", "maxItems", "minimum", "maximum", "minLength", "maxLength", "pattern",
})


class SchemaViolation(ValueError):
    """One place where a document breaks the schema; ``path`` is a JSON pointer-like string."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path or '/'}: {message}")
        self.path = path or "/"
        self.message = message


def _type_matches(value: Any, type_name: str) -> bool:
    if type_name == "object":
        return isinstance(value, dict)
    if type_name == "array":
        return isinstance(value, list)
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_name == "boolean":
        return isinstance(value, bool)
    if type_name == "null":
        return value is None
    raise ValueError(f"unsupported schema type {type_name!r}")


def _resolve_ref(root: dict, ref: str) -> dict:
    if not ref.startswith("#/"):
        raise ValueError(f"only local $ref is supported, got {ref!r}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def check_schema_keywords(schema: Any) -> None:
    """Refuse a schema that uses keywords this validator would silently ignore."""
    if isinstance(schema, dict):
        unknown = set(schema) - SUPPORTED_KEYWORDS
        if unknown:
            raise ValueError(f"schema uses unsupported keywords: {sorted(unknown)}")
        for key, sub in schema.items():
            if key in ("properties", "$defs"):
                for child in sub.values():
                    check_schema_keywords(child)
            elif key in ("items", "additionalProperties") and isinstance(sub, dict):
                check_schema_keywords(sub)


def validate(document: Any, schema: dict, *, ignore_unknown_fields: bool = False) -> None:
    """Raise :class:`SchemaViolation` at the first place ``document`` breaks ``schema``.

    ``ignore_unknown_fields`` treats ``additionalProperties: false`` as true: a reader of an
    older minor version skips the fields a newer minor version added.
    """
    _validate(document, schema, schema, "", ignore_unknown_fields)


def _validate(value: Any, schema: dict, root: dict, path: str, lenient: bool) -> None:
    if "$ref" in schema:
        _validate(value, _resolve_ref(root, schema["$ref"]), root, path, lenient)
    if "const" in schema and value != schema["const"]:
        raise SchemaViolation(path, f"must be {schema['const']!r}, got {_short(value)}")
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaViolation(path, f"must be one of {schema['enum']}, got {_short(value)}")
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_type_matches(value, t) for t in types):
            raise SchemaViolation(path, f"must be of type {' or '.join(types)}, got {_json_type(value)}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise SchemaViolation(path, f"must be >= {schema['minimum']}, got {value}")
        if "maximum" in schema and value > schema["maximum"]:
            raise SchemaViolation(path, f"must be <= {schema['maximum']}, got {value}")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            raise SchemaViolation(path, f"must have at least {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise SchemaViolation(path, f"must have at most {schema['maxLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise SchemaViolation(path, f"must match {schema['pattern']!r}, got {_short(value)}")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            raise SchemaViolation(path, f"must have at least {schema['minItems']} items, got {len(value)}")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise SchemaViolation(path, f"must have at most {schema['maxItems']} items, got {len(value)}")
        item_schema = schema.get("items")
        if isinstance(item_schema, dict):
            for index, item in enumerate(value):
                _validate(item, item_schema, root, f"{path}/{index}", lenient)
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                raise SchemaViolation(path, f"missing required field {key!r}")
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                _validate(item, properties[key], root, f"{path}/{key}", lenient)
            elif extra is False and not lenient:
                raise SchemaViolation(path, f"unknown field {key!r}")
            elif isinstance(extra, dict):
                _validate(item, extra, root, f"{path}/{key}", lenient)


def _json_type(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _type_matches(value, name):
            return name
    return type(value).__name__


def _bounded_repr() -> reprlib.Repr:
    bounded = reprlib.Repr()
    bounded.maxlevel = 3
    bounded.maxlist = bounded.maxtuple = bounded.maxdict = bounded.maxset = 6
    bounded.maxstring = bounded.maxother = bounded.maxlong = 80
    return bounded


_REPR = _bounded_repr()


def short_repr(value: Any, limit: int = 60) -> str:
    """repr() of a value from an untrusted document, bounded in size and nesting depth.

    A plain repr() of a string of hundreds of megabytes, or of a list nested a thousand levels
    deep, costs memory or raises RecursionError; this never does."""
    try:
        text = _REPR.repr(value)
    except (ValueError, RecursionError):  # e.g. an int too long for str()
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit - 3] + "..."


_short = short_repr
