"""The operator MCP tools over streamable HTTP at the console's `/mcp`, for a desktop MCP client on another machine.

The bearer token is an operator's token (`[[operators]] token_sha256`), never an agent's; it names the operator, and
`auth.authorize` checks it on every HTTP request under the configuration in force. Each operator gets the same server
`argobox operator --as NAME` runs over stdio, built on first use, with one addition: its role. A viewer does not see
`approve_request` and `deny_request` in `tools/list`, and calling them is refused (and audited); the decision
functions refuse viewers too, whichever way they are reached.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus
from mcp import types
from mcp.server.auth.middleware.auth_context import auth_context_var, get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from argobox.server.console import ops
from argobox.server.console.auth import Need, NotAuthorized, Presented, Proven, authorize, is_agent_token
from argobox.server.console.auth import operator_for_token as find_operator
from argobox.server.console.refusals import ConsoleAudit

DECIDING_TOOLS = frozenset({"approve_request", "deny_request"})


class RoleGuard:
    """Server middleware: applies the operator's role (in force now) to `tools/list` and `tools/call`."""

    def __init__(self, app: ops.App, operator: str, audit: ConsoleAudit) -> None:
        self._app = app
        self._operator = operator
        self._audit = audit

    def _refusal(self) -> str | None:
        access = get_access_token()
        if access is None:
            return "no credential on this request"
        try:
            authorize(self._app.config, self._operator, Proven(access.token), Need.DECIDE)
        except NotAuthorized as exc:
            return str(exc)
        return None

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "tools/call" and (ctx.params or {}).get("name") in DECIDING_TOOLS:
            refusal = self._refusal()
            if refusal is not None:
                tool = str((ctx.params or {}).get("name"))
                await self._audit.refused(
                    f"operator:{self._operator}",
                    refusal,
                    channel="mcp-http",
                    action="decide",
                    detail={"tool": tool[:64]},
                )
                text = f"refused: {refusal}"
                return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)
        result = await call_next(ctx)
        if ctx.method == "tools/list" and isinstance(result, dict) and self._refusal() is not None:
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
        self._handlers: dict[str, StreamableHTTPASGIApp] = {}
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

    async def _handler(self, operator: str) -> StreamableHTTPASGIApp:
        async with self._lock:
            handler = self._handlers.get(operator)
            if handler is None:
                if self._tasks is None:
                    raise RuntimeError("the operator MCP endpoint is not running")
                server = ops.build_operator_server(self._app, operator)
                server.middleware.append(RoleGuard(self._app, operator, self._audit))
                server.streamable_http_app(transport_security=self._security)  # builds its session manager
                await self._tasks.start(_run_manager, server.session_manager)
                handler = self._handlers[operator] = StreamableHTTPASGIApp(server.session_manager)
            return handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        header = Headers(scope=scope).get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        client = scope.get("client")
        remote = str(client[0]) if client else "unknown"
        config = self._app.config
        name = find_operator(config, token) if token else None
        try:
            if name is None:
                raise NotAuthorized("no_token" if not token else "unknown_token", self._unknown(config, token))
            operator = authorize(config, name, Presented(token), Need.VIEW)
        except NotAuthorized as exc:
            await self._audit.refused(f"console:{remote}", str(exc), channel="mcp-http", action="view")
            await _unauthorized(send, str(exc))
            return
        access = AccessToken(token=operator.token_sha256, client_id=f"operator:{operator.name}", scopes=[])
        user = AuthenticatedUser(access)
        handler = await self._handler(operator.name)
        reset = auth_context_var.set(user)
        try:
            await handler({**scope, "user": user}, receive, send)
        finally:
            auth_context_var.reset(reset)

    @staticmethod
    def _unknown(config: ops.Config, token: str) -> str:
        if not token:
            return "no bearer token: send Authorization: Bearer <operator token>"
        if is_agent_token(config, token):
            return "an agent's token can never open the operator tools"
        return "the bearer token is no operator's token"


async def _unauthorized(send: Send, reason: str) -> None:
    body = json.dumps({"error": "invalid_token", "error_description": reason}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b'Bearer realm="argobox-operator", error="invalid_token"'),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
