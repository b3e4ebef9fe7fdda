"""The tool table (wire shape and runner of each tool) and the policy's catalog (classification) name the same tools."""

from __future__ import annotations

from argobox.policy.catalog import BUILTIN_TOOLS, CATALOG, Classification
from argobox.server.mediation.tools import TOOLS


def test_every_catalog_tool_has_a_spec_and_every_spec_is_classified_or_built_in() -> None:
    assert set(CATALOG) - set(TOOLS) == set()
    assert set(TOOLS) - set(CATALOG) == set(BUILTIN_TOOLS)


def test_every_classified_tool_runs_and_its_targets_are_its_own_arguments() -> None:
    for name, tool_class in CATALOG.items():
        spec = TOOLS[name]
        assert spec.run is not None, name
        assert set(tool_class.target_args) <= set(spec.args.model_fields), name


def test_annotations_follow_the_classification() -> None:
    for name, tool_class in CATALOG.items():
        annotations = TOOLS[name].mcp_tool().annotations
        assert annotations is not None
        assert annotations.read_only_hint is (tool_class.classification is Classification.READ), name
