"""Everything the console takes from the rest of ArgoBox, in one module.

The console's other modules import ArgoBox only through here (tests/test_layers.py checks it), so that when the
server's layout changes, only these imports move. Each function is a thin call into the code the CLI and the operator
MCP server use; none holds logic of its own beyond shaping arguments. Every operator action goes through
`argobox.server.mediation.operators.authorize`, the one authorization of ArgoBox, with the claim the console built.
"""

from __future__ import annotations

import io
import sqlite3
from dataclasses import dataclass, replace
from typing import Any

import anyio

from argobox import __version__
from argobox.policy.catalog import ToolClass, command_parts
from argobox.server.app import App, open_app
from argobox.server.audit import KeyFileError
from argobox.server.config.model import Config, ConfigError, ConsoleConfig
from argobox.server.config.tokens import agent_for_token
from argobox.server.mediation import operator_actions
from argobox.server.mediation.audit_trail import export_jsonl, verify_store
from argobox.server.mediation.explain import explain
from argobox.server.mediation.notify import notify_forever
from argobox.server.mediation.operators import OperatorClaim, Permission, authorize
from argobox.server.mediation.outcome import outcome_of
from argobox.server.mediation.views import audit_json, budget_json, request_json
from argobox.server.store import Event, Refused, RequestRecord, RequestStatus, StoreError
from argobox.server.text import inert
from argobox.server.times import iso
from argobox.server.transport.http import is_loopback, parse_listen
from argobox.server.transport.operator import build_operator_server
from argobox.server.transport.operator_views import (
    AGENT_SUPPLIED,
    BACKEND_OUTPUT,
    mark_event,
    mark_explained,
    mark_request,
)
from argobox.server.transport.phone_listener import listen_forever
from argobox.server.transport.sessions import send_body
from argobox.server.transport.watch import ConfigWatcher, Reload

__all__ = [
    "AGENT_SUPPLIED",
    "BACKEND_OUTPUT",
    "App",
    "Config",
    "ConfigError",
    "ConfigWatcher",
    "ConsoleConfig",
    "HistoryFilter",
    "OperatorClaim",
    "Permission",
    "Refused",
    "Reload",
    "RequestRecord",
    "RequestStatus",
    "StoreError",
    "ToolClass",
    "__version__",
    "agent_for_token",
    "approve",
    "audit",
    "audit_events",
    "authorize",
    "budgets",
    "build_operator_server",
    "command_parts",
    "deny",
    "explain_request",
    "export_audit",
    "history",
    "inert",
    "is_loopback",
    "listen_forever",
    "notify_forever",
    "open_app",
    "outcome_message",
    "parse_listen",
    "pending",
    "request",
    "reset_budget",
    "send_body",
    "verify_audit",
]

MAX_LISTED = 500


async def pending(app: App) -> list[dict[str, Any]]:
    """Requests waiting for a decision, newest first, without those past their expiry (a read: no sweep); the
    agent's values under `agent_supplied`."""
    now = app.clock()
    records = await app.store.list_requests(status=RequestStatus.PENDING, limit=MAX_LISTED)
    live = [r for r in records if r.expires_at is None or r.expires_at > now]
    return [mark_request(request_json(r, app.redactor, app.config.catalog)) for r in live]


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    agent: str | None = None
    tool: str | None = None
    status: RequestStatus | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 200


async def history(app: App, wanted: HistoryFilter) -> list[dict[str, Any]]:
    """Requests matching `wanted`, newest first; the agent's values under `agent_supplied`."""
    records = await app.store.list_requests(
        status=wanted.status,
        agent=wanted.agent,
        tool=wanted.tool,
        since=wanted.since,
        until=wanted.until,
        limit=wanted.limit,
    )
    return [mark_request(request_json(r, app.redactor, app.config.catalog)) for r in records]


