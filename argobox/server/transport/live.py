"""What an agent server keeps about its live connections: where to tell each agent that its tools changed, and
which tool calls are still running.

Tools-changed events travel differently in the two protocol eras:

- 2026-07-28 clients open `subscriptions/listen` streams. Each agent has its own bus and its own listen handler,
  so an event published for one agent reaches only that agent's streams, and one agent cannot use up another's
  stream slots.
- 2025-11-25 (handshake) clients get `notifications/tools/list_changed` on their connection's standalone channel
  (the GET stream over HTTP, the pipe over stdio). Connections are remembered per agent when they make a request,
  weakly, and forgotten when they close.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Generator, Iterable
from contextlib import contextmanager
from typing import Any

import anyio
from mcp import types
from mcp.server import ServerRequestContext
from mcp.server.connection import Connection
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ToolsListChanged
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

logger = logging.getLogger("argobox")

MAX_LISTEN_STREAMS_PER_AGENT = 32
NOTIFY_TIMEOUT_SECONDS = 2.0


class CallTracker:
    """Counts the tool calls in flight, so a shutdown can wait for them."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = anyio.Event()
        self._idle.set()

    @property
    def count(self) -> int:
        return self._count

    @contextmanager
    def track(self) -> Generator[None]:
        self._count += 1
        if self._count == 1:
            self._idle = anyio.Event()
        try:
            yield
        finally:
            self._count -= 1
            if self._count == 0:
                self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


class LiveState:
    """Per-agent delivery of tools-changed events in both protocol eras, plus the calls in flight."""

    def __init__(self, *, max_listen_streams_per_agent: int = MAX_LISTEN_STREAMS_PER_AGENT) -> None:
        self.calls = CallTracker()
        self._max_streams = max_listen_streams_per_agent
        self._buses: dict[str, InMemorySubscriptionBus] = {}
        self._listeners: dict[str, ListenHandler] = {}
        self._legacy: weakref.WeakKeyDictionary[Connection, str] = weakref.WeakKeyDictionary()
        self._closed = False

    # -- 2026-07-28: subscriptions/listen ---------------------------------------------------------------------

    async def listen(
        self, agent: str, ctx: ServerRequestContext[Any], params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        """Serve one `subscriptions/listen` stream for `agent` (the identity the caller authenticated as)."""
        if self._closed:
            raise MCPError(types.INTERNAL_ERROR, "ArgoBox is shutting down; listen again after it restarts")
        handler = self._listeners.get(agent)
        if handler is None:
            bus = self._buses.setdefault(agent, InMemorySubscriptionBus())
            handler = self._listeners[agent] = ListenHandler(bus, max_subscriptions=self._max_streams)
        return await handler(ctx, params)

    # -- 2025-11-25: remembered connections ---------------------------------------------------------------------

    def remember(self, ctx: ServerRequestContext[Any], agent: str | None) -> None:
        """Remember a handshake-era connection as `agent`'s, to send it `notifications/tools/list_changed` later."""
        if agent is None or ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return
        # The SDK's per-request `ServerSession` wraps the connection; the connection is what outlives the request
        # and carries the standalone channel. (Private attribute: pinned by the `mcp>=2.3,<3` requirement and
        # covered by the list_changed tests in both transports.)
        connection = getattr(ctx.session, "_connection", None)
        if not isinstance(connection, Connection) or connection in self._legacy:
            return
        self._legacy[connection] = agent
        connection.exit_stack.callback(self._legacy.pop, connection, None)

    # -- publishing ---------------------------------------------------------------------------------------------

    async def tools_changed(self, agents: Iterable[str]) -> None:
        """Tell every live connection of each of `agents`, and no other, that its tool list changed."""
        wanted = set(agents)
        if not wanted:
            return
        for agent in sorted(wanted):
            bus = self._buses.get(agent)
            if bus is not None:
                await bus.publish(ToolsListChanged())
        for connection, agent in list(self._legacy.items()):
            if agent in wanted:
                with anyio.move_on_after(NOTIFY_TIMEOUT_SECONDS):
                    await connection.send_tool_list_changed()  # best effort; never raises

    def revoke(self, agents: Iterable[str]) -> None:
        """End `agents`' listen streams and forget their connections (their credentials are no longer valid)."""
        for agent in agents:
            handler = self._listeners.get(agent)
            if handler is not None:
                handler.close()
            for connection, owner in list(self._legacy.items()):
                if owner == agent:
                    self._legacy.pop(connection, None)

    def close(self) -> None:
        """End every listen stream gracefully (shutdown); later listen requests end at once."""
        self._closed = True
        for handler in self._listeners.values():
            handler.close()

    def connections(self, agent: str) -> int:
        """How many handshake-era connections of `agent` are remembered (for tests and logs)."""
        return sum(1 for owner in list(self._legacy.values()) if owner == agent)
