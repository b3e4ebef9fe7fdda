"""Table tests of the pure policy: decisions, visibility, and the grant checks config loading relies on."""

from __future__ import annotations

import re
from typing import Any

import pytest

from argobox.policy.catalog import BUILTIN_TOOLS, CATALOG, Backend, Classification, describe_call, tools_for
from argobox.policy.decide import (
    SENSITIVE_HA_DOMAINS,
    Effect,
    Grant,
    Rule,
    canonical_json,
    check_grant,
    decide,
    item_visible,
    item_visible_by,
    may_call,
    request_digest,
    visible_tools,
)

READS = ("docker_list_containers", "docker_inspect_container", "docker_container_logs")
MUTATIONS = ("docker_restart_container", "docker_start_container", "docker_stop_container")
NO_ARGS: dict[str, tuple[str, ...]] = {}
"""A rule's `args` that constrain nothing."""


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
        pytest.param(
            STANDARD,
            "docker_list_containers",
            {"all": True},
            "allow",
            "agents.openclaw.rules[0]",
            "allows docker_list_containers",
            id="read-allowed",
        ),
        pytest.param(
            STANDARD,
            "docker_restart_container",
            {"container": "jellyfin"},
            "approve",
            "agents.openclaw.rules[1]",
            "requires operator approval",
            id="mutation-in-grant-needs-approval",
        ),
        pytest.param(
            STANDARD,
            "docker_restart_container",
            {"container": "web-api"},
            "approve",
            "agents.openclaw.rules[1]",
            "requires operator approval",
            id="glob-matches",
        ),
        pytest.param(
            STANDARD,
            "docker_restart_container",
            {"container": "postgres"},
            "deny",
            None,
            "container 'postgres' is outside the grant",
            id="argument-outside-grant",
        ),
        pytest.param(
            STANDARD,
            "docker_restart_container",
            {"container": "web"},
            "deny",
            None,
            "allows only 'jellyfin', 'web-*'",
            id="glob-does-not-match-prefix-alone",
        ),
        pytest.param(
            STANDARD, "docker_exec", {"cmd": "sh"}, "deny", None, "not a classified tool", id="unclassified-tool"
        ),
        pytest.param(
            grant(),
            "docker_list_containers",
            {},
            "deny",
            None,
            "no rule of agent 'openclaw' grants",
            id="empty-grant-denies",
        ),
        pytest.param(
            grant((("docker_*",), {}, "allow"), (("docker_stop_container",), {}, "deny")),
            "docker_stop_container",
            {"container": "x"},
            "deny",
            "agents.openclaw.rules[1]",
            "denies",
            id="deny-wins-over-allow",
        ),
        pytest.param(
            grant((MUTATIONS, {"container": ("web-1",)}, "allow"), (MUTATIONS, {"container": ("web-*",)}, "approve")),
            "docker_restart_container",
            {"container": "web-1"},
            "approve",
            "agents.openclaw.rules[1]",
            "approval",
            id="approve-wins-over-allow",
        ),
        pytest.param(
            grant((MUTATIONS, {"container": ("web-1",)}, "allow")),
            "docker_restart_container",
            {"container": "web-1"},
            "allow",
            "agents.openclaw.rules[0]",
            "allows",
            id="constrained-mutation-may-be-pre-approved",
        ),
        pytest.param(
            grant((MUTATIONS, {}, "allow")),
            "docker_restart_container",
            {"container": "web-1"},
            "approve",
            "agents.openclaw.rules[0]",
            "without naming its targets",
            id="blanket-allow-of-mutation-still-needs-approval",
        ),
        pytest.param(
            grant((MUTATIONS, {"container": ("*",)}, "allow")),
            "docker_stop_container",
            {"container": "db"},
            "approve",
            "agents.openclaw.rules[0]",
            "without naming its targets",
            id="match-all-glob-is-no-constraint",
        ),
        pytest.param(
            STANDARD,
            "docker_restart_container",
            {},
            "deny",
            None,
            "(missing)",
            id="missing-target-argument-never-matches",
        ),
        pytest.param(
            STANDARD,
            "docker_restart_container",
            {"container": ["jellyfin", "postgres"]},
            "deny",
            None,
            "outside the grant",
            id="list-argument-needs-every-element",
        ),
        pytest.param(
            STANDARD,
            "docker_restart_container",
            {"container": []},
            "deny",
            None,
            "outside the grant",
            id="empty-list-matches-nothing",
        ),
        pytest.param(
            STANDARD,
            "docker_restart_container",
            {"container": 7},
            "deny",
            None,
            "outside the grant",
            id="non-string-never-matches-a-glob",
        ),
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
            if decision.rule is not None:
                assert decision.reason.startswith(decision.rule), decision
            else:
                assert decision.effect is Effect.DENY, decision
                assert re.fullmatch(
                    rf"no rule of agent 'openclaw' grants {tool}|{tool} is not available here .*"
                    rf"|container '{container}' is outside the grant of agent 'openclaw' for {tool} "
                    r"\(agents\.openclaw\.rules\[\d\] allows only .*\)",
                    decision.reason,
                ), decision.reason


