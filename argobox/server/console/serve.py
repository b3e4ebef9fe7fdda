"""Serving the console: `argobox console`, and the console's own listener inside `argobox serve --http`.

The console always has a listener of its own, never the agents' one. Like the daemon it binds to loopback unless
told otherwise (a non-loopback address needs --allow-non-loopback, and operators should reach it through a
TLS-terminating proxy whose address is `public_url`).
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import socket
import time
from collections.abc import Generator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import anyio
import uvicorn

from argobox.server.console import ops
from argobox.server.console.web import Console

logger = logging.getLogger("argobox")

DEFAULT_LISTEN = "127.0.0.1:8766"
EXPIRY_SWEEP_SECONDS = 10.0
SHUTDOWN_SECONDS = 10.0


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the process that runs the console handles signals itself."""

    @contextmanager
    def capture_signals(self) -> Generator[None]:
        with nullcontext():
            yield


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen()  # now, so that a clash is found here (see transport.http._bind), not inside uvicorn
        sock.set_inheritable(True)
    except OSError as exc:
        sock.close()
        shown = f"[{host}]" if ":" in host else host
        raise ops.ConfigError(f"the console cannot listen on {shown}:{port}: {exc.strerror or exc}") from None
    return sock


def _listen(value: str, where: str) -> tuple[str, int]:
    try:
        return ops.parse_listen(value)
    except ops.ConfigError:
        raise ops.ConfigError(f"{where} {value!r}: expected HOST:PORT, e.g. {DEFAULT_LISTEN} or [::1]:8766") from None


@dataclass(slots=True)
class ConsoleServer:
    """A bound console listener and the console it serves; `serve` runs it until cancelled or stopped."""

    console: Console
    sock: socket.socket
    url: str
    _server: _Server | None = None

    async def serve(self, app: ops.App | None = None) -> None:
        """Serve until `stop()` or cancellation (then stop gracefully, bounded). `app` is ignored (it lets this
        method be a background task of the agent daemon)."""
        del app
        config = uvicorn.Config(
            self.console.asgi(),
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=int(SHUTDOWN_SECONDS),
        )
        server = self._server = _Server(config)
        async with anyio.create_task_group() as tasks:
            await tasks.start(self.console.mcp.run)
            tasks.start_soon(self._announce, server)
            try:
                await server.serve(sockets=[self.sock])
            except anyio.get_cancelled_exc_class():
                with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_SECONDS):
                    await server.shutdown(sockets=[self.sock])
                raise
            finally:
                with anyio.CancelScope(shield=True):
                    await self.console.audit.flush()
                self.sock.close()
                tasks.cancel_scope.cancel()

    async def _announce(self, server: _Server) -> None:
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for "started"
            await anyio.sleep(0.01)
        logger.info("serving the operator console at %s (operator MCP tools at %smcp)", self.url, self.url)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True


def prepare_console(app: ops.App, listen: str | None, *, allow_non_loopback: bool) -> ConsoleServer:
    """Bind the console's listener (`listen`, else `[console] listen`). Raises `ConfigError` before anything runs."""
    settings = app.config.console or ops.ConsoleConfig()
    where = "--listen" if listen is not None else "[console] listen"
    value = listen if listen is not None else settings.listen
    host, port = _listen(value, where)
    if not ops.is_loopback(host):
        if not allow_non_loopback:
            raise ops.ConfigError(
                f"{where} {value}: {host} is not a loopback address. Put a TLS-terminating proxy in front of the "
                "console and set [console] public_url to its https:// address, then pass --allow-non-loopback"
            )
        if not (settings.public_url or "").startswith("https://"):
            logger.warning(
                "the console listens on %s and public_url is not https: sign-in tokens and session "
                "cookies cross the network in clear text",
                host,
            )
    sock = _bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    if _unspecified(host):
        shown = "127.0.0.1" if ":" not in host else "[::1]"
    url = f"http://{shown}:{sock.getsockname()[1]}/"
    return ConsoleServer(console=Console(app, bound_host=host), sock=sock, url=url)


def shared_listener(agents_listen: str, console_listen: str) -> str | None:
    """Why `serve --http AGENTS_LISTEN` cannot also serve a console at `console_listen` (both would listen on one
    address), or None. Checked before either listener is bound; a malformed address is left to the binding."""
    try:
        agents, console = ops.parse_listen(agents_listen), ops.parse_listen(console_listen)
    except ops.ConfigError:
        return None
    if agents[1] != console[1] or agents[1] == 0 or not _overlap(agents[0], console[0]):
        return None
    return (
        f"--http {agents_listen} and [console] listen {console_listen} are the same address, but the console needs "
        "a listener of its own, never the agents' one: give [console] listen another port"
    )


def _overlap(one: str, other: str) -> bool:
    """Whether listening on `one` and on `other` (at one port) would clash: the same host, or a wildcard address
    that covers the other (IPv6's also covers IPv4, as Linux binds it by default)."""
    if one.lower() == other.lower():
        return True
    try:
        a, b = ipaddress.ip_address(one), ipaddress.ip_address(other)
    except ValueError:
        return False
    return a == b or any(x.is_unspecified and (x.version == 6 or y.version == 4) for x, y in ((a, b), (b, a)))


def _unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


async def _sweep_expired(app: ops.App) -> None:
    """Mark requests past their expiry as expired now and then (the pages already hide them meanwhile)."""
    while True:
        await anyio.sleep(EXPIRY_SWEEP_SECONDS)
        try:
            await app.store.expire_due()
        except ops.StoreError as exc:
            logger.error("console: could not expire due requests: %s", exc)


async def _stop_on_signal(server: ConsoleServer) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            logger.info("received %s: stopping the console", signal.Signals(signum).name)
            server.stop()
            return


async def run_console(config: ops.Config, listen: str | None, *, allow_non_loopback: bool) -> None:
    """`argobox console`: serve the console (and the operator MCP tools at /mcp) until SIGTERM or SIGINT."""
    async with ops.open_app(config) as app:
        server = prepare_console(app, listen, allow_non_loopback=allow_non_loopback)

        async def ignore(_: Any) -> None:
            return None

        watcher = ops.ConfigWatcher(app, ignore, process="console")
        await ops.audit(app, "console_started", "argobox", {"url": server.url})
        started = time.monotonic()
        try:
            async with anyio.create_task_group() as tasks:
                await tasks.start(watcher.run)
                tasks.start_soon(ops.notify_forever, app)
                tasks.start_soon(ops.listen_forever, app)  # the phone's Approve and Deny buttons, when configured
                tasks.start_soon(_sweep_expired, app)
                tasks.start_soon(_stop_on_signal, server)
                await server.serve()
                tasks.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await ops.audit(
                    app, "console_stopped", "argobox", {"url": server.url, "seconds": round(time.monotonic() - started)}
                )
    logger.info("stopped")
