"""The CLI's text views: one table renderer, the request queue, audit lines and budgets.

A request is summarised the way ArgoBox understands it: first the action and its target in ArgoBox's words (tool,
service, entity or container, from `describe_call`), never cut; then the free-form arguments (a service's `data`),
which may be cut. Every value that did not come from ArgoBox is made inert on its own (`inert`), so that it cannot
start a line or shift a column; `Cli.out` then makes the whole text inert once more before it reaches the terminal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from argobox.policy.catalog import CATALOG, ToolClass, describe_call
from argobox.server.redact import Redactor
from argobox.server.store import AuditRecord, RequestRecord
from argobox.server.text import inert
from argobox.server.times import iso

MAX_FREE_TEXT = 60
"""How much of a request's free-form arguments a one-line summary shows."""


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; the last column is never padded (so it may be long)."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    )


def request_summary(
    tool: str,
    arguments: dict[str, Any],
    *,
    limit: int = MAX_FREE_TEXT,
    catalog: Mapping[str, ToolClass] = CATALOG,
) -> str:
    """One line: the action and its target in full, then the other arguments, cut after `limit` characters.

    `arguments` should be redacted already; `catalog` is the table in force (it knows the configured runbooks).
    """
    known = catalog.get(tool)
    action = inert(describe_call(tool, arguments, catalog))
    targets = known.target_args if known is not None else ()
    rest = ", ".join(
        f"{inert(str(name))}={json.dumps(value, sort_keys=True)}"
        for name, value in sorted(arguments.items())
        if name not in targets and value not in (None, "", {}, [])
    )
    if not rest:
        return action
    shown = rest if len(rest) <= limit else f"{rest[:limit]}…"
    return f"{action}; {shown}"


def requests_table(
    records: Sequence[RequestRecord], redact: Redactor, catalog: Mapping[str, ToolClass] = CATALOG
) -> str:
    if not records:
        return "no requests"
    rows = [
        (
            r.id,
            r.status.value,
            inert(r.agent),
            iso(r.created_at) or "-",
            iso(r.expires_at) or "-",
            request_summary(r.tool, redact(r.arguments), catalog=catalog),
        )
        for r in records
    ]
    return table(("ID", "STATUS", "AGENT", "CREATED", "EXPIRES", "REQUEST"), rows)


def _detail_text(detail: dict[str, Any]) -> str:
    return ", ".join(
        f"{inert(k)}={json.dumps(v, sort_keys=True, ensure_ascii=False)}"
        for k, v in sorted(detail.items())
        if v not in (None, "")
    )


def audit_line(event: AuditRecord, redact: Redactor, *, summary: str | None = None) -> str:
    """One audit event on one line; with `summary` (the request's, for `watch`) that leads after who did it."""
    where = f" {inert(event.request_id)}" if event.request_id else ""
    head = f"#{event.seq} {iso(event.at)}{where} {inert(event.event)} by {inert(event.actor)}"
    detail = _detail_text(redact(event.detail))
    if summary is not None:
        return f"{head}: {summary}" + (f"; {detail}" if detail else "")
    what = f" {inert(event.tool)}" if event.tool else ""
    return f"{head}{what}" + (f": {detail}" if detail else "")


def audit_lines(events: Sequence[AuditRecord], redact: Redactor) -> str:
    if not events:
        return "no audit events"
    return "\n".join(audit_line(e, redact) for e in events)


def budgets_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows of `budget_json`, one agent a line."""
    if not rows:
        return "no agents configured"
    cells = [
        (
            str(r["agent"]),
            f"{r['requests_last_minute']}/{r['requests_per_minute']}",
            f"{r['mutations_last_hour']}/{r['mutations_per_hour']}",
            f"{r['pending']}/{r['max_pending']}",
            f"{r['failure_streak']}/{r['failures_to_cooldown']}",
            str(r["cooldown_until"] or "-"),
            _per_target(r),
        )
        for r in rows
    ]
    headers = ("AGENT", "REQUESTS/MIN", "MUTATIONS/H", "PENDING", "FAILURES", "COOLDOWN UNTIL", "CHANGES PER TARGET")
    return table(headers, cells)


def _per_target(row: dict[str, Any]) -> str:
    """The targets changed in the per-target window, e.g. `{"container":"web"} 2/3`; the busiest first."""
    used = sorted(row.get("changes_per_target", {}).items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{target} {count}/{row['per_target_limit']}" for target, count in used) or "-"
