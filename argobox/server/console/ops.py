"""Everything the console takes from the rest of ArgoBox, in one module.

The console's other modules import ArgoBox only through here, so that when the server's layout changes, only these
imports move. Each function is a thin call into the existing code (the same functions the CLI and the operator MCP
server use); none holds logic of its own beyond shaping arguments.
"""

from __future__ import annotations

import io
import sqlite3
from dataclasses import dataclass, replace
from typing import Any

import anyio

from argobox import __version__
from argobox.policy.catalog import CATALOG
from argobox.server import gate
from argobox.server.app import App, open_app
from argobox.server.audit_checkpoint import KeyFileError
from argobox.server.audit_export import export_jsonl
from argobox.server.audit_verify import verify_store
from argobox.server.config import Config, ConfigError, ConsoleConfig, parse_config
from argobox.server.explain import explain
from argobox.server.http import is_loopback, parse_listen
from argobox.server.notify import notify_forever
from argobox.server.operator import build_operator_server
from argobox.server.reload import ConfigWatcher
from argobox.server.store import Event, Refused, RequestRecord, RequestStatus, StoreError, iso
from argobox.server.tokens import TokenWriteError, agent_for_token, new_token, token_matches, token_sha256
from argobox.server.tokens import _parse as parse_toml  # pyright: ignore[reportPrivateUsage]
from argobox.server.tokens import _replace_atomically as replace_atomically  # pyright: ignore[reportPrivateUsage]
from argobox.server.tokens import _starts_table as starts_table  # pyright: ignore[reportPrivateUsage]
from argobox.server.views import audit_json, budget_json, request_json

__all__ = [
    "CATALOG",
    "App",
    "Config",
    "ConfigError",
    "ConfigWatcher",
    "ConsoleConfig",
    "HistoryFilter",
    "Refused",
    "RequestRecord",
    "RequestStatus",
    "StoreError",
    "TokenWriteError",
    "__version__",
    "agent_for_token",
    "approve",
    "audit",
    "audit_events",
    "budgets",
    "build_operator_server",
    "deny",
    "explain_request",
    "export_audit",
    "history",
    "is_loopback",
    "iso",
    "new_token",
    "notify_forever",
    "open_app",
    "outcome_message",
    "parse_config",
    "parse_listen",
    "parse_toml",
    "pending",
    "replace_atomically",
    "request",
    "reset_budget",
    "starts_table",
    "token_matches",
    "token_sha256",
    "verify_audit",
]

MAX_LISTED = 500


async def pending(app: App) -> list[dict[str, Any]]:
    """Requests waiting for a decision, newest first, without those past their expiry (a read: no sweep)."""
    now = app.clock()
    records = await app.store.list_requests(status=RequestStatus.PENDING, limit=MAX_LISTED)
    return [request_json(r, app.redactor) for r in records if r.expires_at is None or r.expires_at > now]


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    agent: str | None = None
    tool: str | None = None
    status: RequestStatus | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 200


async def history(app: App, wanted: HistoryFilter) -> list[dict[str, Any]]:
    """Requests matching `wanted`, newest first."""
    records = await app.store.list_requests(
        status=wanted.status,
        agent=wanted.agent,
        tool=wanted.tool,
        since=wanted.since,
        until=wanted.until,
        limit=wanted.limit,
    )
    return [request_json(r, app.redactor) for r in records]


async def request(app: App, request_id: str) -> RequestRecord | None:
    """One request; a pending one past its expiry is shown as expired (as the next sweep will record it)."""
    record = await app.store.get(request_id)
    pending = record is not None and record.status is RequestStatus.PENDING and record.expires_at is not None
    if record is not None and pending and record.expires_at is not None and record.expires_at <= app.clock():
        record = replace(record, status=RequestStatus.EXPIRED)
    return record


async def explain_request(app: App, record: RequestRecord) -> dict[str, Any]:
    """The explain view of `argobox show` and `explain_request` (redacted)."""
    return await explain(app, record)


async def approve(app: App, request_id: str, *, operator: str, note: str) -> RequestRecord:
    """Approve and execute once, exactly as `argobox approve` does. Raises `Refused`."""
    return await gate.approve(app, request_id, operator=operator, note=note)


async def deny(app: App, request_id: str, *, operator: str, reason: str) -> RequestRecord:
    """Deny, exactly as `argobox deny` does. Raises `Refused`."""
    return await gate.deny(app, request_id, operator=operator, reason=reason)


def outcome_message(record: RequestRecord) -> str:
    """The one-line outcome the CLI prints after a decision."""
    return gate.outcome_of(record).message


async def audit_events(
    app: App, *, request_id: str | None = None, agent: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """The most recent audit events, oldest first."""
    events = await app.store.audit_trail(request_id=request_id, agent=agent, limit=limit)
    return [audit_json(e, app.redactor) for e in events]


async def audit(app: App, event: str, actor: str, detail: dict[str, Any], *, request_id: str | None = None) -> None:
    """Append one event that belongs to no state change (sign-ins, refusals). Raises `StoreError`."""
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
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the audit trail: {exc}") from None
    return out.getvalue()


async def budgets(app: App) -> list[dict[str, Any]]:
    """Each configured agent's budget use, as `argobox budgets --json` shows it."""
    rows: list[dict[str, Any]] = []
    for agent in sorted(app.config.agents):
        limits = app.config.limits_for(agent)
        usage, failures = await app.store.budget(agent, limits)
        rows.append(budget_json(agent, limits, usage, failures, now=app.clock()))
    return rows


async def reset_budget(app: App, agent: str, *, operator: str) -> str:
    """`argobox budgets reset AGENT --as OPERATOR`; returns what was cleared, in words."""
    cleared = await app.store.reset_budget(agent, actor=f"operator:{operator}")
    until = f", cooldown until {iso(cleared.cooldown_until)} lifted" if cleared.cooldown_until else ""
    return f"reset the budget of {agent}: failure streak {cleared.streak} cleared{until}"