def test_glob_matching_is_case_sensitive() -> None:
    assert decide(STANDARD, "docker_restart_container", {"container": "Jellyfin"}).effect is Effect.DENY


def test_visible_tools_lists_granted_tools_and_builtins_sorted() -> None:
    assert visible_tools(STANDARD) == sorted({*READS, *MUTATIONS, *BUILTIN_TOOLS})
    assert visible_tools(grant()) == sorted(BUILTIN_TOOLS)


def test_tool_only_named_by_deny_rules_or_denied_outright_is_hidden() -> None:
    g = grant(
        (("docker_*",), {}, "allow"),
        (("docker_stop_container",), {}, "deny"),
        (("docker_start_container",), {"container": ("x",)}, "deny"),
    )

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
        pytest.param(
            [(("docker_restart_container",), NO_ARGS, "allow")],
            "without approval on any target",
            id="blanket-allow-of-mutation",
        ),
        pytest.param([(("docker_*",), NO_ARGS, "allow")], "without approval on any target", id="glob-covers-mutations"),
        pytest.param([(MUTATIONS, {"container": ("**",)}, "allow")], "without approval", id="match-all-glob"),
        pytest.param([(MUTATIONS, {"container": ("?*",)}, "allow")], "without approval", id="any-non-empty-glob"),
        pytest.param([(MUTATIONS, {"container": ("[a-z]*",)}, "allow")], "without approval", id="class-only-glob"),
        pytest.param(
            [(MUTATIONS, {"container": ("web-1", "[!.]*")}, "allow")],
            "without approval",
            id="one-match-all-glob-among-names",
        ),
        pytest.param([(("docker_restart",), NO_ARGS, "approve")], "matches no known tool", id="typo-in-tool-name"),
        pytest.param([(("argobox_request_status",), NO_ARGS, "deny")], "built in", id="builtin-not-grantable"),
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
    assert check_grant(grant((MUTATIONS, {"container": ("web-*", "*-prod", "db[0-9]")}, "allow"))) == []


def test_every_mutation_names_its_targets() -> None:
    mutations = [tool for tool in CATALOG.values() if tool.classification is Classification.MUTATE]

    assert mutations
    assert [tool.name for tool in mutations if not tool.target_args] == []


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


# Home Assistant ------------------------------------------------------------------------------------------------------

HA_READS = ("ha_list_entities", "ha_get_state")
LIGHTS = {"domain": ("light",), "service": ("turn_on", "turn_off"), "entity_id": ("light.living_room_*",)}
HOME = grant(
    (HA_READS, {"entity_id": ("light.*", "lock.front_door")}, "allow"),
    (("ha_list_services",), {}, "allow"),
    (("ha_call_service",), LIGHTS, "allow"),
    (("ha_call_service",), {"domain": ("lock", "alarm_control_panel", "cover")}, "approve"),
    (("ha_call_service",), {"domain": ("light",), "service": ("toggle",), "entity_id": ("light.nursery",)}, "deny"),
)


def call(domain: str, service: str, entity_id: str | list[str], **data: Any) -> dict[str, Any]:
    return {"domain": domain, "service": service, "entity_id": entity_id, "data": data}


