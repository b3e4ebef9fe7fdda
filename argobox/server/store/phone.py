"""What the store remembers of the phone's button presses, so that it holds across processes and restarts.

`phone_events`: the Home Assistant events (by context id) an ArgoBox process has taken on. Every listening process
(the HTTP daemon, the console, `argobox listen`) hears every event; the first to record it handles it, the others
leave it. `phone_codes_used`: the button codes that decided something. A code is used once: pressing the same
button again, even after a restart, is refused. The tables are the `phone` migration's (`schema`).
"""

from __future__ import annotations

from dataclasses import dataclass

from argobox.server.store.records import Event
from argobox.server.store.tx import Body, Tx

EVENTS_KEPT_SECONDS = 7 * 24 * 3600
"""Handled events are forgotten after this (Home Assistant delivers an event at once or never)."""

CODE_USED_QUERY = "SELECT 1 FROM phone_codes_used WHERE request_id = ? AND decision = ?"


@dataclass(frozen=True, slots=True, kw_only=True)
class CodeUse:
    """A press that is about to decide: who pressed which button (`decision`) of which request."""

    request_id: str
    decision: str
    context_id: str | None
    ha_user_id: str
    operator: str


def taking_event(context_id: str) -> Body[bool]:
    """Record that this process handles the event `context_id` (forgetting old ones); False when a process (this
    one or another) already does."""

    def body(tx: Tx) -> bool:
        tx.db.execute("DELETE FROM phone_events WHERE at < ?", (tx.now - EVENTS_KEPT_SECONDS,))
        inserted = tx.db.execute(
            "INSERT OR IGNORE INTO phone_events (context_id, at) VALUES (?, ?)", (context_id, tx.now)
        ).rowcount
        return inserted == 1

    return body


def using_code(use: CodeUse, event: Event, *, agent: str, tool: str) -> Body[bool]:
    """Mark the code of `use` as used, with `event` in the audit trail; False (and nothing recorded) when it was
    used already."""

    def body(tx: Tx) -> bool:
        inserted = tx.db.execute(
            "INSERT OR IGNORE INTO phone_codes_used (request_id, decision, at, context_id, ha_user_id, operator)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (use.request_id, use.decision, tx.now, use.context_id, use.ha_user_id, use.operator),
        ).rowcount
        if inserted != 1:
            return False
        tx.append([event], request_id=use.request_id, agent=agent, tool=tool)
        return True

    return body
