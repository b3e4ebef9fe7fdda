"""The explain view: one request, answered in the order an operator asks.

Who asked and when; what they asked for, in words; how it was classified; which rule decided and why (quoted from
the configuration); why approval is needed; the target's current state; the agent's budget; the full timeline.
Shared by `argobox show` and the operator server's `explain_request`.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from pydantic import ValidationError

from argobox.policy.catalog import Backend, describe_call
from argobox.policy.decide import Rule
from argobox.server.app import App
from argobox.server.mediation import targets
from argobox.server.mediation.runbooks import preview_lines, tool_spec
from argobox.server.mediation.views import audit_json, budget_json, request_json
from argobox.server.store import RequestRecord, RequestStatus
from argobox.server.times import TimeFormatError, iso, parse_time

PREVIEW_TIMEOUT_SECONDS = 5
UNKNOWN_OUTCOME = (
    "the process executing it stopped before recording the outcome, so whether it ran is unknown; ArgoBox never "
    "runs it again: check the target (below), and if it still needs doing, the agent must ask again"
)


def rule_text(app: App, ref: str | None) -> str | None:
    """The rule named `ref` (`agents.NAME.rules[i]`) as it reads in the configuration now, or None."""
    if ref is None or not ref.startswith("agents.") or not ref.endswith("]"):
        return None
    agent, _, index = ref[len("agents.") : -1].partition(".rules[")
    if agent not in app.config.agents or not index.isdigit():
        return None
    rules = app.config.grant(agent).rules
    return _toml(agent, rules[int(index)]) if int(index) < len(rules) else None


def _toml(agent: str, rule: Rule) -> str:
    lines = [f"[[agents.{agent}.rules]]", f"tools = {json.dumps(list(rule.tools))}"]
    if rule.args:
        inner = ", ".join(f"{name} = {json.dumps(list(globs))}" for name, globs in rule.args.items())
        lines.append(f"args = {{ {inner} }}")
    lines.append(f'effect = "{rule.effect.value}"')
    return "\n".join(lines)


def _why_approval(record: RequestRecord) -> str:
    classification = record.classification
    if record.effect == "approve":
        return (
            f"{record.tool} is classified {classification}, and {record.rule} requires an operator to approve "
            "each such call before it runs"
        )
    if record.effect == "allow":
        return f"no approval needed: {record.rule} pre-approves this {classification} call"
    return "no approval possible: the policy denied it"


def _uptime(started_at: str | None, now: float) -> str | None:
    if not started_at:
        return None
    try:
        started = parse_time(started_at)
    except TimeFormatError:
        return None
    seconds = max(0, int(now - started))
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h {seconds % 3600 // 60}m {seconds % 60}s"


async def preview(app: App, record: RequestRecord) -> dict[str, Any]:
    """The target as it is now, read through the tool's own previewer (never an effect), and whether it is still
    the target the request was queued for."""
    tool = app.config.catalog.get(record.tool)
    spec = tool_spec(app.config.runbooks, record.tool)
    # A runbook's target is its host; its read-only preview command runs once, when the request is queued.
    if tool is None or tool.backend is Backend.RUNBOOKS or spec is None or spec.preview is None:
        return {"available": False, "reason": "this tool has no target to preview"}
    try:
        args = spec.args.model_validate(record.arguments)
    except ValidationError:
        return {"available": False, "reason": "the stored arguments no longer fit the tool"}
    shown: dict[str, Any] | None = None
    with anyio.move_on_after(PREVIEW_TIMEOUT_SECONDS):
        shown = await targets.preview(app, spec, args)
    if shown is None:
        return {"available": False, "reason": f"the backend did not answer within {PREVIEW_TIMEOUT_SECONDS} s"}
    if "error" in shown:
        return {"available": False, "reason": shown["error"]}
    now: dict[str, Any] = {"available": True, **shown}
    if shown.get("state") == "running":
        now["uptime"] = _uptime(shown.get("started_at"), app.clock())
    same = targets.same_target(spec, record.target, shown)
    if same is not None:
        now["same_target"] = same
    return now


async def explain(app: App, record: RequestRecord) -> dict[str, Any]:
    """Everything about one request, as JSON-ready data (redacted)."""
    events = await app.store.audit_trail(request_id=record.id)
    limits = app.config.limits_for(record.agent)
    usage, failures = await app.store.budget(record.agent, limits)
    # The target now: what a pending request would act on, or what an interrupted one may have changed.
    live = record.status in (RequestStatus.PENDING, RequestStatus.UNKNOWN)
    queued = next((e for e in events if e.event == "queued" and "preview" in e.detail), None)
    return app.redactor(
        {
            **request_json(record, app.redactor, app.config.catalog),
            "explanation": {
                "who": f"agent {record.agent!r} at {iso(record.created_at)}",
                "what": describe_call(record.tool, record.arguments, app.config.catalog),
                "classification": record.classification,
                "rule_text": rule_text(app, record.rule),
                "why_approval": _why_approval(record),
                "outcome": UNKNOWN_OUTCOME if record.status is RequestStatus.UNKNOWN else None,
                "queued_preview": {"at": iso(queued.at), **queued.detail["preview"]} if queued is not None else None,
                "preview": await preview(app, record)
                if live
                else {"available": False, "reason": "request is finished"},
                "budget": budget_json(record.agent, limits, usage, failures, now=app.clock()),
            },
            "timeline": [audit_json(e, app.redactor) for e in events],
        }
    )


def _target_now(p: dict[str, Any], *, pending: bool) -> list[str]:
    if not p.get("available"):
        return [f"  target now:     preview unavailable ({p['reason']})"] if pending else []
    changed = "" if p.get("same_target", True) else " -- NOT the target queued: an approval will fail, nothing runs"
    if "states" in p:
        now = ", ".join(f"{entity}: {state}" for entity, state in p["states"].items())
        return [f"  targets now:    {now}{changed}"]
    return ["  target now:     " + _container_line(p) + changed]


def _container_line(p: dict[str, Any]) -> str:
    bits = [f"{k} {p[k]}" for k in ("state", "image", "health", "uptime", "restart_count") if p.get(k) is not None]
    return f"container {p['container']}: " + ", ".join(bits)


def explain_text(data: dict[str, Any]) -> str:
    """The explanation as one plain-language screen, then the timeline."""
    x = data["explanation"]
    lines = [
        f"Request {data['id']}: {data['status']}",
        f"  who asked:      {x['who']}",
        f"  what:           {x['what']} ({data['tool']}, arguments {json.dumps(data['arguments'], sort_keys=True)})",
        f"  classified as:  {x['classification']}",
        f"  decided by:     {data['rule'] or 'no rule matched (default deny)'}: {data['effect']}",
        f"  why:            {data['reason']}",
    ]
    if x["rule_text"]:
        lines += ["  the rule, as configured now:"] + [f"      {line}" for line in x["rule_text"].splitlines()]
    lines.append(f"  approval:       {x['why_approval']}")
    if x.get("outcome"):
        lines.append(f"  outcome:        {x['outcome']}")
    if data["expires_at"]:
        lines.append(f"  expires at:     {data['expires_at']}")
    lines += _queued_preview_lines(x.get("queued_preview"))
    lines += _queued_target_lines(data.get("target"))
    lines += _target_now(x["preview"], pending=data["status"] == "pending_approval")
    lines.append(_budget_line(x["budget"]))
    if data["decided_by"] and data["decided_by"] != "policy":
        lines.append(
            f"  decided:        by {data['decided_by']} at {data['decided_at']}"
            + (f" ({data['note']})" if data["note"] else "")
        )
    if data["result"] is not None:
        lines.append(f"  result:         {json.dumps(data['result'], sort_keys=True)}")
    if data["error"]:
        lines.append(f"  error:          {data['error']}")
    lines.append("  timeline:")
    lines += _timeline_lines(data["timeline"])
    return "\n".join(lines)


def _queued_preview_lines(q: dict[str, Any] | None) -> list[str]:
    """What the operator was shown of the target when the request was queued."""
    if q is None:
        return []
    if "error" in q:
        return [f"  preview:        not available: {q['error']}"]
    if "preview_argv" in q:
        return preview_lines(q)
    if "changes" in q:
        return [f"  preview at {q['at']}:"] + [f"    {change}" for change in q["changes"]]
    if "container" in q:
        return [f"  target at {q['at']}: " + _container_line(q)]
    return []


def _queued_target_lines(target: dict[str, Any] | None) -> list[str]:
    """The identity of the target the request was queued for (an approval runs only on it)."""
    if not target:
        return []
    if targets.UNIDENTIFIED in target:
        why = target[targets.UNIDENTIFIED]
        return [f"  target queued:  could not be identified ({why}); an approval will fail, nothing runs"]
    identity = ", ".join(f"{k} {v}" for k, v in sorted(target.items()))
    return [f"  target queued:  {identity} (an approval runs only on this target)"]


def _budget_line(b: dict[str, Any]) -> str:
    return (
        f"  agent budget:   {b['requests_last_minute']}/{b['requests_per_minute']} calls this minute, "
        f"{b['mutations_last_hour']}/{b['mutations_per_hour']} changes this hour, {b['pending']}/{b['max_pending']} "
        f"pending, failure streak {b['failure_streak']}/{b['failures_to_cooldown']}"
        + (f", cooling down until {b['cooldown_until']}" if b["cooldown_until"] else "")
    )


def _timeline_lines(timeline: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for e in timeline:
        detail = ", ".join(
            f"{k}={json.dumps(v, sort_keys=True)}" for k, v in sorted(e["detail"].items()) if v not in (None, "")
        )
        lines.append(f"    #{e['seq']} {e['at']} {e['event']} by {e['actor']}" + (f": {detail}" if detail else ""))
    return lines
