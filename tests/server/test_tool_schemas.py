"""The output schemas `tools/list` shows are compacted (`compact_schema`); they must accept and reject exactly what
pydantic's own schema of the outcome does."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry

from argobox.adapters.base import ContainerDetail, Mount, PortBinding
from argobox.server.mediation.outcome import CallStatus, Outcome
from argobox.server.mediation.schema import compact_schema
from argobox.server.mediation.tools import TOOLS

DETAIL = ContainerDetail(
    id="28d81f2e7f99",
    name="jellyfin",
    image="jellyfin/jellyfin:10.9",
    state="running",
    health=None,
    restart_count=0,
    exit_code=None,
    ports=[PortBinding(container_port="8096/tcp", host_port="8096")],
    mounts=[Mount(type="bind", source="/srv/media", destination="/media", read_only=True)],
    labels={"lab": "x"},
    env={"TZ": "UTC"},
    created_at="2026-11-25T05:46:06Z",
    started_at=None,
    finished_at=None,
).model_dump(mode="json")


def valid(validator: Draft202012Validator, document: Any) -> bool:
    """Whether `validator` accepts `document` (jsonschema leaves the type of is_valid open)."""
    return bool(validator.is_valid(document))  # pyright: ignore[reportUnknownMemberType]


def _validators(tool: str) -> tuple[Draft202012Validator, Draft202012Validator]:
    spec = TOOLS[tool]
    result: Any = spec.result if spec.result is not None else dict[str, Any]
    model: Any = Outcome[result]
    original = model.model_json_schema()
    shown = spec.mcp_tool().output_schema
    assert shown is not None
    Draft202012Validator.check_schema(shown)
    return (Draft202012Validator(original, registry=Registry()), Draft202012Validator(shown, registry=Registry()))


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_every_shown_output_schema_is_self_contained_and_valid(tool: str) -> None:
    text = json.dumps(_validators(tool)[1].schema)
    assert "$ref" not in text and "$defs" not in text


@pytest.mark.parametrize("status", ["succeeded", "pending_approval", "denied", "rate_limited"])
def test_the_shown_schema_accepts_and_rejects_exactly_what_pydantic_does(status: str) -> None:
    original, shown = _validators("docker_inspect_container")
    document = Outcome[ContainerDetail](
        status=CallStatus(status),
        message="m",
        request_id="r",
        tool="docker_inspect_container",
        result=ContainerDetail.model_validate(DETAIL) if status == "succeeded" else None,
        limit="requests_per_minute" if status == "rate_limited" else None,
    ).model_dump(mode="json")
    variants = _mutations(document)
    assert len(variants) > 100
    verdicts = [(valid(original, v), valid(shown, v)) for v in variants]
    assert all(a == b for a, b in verdicts), [v for v, (a, b) in zip(variants, verdicts, strict=True) if a != b][:3]
    assert any(a for a, _ in verdicts) and not all(a for a, _ in verdicts)  # both kinds were tried


def _sample(schema: dict[str, Any], defs: dict[str, Any], *, last: bool) -> Any:
    """A document valid for pydantic's `schema`, taking the first (or, with `last`, the last) branch of each anyOf."""
    if "$ref" in schema:
        return _sample(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, last=last)
    if "anyOf" in schema:
        return _sample(schema["anyOf"][-1 if last else 0], defs, last=last)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties")
        if not properties:
            return {"key": "value"}
        return {k: _sample(v, defs, last=last) for k, v in properties.items()}
    if kind == "array":
        return [_sample(schema.get("items", {}), defs, last=last)]
    return {"integer": 1, "number": 1.5, "boolean": True, "null": None}.get(str(kind), "text")


def _mutations(document: Any, depth: int = 0) -> list[Any]:
    """`document` and documents that differ from it in one place, at any depth."""
    out = [document]
    values: tuple[Any, ...] = (None, 1, 1.5, "x", True, [], {}, ["x"], {"x": 1}, [None], [{}])
    if isinstance(document, dict) and depth < 4:
        fields = cast("dict[str, Any]", document)
        for key in list(fields):
            out += [{**fields, key: v} for v in values]
            out.append({k: v for k, v in fields.items() if k != key})
            out += [{**fields, key: sub} for sub in _mutations(fields[key], depth + 1)[1:]]
        out.append({**fields, "unexpected": 1})
    elif isinstance(document, list) and depth < 4:
        items = cast("list[Any]", document)
        out.append([])
        for i, item in enumerate(items):
            for sub in [*_mutations(item, depth + 1)[1:], *values]:
                changed = list(items)
                changed[i] = sub
                out.append(changed)
        out.append(items + items)
    return out


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_every_tool_schema_agrees_with_pydantic_on_results_of_every_shape(tool: str) -> None:
    original, shown = _validators(tool)
    schema = original.schema
    assert isinstance(schema, dict)  # pydantic's schema of a model is an object
    defs = schema.get("$defs", {})
    verdicts: list[bool] = []
    for last in (False, True):
        result = _sample(schema["properties"]["result"]["anyOf"][0], defs, last=last)
        for status in ("succeeded", "denied"):
            document = {"status": status, "message": "m", "request_id": "r", "tool": tool, "result": result}
            for variant in _mutations(document):
                verdict = valid(original, variant)
                assert valid(shown, variant) == verdict, variant
                verdicts.append(verdict)
    assert any(verdicts) and not all(verdicts)


