"""How requests and audit events are shown to operators: JSON objects and plain-text screens.

Everything shown passes through the redactor first.
"""

from __future__ import annotations

import json
from typing import Any

from argobox.policy.catalog import describe_call
from argobox.server.redact import Redactor
from argobox.server.store import AuditRecord, RequestRecord, iso


def request_json(record: RequestRecord, redact: Redactor) -> dict[str, Any]:
    return redact({
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
    })


def audit_json(event: AuditRecord, redact: Redactor) -> dict[str, Any]:
    return redact({
        "seq": event.seq,
        "at": iso(event.at),
        "request_id": event.request_id,
        "event": event.event,
        "actor": event.actor,
        "agent": event.agent,
        "tool": event.tool,
        "detail": event.detail,
    })


def _short_args(arguments: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(arguments.items())) or "-"


def requests_table(records: list[RequestRecord], redact: Redactor) -> str:
    if not records:
        return "no requests"
    rows = [("ID", "STATUS", "AGENT", "TOOL", "ARGUMENTS", "CREATED", "EXPIRES")]
    for r in records:
        rows.append((
            r.id, r.status.value, r.agent, r.tool, _short_args(redact(r.arguments))[:60],
            iso(r.created_at) or "-", iso(r.expires_at) or "-",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def _detail_text(detail: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={json.dumps(v, sort_keys=True, ensure_ascii=False)}" for k, v in sorted(detail.items()) if v not in (None, "")
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
    return "\n".join(lines)


def _preview_lines(events: list[AuditRecord], redact: Redactor) -> list[str]:
    """What the queued call would act on, as ArgoBox saw it when it queued the call."""
    queued = next((e for e in events if e.event == "queued" and "preview" in e.detail), None)
    if queued is None:
        return []
    preview = redact(queued.detail["preview"])
    if "error" in preview:
        return [f"  preview:        not available: {preview['error']}"]
    changes = [str(c) for c in preview.get("changes", [])]
    label = f"  preview at {iso(queued.at)}:"
    return [label] + [f"    {change}" for change in changes]


def request_screen(record: RequestRecord, events: list[AuditRecord], redact: Redactor) -> str:
    """One request in plain language first, then its timeline."""
    r = record
    lines = [
        f"Request {r.id}: {r.status.value}",
        f"  who asked:      agent {r.agent!r} at {iso(r.created_at)}",
        f"  what:           {redact.text(describe_call(r.tool, r.arguments))} ({r.tool}, {_short_args(redact(r.arguments))})",
        f"  classified as:  {r.classification}",
        f"  decision:       {r.effect} by {r.rule or 'the default (no rule matched)'}: {r.reason}",
    ]
    lines += _preview_lines(events, redact)
    if r.expires_at is not None:
        lines.append(f"  expires at:     {iso(r.expires_at)}")
    if r.decided_by and r.decided_by != "policy":
        lines.append(f"  decided by:     {r.decided_by} at {iso(r.decided_at)}" + (f" ({r.note})" if r.note else ""))
    if r.result is not None:
        lines.append(f"  result:         {json.dumps(redact(r.result), sort_keys=True)}")
    if r.error:
        lines.append(f"  error:          {redact.text(r.error)}")
    lines.append("  timeline:")
    lines += ["    " + line for line in audit_lines(events, redact).splitlines()]
    return "\n".join(lines)
