"""The agent-facing MCP server over streamable HTTP: one daemon for every agent, a bearer token per grant.

Every request to `/mcp` must carry `Authorization: Bearer <token>`, checked by the gate in
`argobox.server.transport.bearer`: the token fixes the agent for that request. ArgoBox is not an OAuth authorization
server and serves no OAuth metadata: the token is a static secret made with `argobox token new`.

Both protocol eras are served on the one endpoint: 2026-07-28 (stateless, `server/discover`) and the 2025-11-25
`initialize` handshake (sessions, bound to the token that opened them). Host and Origin headers are checked
against the bound address (DNS-rebinding protection) before anything else.

The daemon follows its configuration file (and SIGHUP): see `argobox.server.transport.watch`. On SIGTERM or SIGINT
it stops accepting connections, ends listen streams, lets calls in flight finish (each is recorded with its
outcome), and closes the store.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import socket
from collections.abc import Generator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import anyio
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.routing import Route

from argobox.server.app import App
from argobox.server.config.model import ConfigError
from argobox.server.store import Event, StoreError
from argobox.server.transport.agent import Background, build_agent_server
from argobox.server.transport.bearer import BearerGate, http_identity
from argobox.server.transport.connections import guarded_protocol
from argobox.server.transport.health import health_route
from argobox.server.transport.listen import DEFAULT_LISTEN
from argobox.server.transport.live import LiveState
from argobox.server.transport.quiet import quiet_library_logs
from argobox.server.transport.sessions import AgentSessionManager
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
    names.extend(allowed_hosts)
    hosts: list[str] = []
    origins: list[str] = []
    for name in dict.fromkeys(names):
        has_port = name.rpartition(":")[2].isdigit() and not name.endswith("]")
        hosts.append(name if has_port else f"{name}:*")
        origins.extend(f"{scheme}://{name}" if has_port else f"{scheme}://{name}:*" for scheme in ("http", "https"))
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


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
        # Listening now (the server listens again with its own backlog): with SO_REUSEADDR, two sockets of this
        # process can both bind one address, and only the second listen() would fail, inside the server.
        sock.listen()
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
    background: Sequence[Background] = (),
) -> None:
    """Serve every configured agent over streamable HTTP at `listen` until SIGTERM/SIGINT, running the `background`
    tasks (such as notification delivery) alongside. A bad address or one that cannot be bound raises `ConfigError`
    before anything starts."""
    host, port = parse_listen(listen)
    _check_exposure(host, listen, allow_non_loopback=allow_non_loopback)
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
    server = _Uvicorn(daemon.asgi, host=host, port=bound_port, drain_seconds=drain_seconds, protocol=protocol)
    watcher = ConfigWatcher(app, daemon.on_reload, process="http daemon", sighup=True)
    tokens = _agents_with_tokens(app)
    try:
        await _audit(app, "daemon_started", {"transport": "http", "url": url, "agents_with_tokens": tokens})
        async with anyio.create_task_group() as tg:
            await tg.start(watcher.run)
            tg.start_soon(_stop_on_signal, server, daemon, drain_seconds)
            for task in background:
                tg.start_soon(task, app)
            tg.start_soon(_announce, server, url, tokens)
            await server.serve(sockets=[sock])
            tg.cancel_scope.cancel()
    finally:
        sock.close()
        guard.log.flush()
        with anyio.CancelScope(shield=True):
            await daemon.gate.refusals.flush()
            await _audit(app, "daemon_stopped", {"transport": "http", "url": url})
    logger.info("stopped")


def _check_exposure(host: str, listen: str, *, allow_non_loopback: bool) -> None:
    """Refuse a non-loopback address unless allowed; warn when it is, since the daemon speaks plain HTTP."""
    if is_loopback(host):
        return
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


def _agents_with_tokens(app: App) -> int:
    """How many agents can be served (those with a token); warns when none can."""
    tokens = sum(1 for agent in app.config.agents.values() if agent.token_sha256)
    if tokens == 0:
        logger.warning(
            "no agent has a token_sha256: every request will be refused until one has (argobox token new AGENT --write)"
        )
    return tokens


async def _announce(server: _Uvicorn, url: str, tokens: int) -> None:
    """Say where the daemon serves, once it accepts connections."""
    await server.wait_started()
    logger.info(
        "serving MCP over streamable HTTP at %s (%d agent%s with a token)", url, tokens, "" if tokens == 1 else "s"
    )


class _Uvicorn:
    """uvicorn's server with ArgoBox's own signal handling (uvicorn's would replace SIGHUP's and ours), and an
    event for the moment it accepts connections."""

    def __init__(
        self, asgi: Starlette, *, host: str, port: int, drain_seconds: float, protocol: type[asyncio.Protocol]
    ) -> None:
        import uvicorn

        started = anyio.Event()

        class Server(uvicorn.Server):
            @contextmanager
            def capture_signals(self) -> Generator[None]:
                with nullcontext():
                    yield

            async def startup(self, sockets: list[socket.socket] | None = None) -> None:
                await super().startup(sockets=sockets)
                if self.started:
                    started.set()

        config = uvicorn.Config(
            asgi,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="on",
            server_header=False,
            timeout_graceful_shutdown=max(5, int(drain_seconds) + 5),
            http=protocol,  # deadlines for headers and body, caps on connections
            ws="none",
        )
        self._server = Server(config)
        self._started = started

    async def wait_started(self) -> None:
        await self._started.wait()

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
