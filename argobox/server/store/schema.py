"""The store's tables, and the named migrations that build and upgrade them.

Each migration has a name and is applied in one transaction together with its row in `schema_migrations` (as
sqlite-utils does), so a store holds every migration or none of it, and two processes opening a new store at once
apply each migration exactly once. Stores from before migrations had names counted them in `PRAGMA user_version`:
their first `user_version` migrations are recorded as applied (with no time) the first time they are opened.
`user_version` still counts the migrations applied, so that an older ArgoBox refuses a store a newer one upgraded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from argobox.server.audit import GENESIS, PRUNED_EVENT, canonical_detail, event_hash
from argobox.server.store.connection import Connection
from argobox.server.store.records import Event, StoreError
from argobox.server.store.tx import INSERT_AUDIT, Tx

REQUESTS_AND_AUDIT = [
    """CREATE TABLE requests (
    id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    tool TEXT NOT NULL,
    arguments TEXT NOT NULL,
    digest TEXT NOT NULL,
    classification TEXT NOT NULL,
    effect TEXT NOT NULL,
    rule TEXT,
    reason TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL,
    decided_by TEXT,
    decided_at REAL,
    note TEXT,
    executor TEXT,
    result TEXT,
    error TEXT,
    updated_at REAL NOT NULL
)""",
    "CREATE INDEX requests_by_status ON requests (status, created_at)",
    "CREATE INDEX requests_by_agent ON requests (agent, created_at)",
    """CREATE TRIGGER requests_binding_is_immutable BEFORE UPDATE OF id, agent, tool, arguments, digest ON requests
BEGIN SELECT RAISE(ABORT, 'a request is bound to its agent, tool and arguments'); END""",
    """CREATE TABLE audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    request_id TEXT,
    event TEXT NOT NULL,
    actor TEXT NOT NULL,
    agent TEXT,
    tool TEXT,
    detail TEXT NOT NULL
)""",
    "CREATE INDEX audit_by_request ON audit (request_id, seq)",
    """CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END""",
    """CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END""",
]
"""The request queue (a request's binding to its agent, tool and arguments never changes) and the first audit
table (replaced by the chained one in `chain_audit`)."""

BUDGETS = [
    "CREATE TABLE calls (id INTEGER PRIMARY KEY, agent TEXT NOT NULL, at REAL NOT NULL, digest TEXT, target TEXT,"
    " mutation INTEGER NOT NULL)",
    "CREATE INDEX calls_by_agent ON calls (agent, at)",
    "CREATE INDEX calls_by_digest ON calls (agent, digest, at)",
    "CREATE INDEX calls_by_target ON calls (agent, target, at)",
    "CREATE INDEX requests_by_agent_status ON requests (agent, status)",
    "CREATE TABLE agent_state (agent TEXT PRIMARY KEY, streak INTEGER NOT NULL DEFAULT 0, since REAL,"
    " cooldown_until REAL)",
    "CREATE TABLE refusals (agent TEXT NOT NULL, limit_name TEXT NOT NULL, first_at REAL NOT NULL,"
    " last_at REAL NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (agent, limit_name))",
]
"""Admitted calls, failure streaks and coalesced refusals (see `budgets`)."""

OUTBOX = [
    "CREATE TABLE outbox (id INTEGER PRIMARY KEY, created_at REAL NOT NULL, request_id TEXT, event TEXT NOT NULL,"
    " channel TEXT NOT NULL, payload TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL,"
    " status TEXT NOT NULL, last_error TEXT, claimed_at REAL)",
    "CREATE INDEX outbox_due ON outbox (status, next_at)",
]
"""Notifications waiting for delivery (see `outbox`)."""

CHAINED_AUDIT = [
    """CREATE TABLE audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    request_id TEXT,
    event TEXT NOT NULL,
    actor TEXT NOT NULL,
    agent TEXT,
    tool TEXT,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
)""",
    "CREATE INDEX audit_by_request ON audit (request_id, seq)",
    """CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END""",
    """CREATE TABLE audit_prunes (
    record_seq INTEGER PRIMARY KEY,
    through_seq INTEGER NOT NULL,
    through_hash TEXT NOT NULL
)""",
    """CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
