"""`argobox check`: what the policy would do with one call, now, without doing anything.

The call is identified, validated and decided exactly as an agent's call would be (an unknown agent or tool and bad
arguments are refused with the same words), and the budgets that would apply are read, never counted: nothing
runs, nothing is queued, no budget changes and nothing is written to the audit trail.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from argobox.policy.catalog import BUILTIN_TOOLS, describe_call
from argobox.policy.decide import decide
from argobox.policy.limits import check
from argobox.server.app import App
from argobox.server.mediation.agent_calls import UnknownTool, call_facts
from argobox.server.mediation.arguments import validation_message
from argobox.server.mediation.explain import rule_text
from argobox.server.mediation.runbooks import tool_spec
from argobox.server.mediation.views import budget_json
from argobox.server.store import Refused
from argobox.server.text import shorten
from argobox.server.times import iso


async def dry_run(app: App, agent: str, tool: str, raw_args: dict[str, Any]) -> dict[str, Any]:
    """The decision `agent` would get for `tool` with `raw_args` now, as JSON-ready data.

    Raises `Refused` for an unknown agent or invalid arguments, and `UnknownTool` for a tool outside the grant.
    """
    config = app.config
    if agent not in config.agents:
        known = ", ".join(sorted(config.agents)) or "none"
        raise Refused("unknown_agent", f"unknown agent {shorten(agent, 64)!r} (configured agents: {known})")
    if tool in BUILTIN_TOOLS:
        raise Refused("built_in", f"{tool} is built in: every agent may call it, for its own requests only")
    grant = config.grant(agent)
    if tool not in grant.visible:
        raise UnknownTool(tool)
    spec = tool_spec(config.runbooks, tool)
    if spec is None:  # not for a tool the grant shows; answered like any unknown tool
        raise UnknownTool(tool)
    try:
        args = spec.args.model_validate(raw_args)
    except ValidationError as exc:
        raise Refused("invalid_arguments", validation_message(tool, exc)) from None
    arguments = args.model_dump(mode="json")
    decision = decide(grant, tool, arguments)
    facts = call_facts(agent, config.catalog[tool], arguments, decision)
    limits = config.limits_for(agent)
    snapshot = await app.store.usage(facts, limits)
    usage, failures = await app.store.budget(agent, limits)
    now = app.clock()
    tripped = None
    if snapshot.pending_twin is None:
        tripped = check(
            limits, snapshot.usage, now=now, mutation=facts.mutation, queues=facts.queues, identical=facts.mutation
        )
    return {
        "agent": agent,
        "tool": tool,
        "arguments": arguments,
        "what": describe_call(tool, arguments, config.catalog),
        "classification": config.catalog[tool].classification.value,
        "effect": decision.effect.value,
        "rule": decision.rule,
        "rule_text": rule_text(app, decision.rule),
        "reason": decision.reason,
        "duplicate_of": snapshot.pending_twin,
        "rate_limited": None
        if tripped is None
        else {"limit": tripped.limit, "retry_after_seconds": tripped.retry_after_seconds, "message": tripped.message},
        "budget": budget_json(agent, limits, usage, failures, now=now),
        "checked_at": iso(now),
    }


def dry_run_text(data: dict[str, Any]) -> str:
    """The dry run in words, for a terminal (the caller makes agent-supplied text inert)."""
    effects = {
        "allow": "runs at once, without approval",
        "approve": "is queued for an operator's approval",
        "deny": "is denied",
    }
    lines = [f"{data['agent']} calling {data['what']} ({data['tool']}, {data['classification']}):"]
    lines.append(f"  effect:  {data['effect']} - it {effects[data['effect']]}")
    lines.append(f"  reason:  {data['reason']}")
    if data["rule_text"]:
        lines.append("  rule:    " + data["rule_text"].replace("\n", "\n           "))
    if data["duplicate_of"]:
        lines.append(
            f"  note:    an identical request is already pending ({data['duplicate_of']}); it would be returned"
        )
    limited = data["rate_limited"]
    if limited is not None and data["effect"] != "deny":
        lines.append(f"  budget:  refused now: {limited['message']} (retry after {limited['retry_after_seconds']} s)")
    budget = data["budget"]
    lines.append(
        f"  budgets: {budget['requests_last_minute']}/{budget['requests_per_minute']} requests this minute, "
        f"{budget['mutations_last_hour']}/{budget['mutations_per_hour']} changes this hour, "
        f"{budget['pending']}/{budget['max_pending']} pending"
    )
    lines.append("  nothing was run, queued or counted")
    return "\n".join(lines)