@pytest.mark.parametrize(
    ("args", "effect", "rule", "reason_part"),
    [
        pytest.param(
            call("light", "turn_on", "light.living_room_lamp"),
            "allow",
            "agents.openclaw.rules[2]",
            "allows ha_call_service",
            id="pre-approved-light",
        ),
        pytest.param(
            call("light", "turn_on", ["light.living_room_lamp", "light.living_room_spot"]),
            "allow",
            "agents.openclaw.rules[2]",
            "allows",
            id="every-listed-entity-matches",
        ),
        pytest.param(
            call("light", "turn_on", ["light.living_room_lamp", "light.kitchen"]),
            "deny",
            None,
            "entity_id 'light.living_room_lamp', 'light.kitchen' is outside the grant",
            id="one-entity-outside-denies-the-call",
        ),
        pytest.param(
            call("light", "toggle", "light.living_room_lamp"),
            "deny",
            None,
            "service 'toggle' is outside",
            id="service-outside-the-grant",
        ),
        pytest.param(
            call("lock", "unlock", "lock.front_door"),
            "approve",
            "agents.openclaw.rules[3]",
            "requires operator approval",
            id="lock-needs-approval",
        ),
        pytest.param(
            call("cover", "open_cover", "cover.garage_door"),
            "approve",
            "agents.openclaw.rules[3]",
            "requires operator approval",
            id="garage-door-needs-approval",
        ),
        pytest.param(
            call("homeassistant", "turn_off", "light.living_room_lamp"),
            "deny",
            None,
            "domain",
            id="homeassistant-domain-not-granted",
        ),
        pytest.param(
            call("light", "toggle", "light.nursery"), "deny", "agents.openclaw.rules[4]", "denies", id="deny-rule-wins"
        ),
        pytest.param(
            {"entity_id": "lock.front_door"},
            "allow",
            "agents.openclaw.rules[0]",
            "allows ha_get_state",
            id="read-inside-grant",
        ),
    ],
)
def test_decide_home_assistant(args: dict[str, Any], effect: str, rule: str | None, reason_part: str) -> None:
    tool = "ha_get_state" if "domain" not in args else "ha_call_service"

    decision = decide(HOME, tool, args)

    assert (decision.effect.value, decision.rule) == (effect, rule)
    assert reason_part in decision.reason


def test_entity_state_outside_the_grant_is_denied() -> None:
    assert decide(HOME, "ha_get_state", {"entity_id": "camera.porch"}).effect is Effect.DENY


def test_ha_list_filters_by_entity_and_domain_and_treats_an_absent_filter_as_none() -> None:
    g = grant(
        (("ha_list_entities",), {"domain": ("light", "lock")}, "allow"),
        (("ha_list_entities",), {"entity_id": ("lock.back_door",)}, "deny"),
    )

    assert decide(g, "ha_list_entities", {"domain": None}).effect is Effect.ALLOW
    assert decide(g, "ha_list_entities", {"domain": "light"}).effect is Effect.ALLOW
    assert "domain 'camera' is outside" in decide(g, "ha_list_entities", {"domain": "camera"}).reason
    assert item_visible_by(g, "ha_list_entities", {"entity_id": "lock.front_door", "domain": "lock"})
    assert not item_visible_by(g, "ha_list_entities", {"entity_id": "lock.back_door", "domain": "lock"})
    assert not item_visible_by(g, "ha_list_entities", {"entity_id": "camera.porch", "domain": "camera"})


@pytest.mark.parametrize(
    ("domain", "service", "expected"),
    [
        ("light", "turn_on", True),
        ("light", "toggle", False),  # no allow or approve rule names toggle (a deny rule does)
        ("lock", "unlock", True),
        ("cover", "open_cover", True),
        ("camera", "turn_off", False),
        ("homeassistant", "restart", False),
    ],
)
def test_may_call_tells_which_services_some_rule_could_grant(domain: str, service: str, expected: bool) -> None:
    assert may_call(HOME, "ha_call_service", {"domain": domain, "service": service}) is expected


def test_may_call_is_false_when_a_deny_rule_refuses_every_entity() -> None:
    g = grant(
        (("ha_call_service",), {"domain": ("light",)}, "approve"),
        (("ha_call_service",), {"domain": ("light",), "service": ("toggle",)}, "deny"),
    )

    assert may_call(g, "ha_call_service", {"domain": "light", "service": "turn_on"})
    assert not may_call(g, "ha_call_service", {"domain": "light", "service": "toggle"})


