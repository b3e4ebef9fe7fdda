"""The console's own refusal records (`refusals.ConsoleAudit`), on a real store and a clock that moves only when told:
coalesced per channel, actor and reason, counted into the next record, and flushed when the console stops."""

from __future__ import annotations

from typing import Any

import anyio
import httpx2

from argobox.server.app import App, open_app
from argobox.server.config.model import load_config
from argobox.server.console.refusals import WINDOW_SECONDS, ConsoleAudit
from argobox.server.console.serve import prepare_console
from tests.conftest import WriteConfig

COUNTED = "refusals_counted_not_recorded_singly"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def refusals(app: App) -> list[tuple[str, dict[str, Any]]]:
    return [(e.actor, e.detail) for e in await app.store.audit_trail() if e.event == "operator_refused"]


async def test_repeats_are_counted_into_the_next_record_and_the_rest_flushed(write_config: WriteConfig) -> None:
    clock = Clock()
    async with open_app(load_config(write_config())) as app:
        audit = ConsoleAudit(app, clock)
        for _ in range(3):
            await audit.refused("console:192.0.2.1", "no live session", channel="console", action="view")
        await audit.refused("console:192.0.2.1", "no live session", channel="mcp-http", action="view")
        await audit.refused("console:192.0.2.2", "no live session", channel="console", action="view")
        await audit.refused("console:192.0.2.1", "cross-site", channel="console", action="decide")
        clock.now += WINDOW_SECONDS
        await audit.refused("console:192.0.2.1", "no live session", channel="console", action="decide")
        await audit.refused("console:192.0.2.1", "no live session", channel="console", action="view")
        before_flush = await refusals(app)
        await audit.flush()  # as the console does when it stops
        await audit.flush()  # nothing left
        after_flush = await refusals(app)

    assert [(actor, d["channel"], d["reason"], d.get(COUNTED)) for actor, d in before_flush] == [
        ("console:192.0.2.1", "console", "no live session", None),
        ("console:192.0.2.1", "mcp-http", "no live session", None),
        ("console:192.0.2.2", "console", "no live session", None),
        ("console:192.0.2.1", "console", "cross-site", None),
        ("console:192.0.2.1", "console", "no live session", 2),  # the two repeats of the first window
    ]
    assert after_flush[len(before_flush) :] == [
        (
            "console:192.0.2.1",
            {
                "reason": "no live session",
                "channel": "console",
                "action": "view",
                COUNTED: 1,
                "includes_this_refusal": False,
            },
        )
    ]


async def test_the_console_records_what_it_only_counted_when_it_stops(write_config: WriteConfig) -> None:
    clock = Clock()
    async with open_app(load_config(write_config())) as app:
        server = prepare_console(app, "127.0.0.1:0", allow_non_loopback=False)
        server.console.audit = ConsoleAudit(app, clock)
        counted_while_running: list[tuple[str, dict[str, Any]]] = []
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(server.serve)
                async with httpx2.AsyncClient(timeout=5) as http:
                    while True:  # until the console answers
                        try:
                            await http.get(f"{server.url}signin")
                            break
                        except httpx2.TransportError:
                            await anyio.sleep(0.05)
                for _ in range(3):
                    await server.console.audit.refused("console:192.0.2.1", "x", channel="console", action="view")
                counted_while_running += await refusals(app)
                server.stop()
        after_stop = await refusals(app)

    assert [d.get(COUNTED) for _, d in counted_while_running] == [None]
    assert [d.get(COUNTED) for _, d in after_stop] == [None, 2]
