"""The agent-facing MCP server over streamable HTTP: one daemon for every agent, a bearer token per grant.

Every request to `/mcp` must carry `Authorization: Bearer <token>`. The token's SHA-256 is compared, in constant
time, with every agent's `token_sha256`; the match fixes the agent for that request, and nothing in the request
body can change it. No token or an unknown token gets HTTP 401 (`WWW-Authenticate: Bearer`) and an audit record
without the token. ArgoBox is not an OAuth authorization server and serves no OAuth metadata: the token is a
static secret made with `argobox token new`.

Both protocol eras are served on the one endpoint: 2026-07-28 (stateless, `server/discover`) and the 2025-11-25
`initialize` handshake (sessions, bound to the token that opened them). Host and Origin headers are checked
against the bound address (DNS-rebinding protection) before anything else.

The daemon follows its configuration file (and SIGHUP): see `argobox.server.transport.watch`. On SIGTERM or SIGINT it stops
accepting connections, ends listen streams, lets calls in flight finish (each is recorded with its outcome), and
closes the store.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import anyio
from mcp.server.auth.middleware.auth_context import auth_context_var, get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from argobox.server.app import App
from argobox.server.config.model import Config, ConfigError
from argobox.server.config.tokens import agent_for_token
from argobox.server.store import Event, StoreError
from argobox.server.transport.agent import Identity, build_agent_server
from argobox.server.transport.connections import guarded_protocol
from argobox.server.transport.health import health_route
from argobox.server.transport.listen import DEFAULT_LISTEN
from argobox.server.transport.live import LiveState
from argobox.server.transport.quiet import quiet_library_logs
from argobox.server.transport.refusals import RefusalAudit
from argobox.server.transport.screen import PostScreen
from argobox.server.transport.sessions import AgentSessionManager, AnswerSessionCap
from argobox.server.transport.watch import ConfigWatcher, Reload

logger = logging.getLogger("argobox")

MCP_PATH = "/mcp"
DEFAULT_DRAIN_SECONDS = 30.0
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


# -- where to listen ----------------------------------------------------------------------------------------------


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:PORT`) into (host, port). Raises `ConfigError` on anything else."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--http {value!r}: expected HOST:PORT, for example {DEFAULT_LISTEN} or [::1]:8765")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ConfigError(f"--http {value!r}: write an IPv6 address in brackets, for example [::1]:8765")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def transport_security(host: str, allowed_hosts: list[str]) -> TransportSecuritySettings:
    """DNS-rebinding protection: the Host (and any Origin) must name loopback, the bound address or an allowed host."""
    names: list[str] = list(_LOOPBACK_NAMES)
    try:
        if not ipaddress.ip_address(host).is_unspecified and not is_loopback(host):
            names.append(_url_host(host))
    except ValueError:
        names.append(host)  # a host name given to bind to
    for extra in allowed_hosts:
        names.append(extra)
    hosts: list[str] = []
    origins: list[str] = []
    for name in dict.fromkeys(names):
        has_port = name.rpartition(":")[2].isdigit() and not name.endswith("]")
        hosts.append(name if has_port else f"{name}:*")
        for scheme in ("http", "https"):
            origins.append(f"{scheme}://{name}" if has_port else f"{scheme}://{name}:*")
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


# -- who is asking --------------------------------------------------------------------------------------------------


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
        assert digest is not None
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
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", challenge.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# -- the daemon -----------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class HttpDaemon:
    """The ASGI application and the handles a shutdown or a reload needs."""

    asgi: Starlette
    gate: BearerGate
    live: LiveState

    async def on_reload(self, change: Reload) -> None:
        self.live.revoke(change.revoked)
        self.gate.streams.end_for(change.revoked)
        if self.gate.sessions is not None:
            await self.gate.sessions.end_sessions_of(change.revoked)
        await self.live.tools_changed(change.changed - change.revoked)


def build_http_app(app: App, *, security: TransportSecuritySettings, live: LiveState | None = None) -> HttpDaemon:
    """The streamable-HTTP ASGI app serving every configured agent by its token, at `/mcp`."""
    state = live if live is not None else LiveState()
    server = build_agent_server(app, http_identity(app), live=state)
    limits = app.config.http
    manager = AgentSessionManager(
        app=server,
        security_settings=security,
        session_idle_timeout=limits.session_idle_seconds,
        per_agent=limits.max_sessions_per_agent,
    )
    gate = BearerGate(StreamableHTTPASGIApp(manager), app, security, manager)
    routes = [Route(MCP_PATH, endpoint=gate), health_route(app.store)]
    asgi = Starlette(routes=routes, lifespan=lambda _: manager.run())
    return HttpDaemon(asgi=asgi, gate=gate, live=state)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when the listening socket says
    # TCP; with proto 0, Nagle and delayed ACKs add ~40 ms to every response.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.set_inheritable(True)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {_url_host(host)}:{port}: {exc.strerror or exc}") from None
    return sock


async def serve_http(
    app: App,
    listen: str,
    *,
    allow_non_loopback: bool = False,
    allowed_hosts: list[str] | None = None,
    drain_seconds: float = DEFAULT_DRAIN_SECONDS,
    background: Sequence[Callable[[App], Awaitable[None]]] = (),
) -> None:
    """Serve every configured agent over streamable HTTP at `listen` until SIGTERM/SIGINT, running the `background`
    tasks (such as notification delivery) alongside. A bad address or one that cannot be bound raises `ConfigError`
    before anything starts."""
    import uvicorn

    host, port = parse_listen(listen)
    if not is_loopback(host):
        if not allow_non_loopback:
            raise ConfigError(
                f"--http {listen}: {host} is not a loopback address. Serving beyond this machine sends bearer tokens "
                "over plain HTTP; put a TLS-terminating proxy in front, then pass --allow-non-loopback to bind it"
            )
        logger.warning(
            "listening on the non-loopback address %s WITHOUT TLS: bearer tokens and results cross the network in "
            "clear text. Put a TLS-terminating reverse proxy in front of ArgoBox, or bind to 127.0.0.1",
            host,
        )
    for noisy in ("mcp.server.streamable_http_manager", "mcp.server.streamable_http"):
        logging.getLogger(noisy).setLevel(logging.WARNING)  # one INFO line per session otherwise
    security = transport_security(host, allowed_hosts or [])
    if not is_loopback(host):
        logger.info("accepted Host headers: %s", ", ".join(security.allowed_hosts))
    daemon = build_http_app(app, security=security)
    quiet_library_logs()
    protocol, guard = guarded_protocol(app.config.http)
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    url = f"http://{_url_host(host)}:{bound_port}{MCP_PATH}"
    config = uvicorn.Config(
        daemon.asgi,
        host=host,
        port=bound_port,
        log_config=None,
        access_log=False,
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=max(5, int(drain_seconds) + 5),
        http=protocol,  # deadlines for headers and body, caps on connections
        ws="none",
    )
    server = _Uvicorn(config)
    watcher = ConfigWatcher(app, daemon.on_reload, process="http daemon", sighup=True)
    tokens = sum(1 for agent in app.config.agents.values() if agent.token_sha256)
    if tokens == 0:
        logger.warning(
            "no agent has a token_sha256: every request will be refused until one has (argobox token new AGENT --write)"
        )
    try:
        await _audit(app, "daemon_started", {"transport": "http", "url": url, "agents_with_tokens": tokens})
        async with anyio.create_task_group() as tg:
            await tg.start(watcher.run)
            tg.start_soon(_stop_on_signal, server, daemon, drain_seconds)
            for task in background:
                tg.start_soon(task, app)

            async def announce() -> None:
                while not server.started:
                    await anyio.sleep(0.01)
                logger.info(
                    "serving MCP over streamable HTTP at %s (%d agent%s with a token)",
                    url,
                    tokens,
                    "" if tokens == 1 else "s",
                )

            tg.start_soon(announce)
            await server.serve(sockets=[sock])
            tg.cancel_scope.cancel()
    finally:
        sock.close()
        guard.log.flush()
        with anyio.CancelScope(shield=True):
            await daemon.gate.refusals.flush()
            await _audit(app, "daemon_stopped", {"transport": "http", "url": url})
    logger.info("stopped")


class _Uvicorn:
    """uvicorn's server with ArgoBox's own signal handling (uvicorn's would replace SIGHUP's and ours)."""

    def __init__(self, config: Any) -> None:
        import uvicorn

        class Server(uvicorn.Server):
            @contextmanager
            def capture_signals(self) -> Iterator[None]:
                with nullcontext():
                    yield

        self._server = Server(config)

    @property
    def started(self) -> bool:
        return bool(self._server.started)

    async def serve(self, sockets: list[socket.socket]) -> None:
        await self._server.serve(sockets=sockets)

    def stop(self) -> None:
        self._server.should_exit = True


async def _stop_on_signal(server: _Uvicorn, daemon: HttpDaemon, drain_seconds: float) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            in_flight = daemon.live.calls.count
            logger.info(
                "received %s: no new connections; waiting for %d call%s in flight (at most %g s)",
                name,
                in_flight,
                "" if in_flight == 1 else "s",
                drain_seconds,
            )
            server.stop()
            daemon.live.close()
            with anyio.move_on_after(drain_seconds) as waited:
                await daemon.live.calls.wait_idle()
            if waited.cancelled_caught:
                logger.warning(
                    "calls still in flight after %g s; they finish and are recorded before exit", drain_seconds
                )
            daemon.gate.streams.end_all()
            break
        async for signum in signals:
            logger.warning(
                "received %s again: already stopping; %d call%s still in flight will be recorded first",
                signal.Signals(signum).name,
                daemon.live.calls.count,
                "" if daemon.live.calls.count == 1 else "s",
            )
            daemon.gate.streams.end_all()


async def _audit(app: App, event: str, detail: dict[str, Any]) -> None:
    try:
        await app.store.audit([Event(event=event, actor="argobox", detail=detail)])
    except StoreError as exc:
        logger.error("could not audit %s: %s", event, exc)