def test_tools_of_an_unconfigured_backend_are_invisible_and_denied() -> None:
    docker_only = Grant(agent="openclaw", rules=HOME.rules + STANDARD.rules, available=tools_for([Backend.DOCKER]))

    assert not any(name.startswith("ha_") for name in visible_tools(docker_only))
    assert "docker_restart_container" in visible_tools(docker_only)
    decision = decide(docker_only, "ha_call_service", call("light", "turn_on", "light.living_room_lamp"))
    assert decision.effect is Effect.DENY and "homeassistant is not configured" in decision.reason
    assert not may_call(docker_only, "ha_call_service", {"domain": "light", "service": "turn_on"})
    assert set(visible_tools(HOME)) == {*HA_READS, "ha_list_services", "ha_call_service", *BUILTIN_TOOLS}


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        pytest.param(
            {"domain": ("lock",), "service": ("unlock",), "entity_id": ("lock.*",)},
            "pre-approve ha_call_service on lock",
            id="lock-by-glob",
        ),
        pytest.param(
            {
                "domain": ("alarm_control_panel",),
                "service": ("alarm_disarm",),
                "entity_id": ("alarm_control_panel.home?",),
            },
            "alarm_control_panel",
            id="alarm-by-question-mark",
        ),
        pytest.param(
            {"domain": ("cover",), "service": ("open_cover",), "entity_id": ("cover.garage_[ab]",)},
            "cover",
            id="garage-by-bracket",
        ),
        pytest.param(
            {"domain": ("homeassistant",), "service": ("turn_on",), "entity_id": ("light.*",)},
            "homeassistant",
            id="homeassistant-domain-reaches-everything",
        ),
        pytest.param(
            {"domain": ("script", "automation"), "service": ("turn_on",), "entity_id": ("script.x", "*.y")},
            "automation, script",
            id="one-glob-among-exact-ids",
        ),
        pytest.param(
            {"domain": ("l*",), "service": ("unlock",), "entity_id": ("lock.front_*",)},
            "on lock",
            id="domain-glob-reaching-lock",
        ),
        pytest.param(
            {"service": ("unlock",), "entity_id": ("lock.front_door",)},
            "without approval on any target",
            id="domain-must-be-constrained",
        ),
        pytest.param(
            {"domain": ("light",), "entity_id": ("light.kitchen",)},
            "constrain domain, service, entity_id",
            id="service-must-be-constrained",
        ),
        pytest.param(
            {"domain": ("light",), "service": ("turn_on",), "entity_id": ("*",)},
            "without approval",
            id="match-all-entities",
        ),
    ],
)
def test_check_grant_rejects_glob_allow_rules_on_consequential_services(
    args: dict[str, tuple[str, ...]], problem: str
) -> None:
    problems = check_grant(grant((("ha_call_service",), args, "allow")))

    assert any(problem in p and "agents.openclaw.rules[0]" in p for p in problems), problems


@pytest.mark.parametrize(
    ("args", "effect"),
    [
        pytest.param(
            {"domain": ("lock",), "service": ("unlock", "lock"), "entity_id": ("lock.front_door",)},
            "allow",
            id="exact-lock-may-be-pre-approved",
        ),
        pytest.param({"domain": ("lock", "cover")}, "approve", id="globs-fine-when-approval-is-needed"),
        pytest.param(
            {"domain": ("light",), "service": ("turn_on",), "entity_id": ("light.living_room_*",)},
            "allow",
            id="light-glob-may-be-pre-approved",
        ),
        pytest.param({"entity_id": ("lock.*",)}, "deny", id="deny-by-glob-is-fine"),
    ],
)
def test_check_grant_accepts_safe_home_assistant_rules(args: dict[str, tuple[str, ...]], effect: str) -> None:
    assert check_grant(grant((("ha_call_service",), args, effect))) == []
    assert check_grant(HOME) == []


def test_a_programmatic_glob_allow_on_a_lock_still_needs_approval() -> None:
    # check_grant (config loading) refuses this grant; decide() keeps it safe even so.
    g = grant((("ha_call_service",), {"domain": ("lock",), "service": ("unlock",), "entity_id": ("lock.*",)}, "allow"))

    decision = decide(g, "ha_call_service", call("lock", "unlock", "lock.front_door"))

    assert decision.effect is Effect.APPROVE
    assert "without naming exact entities" in decision.reason


def test_check_grant_names_the_missing_section_for_tools_of_an_unconfigured_backend() -> None:
    g = Grant(agent="openclaw", rules=grant((("ha_*",), {}, "approve")).rules, available=tools_for([Backend.DOCKER]))

    (problem,) = check_grant(g)

    assert "agents.openclaw.rules[0].tools: 'ha_*'" in problem and "[homeassistant] section" in problem


def test_check_grant_checks_arguments_against_the_available_tools_only() -> None:
    everything = grant((("*",), {"container": ("web-*",)}, "approve"))
    docker_only = Grant(agent="openclaw", rules=everything.rules, available=tools_for([Backend.DOCKER]))

    assert check_grant(docker_only) == []
    assert any("'container' is not an argument of ha_" in p for p in check_grant(everything))


def test_sensitive_domains_table_covers_the_consequential_domains() -> None:
    assert {"lock", "alarm_control_panel", "cover", "script", "automation", "homeassistant"} <= SENSITIVE_HA_DOMAINS
    assert "light" not in SENSITIVE_HA_DOMAINS and "input_boolean" not in SENSITIVE_HA_DOMAINS


def test_describe_home_assistant_calls() -> None:
    assert (
        describe_call("ha_call_service", call("lock", "unlock", "lock.front_door"))
        == "call Home Assistant service lock.unlock on 'lock.front_door'"
    )
    assert (
        describe_call("ha_call_service", call("light", "turn_on", ["light.a", "light.b"]))
        == "call Home Assistant service light.turn_on on 'light.a', 'light.b'"
    )
    assert (
        describe_call("ha_get_state", {"entity_id": "lock.front_door"})
        == "read the state of Home Assistant entity 'lock.front_door'"
    )
