"""What the store remembers of button presses, so that it holds across processes and restarts.

`phone_events`: the Home Assistant events (by context id) an ArgoBox process has taken on. Every listening process
(the HTTP daemon, the console, `argobox listen`) hears every event; the first to record it handles it, the others
leave it. `phone_codes_used`: the codes that decided something. A code is used once: pressing the same button again,
even after a restart, is refused.

The tables are created on first use (`CREATE TABLE IF NOT EXISTS`, inside the same transaction), so a store that
never sees a press is not changed.
"""

from __future__ import annotations

from dataclasses import dataclass

from argobox.server.phone.codes import Decision
from argobox.server.store import Event, Store, Tx

EVENTS_KEPT_SECONDS = 7 * 24 * 3600
"""Handled events are forgotten after this (an event is delivered at once or never)."""

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS phone_events (context_id TEXT PRIMARY KEY, at REAL NOT NULL)",
    (
        "CREATE TABLE IF NOT EXISTS phone_codes_used (request_id TEXT NOT NULL, decision TEXT NOT NULL,"
        " at REAL NOT NULL, context_id TEXT, ha_user_id TEXT NOT NULL, operator TEXT NOT NULL,"
        " PRIMARY KEY (request_id, decision))"
    ),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Use:
    """A press that is about to decide: who pressed which button of which request."""

    request_id: str
    decision: Decision
    context_id: str | None
    ha_user_id: str
    operator: str


def _schema(tx: Tx) -> None:
    for statement in _SCHEMA:
        tx.db.execute(statement)


async def take_event(store: Store, context_id: str) -> bool:
    """Record that this process handles the event `context_id`; False when another process (or this one) already
    does."""

    def body(tx: Tx) -> bool:
        _schema(tx)
        tx.db.execute("DELETE FROM phone_events WHERE at < ?", (tx.now - EVENTS_KEPT_SECONDS,))
        inserted = tx.db.execute(
            "INSERT OR IGNORE INTO phone_events (context_id, at) VALUES (?, ?)", (context_id, tx.now)
        ).rowcount
        return inserted == 1

    return await store.transaction(body)


async def was_used(store: Store, request_id: str, decision: Decision) -> bool:
    """Whether the code of `decision` on `request_id` has already decided something."""

    def body(tx: Tx) -> bool:
        _schema(tx)
        row = tx.db.execute(
            "SELECT 1 FROM phone_codes_used WHERE request_id = ? AND decision = ?", (request_id, decision)
        ).fetchone()
        return row is not None

    return await store.transaction(body)


async def use_code(store: Store, use: Use, event: Event, *, agent: str, tool: str) -> bool:
    """Mark the code of `use` as used, with `event` in the audit trail, in one transaction; False (and nothing
    recorded) when it was used already."""

    def body(tx: Tx) -> bool:
        _schema(tx)
        inserted = tx.db.execute(
            "INSERT OR IGNORE INTO phone_codes_used (request_id, decision, at, context_id, ha_user_id, operator)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (use.request_id, use.decision, tx.now, use.context_id, use.ha_user_id, use.operator),
        ).rowcount
        if inserted != 1:
            return False
        tx.append([event], request_id=use.request_id, agent=agent, tool=tool)
        return True

    return await store.transaction(body)
