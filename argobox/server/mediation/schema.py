"""A JSON-Schema rewriter: the same schema in the form MCP clients validate fastest."""

from __future__ import annotations

from typing import Any, cast


def compact_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The same JSON Schema in the form clients validate fastest: local `$ref`s inlined (none of our models is
    recursive) and pydantic's `X | None` (`anyOf` with `null`) written as one list of types where that means the same.

    Clients check every structured result against the output schema; with `jsonschema`, resolving a `$ref` and
    trying each branch of an `anyOf` are its costliest steps (this form halves the check of an inspect result).
    Only schema positions are rewritten (never `enum`, `const`, `default` or `examples` values, nor property names),
    and a node is merged only when every keyword beside it is an annotation.
    """
    defs: dict[str, Any] = schema.get("$defs", {})

    def walk(node: Any, expanding: frozenset[str]) -> Any:
        if not isinstance(node, dict):
            return node  # true / false
        obj = cast("dict[str, Any]", node)
        ref = obj.get("$ref")
        if ref is not None:
            name = ref.removeprefix("#/$defs/") if isinstance(ref, str) else ""
            if not isinstance(ref, str) or not ref.startswith("#/$defs/") or name not in defs or name in expanding:
                raise ValueError(f"cannot inline {ref!r} (not local, missing or recursive)")
            target = walk(defs[name], expanding | {name})
            rest = walk({k: v for k, v in obj.items() if k != "$ref"}, expanding)
            if set(rest) <= _ANNOTATIONS:
                return {**target, **rest}
            return {**rest, "allOf": [target, *rest.get("allOf", [])]}
        out: dict[str, Any] = {}
        for key, value in obj.items():
            if key == "$defs" and obj is schema:
                continue  # all inlined
            if key in _SCHEMA_MAPS and isinstance(value, dict):
                out[key] = {k: walk(v, expanding) for k, v in cast("dict[str, Any]", value).items()}
            elif key in _SCHEMA_LISTS and isinstance(value, list):
                out[key] = [walk(v, expanding) for v in cast("list[Any]", value)]
            elif key in _SCHEMA_VALUES:
                out[key] = walk(value, expanding)
            else:
                out[key] = value
        branches = out.get("anyOf")
        if isinstance(branches, list) and set(out) - {"anyOf"} <= _ANNOTATIONS:
            merged = _merge_nullable(cast("list[Any]", branches))
            if merged is not None:
                out = {**merged, **{k: v for k, v in out.items() if k != "anyOf"}}
        return out

    return walk(schema, frozenset())


_ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly", "$comment"}
)
"""Keywords that never change what a schema accepts."""
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "dependentSchemas"})
_SCHEMA_LISTS = frozenset({"anyOf", "allOf", "oneOf", "prefixItems"})
_SCHEMA_VALUES = frozenset(
    {
        "items",
        "additionalProperties",
        "not",
        "contains",
        "propertyNames",
        "if",
        "then",
        "else",
        "unevaluatedItems",
        "unevaluatedProperties",
    }
)
_NUMERIC = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"})
_ONLY_FOR_TYPE: dict[str, frozenset[str]] = {
    "object": frozenset(
        {
            "properties",
            "required",
            "additionalProperties",
            "patternProperties",
            "propertyNames",
            "minProperties",
            "maxProperties",
            "dependentRequired",
        }
    ),
    "array": frozenset(
        {"items", "prefixItems", "minItems", "maxItems", "uniqueItems", "contains", "minContains", "maxContains"}
    ),
    "string": frozenset({"minLength", "maxLength", "pattern", "format"}),
    "integer": _NUMERIC,
    "number": _NUMERIC,
}
"""Keywords that constrain only values of one JSON type: `null` passes them, so a branch holding only these may
merge with `null`. Anything else (enum, const, not, unevaluated*, ...) keeps its `anyOf`."""


def _merge_nullable(branches: list[Any]) -> dict[str, Any] | None:
    """`anyOf` branches as one schema with a list of types, when that means the same; otherwise None.

    Branches of bare types merge (`{"type": ["string", "null"]}`), and so does one typed branch with `null` when its
    other keywords only apply to values of its type (properties, items, pattern, ...).
    """
    if not all(isinstance(b, dict) and isinstance(cast("dict[str, Any]", b).get("type"), str) for b in branches):
        return None
    types_ = [b["type"] for b in branches]
    if len(set(types_)) != len(types_):
        return None
    constrained = [b for b in branches if set(b) - {"type"} - _ANNOTATIONS]
    if not constrained:
        return {"type": types_}
    if len(branches) == 2 and len(constrained) == 1 and "null" in types_:
        branch = constrained[0]
        if set(branch) - {"type"} - _ANNOTATIONS <= _ONLY_FOR_TYPE.get(branch["type"], frozenset()):
            return {**branch, "type": types_}
    return None