def test_only_what_means_the_same_is_merged() -> None:
    schema = {
        "type": "object",
        "properties": {
            "plain": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "listed": {"anyOf": [{"type": "string", "enum": ["a"]}, {"type": "null"}]},  # enum would refuse null
            "typed": {"anyOf": [{"$ref": "#/$defs/Thing"}, {"type": "null"}]},
            "three": {"anyOf": [{"type": "string", "pattern": "^a"}, {"type": "integer"}, {"type": "null"}]},
        },
        "$defs": {"Thing": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}},
    }
    compact = compact_schema(schema)
    properties = compact["properties"]
    assert properties["plain"] == {"type": ["string", "null"]}
    assert properties["typed"]["type"] == ["object", "null"] and properties["typed"]["required"] == ["n"]
    assert "anyOf" in properties["listed"] and "anyOf" in properties["three"]
    validator = Draft202012Validator(compact)
    for good in (
        {"plain": None, "listed": None, "typed": None, "three": None},
        {"listed": "a", "typed": {"n": 1}, "three": 3},
    ):
        assert valid(validator, good)
    bad_documents: list[dict[str, Any]] = [{"listed": "b"}, {"typed": {}}, {"three": "b"}, {"plain": 1}]
    for bad in bad_documents:
        assert not valid(validator, bad)


def test_a_recursive_reference_is_refused_rather_than_expanded_forever() -> None:
    schema = {
        "$ref": "#/$defs/Node",
        "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
    }
    with pytest.raises(ValueError, match="recursive"):
        compact_schema(schema)


def _agree(original: dict[str, Any], documents: list[Any]) -> dict[str, Any]:
    compact = compact_schema(original)
    before, after = Draft202012Validator(original), Draft202012Validator(compact)
    for document in documents:
        assert valid(before, document) == valid(after, document), (compact, document)
    return compact


def test_a_keyword_beside_an_anyof_or_a_ref_is_never_lost_or_overridden() -> None:
    _agree(
        {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}], "maxLength": 10}, ["abc", "abcdef", None, 1]
    )
    _agree(
        {
            "type": "object",
            "properties": {"t": {"$ref": "#/$defs/T", "required": ["b"]}},
            "$defs": {"T": {"type": "object", "required": ["a"]}},
        },
        [{"t": {"a": 1, "b": 2}}, {"t": {"a": 1}}, {"t": {"b": 2}}],
    )
    compact = _agree(
        {
            "properties": {"t": {"$ref": "#/$defs/T", "description": "d"}},
            "$defs": {"T": {"type": "integer", "title": "T"}},
        },
        [{"t": 1}, {"t": "x"}],
    )
    assert compact["properties"]["t"] == {"type": "integer", "title": "T", "description": "d"}


def test_values_and_names_are_not_schemas() -> None:
    schema = {
        "type": "object",
        "properties": {
            "$defs": {"type": "string"},  # a property that happens to be called $defs
            "pick": {"enum": [{"anyOf": [1]}, {"$ref": "x"}], "default": {"anyOf": [{"type": "null"}]}},
        },
        "required": ["$defs"],
    }
    compact = _agree(schema, [{"$defs": "x", "pick": {"anyOf": [1]}}, {"pick": {"$ref": "x"}}, {"$defs": 1}])
    assert compact == schema


def test_a_branch_whose_keywords_also_judge_null_keeps_its_anyof() -> None:
    cases: list[dict[str, Any]] = [
        {"anyOf": [{"type": "object", "properties": {"a": {}}, "unevaluatedProperties": False}, {"type": "null"}]},
        {"anyOf": [{"type": "string", "const": "a"}, {"type": "null"}]},
        {"anyOf": [{"type": "string", "not": {"const": "a"}}, {"type": "null"}]},
    ]
    for case in cases:
        assert "anyOf" in _agree(case, [None, "a", "b", {"a": 1}, {"a": 1, "b": 2}, {}])
