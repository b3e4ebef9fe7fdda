"""The operator-facing MCP server: approvals and the audit read-out, for desktop MCP clients.

A separate server with its own identity: one configured operator, fixed at launch (and proven with
ARGOBOX_OPERATOR_TOKEN when the operator has a `token_sha256`). Its tools are not in the agents' catalog, so no
grant can ever name them, and an agent's name or token cannot open it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import mcp.types as types
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from argobox import __version__
from argobox.server import gate
from argobox.server.app import App
from argobox.server.explain import explain
from argobox.server.store import Event, Refused, RequestStatus, iso
from argobox.server.views import audit_json, budget_json, request_json

PENDING_URI = "argobox://requests/pending"
STATUSES = ["pending", "all", *(s.value for s in RequestStatus)]
READ = types.ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
DECIDE = types.ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False)
RequestId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9]+$")]


def _status(status: str) -> RequestStatus | None:
    if status == "all":
        return None
    if status == "pending":
        return RequestStatus.PENDING
    try:
        return RequestStatus(status)
    except ValueError:
        raise ToolError(f"unknown status {status[:40]!r}; use one of: {', '.join(STATUSES)}") from None


def _since(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ToolError(f"since must be an ISO 8601 time such as 2026-11-25T10:00:00Z, not {value[:40]!r}") from None
    return parsed.timestamp()


def build_operator_server(app: App, operator: str) -> MCPServer[Any]:
    """The MCP server for `operator`, a configured operator, backed by `app`."""
    if app.config.operator(operator) is None:
        raise ValueError(f"{operator!r} is not a configured operator")
    server: MCPServer[Any] = MCPServer(
        "argobox-operator", version=__version__, title="ArgoBox (operator)",
        instructions=f"You are acting as ArgoBox operator {operator!r}: list, explain, approve and deny what "
        "agents asked for, and read the audit trail. Approving executes the action at once, exactly once.",
    )

    @server.tool(annotations=READ)
    async def list_requests(status: str = "pending", limit: Annotated[int, Field(ge=1, le=500)] = 50) -> dict[str, Any]:
        """List agent requests, newest first (status: pending, all, or a request status)."""
        await app.store.expire_due()
        records = await app.store.list_requests(status=_status(status), limit=limit)
        return {"requests": [request_json(r, app.redactor) for r in records]}

    @server.tool(annotations=READ)
    async def explain_request(request_id: RequestId) -> dict[str, Any]:
        """Who asked for what, how it was classified, which rule decided and why, the target's state, the agent's
        budget and the full timeline of one request."""
        record = await app.store.get(request_id)
        if record is None:
            raise ToolError(f"no request {request_id!r}")
        return await explain(app, record)

    @server.tool(annotations=DECIDE)
    async def approve_request(request_id: RequestId, note: Annotated[str, Field(max_length=1000)] = "") -> dict[str, Any]:
        """Approve a pending request and execute it now, exactly once; returns the outcome."""
        try:
            record = await gate.approve(app, request_id, operator=operator, note=note)
        except Refused as exc:
            raise ToolError(str(exc)) from None
        return {"outcome": gate.outcome_of(record, app.config.catalog).message, "request": request_json(record, app.redactor)}

    @server.tool(annotations=DECIDE)
    async def deny_request(request_id: RequestId, reason: Annotated[str, Field(min_length=1, max_length=1000)]) -> dict[str, Any]:
        """Deny a pending request; the agent sees the reason."""
        try:
            record = await gate.deny(app, request_id, operator=operator, reason=reason)
        except Refused as exc:
            raise ToolError(str(exc)) from None
        return {"outcome": gate.outcome_of(record, app.config.catalog).message, "request": request_json(record, app.redactor)}

    @server.tool(annotations=READ)
    async def query_audit(
        request_id: RequestId | None = None, agent: str | None = None, since: str | None = None,
        limit: Annotated[int, Field(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """Audit events, oldest first (the most recent `limit`), filtered by request, agent and start time."""
        start = _since(since)
        events = await app.store.audit_trail(request_id=request_id, agent=agent, since=start, limit=limit)
        return {"events": [audit_json(e, app.redactor) for e in events]}

    @server.tool(annotations=READ)
    async def agent_overview(agent: str | None = None) -> dict[str, Any]:
        """Each agent's grant (its rules), budget use and recent activity."""
        names = sorted(app.config.agents) if agent is None else [agent]
        if agent is not None and agent not in app.config.agents:
            raise ToolError(f"no agent {agent[:64]!r}; configured: {', '.join(sorted(app.config.agents)) or 'none'}")
        return {"agents": [await _overview(app, name) for name in names]}

    @server.resource(PENDING_URI, name="pending-requests", mime_type="application/json",
                     description="Requests waiting for an operator's decision.")
    async def pending_requests() -> dict[str, Any]:
        await app.store.expire_due()
        records = await app.store.list_requests(status=RequestStatus.PENDING, limit=500)
        return {"requests": [request_json(r, app.redactor) for r in records]}

    return server


async def _overview(app: App, agent: str) -> dict[str, Any]:
    grant = app.config.grant(agent)
    limits = app.config.limits_for(agent)
    usage, failures = await app.store.budget(agent, limits)
    recent = await app.store.list_requests(agent=agent, limit=10)
    return {
        "agent": agent,
        "tools": sorted(name for name in grant.visible if name in grant.catalog),
        "rules": [
            {"rule": grant.rule_ref(i), "tools": list(r.tools), "args": {k: list(v) for k, v in r.args.items()},
             "effect": r.effect.value}
            for i, r in enumerate(grant.rules)
        ],
        "budget": budget_json(agent, limits, usage, failures, now=app.clock()),
        "recent": [
            {"id": r.id, "tool": r.tool, "status": r.status.value, "created_at": iso(r.created_at)} for r in recent
        ],
    }


async def audit_operator_refused(app: App, operator: str, reason: str) -> None:
    await app.store.audit([Event(event="operator_refused", actor=f"operator:{operator[:64]}", detail={"reason": reason})])
