"""The web console's `/mcp` for the fuzzer: the operator tools over streamable HTTP, served by the real console (its
bearer check, its roles, its session managers) on a loopback port, on the App the in-memory fuzz tests share."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import anyio

from argobox.server.app import App
from argobox.server.console.serve import prepare_console

BACKLOG = 64


@asynccontextmanager
async def serving_console(app: App) -> AsyncGenerator[str]:
    """The console of `app` on 127.0.0.1 (a free port) while the context lasts; its URL.

    The socket listens before the server starts, so a first request waits in the backlog rather than being refused
    (no polling for "started")."""
    console = prepare_console(app, "127.0.0.1:0", allow_non_loopback=False)
    console.sock.listen(BACKLOG)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(console.serve)
        try:
            yield console.url
        finally:
            console.stop()  # serve() shuts down gracefully (bounded) and returns
