"""Handshake-era sessions per agent: a cap on the sessions one agent holds open, and each handshake counted
against the agent's request budget, so that one agent cannot fill the SDK's global table and lock every other out.

The SDK opens a session for every 2025-11-25 request without an `Mcp-Session-Id` (an `initialize`, normally) and
ends it on DELETE, at its idle timeout, when its server task crashes, or when the opening request fails; every one
of those paths goes through `StreamableHTTPSessionManager._discard_session`. `AgentSessionManager` counts the
sessions of each agent where the SDK registers (`_admit_session`, under the SDK's own lock, so the count is exact)
and releases them there. The gate refuses over the cap before the budget is charged; a handshake that still finds
the cap full at registration (a race between two) raises `SessionCapReached`, answered by `answer_session_cap`.

The audit shows each admitted handshake as a `handshake` event of the agent (before the session exists), a
handshake over budget as the store's coalesced `rate_limited` record, and one over the cap as a coalesced
`agent_refused` record. Session ends are not audited: they change nothing an operator acts on.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp_types import INVALID_REQUEST, ErrorData, JSONRPCError
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from argobox.server.app import App
from argobox.server.store import CallFacts, Event, StoreError
from argobox.server.transport.refusals import RefusalAudit

logger = logging.getLogger("argobox")

TOO_MANY_REQUESTS = 429
SERVICE_UNAVAILABLE = 503
RequestId = str | int | None


class SessionCapReached(Exception):
    """Raised by `AgentSessionManager` when a request would open one session more than its agent may hold."""

    def __init__(self, agent: str, cap: int) -> None:
        super().__init__(f"agent {agent!r} already holds {cap} open sessions")
        self.agent = agent
        self.cap = cap


class AgentSessionManager(StreamableHTTPSessionManager):
    """The SDK's session manager, holding each agent to `per_agent` open sessions."""

    def __init__(self, *args: Any, per_agent: int, **kwargs: Any) -> None:
        for hook in ("_admit_session", "_discard_session"):
            if not callable(getattr(StreamableHTTPSessionManager, hook, None)):
                raise RuntimeError(f"this mcp SDK has no {hook}; the per-agent session cap needs mcp 2.3")
        super().__init__(*args, **kwargs)
        self.per_agent = per_agent
        self._agent_of: dict[str, str] = {}
        self._open: Counter[str] = Counter()

    def open_sessions(self, agent: str) -> int:
        return self._open[agent]

    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        agent = requestor["client_id"] if requestor is not None else None
        if agent is not None and self._open[agent] >= self.per_agent:
            raise SessionCapReached(agent, self.per_agent)
        transport = super()._admit_session(requestor)
        session = transport.mcp_session_id if transport is not None else None
        if agent is not None and session is not None:
            self._agent_of[session] = agent
            self._open[agent] += 1
        return transport

    async def end_sessions_of(self, agents: frozenset[str]) -> None:
        """End every session of `agents` (their credential was revoked: the sessions can no longer be used), so
        that their slots are free at once."""
        for session, agent in list(self._agent_of.items()):
            transport = self._server_instances.get(session)
            if agent in agents and transport is not None:
                await self._discard_session(session, transport)

    async def _discard_session(self, session_id: str, transport: StreamableHTTPServerTransport) -> None:
        agent = self._agent_of.pop(session_id, None)  # called more than once for one session: count it once
        if agent is not None:
            self._open[agent] -= 1
            if self._open[agent] <= 0:
                del self._open[agent]
        await super()._discard_session(session_id, transport)


def opens_session(scope: Scope) -> bool:
    """Whether the SDK would open a new handshake-era session for this request (no session id, no modern era)."""
    headers = Headers(scope=scope)
    if headers.get("mcp-session-id") is not None:
        return False
    version = headers.get("mcp-protocol-version")
    return version is None or version in HANDSHAKE_PROTOCOL_VERSIONS


async def send_rpc_error(
    send: Send, status: int, error: JSONRPCError, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    """Answer with HTTP `status` and the JSON-RPC `error` as the body."""
    await send_body(send, status, error.model_dump_json(by_alias=True, exclude_unset=True).encode(), headers=headers)


async def send_body(
    send: Send,
    status: int,
    body: bytes,
    *,
    content_type: bytes = b"application/json",
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    """Answer with HTTP `status` and `body` whole, without the application (a refusal at the door)."""
    start = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})


def _remote(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def refuse_over_cap(
    refusals: RefusalAudit, scope: Scope, send: Send, *, agent: str, cap: int, request_id: RequestId = None
) -> None:
    """HTTP 429 for a handshake over the agent's session cap, audited as a coalesced `agent_refused`."""
    await refusals.refused(f"session cap: already {cap} open sessions", _remote(scope), agent=agent)
    message = (
        f"Too many open sessions: agent {agent!r} already holds {cap}; end one (HTTP DELETE with its "
        "Mcp-Session-Id) or wait until an idle one expires, then retry"
    )
    data = {"limit": "max_sessions_per_agent", "max_sessions_per_agent": cap}
    error = JSONRPCError(
        jsonrpc="2.0", id=request_id, error=ErrorData(code=INVALID_REQUEST, message=message, data=data)
    )
    await send_rpc_error(send, TOO_MANY_REQUESTS, error)


class AnswerSessionCap:
    """ASGI wrapper around the SDK's app: answers `SessionCapReached` (raised before any response) with HTTP 429."""

    def __init__(self, inner: ASGIApp, refusals: RefusalAudit) -> None:
        self._inner = inner
        self._refusals = refusals

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._inner(scope, receive, send)
        except SessionCapReached as exc:
            await refuse_over_cap(self._refusals, scope, send, agent=exc.agent, cap=exc.cap)


async def admit_handshake(
    app: App,
    manager: AgentSessionManager,
    refusals: RefusalAudit,
    scope: Scope,
    send: Send,
    *,
    agent: str,
    request_id: RequestId,
) -> bool:
    """Check a handshake against the agent's session cap and request budget, and record it. False: it was refused
    and answered here."""
    cap = manager.per_agent
    if manager.open_sessions(agent) >= cap:
        await refuse_over_cap(refusals, scope, send, agent=agent, cap=cap, request_id=request_id)
        return False
    event = Event(
        event="handshake",
        actor=f"agent:{agent}",
        detail={"transport": "http", "remote": _remote(scope), "open_sessions": manager.open_sessions(agent)},
    )
    try:
        limits = app.config.limits_for(agent)
        admission = await app.store.admit(CallFacts(agent=agent), limits, tool=None, events=[event])
    except StoreError as exc:
        logger.error("refused a handshake of agent %s: the audit trail could not be written: %s", agent, exc)
        error = ErrorData(code=INVALID_REQUEST, message="ArgoBox could not record the handshake; retry later")
        await send_rpc_error(send, SERVICE_UNAVAILABLE, JSONRPCError(jsonrpc="2.0", id=request_id, error=error))
        return False
    tripped = admission.tripped
    if tripped is None:
        return True
    message = (
        f"rate_limited: {tripped.message} (limit {tripped.limit}); every handshake counts as a call. Retry after "
        f"{tripped.retry_after_seconds} s, and reuse the session you have"
    )
    data = {"limit": tripped.limit, "retry_after_seconds": tripped.retry_after_seconds}
    error = JSONRPCError(
        jsonrpc="2.0", id=request_id, error=ErrorData(code=INVALID_REQUEST, message=message, data=data)
    )
    await send_rpc_error(send, TOO_MANY_REQUESTS, error, ((b"retry-after", str(tripped.retry_after_seconds).encode()),))
    return False
