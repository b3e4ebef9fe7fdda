"""Grants and the decision for one call: pure functions over values, no I/O and no clock.

Precedence: a matching `deny` rule wins over everything; otherwise a matching `approve` rule wins over `allow`
(the more careful effect wins when two rules overlap); no matching rule means deny. Every decision names the
rule that made it.

Home Assistant services with real-world consequences (`SENSITIVE_HA_DOMAINS`) get one more guard: a rule may
pre-approve (`allow`) them only by naming the exact entities, never by a glob.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from fnmatch import fnmatchcase
from functools import cached_property
from typing import Any, cast

from argobox.policy.catalog import BUILTIN_TOOLS, CATALOG, Classification, ToolClass

HA_CALL_SERVICE = "ha_call_service"
SENSITIVE_HA_DOMAINS: frozenset[str] = frozenset(
    {
        "lock",
        "alarm_control_panel",
        "cover",
        "valve",
        "siren",
        "camera",  # doors, alarms, garage doors, water, cameras
        "script",
        "automation",
        "scene",
        "button",  # run arbitrary sequences, or press whatever a button is wired to
        "homeassistant",
        "hassio",
        "update",  # homeassistant.* reaches every domain; restarts, add-ons, firmware
        "shell_command",
        "rest_command",
        "python_script",
        "pyscript",  # code and requests on the Home Assistant host
    }
)
"""The reviewed table of Home Assistant service domains with real-world consequences. An `allow` rule for
ha_call_service that can reach any of them must list exact entity ids: no glob can pre-approve them."""

GLOB_CHARACTERS = frozenset("*?[")


class Effect(StrEnum):
    ALLOW = "allow"
    APPROVE = "approve"
    DENY = "deny"


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    tools: tuple[str, ...]
    """Tool names or globs."""
    args: Mapping[str, tuple[str, ...]] = field(default_factory=dict[str, tuple[str, ...]])
    """Argument name -> globs; every listed argument (every element of a list argument) must match one."""
    effect: Effect


@dataclass(frozen=True, kw_only=True)
class Grant:
    agent: str
    rules: tuple[Rule, ...]
    available: frozenset[str] | None = None
    """The catalog tools that exist in this deployment (those whose backend is configured); None means all.
    A tool outside it is invisible and denied whatever the rules say."""
    catalog: Mapping[str, ToolClass] = field(default_factory=lambda: CATALOG)
    """The classification table in force: the reviewed CATALOG plus the configuration's runbooks (`with_tools`)."""

    @cached_property
    def visible(self) -> frozenset[str]:
        """`visible_tools(self)`, computed once: what `tools/list` shows and what `tools/call` accepts."""
        return frozenset(visible_tools(self))

    def rule_ref(self, index: int) -> str:
        return f"agents.{self.agent}.rules[{index}]"

    def exists(self, tool: str) -> bool:
        """Whether `tool` is a catalog tool available in this deployment."""
        return tool in self.catalog and (self.available is None or tool in self.available)


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    effect: Effect
    reason: str
    rule: str | None = None
    """The rule that decided (`agents.NAME.rules[i]`), or None when no rule matched."""


