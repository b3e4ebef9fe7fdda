"""Table tests of the pure policy: decisions, visibility, and the grant checks config loading relies on."""

from __future__ import annotations

from typing import Any

import pytest

from argobox.policy.catalog import BUILTIN_TOOLS, CATALOG, Classification, describe_call
from argobox.policy.decide import (
    Effect,
    Grant,
    Rule,
    canonical_json,
    check_grant,
    decide,
    item_visible,
    request_digest,
    visible_tools,
)

READS = ("docker_list_containers", "docker_inspect_container", "docker_container_logs")
MUTATIONS = ("docker_restart_container", "docker_start_container", "docker_stop_container")


def grant(*rules: tuple[tuple[str, ...], dict[str, tuple[str, ...]], str]) -> Grant:
    return Grant(
        agent="openclaw",
        rules=tuple(Rule(tools=tools, args=args, effect=Effect(effect)) for tools, args, effect in rules),
    )


STANDARD = grant(
    (READS, {}, "allow"),
    (MUTATIONS, {"container": ("jellyfin", "web-*")}, "approve"),
)


@pytest.mark.parametrize(
    ("g", "tool", "args", "effect", "rule", "reason_part"),
    [
        pytest.param(STANDARD, "docker_list_containers", {"all": True}, "allow", "agents.openclaw.rules[0]",
                     "allows docker_list_containers", id="read-allowed"),
        pytest.param(STANDARD, "docker_restart_container", {"container": "jellyfin"}, "approve",
                     "agents.openclaw.rules[1]", "requires operator approval", id="mutation-in-grant-needs-approval"),
        pytest.param(STANDARD, "docker_restart_container", {"container": "web-api"}, "approve",
                     "agents.openclaw.rules[1]", "requires operator approval", id="glob-matches"),
        pytest.param(STANDARD, "docker_restart_container", {"container": "postgres"}, "deny", None,
                     "container 'postgres' is outside the grant", id="argument-outside-grant"),
        pytest.param(STANDARD, "docker_restart_container", {"container": "web"}, "deny", None,
                     "allows only 'jellyfin', 'web-*'", id="glob-does-not-match-prefix-alone"),
        pytest.param(STANDARD, "docker_exec", {"cmd": "sh"}, "deny", None, "not a classified tool",
                     id="unclassified-tool"),
        pytest.param(grant(), "docker_list_containers", {}, "deny", None, "no rule of agent 'openclaw' grants",
                     id="empty-grant-denies"),
        pytest.param(
            grant((("docker_*",), {}, "allow"), (("docker_stop_container",), {}, "deny")),
            "docker_stop_container", {"container": "x"}, "deny", "agents.openclaw.rules[1]", "denies",
            id="deny-wins-over-allow"),
        pytest.param(
            grant((MUTATIONS, {"container": ("web-1",)}, "allow"), (MUTATIONS, {"container": ("web-*",)}, "approve")),
            "docker_restart_container", {"container": "web-1"}, "approve", "agents.openclaw.rules[1]", "approval",
            id="approve-wins-over-allow"),
        pytest.param(
            grant((MUTATIONS, {"container": ("web-1",)}, "allow")),
            "docker_restart_container", {"container": "web-1"}, "allow", "agents.openclaw.rules[0]", "allows",
            id="constrained-mutation-may-be-pre-approved"),
        pytest.param(
            grant((MUTATIONS, {}, "allow")),
            "docker_restart_container", {"container": "web-1"}, "approve", "agents.openclaw.rules[0]",
            "without naming its targets", id="blanket-allow-of-mutation-still-needs-approval"),
        pytest.param(
            grant((MUTATIONS, {"container": ("*",)}, "allow")),
            "docker_stop_container", {"container": "db"}, "approve", "agents.openclaw.rules[0]",
            "without naming its targets", id="match-all-glob-is-no-constraint"),
        pytest.param(STANDARD, "docker_restart_container", {}, "deny", None, "(missing)",
                     id="missing-target-argument-never-matches"),
        pytest.param(STANDARD, "docker_restart_container", {"container": ["jellyfin", "postgres"]}, "deny", None,
                     "outside the grant", id="list-argument-needs-every-element"),
        pytest.param(STANDARD, "docker_restart_container", {"container": []}, "deny", None,
                     "outside the grant", id="empty-list-matches-nothing"),
        pytest.param(STANDARD, "docker_restart_container", {"container": 7}, "deny", None,
                     "outside the grant", id="non-string-never-matches-a-glob"),
    ],
)
def test_decide(g: Grant, tool: str, args: dict[str, Any], effect: str, rule: str | None, reason_part: str) -> None:
    decision = decide(g, tool, args)

    assert (decision.effect.value, decision.rule) == (effect, rule)
    assert reason_part in decision.reason