async def request(app: App, request_id: str) -> RequestRecord | None:
    """One request; a pending one past its expiry is shown as expired (as the next sweep will record it)."""
    record = await app.store.get(request_id)
    if record is None or record.status is not RequestStatus.PENDING or record.expires_at is None:
        return record
    return replace(record, status=RequestStatus.EXPIRED) if record.expires_at <= app.clock() else record


async def explain_request(app: App, record: RequestRecord) -> dict[str, Any]:
    """The explain view of `argobox show` and `explain_request` (redacted), agent values under `agent_supplied`."""
    return mark_explained(await explain(app, record), app.config.catalog)


async def approve(app: App, request_id: str, *, operator: OperatorClaim, note: str) -> RequestRecord:
    """Approve and execute once, exactly as `argobox approve` does (authorized there). Raises `Refused`."""
    return await operator_actions.approve(app, request_id, operator=operator, note=note)


async def deny(app: App, request_id: str, *, operator: OperatorClaim, reason: str) -> RequestRecord:
    """Deny, exactly as `argobox deny` does (authorized there). Raises `Refused`."""
    return await operator_actions.deny(app, request_id, operator=operator, reason=reason)


def outcome_message(app: App, record: RequestRecord) -> str:
    """The one-line outcome the CLI prints after a decision."""
    return outcome_of(record, app.config.catalog).message


async def audit_events(
    app: App, *, request_id: str | None = None, agent: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """The most recent audit events, oldest first; what an agent wrote under `agent_supplied`."""
    events = await app.store.audit_trail(request_id=request_id, agent=agent, limit=limit)
    return [mark_event(audit_json(e, app.redactor), app.config.catalog) for e in events]


async def audit(app: App, event: str, actor: str, detail: dict[str, Any], *, request_id: str | None = None) -> None:
    """Append one event that belongs to no state change (sign-ins, refusals before any claim). Raises `StoreError`."""
    await app.store.audit([Event(event=event, actor=actor, detail=detail)], request_id=request_id)


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    text: str


async def verify_audit(app: App) -> Verification:
    """`argobox audit verify` on the configured store (it opens the store read-only)."""
    config = app.config
    try:
        key = config.audit.verify_key()
    except KeyFileError as exc:
        return Verification(ok=False, text=f"the verification key cannot be used: {exc}")
    try:
        report = await anyio.to_thread.run_sync(lambda: verify_store(config.storage.path, key=key))
    except sqlite3.Error as exc:
        return Verification(ok=False, text=f"the audit trail cannot be read: {exc}")
    return Verification(ok=report.ok, text=report.text())


async def export_audit(app: App) -> str:
    """`argobox audit export --format jsonl` of the configured store, as text. Raises `StoreError`."""
    path = app.config.storage.path
    out = io.StringIO()
    try:
        await anyio.to_thread.run_sync(lambda: export_jsonl(path, out, since=None, redact=app.redactor))
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"cannot read the audit trail: {exc}") from None
    return out.getvalue()


async def budgets(app: App) -> list[dict[str, Any]]:
    """Each configured agent's budget use, as `argobox budgets --json` shows it."""
    rows: list[dict[str, Any]] = []
    for agent in sorted(app.config.agents):
        limits = app.config.limits_for(agent)
        usage, failures = await app.store.budget(agent, limits)
        targets = await app.store.target_use(agent, limits)
        rows.append(budget_json(agent, limits, usage, failures, now=app.clock(), targets=targets))
    return rows


async def reset_budget(app: App, agent: str, *, operator: OperatorClaim) -> str:
    """`argobox budgets reset AGENT --as OPERATOR` (authorized there); returns what was cleared, in words. Raises
    `Refused`."""
    cleared = await operator_actions.reset_budget(app, agent, operator=operator)
    until = f", cooldown until {iso(cleared.cooldown_until)} lifted" if cleared.cooldown_until else ""
    return f"reset the budget of {agent}: failure streak {cleared.streak} cleared{until}"
