"""One write transaction as its body sees it: the connection, the time it started, and the audit chain to extend."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from argobox.server.audit import GENESIS, canonical_detail, event_hash
from argobox.server.redact import Redactor
from argobox.server.store.records import Clock, Event
from argobox.server.store.sealing import Sealer

T = TypeVar("T")

INSERT_AUDIT = (
    "INSERT INTO audit (seq, at, request_id, event, actor, agent, tool, detail, prev_hash, hash)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
"""Events are hashed in Python (`Tx.append`) from the head read inside the write transaction."""


class Tx:
    """One write transaction, run whole on the store's connection thread (see `Connection.transaction`).

    Its body makes plain sqlite3 calls and never awaits, so a transaction costs one hand-off to that thread however
    many statements it holds, and no other work on the connection can come between its statements.
    """

    __slots__ = ("_clock", "_head", "_redact", "appended", "db", "now", "sealer")

    def __init__(self, db: sqlite3.Connection, *, clock: Clock, redactor: Redactor, sealer: Sealer) -> None:
        self.db = db
        self.sealer = sealer
        """Seals a request's secret-looking argument values as it is written, opens them as it is read."""
        self.now = clock()
        """When the transaction started (on the store's clock)."""
        self.appended = False
        self._clock = clock
        self._redact = redactor
        self._head: tuple[int, str] | None = None

    def append(self, events: Iterable[Event], *, request_id: str | None, agent: str | None, tool: str | None) -> None:
        """Append `events` to the hash chain, redacted.

        The chain head is read once, inside the transaction: BEGIN IMMEDIATE holds the write lock, so no other
        writer (in this process or another) can extend the chain until this transaction ends.
        """
        text = self._redact.text
        request_id, agent, tool = (text(v) if v is not None else None for v in (request_id, agent, tool))
        at = float(self._clock())
        if self._head is None:
            row = self.db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            self._head = (row[0], row[1]) if row is not None else (0, GENESIS)
        seq, prev_hash = self._head
        rows: list[tuple[Any, ...]] = []
        for e in events:
            seq += 1
            actor, detail = text(e.actor), canonical_detail(self._redact(e.detail))
            digest = event_hash(seq, at, request_id, e.event, actor, agent, tool, detail, prev_hash)
            rows.append((seq, at, request_id, e.event, actor, agent, tool, detail, prev_hash, digest))
            prev_hash = digest
        if rows:
            self.db.executemany(INSERT_AUDIT, rows)
            self._head = (seq, prev_hash)
            self.appended = True

    def rolled_back(self) -> None:
        """A part of this transaction was rolled back (to a savepoint): the chain head is read again when next
        needed, since events that part appended are gone."""
        self._head = None


Body = Callable[[Tx], T]
"""A transaction's body: what runs between BEGIN IMMEDIATE and COMMIT."""
