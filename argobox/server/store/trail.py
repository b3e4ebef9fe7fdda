"""The audit trail as stored: its reads, its prune, and a read-only snapshot for verifying and exporting it.

Appending is `Tx.append` (every transaction that changes something appends the events that describe it).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from argobox.server.audit import GENESIS, PRUNED_EVENT, Row
from argobox.server.store.records import Event, PruneResult, operator_actor
from argobox.server.store.tx import Body, Tx
from argobox.server.times import iso

AUDIT_COLUMNS = "seq, at, request_id, event, actor, agent, tool, detail, prev_hash, hash"
"""The columns of a chain row, in the order of `argobox.server.audit.Row`."""


def trail_query(
    *,
    request_id: str | None,
    agent: str | None,
    since: float | None,
    limit: int | None,
    event: str | None = None,
) -> tuple[str, list[Any]]:
    """The query for audit events, optionally filtered; with `limit`, the most recent `limit` of them (newest first:
    the caller reverses them)."""
    clauses, params = ["1 = 1"], list[Any]()
    filters = (("request_id = ?", request_id), ("agent = ?", agent), ("at >= ?", since), ("event = ?", event))
    for clause, value in filters:
        if value is not None:
            clauses.append(clause)
            params.append(value)
    sql = f"SELECT * FROM audit WHERE {' AND '.join(clauses)} ORDER BY seq DESC LIMIT ?"  # noqa: S608
    return sql, [*params, -1 if limit is None else limit]


AFTER_QUERY = "SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?"
"""Audit events after a seq, oldest first."""


def pruning(*, before: float, operator: str) -> Body[PruneResult]:
    """Remove the oldest events, those up to the last one recorded before `before`, as `operator`.

    One transaction: first a `pruned` event is appended to the chain naming the last removed event
    (`through_seq`, `through_hash`), then it is registered in `audit_prunes`, and only then may the delete
    trigger let the events go. The first event left links to `through_hash`, so `verify` still passes.
    """

    def body(tx: Tx) -> PruneResult:
        through, anchor, count = _prune_target(tx.db, before)
        detail = {"before": iso(before), "through_seq": through, "through_hash": anchor, "events": count}
        pruned = Event(event=PRUNED_EVENT, actor=operator_actor(operator), detail=detail)
        tx.append([pruned], request_id=None, agent=None, tool=None)
        record_seq = int(tx.db.execute("SELECT MAX(seq) FROM audit").fetchone()[0])
        tx.db.execute(
            "INSERT INTO audit_prunes (record_seq, through_seq, through_hash) VALUES (?, ?, ?)",
            (record_seq, through, anchor),
        )
        deleted = tx.db.execute("DELETE FROM audit WHERE seq <= ?", (through,)).rowcount
        return PruneResult(record_seq=record_seq, through_seq=through, deleted=max(0, deleted))

    return body


def _prune_target(db: sqlite3.Connection, before: float) -> tuple[int, str, int]:
    """(through_seq, through_hash, how many events go) of a prune of the events before `before`."""
    first, last, first_kept = db.execute(
        "SELECT (SELECT MIN(seq) FROM audit), (SELECT MAX(seq) FROM audit), (SELECT MIN(seq) FROM audit WHERE at >= ?)",
        (before,),
    ).fetchone()
    if first is None:
        return 0, GENESIS, 0
    through = max(first - 1, last if first_kept is None else first_kept - 1)
    column, seq = ("prev_hash", first) if through < first else ("hash", through)
    anchor = str(db.execute(f"SELECT {column} FROM audit WHERE seq = ?", (seq,)).fetchone()[0])  # noqa: S608
    return through, anchor, max(0, through - first + 1)


# A read-only snapshot of the trail, for `argobox audit verify` and `export` ----------------------------------------


class TrailSnapshot:
    """The trail as one read-only snapshot sees it. Every method raises sqlite3.Error when the store cannot be read."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def rows(self, *, from_seq: int = 0) -> Iterator[Row]:
        """The chain rows from `from_seq` on, in sequence order, streamed (the cursor itself: no copy)."""
        return self._db.execute(f"SELECT {AUDIT_COLUMNS} FROM audit WHERE seq >= ? ORDER BY seq", (from_seq,))  # noqa: S608

    def find_seq(self, hash_: str) -> int | None:
        """The seq of the first event with this hash, if any."""
        row = self._db.execute("SELECT seq FROM audit WHERE hash = ? ORDER BY seq LIMIT 1", (hash_,)).fetchone()
        return None if row is None else int(row[0])

    def first_seq_since(self, since: float) -> int:
        """The seq of the first event at or after `since`; past the head when there is none."""
        found = self._db.execute("SELECT MIN(seq) FROM audit WHERE at >= ?", (since,)).fetchone()[0]
        if found is not None:
            return int(found)
        return int(self._db.execute("SELECT MAX(seq) FROM audit").fetchone()[0] or 0) + 1


def open_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection to the store at `path` (never creates it). Raises sqlite3.Error."""
    uri = path.resolve().as_uri() + "?mode=ro"
    db = sqlite3.connect(uri, uri=True, isolation_level=None)
    has_chain = any(row[1] == "hash" for row in db.execute("PRAGMA table_info(audit)"))
    if not has_chain:
        db.close()
        raise sqlite3.DatabaseError(
            "the store has no hash-chained audit trail (no such table or an older schema; "
            "any argobox command that opens it for writing upgrades it)"
        )
    return db


@contextmanager
def trail_snapshot(path: Path) -> Generator[TrailSnapshot, None, None]:
    """The trail of the store at `path`, read-only, as of one snapshot (it works while ArgoBox processes write).

    Raises sqlite3.Error when the store cannot be read."""
    db = open_readonly(path)
    try:
        db.execute("BEGIN")
        yield TrailSnapshot(db)
    finally:
        db.close()
