"""The surface report says per agent what it sees, what of it changes things, and what runs without approval."""

from __future__ import annotations

from argobox.server.config.model import load_config
from argobox.server.mediation.surface import surface, surface_lines
from tests.conftest import WriteConfig

PRE_APPROVED = """
[[agents.openclaw.rules]]
tools = ["docker_start_container"]
args = { container = ["backup"] }
effect = "allow"
"""


def test_the_report_names_each_unapproved_mutation_with_its_rule_and_targets(write_config: WriteConfig) -> None:
    report = surface(load_config(write_config(extra=PRE_APPROVED)))
    by_agent = {entry["agent"]: entry for entry in report["agents"]}
    lines = surface_lines(report)

    assert by_agent["openclaw"]["mutations"] == [
        "docker_restart_container",
        "docker_start_container",
        "docker_stop_container",
    ]
    assert by_agent["openclaw"]["mutations_without_approval"] == [
        {"tool": "docker_start_container", "rule": "agents.openclaw.rules[2]", "only_for": {"container": ["backup"]}}
    ]
    assert by_agent["reader"]["tools"] == ["docker_list_containers"] and by_agent["reader"]["mutations"] == []
    assert (
        "  runs WITHOUT approval: docker_start_container by agents.openclaw.rules[2] (container in ['backup'])" in lines
    )
    assert any(line.startswith("docker: tested against Docker Engine") for line in lines)
    assert not any(line.startswith("homeassistant:") for line in lines)