WHEN OLD.seq > COALESCE((SELECT MAX(through_seq) FROM audit_prunes), 0)
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only; events are removed only by a recorded prune'); END""",
    f"""CREATE TRIGGER audit_prune_needs_its_record BEFORE INSERT ON audit_prunes
WHEN NOT EXISTS (
    SELECT 1 FROM audit WHERE seq = NEW.record_seq AND event = '{PRUNED_EVENT}' AND NEW.record_seq > NEW.through_seq
    AND json_extract(detail, '$.through_seq') = NEW.through_seq
    AND json_extract(detail, '$.through_hash') = NEW.through_hash
)
BEGIN SELECT RAISE(ABORT, 'a prune must first be recorded in the audit trail'); END""",  # noqa: S608 - a constant
    """CREATE TRIGGER audit_prunes_no_update BEFORE UPDATE ON audit_prunes
BEGIN SELECT RAISE(ABORT, 'prune records are append-only'); END""",
    """CREATE TRIGGER audit_prunes_no_delete BEFORE DELETE ON audit_prunes
BEGIN SELECT RAISE(ABORT, 'prune records are append-only'); END""",
]
"""The hash-chained audit table. Events are never updated; they are deleted only up to the `through_seq` of a prune
whose `pruned` event is already in the chain."""

BUDGET_PARTIAL_INDEXES = [
    "CREATE INDEX calls_mutations ON calls (agent, at) WHERE mutation = 1",
    "DROP INDEX calls_by_digest",
    "CREATE INDEX calls_by_digest ON calls (agent, digest, at) WHERE digest IS NOT NULL",
    "DROP INDEX calls_by_target",
    "CREATE INDEX calls_by_target ON calls (agent, target, at) WHERE target IS NOT NULL",
]
"""Mutation budgets count an hour of mutations without walking the reads of that hour, and a read (which has no
digest or target) writes one index entry, not three."""

PHONE = [
    "CREATE TABLE phone_events (context_id TEXT PRIMARY KEY, at REAL NOT NULL)",
    "CREATE INDEX phone_events_by_age ON phone_events (at)",
    "CREATE TABLE phone_codes_used (request_id TEXT NOT NULL, decision TEXT NOT NULL, at REAL NOT NULL,"
    " context_id TEXT, ha_user_id TEXT NOT NULL, operator TEXT NOT NULL, PRIMARY KEY (request_id, decision))",
]
"""The Home Assistant button events taken on by a process, and the button codes used (see `phone`)."""

MIGRATIONS_TABLE = (
    "CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at REAL)"  # applied_at NULL: counted before names
)


@dataclass(frozen=True, slots=True)
class Migration:
    name: str
    apply: Callable[[Tx], None]


def _statements(statements: list[str]) -> Callable[[Tx], None]:
    def apply(tx: Tx) -> None:
        for statement in statements:
            tx.db.execute(statement)

    return apply


def chain_audit(tx: Tx) -> None:
    """Rebuild the audit table with the hash chain, sealing the events found (if any) as they are.

    Events recorded before were not tamper-evident; the `audit_chain_started` event says so.
    """
    db = tx.db
    for statement in ("DROP TRIGGER audit_no_update", "DROP TRIGGER audit_no_delete", "DROP INDEX audit_by_request"):
        db.execute(statement)
    db.execute("ALTER TABLE audit RENAME TO audit_unchained")
    _statements(CHAINED_AUDIT)(tx)
    legacy = db.execute(
        "SELECT seq, at, request_id, event, actor, agent, tool, detail FROM audit_unchained ORDER BY seq"
    ).fetchall()
    rows: list[tuple[Any, ...]] = []
    prev_hash = GENESIS
    for seq, at, request_id, event, actor, agent, tool, detail in legacy:
        fields = (seq, float(at), request_id, event, actor, agent, tool, canonical_detail(json.loads(detail)))
        digest = event_hash(*fields, prev_hash)
        rows.append((*fields, prev_hash, digest))
        prev_hash = digest
    db.executemany(INSERT_AUDIT, rows)
    db.execute("DROP TABLE audit_unchained")
    if rows:
        message = (
            "the events before this one were recorded before the trail was hash-chained and were sealed as found "
            "when the store was upgraded"
        )
        started = Event(
            event="audit_chain_started", actor="argobox", detail={"sealed_events": len(rows), "message": message}
        )
        tx.append([started], request_id=None, agent=None, tool=None)


REQUEST_TARGETS = [
    "ALTER TABLE requests ADD COLUMN target TEXT",
    "DROP TRIGGER IF EXISTS requests_binding_is_immutable",
    """CREATE TRIGGER requests_binding_is_immutable
BEFORE UPDATE OF id, agent, tool, arguments, digest, target ON requests
BEGIN SELECT RAISE(ABORT, 'a request is bound to its agent, tool, arguments and target'); END""",
]
"""The identity of a request's target as it was when the request was queued (e.g. the container's id and image),
part of what an approval is bound to."""


CALLS_BY_REQUEST = [
    "ALTER TABLE calls ADD COLUMN request_id TEXT",
    "CREATE INDEX calls_by_request ON calls (request_id) WHERE request_id IS NOT NULL",
]
"""Which request a counted call made, so that a request that never ran (denied, expired) stops counting as a change."""


