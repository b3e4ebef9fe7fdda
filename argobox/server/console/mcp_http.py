"""The operator MCP tools over streamable HTTP at the console's `/mcp`, for a desktop MCP client on another machine.

The bearer token is an operator's token (`[[operators]] token_sha256`), never an agent's. The token names the
operator; every HTTP request is then authorized by ArgoBox's `authorize` (Permission.VIEW, channel `mcp-http`), and
each decision once more where it is taken, with the same claim: the operator's name and the bearer token. Each
operator (and token) gets the server `argobox operator --as NAME` runs over stdio, built on first use
(`ops.build_operator_server`). A viewer's `approve_request` and `deny_request` are refused by `authorize` (and
audited there); its `tools/list` leaves them out.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from argobox.server.console import auth, ops
from argobox.server.console.refusals import ConsoleAudit

DECIDING_TOOLS = frozenset({"approve_request", "deny_request"})


class ViewerTools:
    """Server middleware: a viewer's `tools/list` leaves out the tools that decide (by the role in force now).

    Only what is listed: calling them is refused by `authorize`, like any decision of a viewer."""

    def __init__(self, app: ops.App, operator: str) -> None:
        self._app = app
        self._operator = operator

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)
        if ctx.method != "tools/list" or auth.may_decide(self._app.config, self._operator):
            return result
        if isinstance(result, dict):
            tools: list[dict[str, Any]] = result.get("tools", [])
            result = {**result, "tools": [t for t in tools if t.get("name") not in DECIDING_TOOLS]}
        return result


async def _run_manager(manager: StreamableHTTPSessionManager, *, task_status: TaskStatus[None]) -> None:
    async with manager.run():
        task_status.started()
        await anyio.sleep_forever()


class OperatorEndpoint:
    """The ASGI endpoint at `/mcp`. `running()` must be entered (it holds the session managers' tasks)."""

    def __init__(self, app: ops.App, audit: ConsoleAudit, security: TransportSecuritySettings) -> None:
        self._app = app
        self._audit = audit
        self._security = security
        self._handlers: dict[tuple[str, str], StreamableHTTPASGIApp] = {}
        self._lock = anyio.Lock()
        self._tasks: TaskGroup | None = None

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Hold the task group the per-operator session managers run in, until cancelled."""
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            task_status.started()
            try:
                await anyio.sleep_forever()
            finally:
                self._tasks = None
                tasks.cancel_scope.cancel()

    async def _handler(self, claim: ops.OperatorClaim, token_sha256: str) -> StreamableHTTPASGIApp:
        """The operator's server for this token (a replaced token gets a server, and sessions, of its own)."""
        key = (claim.name, token_sha256)
        async with self._lock:
            handler = self._handlers.get(key)
            if handler is None:
                if self._tasks is None:
                    raise RuntimeError("the operator MCP endpoint is not running")
                server = ops.build_operator_server(self._app, claim)
                server.middleware.append(ViewerTools(self._app, claim.name))
                server.streamable_http_app(transport_security=self._security)  # builds its session manager
                await self._tasks.start(_run_manager, server.session_manager)
                handler = self._handlers[key] = StreamableHTTPASGIApp(server.session_manager)
            return handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        header = Headers(scope=scope).get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        client = scope.get("client")
        remote = str(client[0]) if client else "unknown"
        config = self._app.config
        name = auth.operator_for_token(config, token) if token else None
        if name is None:  # no claim to authorize: recorded here, coalesced
            reason = self._unknown(config, token)
            await self._audit.refused(f"console:{remote}", reason, channel="mcp-http", action="view")
            await _unauthorized(send, reason)
            return
        claim = ops.OperatorClaim(name, token=token, channel="mcp-http", remote=remote)
        try:  # a refusal is audited by `authorize`
            operator = await auth.check(self._app, claim, ops.Permission.VIEW)
        except ops.Refused as exc:
            await _unauthorized(send, str(exc))
            return
        access = AccessToken(token=operator.token_sha256, client_id=f"operator:{operator.name}", scopes=[])
        user = AuthenticatedUser(access)
        handler = await self._handler(claim, operator.token_sha256)
        reset = auth_context_var.set(user)
        try:
            await handler({**scope, "user": user}, receive, send)
        finally:
            auth_context_var.reset(reset)

    @staticmethod
    def _unknown(config: ops.Config, token: str) -> str:
        if not token:
            return "no bearer token: send Authorization: Bearer <operator token>"
        if auth.is_agent_token(config, token):
            return "an agent's token can never open the operator tools"
        return "the bearer token is no operator's token"


async def _unauthorized(send: Send, reason: str) -> None:
    body = json.dumps({"error": "invalid_token", "error_description": reason}).encode()
    challenge = b'Bearer realm="argobox-operator", error="invalid_token"'
    await ops.send_body(send, 401, body, headers=((b"www-authenticate", challenge),))
