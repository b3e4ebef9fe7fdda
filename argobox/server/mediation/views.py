"""How requests, audit events and budgets are shown to operators as JSON objects (the CLI's `--json`, the operator
server, and the explain view). The CLI's text tables are in `argobox.server.cli.tables`.

Everything shown passes through the redactor: values, so that secret-looking keys are caught, and configured secrets
and URL credentials wherever they ended up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from argobox.policy.catalog import CATALOG, ToolClass, describe_call
from argobox.policy.limits import FailureState, Limits, Usage
from argobox.server.redact import Redactor
from argobox.server.store import AuditRecord, RequestRecord
from argobox.server.times import iso


def request_json(record: RequestRecord, redact: Redactor, catalog: Mapping[str, ToolClass] = CATALOG) -> dict[str, Any]:
    """A request as JSON; its summary in the words of `catalog` (the table in force, which knows the runbooks)."""
    return redact(
        {
            "id": record.id,
            "agent": record.agent,
            "tool": record.tool,
            "arguments": record.arguments,
            "summary": describe_call(record.tool, record.arguments, catalog),
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
            "target": record.target,
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


def budget_json(
    agent: str,
    limits: Limits,
    usage: Usage,
    failures: FailureState,
    *,
    now: float,
    targets: dict[str, int] | None = None,
) -> dict[str, Any]:
    """An agent's budgets now; `targets` (from `Store.target_use`) are the changes counted per target."""
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
        "changes_per_target": dict(targets or {}),
        "per_target_limit": limits.per_target.count,
        "per_target_window_seconds": limits.per_target.seconds,
    }