def test_every_decision_names_its_rule_or_says_none_matched() -> None:
    for tool in CATALOG:
        for container in ("jellyfin", "postgres"):
            decision = decide(STANDARD, tool, {"container": container})
            assert decision.rule is not None or "grant" in decision.reason or "no rule" in decision.reason


def test_glob_matching_is_case_sensitive() -> None:
    assert decide(STANDARD, "docker_restart_container", {"container": "Jellyfin"}).effect is Effect.DENY


def test_visible_tools_lists_granted_tools_and_builtins_sorted() -> None:
    assert visible_tools(STANDARD) == sorted({*READS, *MUTATIONS, *BUILTIN_TOOLS})
    assert visible_tools(grant()) == sorted(BUILTIN_TOOLS)


def test_tool_only_named_by_deny_rules_or_denied_outright_is_hidden() -> None:
    g = grant((("docker_*",), {}, "allow"), (("docker_stop_container",), {}, "deny"),
              (("docker_start_container",), {"container": ("x",)}, "deny"))

    visible = visible_tools(g)

    assert "docker_stop_container" not in visible
    assert "docker_start_container" in visible  # denied only for container x


def test_list_filter_shows_only_items_inside_the_grant() -> None:
    g = grant(
        (("docker_list_containers",), {"container": ("web-*",)}, "allow"),
        (("docker_list_containers",), {"container": ("web-secret",)}, "deny"),
    )

    assert decide(g, "docker_list_containers", {"all": False}).effect is Effect.ALLOW
    assert item_visible(g, "docker_list_containers", "container", "web-api")
    assert not item_visible(g, "docker_list_containers", "container", "web-secret")
    assert not item_visible(g, "docker_list_containers", "container", "postgres")


def test_unconstrained_list_shows_every_item() -> None:
    assert item_visible(STANDARD, "docker_list_containers", "container", "anything")


@pytest.mark.parametrize(
    ("rules", "problem"),
    [
        pytest.param([(("docker_restart_container",), {}, "allow")], "without approval on any target",
                     id="blanket-allow-of-mutation"),
        pytest.param([(("docker_*",), {}, "allow")], "without approval on any target", id="glob-covers-mutations"),
        pytest.param([(MUTATIONS, {"container": ("**",)}, "allow")], "without approval", id="match-all-glob"),
        pytest.param([(("docker_restart",), {}, "approve")], "matches no known tool", id="typo-in-tool-name"),
        pytest.param([(("argobox_request_status",), {}, "deny")], "built in", id="builtin-not-grantable"),
        pytest.param([(MUTATIONS, {"image": ("x",)}, "approve")], "'image' is not an argument", id="unknown-argument"),
    ],
)
def test_check_grant_rejects_unsafe_or_meaningless_rules(
    rules: list[tuple[tuple[str, ...], dict[str, tuple[str, ...]], str]], problem: str
) -> None:
    problems = check_grant(grant(*rules))

    assert any(problem in p and "agents.openclaw.rules[0]" in p for p in problems), problems


def test_check_grant_accepts_the_standard_grant_and_constrained_pre_approval() -> None:
    assert check_grant(STANDARD) == []
    assert check_grant(grant((MUTATIONS, {"container": ("web-1", "web-2")}, "allow"))) == []


def test_every_tool_is_classified_and_mutations_name_their_targets() -> None:
    for tool in CATALOG.values():
        assert tool.classification in (Classification.READ, Classification.MUTATE)
        if tool.classification is Classification.MUTATE:
            assert tool.target_args, tool.name


def test_request_digest_binds_agent_tool_and_canonical_arguments() -> None:
    base = request_digest("openclaw", "docker_restart_container", {"container": "jellyfin", "x": 1})

    assert base == request_digest("openclaw", "docker_restart_container", {"x": 1, "container": "jellyfin"})
    assert base != request_digest("other", "docker_restart_container", {"container": "jellyfin", "x": 1})
    assert base != request_digest("openclaw", "docker_stop_container", {"container": "jellyfin", "x": 1})
    assert base != request_digest("openclaw", "docker_restart_container", {"container": "jellyfin2", "x": 1})
    assert canonical_json({"b": 1, "a": [2]}) == '{"a":[2],"b":1}'


def test_describe_call_reads_as_words() -> None:
    assert describe_call("docker_restart_container", {"container": "jellyfin"}) == "restart container 'jellyfin'"
    assert describe_call("unknown_tool", {}) == "unknown_tool"
