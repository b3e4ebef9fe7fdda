"""How requests and audit events are shown to operators: JSON objects and plain-text screens.

Everything shown passes through the redactor: values (so secret-looking keys are caught) and then the whole text
(so configured secrets and URL credentials are caught wherever they ended up).
"""

from __future__ import annotations

import json
from typing import Any

from argobox.policy.catalog import describe_call
from argobox.policy.limits import FailureState, Limits, Usage
from argobox.server.redact import Redactor
from argobox.server.store import AuditRecord, RequestRecord
from argobox.server.times import iso


def request_json(record: RequestRecord, redact: Redactor) -> dict[str, Any]:
    return redact(
        {
            "id": record.id,
            "agent": record.agent,
            "tool": record.tool,
            "arguments": record.arguments,
            "summary": describe_call(record.tool, record.arguments),
            "classification": record.classification,
            "effect": record.effect,
            "rule": record.rule,
            "reason": record.reason,
            "status": record.status.value,
            "created_at": iso(record.created_at),
            "expires_at": iso(record.expires_at),
            "decided_by": record.decided_by,
            "decided_at": iso(record.decided_at),
            "note": record.note,
            "result": record.result,
            "error": record.error,
            "updated_at": iso(record.updated_at),
        }
    )


def audit_json(event: AuditRecord, redact: Redactor) -> dict[str, Any]:
    return redact(
        {
            "seq": event.seq,
            "at": iso(event.at),
            "request_id": event.request_id,
            "event": event.event,
            "actor": event.actor,
            "agent": event.agent,
            "tool": event.tool,
            "detail": event.detail,
            "prev_hash": event.prev_hash,
            "hash": event.hash,
        }
    )


def _short_args(arguments: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(arguments.items())) or "-"


def requests_table(records: list[RequestRecord], redact: Redactor) -> str:
    if not records:
        return "no requests"
    rows = [("ID", "STATUS", "AGENT", "TOOL", "ARGUMENTS", "CREATED", "EXPIRES")]
    for r in records:
        rows.append(
            (
                r.id,
                r.status.value,
                r.agent,
                r.tool,
                _short_args(redact(r.arguments))[:60],
                iso(r.created_at) or "-",
                iso(r.expires_at) or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return redact.text(
        "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)
    )


def _detail_text(detail: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={json.dumps(v, sort_keys=True, ensure_ascii=False)}"
        for k, v in sorted(detail.items())
        if v not in (None, "")
    )


def audit_lines(events: list[AuditRecord], redact: Redactor) -> str:
    if not events:
        return "no audit events"
    lines = []
    for e in events:
        where = f" {e.request_id}" if e.request_id else ""
        what = f" {e.tool}" if e.tool else ""
        detail = _detail_text(redact(e.detail))
        lines.append(f"#{e.seq} {iso(e.at)}{where} {e.event} by {e.actor}{what}" + (f": {detail}" if detail else ""))
    return redact.text("\n".join(lines))


def budget_json(agent: str, limits: Limits, usage: Usage, failures: FailureState, *, now: float) -> dict[str, Any]:
    cooling = usage.cooldown_until is not None and usage.cooldown_until > now
    return {
        "agent": agent,
        "requests_last_minute": usage.requests.count,
        "requests_per_minute": limits.requests_per_minute,
        "mutations_last_hour": usage.mutations.count,
        "mutations_per_hour": limits.mutations_per_hour,
        "pending": usage.pending,
        "max_pending": limits.max_pending,
        "failure_streak": failures.streak,
        "failures_to_cooldown": limits.failures.count,
        "cooldown_until": iso(usage.cooldown_until) if cooling else None,
    }


def budgets_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no agents configured"
    table = [("AGENT", "REQUESTS/MIN", "MUTATIONS/H", "PENDING", "FAILURES", "COOLDOWN UNTIL")]
    for r in rows:
        table.append(
            (
                r["agent"],
                f"{r['requests_last_minute']}/{r['requests_per_minute']}",
                f"{r['mutations_last_hour']}/{r['mutations_per_hour']}",
                f"{r['pending']}/{r['max_pending']}",
                f"{r['failure_streak']}/{r['failures_to_cooldown']}",
                r["cooldown_until"] or "-",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table)