def canonical_json(value: Any) -> str:
    """The one serialisation used to bind an approval to its arguments."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_digest(agent: str, tool: str, arguments: Mapping[str, Any]) -> str:
    """SHA-256 over agent, tool and canonical arguments: what an approval is bound to."""
    payload = canonical_json({"agent": agent, "tool": tool, "arguments": dict(arguments)})
    return hashlib.sha256(payload.encode()).hexdigest()


def is_match_all(glob: str) -> bool:
    """True for globs with no literal character, such as `*`, `?*` or `[a-z]*`: they match (nearly) every value and
    so constrain nothing. A glob constrains only when some character must appear as written."""
    i = 0
    while i < len(glob):
        char = glob[i]
        if char == "[":
            end = glob.find("]", i + 2)
            if end == -1:
                return False  # an unclosed "[" is a literal character to fnmatch
            i = end + 1
        elif char in "*?":
            i += 1
        else:
            return False
    return True


def is_exact(glob: str) -> bool:
    """True for a pattern without glob characters: it names exactly one value."""
    return glob != "" and not GLOB_CHARACTERS & set(glob)


def _tool_matches(rule: Rule, tool: str) -> bool:
    return any(fnmatchcase(tool, pattern) for pattern in rule.tools)


def rules_naming(grant: Grant, tool: str) -> list[tuple[str, Rule]]:
    """The rules of `grant` whose tool patterns name `tool`, each with its reference, in order."""
    return [(grant.rule_ref(i), rule) for i, rule in enumerate(grant.rules) if _tool_matches(rule, tool)]


def _value_matches(value: Any, globs: Sequence[str]) -> bool:
    values: list[Any] = list(value) if isinstance(value, list | tuple) else [value]  # pyright: ignore[reportUnknownArgumentType]
    if not values:
        return False
    texts = [str(v) if type(v) is int else v for v in values]  # an integer param is matched as its decimal text
    return all(isinstance(t, str) and any(fnmatchcase(t, g) for g in globs) for t in texts)


def _first_mismatch(rule: Rule, tool: ToolClass, args: Mapping[str, Any]) -> str | None:
    """The name of the first constrained argument the call does not satisfy, or None when the rule matches.

    A constraint on a filter argument the call does not carry (a list call) matches for allow and approve
    rules, since the filter narrows the result item by item; it never lets a deny rule refuse the whole list.
    """
    for name, globs in rule.args.items():
        if name in tool.filter_args and args.get(name) is None:
            if rule.effect is Effect.DENY:
                return name
            continue
        if name not in args or not _value_matches(args[name], globs):
            return name
    return None


def _constrains_targets(rule: Rule, tool: ToolClass) -> bool:
    if not tool.target_args:  # a tool without arguments (a runbook without params): the rule must name it exactly
        return tool.name in rule.tools
    return all(name in rule.args and not any(is_match_all(g) for g in rule.args[name]) for name in tool.target_args)


def sensitive_domains_reached(rule: Rule) -> list[str]:
    """The sensitive Home Assistant domains whose services an ha_call_service rule can match, sorted."""
    globs = rule.args.get("domain", ("*",))
    return sorted(d for d in SENSITIVE_HA_DOMAINS if any(fnmatchcase(d, g) for g in globs))


def _names_exact_entities(rule: Rule) -> bool:
    globs = rule.args.get("entity_id", ())
    return bool(globs) and all(is_exact(g) for g in globs)


def _describe(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(repr(v) for v in cast("Sequence[object]", value))
    return repr(value)


def decide(grant: Grant, tool_name: str, args: Mapping[str, Any]) -> Decision:
    """Decide one call of `tool_name` with validated `args` under `grant`."""
    tool = grant.catalog.get(tool_name)
    if tool is None:
        return Decision(effect=Effect.DENY, reason=f"{tool_name} is not a classified tool")
    if tool.defaulted_args:
        args = tool.with_defaults(args)
    if not grant.exists(tool_name):
        return Decision(
            effect=Effect.DENY, reason=f"{tool_name} is not available here ({tool.backend} is not configured)"
        )
    matched: list[tuple[int, Rule]] = []
    near_miss: tuple[int, Rule, str] | None = None
    for index, rule in enumerate(grant.rules):
        if not _tool_matches(rule, tool_name):
            continue
        mismatch = _first_mismatch(rule, tool, args)
        if mismatch is None:
            matched.append((index, rule))
        elif near_miss is None and rule.effect is not Effect.DENY:
            near_miss = (index, rule, mismatch)
    for effect in (Effect.DENY, Effect.APPROVE, Effect.ALLOW):
        for index, rule in matched:
            if rule.effect is effect:
                return _decision_for(grant, index, rule, tool, args)
    if near_miss is not None:
        index, rule, name = near_miss
        allowed = ", ".join(repr(g) for g in rule.args[name])
        shown = _describe(args[name]) if name in args else "(missing)"
        return Decision(
            effect=Effect.DENY,
            reason=f"{name} {shown} is outside the grant of agent {grant.agent!r} for {tool_name} "
            f"({grant.rule_ref(index)} allows only {allowed})",
        )
    return Decision(effect=Effect.DENY, reason=f"no rule of agent {grant.agent!r} grants {tool_name}")


def _decision_for(grant: Grant, index: int, rule: Rule, tool: ToolClass, args: Mapping[str, Any]) -> Decision:
    ref = grant.rule_ref(index)
    if rule.effect is Effect.DENY:
        return Decision(effect=Effect.DENY, rule=ref, reason=f"{ref} denies {tool.name}")
    if rule.effect is Effect.APPROVE:
        return Decision(effect=Effect.APPROVE, rule=ref, reason=f"{ref} requires operator approval for {tool.name}")
    if tool.classification is Classification.MUTATE and not _constrains_targets(rule, tool):
        # Config loading refuses such rules; this keeps blanket auto-approval impossible even so.
        return Decision(
            effect=Effect.APPROVE,
            rule=ref,
            reason=f"{ref} allows {tool.name} without naming its targets, so it needs operator approval",
        )
    if tool.name == HA_CALL_SERVICE and args.get("domain") in SENSITIVE_HA_DOMAINS and not _names_exact_entities(rule):
        # Config loading refuses such rules too: a glob never pre-approves a lock, an alarm panel, a cover...
        return Decision(
            effect=Effect.APPROVE,
            rule=ref,
            reason=f"{ref} allows {tool.name} on {args['domain']} without naming exact entities, "
            "so it needs operator approval",
        )
    return Decision(effect=Effect.ALLOW, rule=ref, reason=f"{ref} allows {tool.name}")


def item_visible(grant: Grant, tool_name: str, filter_arg: str, value: str) -> bool:
    """Whether a list tool may show the item named `value` (e.g. one container in `docker_list_containers`)."""
    return decide(grant, tool_name, {filter_arg: value}).effect is not Effect.DENY


def item_visible_by(grant: Grant, tool_name: str, values: Mapping[str, str]) -> bool:
    """Whether a list tool may show an item described by several filter values (an entity's id and domain)."""
    return decide(grant, tool_name, values).effect is not Effect.DENY


def may_call(grant: Grant, tool_name: str, known: Mapping[str, Any]) -> bool:
    """Whether some call of `tool_name` whose arguments include `known` (the others left free) could be allowed or
    approved: e.g. whether the agent could call service light.turn_on on at least one entity.

    False when a deny rule matching `known` constrains nothing else, since it then refuses every such call.
    """
    if not grant.exists(tool_name):
        return False
    rules = [rule for rule in grant.rules if _tool_matches(rule, tool_name)]

    def fits(rule: Rule) -> bool:
        return all(_value_matches(known[name], globs) for name, globs in rule.args.items() if name in known)

    if any(rule.effect is Effect.DENY and fits(rule) and set(rule.args) <= set(known) for rule in rules):
        return False
    return any(rule.effect is not Effect.DENY and fits(rule) for rule in rules)


def visible_tools(grant: Grant) -> list[str]:
    """The tools the agent sees in `tools/list`, sorted: built-ins plus every catalog tool some allow or approve
    rule names, minus those a deny rule without argument constraints refuses outright."""
    names: set[str] = set(BUILTIN_TOOLS)
    for tool in grant.catalog:
        if not grant.exists(tool):
            continue
        rules = [r for r in grant.rules if _tool_matches(r, tool)]
        if any(r.effect is Effect.DENY and not r.args for r in rules):
            continue
        if any(r.effect is not Effect.DENY for r in rules):
            names.add(tool)
    return sorted(names)


def check_grant(grant: Grant) -> list[str]:
    """Problems that make a grant unsafe or meaningless, each naming the rule; empty when the grant is sound."""
    problems: list[str] = []
    for index, rule in enumerate(grant.rules):
        ref = grant.rule_ref(index)
        problems += _tool_pattern_problems(grant, rule, ref)
        tools = [
            grant.catalog[name] for name in sorted(grant.catalog) if grant.exists(name) and _tool_matches(rule, name)
        ]
        for name in rule.args:
            lacking = [tool.name for tool in tools if name not in tool.constrainable_args]
            if lacking:
                problems.append(f"{ref}.args: {name!r} is not an argument of {', '.join(lacking)}")
        if rule.effect is not Effect.ALLOW:
            continue
        for tool in tools:
            if tool.classification is Classification.MUTATE and not _constrains_targets(rule, tool):
                if not tool.target_args:
                    problems.append(
                        f'{ref}: effect = "allow" would pre-approve the mutating tool {tool.name} through a glob; '
                        f'name {tool.name} exactly in tools, or use effect = "approve"'
                    )
                    continue
                targets = ", ".join(tool.target_args)
                problems.append(
                    f'{ref}: effect = "allow" would let the mutating tool {tool.name} run without approval on any '
                    f'target; constrain {targets} in args with specific names or globs, or use effect = "approve"'
                )
            elif (
                tool.name == HA_CALL_SERVICE
                and not _names_exact_entities(rule)
                and (reached := sensitive_domains_reached(rule))
            ):
                problems.append(
                    f'{ref}: effect = "allow" would pre-approve {tool.name} on {", ".join(reached)}, whose '
                    "services have real-world consequences, with a glob; list the exact entity ids in "
                    "args.entity_id (no '*', '?' or '['), or use effect = \"approve\""
                )
    return problems


def _tool_pattern_problems(grant: Grant, rule: Rule, ref: str) -> list[str]:
    problems: list[str] = []
    for pattern in rule.tools:
        matching = [name for name in grant.catalog if fnmatchcase(name, pattern)]
        if pattern in BUILTIN_TOOLS:
            problems.append(f"{ref}.tools: {pattern!r} is built in and cannot be granted or denied")
        elif not matching:
            problems.append(f"{ref}.tools: {pattern!r} matches no known tool; {_known_tools_hint(pattern, grant)}")
        elif not any(grant.exists(name) for name in matching):
            backends = sorted({grant.catalog[name].backend.value for name in matching})
            sections = " or ".join(f"[{b}]" for b in backends)
            problems.append(
                f"{ref}.tools: {pattern!r} names {', '.join(sorted(matching))}, which need a {sections} section; "
                "add the section or remove the tool from the rule"
            )
    return problems


MAX_LISTED_TOOLS = 12
"""An unknown tool name lists the known ones only when there are at most this many and none is close."""


def _known_tools_hint(pattern: str, grant: Grant) -> str:
    """The tool names closest to a misspelled one ("did you mean ...?"); else the known names if they are few."""
    names = sorted(grant.catalog)
    scored = sorted(
        ((difflib.SequenceMatcher(None, pattern, n).ratio(), n) for n in names), key=lambda s: (-s[0], s[1])
    )
    close = [name for score, name in scored[:3] if score >= max(0.6, scored[0][0] - 0.03)] if scored else []
    if close:
        return "did you mean " + " or ".join(repr(name) for name in close) + "?"
    if len(names) <= MAX_LISTED_TOOLS:
        return f"the known tools are {', '.join(names)}"
    families = sorted({name.split("_", 1)[0] + "_*" for name in names})
    return f"none is close; the {len(names)} known tools are named {', '.join(families)} (see `argobox doctor`)"
