"""Who is asking over HTTP: the bearer gate in front of the MCP endpoint, and the identity it fixes.

Every request to the endpoint must carry `Authorization: Bearer <token>`. The token's SHA-256 is compared, in
constant time, with every agent's `token_sha256` in the configuration in force; the match fixes the agent for that
request, and nothing in the request body can change it. No token or an unknown token gets HTTP 401
(`WWW-Authenticate: Bearer`) and an audit record without the token. Host and Origin headers are checked first
(DNS-rebinding protection), and handshake-era GET streams are tracked so that a shutdown or a revoked credential
can end them.
"""

from __future__ import annotations

import hmac
import json

import anyio
from mcp.server.auth.middleware.auth_context import auth_context_var, get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.authentication import AuthCredentials
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from argobox.server.app import App
from argobox.server.config.model import Config
from argobox.server.config.tokens import agent_for_token
from argobox.server.transport.agent import Identity
from argobox.server.transport.refusals import RefusalAudit
from argobox.server.transport.screen import PostScreen
from argobox.server.transport.sessions import AgentSessionManager, AnswerSessionCap, send_body


class AgentTokens:
    """The SDK `TokenVerifier` for ArgoBox: a bearer token is an agent's if its SHA-256 is that agent's
    `token_sha256` in the configuration in force. The returned `AccessToken` carries the hash, never the token."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._cache: tuple[Config, dict[str, str | None]] | None = None

    async def verify_token(self, token: str) -> AccessToken | None:
        config = self._app.config
        if self._cache is None or self._cache[0] is not config:
            self._cache = (config, {name: agent.token_sha256 for name, agent in config.agents.items()})
        agent = agent_for_token(token, self._cache[1])
        if agent is None:
            return None
        digest = self._cache[1][agent]
        if digest is None:  # agent_for_token matches only agents that have a token
            return None
        return AccessToken(token=digest, client_id=agent, subject=digest, scopes=[])


def http_identity(app: App) -> Identity:
    """The agent the current HTTP request authenticated as, if its token is still the one in force."""

    def identity() -> str | None:
        access = get_access_token()
        if access is None:
            return None
        configured = app.config.agents.get(access.client_id)
        if configured is None or configured.token_sha256 is None:
            return None
        return access.client_id if hmac.compare_digest(configured.token_sha256, access.token) else None

    return identity


class _Streams:
    """The long-lived GET streams (handshake-era standalone channels) by agent, so a shutdown or a revoked
    credential can end them."""

    def __init__(self) -> None:
        self._scopes: dict[anyio.CancelScope, str] = {}

    async def run(self, agent: str, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        state = {"started": False, "finished": False}

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                state["finished"] = True
            await send(message)

        with anyio.CancelScope() as cancel:
            self._scopes[cancel] = agent
            try:
                await app(scope, receive, tracking_send)
            finally:
                self._scopes.pop(cancel, None)
        if cancel.cancelled_caught and state["started"] and not state["finished"]:
            await send({"type": "http.response.body", "body": b"", "more_body": False})  # end the stream cleanly

    def end_all(self) -> None:
        for scope in list(self._scopes):
            scope.cancel()

    def end_for(self, agents: frozenset[str]) -> None:
        for scope, agent in list(self._scopes.items()):
            if agent in agents:
                scope.cancel()


class BearerGate:
    """ASGI wrapper around the MCP endpoint: Host/Origin check, then the bearer token, then the SDK transport."""

    def __init__(
        self,
        inner: ASGIApp,
        app: App,
        security: TransportSecuritySettings,
        sessions: AgentSessionManager | None = None,
    ) -> None:
        self._tokens = AgentTokens(app)
        self._answered = app.store.answered
        self._security = TransportSecurityMiddleware(security)
        self.refusals = RefusalAudit(app, transport="http")
        self._inner = AnswerSessionCap(inner, self.refusals)
        self._screen = PostScreen(app, self.refusals, sessions)
        self.sessions = sessions
        self.streams = _Streams()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._inner(scope, receive, send)
            return
        rejection = await self._security.validate_request(Request(scope), is_post=False)
        if rejection is not None:
            await rejection(scope, receive, send)
            return
        header = Headers(scope=scope).get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        access = await self._tokens.verify_token(token) if scheme.lower() == "bearer" and token else None
        if access is None:
            client = scope.get("client")
            remote = str(client[0]) if client else "unknown"
            reason = "unknown bearer token" if scheme.lower() == "bearer" and token else "no bearer token"
            await self.refusals.refused(reason, remote)
            await _unauthorized(reason, send)
            return
        user = AuthenticatedUser(access)
        # The SDK binds handshake-era sessions to `scope["user"]` and reads the identity from the auth context.
        scope = {**scope, "user": user, "auth": AuthCredentials(access.scopes)}
        reset = auth_context_var.set(user)
        try:
            if scope["method"] == "GET":
                await self.streams.run(access.client_id, self._inner, scope, receive, send)
            elif scope["method"] == "POST":  # malformed JSON-RPC and refused handshakes are answered by the screen
                replay = await self._screen(scope, receive, send, access.client_id)
                if replay is not None:
                    await self._inner(scope, replay, self._answering(send))
            else:
                await self._inner(scope, receive, send)
        finally:
            auth_context_var.reset(reset)

    def _answering(self, send: Send) -> Send:
        """`send`, telling the store once the answer is sent (its writes left behind go next)."""

        async def answering(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self._answered()

        return answering


async def _unauthorized(reason: str, send: Send) -> None:
    error = "invalid_token" if reason.startswith("unknown") else "invalid_request"
    body = json.dumps({"error": error, "error_description": f"{reason}: send Authorization: Bearer <token>"}).encode()
    challenge = f'Bearer realm="argobox", error="{error}"' if error == "invalid_token" else 'Bearer realm="argobox"'
    await send_body(send, 401, body, headers=((b"www-authenticate", challenge.encode()),))
