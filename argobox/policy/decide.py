"""Grants and the decision for one call: pure functions over values, no I/O and no clock.

Precedence: a matching `deny` rule wins over everything; otherwise a matching `approve` rule wins over `allow`
(the more careful effect wins when two rules overlap); no matching rule means deny. Every decision names the
rule that made it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any

from argobox.policy.catalog import BUILTIN_TOOLS, CATALOG, Classification, ToolClass


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

    @cached_property
    def visible(self) -> frozenset[str]:
        """`visible_tools(self)`, computed once: what `tools/list` shows and what `tools/call` accepts."""
        return frozenset(visible_tools(self))

    def rule_ref(self, index: int) -> str:
        return f"agents.{self.agent}.rules[{index}]"


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
    """True for globs such as `*` or `**` that match every value and so constrain nothing."""
    return glob != "" and set(glob) <= {"*"}


def _tool_matches(rule: Rule, tool: str) -> bool:
    return any(fnmatchcase(tool, pattern) for pattern in rule.tools)


def _value_matches(value: Any, globs: Sequence[str]) -> bool:
    values: list[Any] = list(value) if isinstance(value, list | tuple) else [value]  # pyright: ignore[reportUnknownArgumentType]
    if not values:
        return False
    return all(isinstance(v, str) and any(fnmatchcase(v, g) for g in globs) for v in values)


def _first_mismatch(rule: Rule, tool: ToolClass, args: Mapping[str, Any]) -> str | None:
    """The name of the first constrained argument the call does not satisfy, or None when the rule matches.

    A constraint on a filter argument the call does not carry (a list call) matches for allow and approve
    rules, since the filter narrows the result item by item; it never lets a deny rule refuse the whole list.
    """
    for name, globs in rule.args.items():
        if name in tool.filter_args and name not in args:
            if rule.effect is Effect.DENY:
                return name
            continue
        if name not in args or not _value_matches(args[name], globs):
            return name
    return None


def _constrains_targets(rule: Rule, tool: ToolClass) -> bool:
    return all(
        name in rule.args and not any(is_match_all(g) for g in rule.args[name]) for name in tool.target_args
    )


def _describe(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(repr(v) for v in value)  # pyright: ignore[reportUnknownVariableType]
    return repr(value)


def decide(grant: Grant, tool_name: str, args: Mapping[str, Any]) -> Decision:
    """Decide one call of `tool_name` with validated `args` under `grant`."""
    tool = CATALOG.get(tool_name)
    if tool is None:
        return Decision(effect=Effect.DENY, reason=f"{tool_name} is not a classified tool")
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
        return Decision(
            effect=Effect.APPROVE, rule=ref, reason=f"{ref} requires operator approval for {tool.name}"
        )
    if tool.classification is Classification.MUTATE and not _constrains_targets(rule, tool):
        # Config loading refuses such rules; this keeps blanket auto-approval impossible even so.
        return Decision(
            effect=Effect.APPROVE,
            rule=ref,
            reason=f"{ref} allows {tool.name} without naming its targets, so it needs operator approval",
        )
    return Decision(effect=Effect.ALLOW, rule=ref, reason=f"{ref} allows {tool.name}")


def item_visible(grant: Grant, tool_name: str, filter_arg: str, value: str) -> bool:
    """Whether a list tool may show the item named `value` (e.g. one container in `docker_list_containers`)."""
    return decide(grant, tool_name, {filter_arg: value}).effect is not Effect.DENY


def visible_tools(grant: Grant) -> list[str]:
    """The tools the agent sees in `tools/list`, sorted: built-ins plus every catalog tool some allow or approve
    rule names, minus those a deny rule without argument constraints refuses outright."""
    names: set[str] = set(BUILTIN_TOOLS)
    for tool in CATALOG:
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
        for pattern in rule.tools:
            if pattern in BUILTIN_TOOLS:
                problems.append(f"{ref}.tools: {pattern!r} is built in and cannot be granted or denied")
            elif not any(fnmatchcase(name, pattern) for name in CATALOG):
                known = ", ".join(sorted(CATALOG))
                problems.append(f"{ref}.tools: {pattern!r} matches no known tool (known tools: {known})")
        tools = [CATALOG[name] for name in sorted(CATALOG) if _tool_matches(rule, name)]
        for name in rule.args:
            lacking = [tool.name for tool in tools if name not in tool.constrainable_args]
            if lacking:
                problems.append(f"{ref}.args: {name!r} is not an argument of {', '.join(lacking)}")
        for tool in tools:
            if (
                rule.effect is Effect.ALLOW
                and tool.classification is Classification.MUTATE
                and not _constrains_targets(rule, tool)
            ):
                targets = ", ".join(tool.target_args)
                problems.append(
                    f"{ref}: effect = \"allow\" would let the mutating tool {tool.name} run without approval on any "
                    f"target; constrain {targets} in args with specific names or globs, or use effect = \"approve\""
                )
    return problems