REQUESTS_BY_TIME = ["CREATE INDEX requests_by_time ON requests (created_at)"]
"""`argobox requests` lists the newest requests of every status and agent: read from this index, not by sorting the
whole queue (seconds on a store with a long history)."""


CALLS_IN_ORDER = [
    "ALTER TABLE calls ADD COLUMN n INTEGER",
    """UPDATE calls SET n = numbered.n FROM (
         SELECT id, ROW_NUMBER() OVER (PARTITION BY agent ORDER BY at, id) AS n FROM calls
       ) AS numbered WHERE calls.id = numbered.id""",
    "DROP INDEX calls_by_agent",
    "CREATE INDEX calls_by_agent ON calls (agent, at, n)",
    # An ArgoBox from before this migration still running on the same store (a daemon not yet restarted) counts its
    # calls without a number: they are numbered as `budgets.record_call` numbers them.
    """CREATE TRIGGER calls_numbered AFTER INSERT ON calls WHEN NEW.n IS NULL
BEGIN
  UPDATE calls SET
    n = COALESCE((SELECT n FROM calls WHERE agent = NEW.agent AND id != NEW.id
                  ORDER BY at DESC, n DESC LIMIT 1), 0) + 1,
    at = MAX(NEW.at, COALESCE((SELECT at FROM calls WHERE agent = NEW.agent AND id != NEW.id
                               ORDER BY at DESC, n DESC LIMIT 1), NEW.at))
  WHERE id = NEW.id;
END""",
]
"""Each agent's admitted calls numbered in order (`n`, 1, 2, ...), their times never going back (see
`budgets.record_call`): the calls of a window are a run of numbers, counted from its two ends in two index lookups
rather than one by one (the request budget's count cost a scan of every call of the last minute)."""


MIGRATIONS: tuple[Migration, ...] = (
    Migration("requests_and_audit", _statements(REQUESTS_AND_AUDIT)),
    Migration("budgets", _statements(BUDGETS)),
    Migration("outbox", _statements(OUTBOX)),
    Migration("chain_audit", chain_audit),
    Migration("budget_partial_indexes", _statements(BUDGET_PARTIAL_INDEXES)),
    Migration("request_targets", _statements(REQUEST_TARGETS)),
    Migration("phone", _statements(PHONE)),
    Migration("calls_by_request", _statements(CALLS_BY_REQUEST)),
    Migration("requests_by_time", _statements(REQUESTS_BY_TIME)),
    Migration("calls_in_order", _statements(CALLS_IN_ORDER)),
)
"""Every schema change, in the order they are applied. Names are forever: add new ones at the end."""


async def migrate(connection: Connection) -> list[str]:
    """Apply the migrations the store lacks, each in its own transaction; returns the names applied.

    Raises StoreError when the store was upgraded by a newer ArgoBox, or cannot be written."""
    applied: list[str] = []
    for migration in await connection.transaction(_pending):
        if await connection.transaction(partial(_apply, migration)):
            applied.append(migration.name)  # noqa: PERF401 - one transaction after the other, awaited in order
    return applied


def _pending(tx: Tx) -> list[Migration]:
    """The migrations not yet applied; records the numbered history of an older store first."""
    db = tx.db
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    named = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").fetchone()
    if named is None:
        if version > len(MIGRATIONS):
            raise StoreError(f"the store was written by a newer ArgoBox (schema {version}); upgrade ArgoBox to use it")
        db.execute(MIGRATIONS_TABLE)
        db.executemany(
            "INSERT INTO schema_migrations (name, applied_at) VALUES (?, NULL)",
            [(m.name,) for m in MIGRATIONS[:version]],
        )
    done = {str(row[0]) for row in db.execute("SELECT name FROM schema_migrations")}
    unknown = sorted(done - {m.name for m in MIGRATIONS})
    if unknown:
        raise StoreError(
            f"the store was upgraded by a newer ArgoBox (it has the migrations {', '.join(unknown)}); "
            "upgrade ArgoBox to use it"
        )
    return [m for m in MIGRATIONS if m.name not in done]


def _apply(migration: Migration, tx: Tx) -> bool:
    """Apply `migration` with its record, unless another process got there first; whether it was applied here."""
    db = tx.db
    if db.execute("SELECT 1 FROM schema_migrations WHERE name = ?", (migration.name,)).fetchone() is not None:
        return False
    migration.apply(tx)
    db.execute("INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)", (migration.name, tx.now))
    count = int(db.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0])
    db.execute(f"PRAGMA user_version = {count}")
    return True
