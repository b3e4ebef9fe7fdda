"""The durable store shared by every ArgoBox process: the request queue and the append-only audit trail.

SQLite in WAL mode through aiosqlite. Every state change is one `BEGIN IMMEDIATE` transaction holding a
conditional `UPDATE ... WHERE status = ...` and the audit events that describe it, so two processes racing on
the same request produce exactly one transition, and no transition exists without its audit record. A transaction
runs whole on aiosqlite's connection thread (`Store.transaction`): one hand-off per decision, not one per statement.

The audit trail is hash-chained (`audit_chain`): each transaction reads the chain head after BEGIN IMMEDIATE has
taken the write lock and hashes its events from there, so concurrent writers always extend the head.
After each commit that appended events, the chain head is checkpointed beside the database (`audit_checkpoint`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import anyio

from argobox.policy.limits import FailureState, Limits, Tripped, Usage, check
from argobox.server import budgets
from argobox.server.audit_chain import (
    GENESIS,
    PRUNED_EVENT,
    canonical_detail,
    event_hash,
)
from argobox.server.audit_checkpoint import Checkpointer, Signer
from argobox.server.budgets import CallFacts
from argobox.server.redact import Redactor

Clock = Callable[[], float]
T = TypeVar("T")

logger = logging.getLogger("argobox")

BUSY_TIMEOUT_MS = 5000
MAX_STORED_RESULT_CHARS = 64 * 1024
"""A request keeps its result up to this size (a long log tail is not kept for every call that read it)."""
_SCHEMA_V1 = [s.strip() for s in """
CREATE TABLE requests (
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
);;
CREATE INDEX requests_by_status ON requests (status, created_at);;
CREATE INDEX requests_by_agent ON requests (agent, created_at);;
CREATE TRIGGER requests_binding_is_immutable BEFORE UPDATE OF id, agent, tool, arguments, digest ON requests
BEGIN SELECT RAISE(ABORT, 'a request is bound to its agent, tool and arguments'); END;;
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    request_id TEXT,
    event TEXT NOT NULL,
    actor TEXT NOT NULL,
    agent TEXT,
    tool TEXT,
    detail TEXT NOT NULL
);;
CREATE INDEX audit_by_request ON audit (request_id, seq);;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;;
""".split(";;") if s.strip()]
_OUTBOX = [
    "CREATE TABLE outbox (id INTEGER PRIMARY KEY, created_at REAL NOT NULL, request_id TEXT, event TEXT NOT NULL,"
    " channel TEXT NOT NULL, payload TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL,"
    " status TEXT NOT NULL, last_error TEXT, claimed_at REAL)",
    "CREATE INDEX outbox_due ON outbox (status, next_at)",
]
"""Notifications waiting for delivery (see argobox.server.notify)."""

_AUDIT_SCHEMA = [s.strip() for s in f"""
CREATE TABLE audit (
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
);;
CREATE INDEX audit_by_request ON audit (request_id, seq);;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;;
CREATE TABLE audit_prunes (
    record_seq INTEGER PRIMARY KEY,
    through_seq INTEGER NOT NULL,
    through_hash TEXT NOT NULL
);;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
WHEN OLD.seq > COALESCE((SELECT MAX(through_seq) FROM audit_prunes), 0)
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only; events are removed only by a recorded prune'); END;;
CREATE TRIGGER audit_prune_needs_its_record BEFORE INSERT ON audit_prunes
WHEN NOT EXISTS (
    SELECT 1 FROM audit WHERE seq = NEW.record_seq AND event = '{PRUNED_EVENT}' AND NEW.record_seq > NEW.through_seq
    AND json_extract(detail, '$.through_seq') = NEW.through_seq
    AND json_extract(detail, '$.through_hash') = NEW.through_hash
)
BEGIN SELECT RAISE(ABORT, 'a prune must first be recorded in the audit trail'); END;;
CREATE TRIGGER audit_prunes_no_update BEFORE UPDATE ON audit_prunes
BEGIN SELECT RAISE(ABORT, 'prune records are append-only'); END;;
CREATE TRIGGER audit_prunes_no_delete BEFORE DELETE ON audit_prunes
BEGIN SELECT RAISE(ABORT, 'prune records are append-only'); END;;
""".split(";;") if s.strip()]
"""The hash-chained audit table (replaces the first one in `_chain_audit`). Events are never updated; they
are deleted only up to the `through_seq` of a prune whose `pruned` event is already in the chain."""

_INSERT_AUDIT = (
    "INSERT INTO audit (seq, at, request_id, event, actor, agent, tool, detail, prev_hash, hash)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
"""Events are hashed in Python (`Tx.append`) from the head read inside the write transaction."""

WAL_AUTOCHECKPOINT_PAGES = 10_000
"""SQLite's own checkpoint, in the committing connection, only past this many WAL pages (about 40 MB): a safety net
for when the checkpointer thread cannot keep up; normally it moves the WAL long before."""
WAL_SIZE_LIMIT_BYTES = 0
"""The WAL file is truncated each time it restarts after a checkpoint, so its size says how much is waiting."""

CHAIN_AUDIT = "chain the audit trail"
"""A migration done in Python (`_chain_audit`) rather than SQL statements."""
_MIGRATIONS: list[list[str] | str] = [_SCHEMA_V1, budgets.SCHEMA, _OUTBOX, CHAIN_AUDIT, budgets.PARTIAL_INDEXES]
"""Schema changes in order; `PRAGMA user_version` counts how many a store has had."""
SCHEMA_VERSION = len(_MIGRATIONS)

RESERVED_ACTORS = frozenset({"policy", "argobox"})
"""Actors that are ArgoBox itself; no operator may carry these names."""


class StoreError(Exception):
    """Raised when the store cannot be read or written (locked past the bounded wait, read-only, disk full).

    Callers fail closed: an action whose record cannot be written does not run.
    """


class RequestStatus(StrEnum):
    PENDING = "pending_approval"
    APPROVED = "approved"
    EXECUTING = "executing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DENIED = "denied"
    EXPIRED = "expired"
    UNKNOWN = "unknown"
    """The process executing it stopped mid-way; whether the action ran is not known. Never re-run automatically."""


FINISHED = frozenset(
    {RequestStatus.SUCCEEDED, RequestStatus.FAILED, RequestStatus.DENIED, RequestStatus.EXPIRED, RequestStatus.UNKNOWN}
)


class Refused(Exception):
    """Raised when an operator's transition is not possible; `code` says why, the message says it in words."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def iso(ts: float | None) -> str | None:
    """An epoch timestamp as ISO 8601 UTC with millisecond precision, e.g. 2026-11-25T01:02:03.456Z."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    event: str
    actor: str
    detail: dict[str, Any] = field(default_factory=dict[str, Any])


@dataclass(frozen=True, slots=True, kw_only=True)
class NewRequest:
    id: str
    agent: str
    tool: str
    arguments: dict[str, Any]
    digest: str
    classification: str
    effect: str
    rule: str | None
    reason: str
    status: RequestStatus
    expires_at: float | None = None
    decided_by: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestRecord:
    id: str
    agent: str
    tool: str
    arguments: dict[str, Any]
    digest: str
    classification: str
    effect: str
    rule: str | None
    reason: str
    status: RequestStatus
    created_at: float
    expires_at: float | None
    decided_by: str | None
    decided_at: float | None
    note: str | None
    executor: str | None
    result: Any
    error: str | None
    updated_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Admission:
    """What `Store.admit` did with a call: refused it (`tripped`), found it already pending (`duplicate`), or
    recorded it (`record` is the new request, if one was created)."""

    tripped: Tripped | None = None
    record: RequestRecord | None = None
    duplicate: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRecord:
    seq: int
    at: float
    request_id: str | None
    event: str
    actor: str
    agent: str | None
    tool: str | None
    detail: dict[str, Any]
    prev_hash: str = GENESIS
    hash: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class PruneResult:
    record_seq: int
    """The seq of the `pruned` event recording it."""
    through_seq: int
    """Every event up to this seq is gone (if it was not already)."""
    deleted: int


def _actor(operator: str) -> str:
    return operator if operator in RESERVED_ACTORS else f"operator:{operator}"


def this_executor() -> str:
    """Who is executing: host and process id, so a crashed executor can be told from a live one."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _executor_alive(executor: str | None) -> bool:
    host, _, pid = (executor or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return host != socket.gethostname() and bool(host)  # another host's executor: assume alive
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _row_to_request(row: sqlite3.Row) -> RequestRecord:
    return RequestRecord(
        id=row["id"],
        agent=row["agent"],
        tool=row["tool"],
        arguments=json.loads(row["arguments"]),
        digest=row["digest"],
        classification=row["classification"],
        effect=row["effect"],
        rule=row["rule"],
        reason=row["reason"],
        status=RequestStatus(row["status"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        decided_by=row["decided_by"],
        decided_at=row["decided_at"],
        note=row["note"],
        executor=row["executor"],
        result=json.loads(row["result"]) if row["result"] is not None else None,
        error=row["error"],
        updated_at=row["updated_at"],
    )


def _row_to_audit(row: sqlite3.Row) -> AuditRecord:
    return AuditRecord(
        seq=row["seq"],
        at=row["at"],
        request_id=row["request_id"],
        event=row["event"],
        actor=row["actor"],
        agent=row["agent"],
        tool=row["tool"],
        detail=json.loads(row["detail"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


def _create_private_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)


class Tx:
    """One write transaction, run whole on the store's connection thread (see `Store.transaction`).

    Its body makes plain sqlite3 calls and never awaits, so a transaction costs one hand-off to that thread however
    many statements it holds, and no other work on the connection can come between its statements.
    """

    __slots__ = ("db", "now", "appended", "_clock", "_redact", "_head")

    def __init__(self, db: sqlite3.Connection, *, clock: Clock, redactor: Redactor) -> None:
        self.db = db
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
            self.db.executemany(_INSERT_AUDIT, rows)
            self._head = (seq, prev_hash)
            self.appended = True


class Store:
    """The queue and the audit trail. Open it with `Store.open(path)`; every method may raise `StoreError`.

    All work runs on aiosqlite's connection thread, one queue item per read or transaction, in order: nothing
    interleaves, so the store needs no lock of its own.
    """

    def __init__(
        self, db: aiosqlite.Connection, *, clock: Clock, redactor: Redactor, busy_timeout_ms: int,
        checkpointer: Checkpointer | None = None,
    ) -> None:
        self._db = db
        self._busy_timeout_ms = busy_timeout_ms
        self._clock = clock
        self._redact = redactor
        self._checkpointer = checkpointer
        self._behind: set[asyncio.Task[Any]] = set()

    @classmethod
    @asynccontextmanager
    async def open(
        cls, path: Path, *, clock: Clock, redactor: Redactor | None = None, busy_timeout_ms: int = BUSY_TIMEOUT_MS,
        signer: Signer | None = None,
    ) -> AsyncIterator[Store]:
        """Open (creating if needed, mode 0600) and migrate the store; waits at most `busy_timeout_ms` for locks.

        The audit checkpoint beside it is kept at the chain head (signed with `signer` when given).
        """
        try:
            _create_private_file(path)
            # Explicit transactions only (see `transaction`); a lone read is its own snapshot.
            db = await aiosqlite.connect(path, isolation_level=None, timeout=busy_timeout_ms / 1000)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the store {str(path)!r}: {exc}") from None
        checkpointer = Checkpointer(path, signer=signer, busy_timeout_ms=busy_timeout_ms)
        try:
            db.row_factory = sqlite3.Row
            store = cls(db, clock=clock, redactor=redactor or Redactor(), busy_timeout_ms=busy_timeout_ms,
                        checkpointer=checkpointer)
            await store._prepare()
            try:
                yield store
            finally:
                with anyio.CancelScope(shield=True):  # even when cancelled: what was answered gets recorded
                    await store._catch_up()
        finally:
            try:
                await anyio.to_thread.run_sync(checkpointer.close)
            finally:
                await db.close()

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` on the connection's own thread, in one hand-off, after any write left behind."""
        if self._behind:
            await self._catch_up()
        return await self._hop(fn)

    async def _hop(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` on aiosqlite's connection thread, now.

        aiosqlite has no public call for this: `_execute` is the queue its own methods put their work on (a test
        guards it, so an aiosqlite release that changes it fails loudly rather than silently)."""
        return await self._db._execute(fn, self._db._conn)  # noqa: SLF001  # pyright: ignore[reportPrivateUsage]

    async def _catch_up(self) -> None:
        """Wait for the writes left behind (`transaction_behind`) to land."""
        while self._behind:
            await asyncio.wait(set(self._behind))

    def transaction_behind(self, prepare: Callable[[], Callable[[Tx], Any]], *, what: str) -> None:
        """Run a transaction without waiting for it: the caller answers first.

        `prepare()` runs first, on the event loop and outside the write lock (serialising and redacting belong
        there), and returns the transaction's body. Ordering is kept: every later read or write of this store waits
        for it. A failure is retried once, then logged (`what` names the write): the caller has already answered.
        """

        async def write() -> None:
            body = prepare()
            for attempt in (1, 2):
                try:
                    await self._transaction(body, hop=self._hop)
                    return
                except StoreError as exc:
                    if attempt == 2:
                        logger.error("could not record %s: %s", what, exc)
                    else:
                        await anyio.sleep(0.1)

        task = asyncio.get_running_loop().create_task(write())
        self._behind.add(task)

        def settled(done: asyncio.Task[Any]) -> None:
            self._behind.discard(done)
            if not done.cancelled() and (exc := done.exception()) is not None:
                logger.error("could not record %s: %s", what, exc)

        task.add_done_callback(settled)

    async def transaction(self, body: Callable[[Tx], T]) -> T:
        """Run `body` as one `BEGIN IMMEDIATE` transaction: committed when it returns, rolled back when it raises.

        `body` runs on the connection thread and must not block on anything but SQLite. Raises StoreError when the
        store cannot be written (locked past the bounded wait, read-only, disk full).
        """
        return await self._transaction(body, hop=self._call)

    async def _transaction(
        self, body: Callable[[Tx], T], *, hop: Callable[[Callable[[sqlite3.Connection], T]], Any]
    ) -> T:
        def run(db: sqlite3.Connection) -> T:
            if db.in_transaction:  # left open by a ROLLBACK that failed: end it, or nothing could ever be written
                db.execute("ROLLBACK")
            db.execute("BEGIN IMMEDIATE")
            try:
                tx = Tx(db, clock=self._clock, redactor=self._redact)
                result = body(tx)
                db.execute("COMMIT")
            except BaseException:
                try:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise
            if tx.appended and self._checkpointer is not None:
                self._checkpointer.notify()  # thread-safe; here, so that no commit goes without its checkpoint
            return result

        try:
            # A transaction handed over runs to its end on the connection thread whatever the caller does; the
            # caller waits for it, so a cancelled caller never leaves behind a change it did not see committed.
            with anyio.CancelScope(shield=True):
                return await hop(run)
        except sqlite3.Error as exc:
            raise StoreError(f"the store is not writable: {exc}") from None

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """One query in one hand-off; its snapshot ends with it."""
        try:
            return await self._call(lambda db: db.execute(sql, params).fetchall())
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the store: {exc}") from None

    async def _prepare(self) -> None:
        def pragmas(db: sqlite3.Connection) -> None:
            db.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            # The checkpointer thread moves the WAL into the database (see audit_checkpoint.WAL_CHECKPOINT_BYTES), so
            # that no commit on the request path pays for it; SQLite's own checkpoint stays as a far safety net.
            db.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
            db.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}")

        # Switching a new database to WAL takes an exclusive lock without SQLite's busy wait, so two processes
        # opening a new store at once can see "database is locked": wait and try again, within the bounded wait.
        deadline = anyio.current_time() + self._busy_timeout_ms / 1000
        delay = 0.005
        while True:
            try:
                await self._call(pragmas)
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or anyio.current_time() + delay > deadline:
                    raise StoreError(f"cannot prepare the store: {exc}") from None
            except sqlite3.Error as exc:
                raise StoreError(f"cannot prepare the store: {exc}") from None
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.1)

        def migrate(tx: Tx) -> None:
            version = tx.db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"the store was written by a newer ArgoBox (schema {version})")
            for migration in _MIGRATIONS[version:]:
                if migration == CHAIN_AUDIT:
                    _chain_audit(tx)
                    continue
                for statement in migration:
                    tx.db.execute(statement.rstrip(";"))
            if version < SCHEMA_VERSION:
                tx.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

        await self.transaction(migrate)

    async def audit(
        self, events: Sequence[Event], *, request_id: str | None = None, agent: str | None = None,
        tool: str | None = None,
    ) -> None:
        """Append events that belong to no state change (refusals, startup checks)."""
        await self.transaction(lambda tx: tx.append(events, request_id=request_id, agent=agent, tool=tool))

    def _new_record(self, request: NewRequest, now: float) -> RequestRecord:
        return RequestRecord(
            id=request.id, agent=request.agent, tool=request.tool, arguments=request.arguments,
            digest=request.digest, classification=request.classification, effect=request.effect, rule=request.rule,
            reason=request.reason, status=request.status, created_at=now, expires_at=request.expires_at,
            decided_by=request.decided_by, decided_at=now if request.decided_by else None, note=None,
            executor=this_executor() if request.status is RequestStatus.EXECUTING else None,
            result=None, error=None, updated_at=now,
        )

    async def admit(
        self, facts: CallFacts, limits: Limits, *, tool: str | None, events: Sequence[Event],
        request: NewRequest | None = None, failed: bool | None = None,
    ) -> Admission:
        """Check a call against the agent's budgets and, when it fits, record it (with `request`, if any) in one
        transaction. A call identical to a pending request returns that request instead of a new one.

        `failed` moves the failure streak (True for a denial at decision time)."""

        def body(tx: Tx) -> Admission:
            now = tx.now
            # The counts hold until commit (BEGIN IMMEDIATE); a read needs only its request budget and cooldown.
            snapshot = budgets.usage(tx.db, facts, limits, now, full=facts.mutation or facts.queues)
            existing = _pending_twin(tx.db, snapshot.pending_twin) if facts.queues else None
            tripped = check(limits, snapshot.usage, now=now, mutation=facts.mutation and existing is None,
                            queues=facts.queues and existing is None, identical=facts.mutation)
            if tripped is not None:
                _refuse(tx, facts.agent, tool, tripped, now)
                return Admission(tripped=tripped)
            budgets.record_call(tx.db, facts, limits, now, duplicate=existing is not None)
            if snapshot.open_refusals:
                _close_refusals(tx, facts.agent)
            if existing is not None:
                tx.append([Event(event="duplicate", actor=f"agent:{facts.agent}",
                                 detail={"message": "identical to this pending request"})],
                          request_id=existing.id, agent=existing.agent, tool=existing.tool)
                return Admission(record=existing, duplicate=True)
            record = self._new_record(request, now) if request is not None else None
            if record is not None:
                _insert(tx.db, record)
            tx.append(events, request_id=record.id if record else None, agent=facts.agent, tool=tool)
            if failed is not None:
                _note_outcome(tx, facts.agent, limits, now, failed=failed)
            return Admission(record=record)

        return await self.transaction(body)

    async def would_queue(self, facts: CallFacts, limits: Limits) -> bool:
        """Whether `admit` would now queue this call as a new request (read-only; `admit` decides for real)."""
        now = self._clock()
        try:
            snapshot = await self._call(lambda db: budgets.usage(db, facts, limits, now))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the store: {exc}") from None
        if snapshot.pending_twin is not None:
            return False
        return check(limits, snapshot.usage, now=now, mutation=facts.mutation, queues=facts.queues,
                     identical=facts.mutation) is None

    async def budget(self, agent: str, limits: Limits) -> tuple[Usage, FailureState]:
        """The agent's current use of its budgets (read-only)."""
        now = self._clock()

        def read(db: sqlite3.Connection) -> tuple[Usage, FailureState]:
            db.execute("BEGIN")  # one snapshot for both
            try:
                return budgets.usage(db, CallFacts(agent=agent), limits, now).usage, budgets.failure_state(db, agent)
            finally:
                db.execute("COMMIT")

        try:
            return await self._call(read)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the store: {exc}") from None

    async def reset_budget(self, agent: str, *, actor: str) -> FailureState:
        """Clear an agent's cooldown, failure streak and refusal streaks, audited."""

        def body(tx: Tx) -> FailureState:
            cleared = budgets.reset(tx.db, agent)
            detail = {"streak": cleared.streak, "cooldown_until": iso(cleared.cooldown_until)}
            tx.append([Event(event="budget_reset", actor=actor, detail=detail)], request_id=None, agent=agent, tool=None)
            return cleared

        return await self.transaction(body)

    async def _transition(
        self, request_id: str, *, where: str, params: Sequence[Any], sets: dict[str, Any], events: Sequence[Event],
        outcome: tuple[Limits, bool] | None = None,
    ) -> RequestRecord | None:
        """Apply `sets` when `where` still holds, with `events`, atomically; None when it no longer held.

        `outcome` (limits, failed) moves the agent's failure streak in the same transaction."""
        return await self.transaction(
            _transition_body(request_id, where=where, params=params, sets=sets, events=events, outcome=outcome)
        )

    async def get(self, request_id: str) -> RequestRecord | None:
        try:
            rows = await self._read("SELECT * FROM requests WHERE id = ?", (request_id,))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the store: {exc}") from None
        return _row_to_request(rows[0]) if rows else None

    async def list_requests(
        self, *, status: RequestStatus | None = None, agent: str | None = None, limit: int = 100,
        tool: str | None = None, since: float | None = None, until: float | None = None,
    ) -> list[RequestRecord]:
        """Requests, newest first; `since` and `until` bound the creation time (until: exclusive)."""
        clauses, params = ["1 = 1"], list[Any]()
        if status is not None:
            clauses.append("status = ?")
            params.append(status.value)
        for clause, value in (("agent = ?", agent), ("tool = ?", tool), ("created_at >= ?", since),
                              ("created_at < ?", until)):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        sql = f"SELECT * FROM requests WHERE {' AND '.join(clauses)} ORDER BY created_at DESC, id LIMIT ?"  # noqa: S608
        try:
            return [_row_to_request(row) for row in await self._read(sql, (*params, limit))]
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the store: {exc}") from None

    async def audit_trail(
        self, *, request_id: str | None = None, agent: str | None = None, since: float | None = None,
        limit: int | None = None,
    ) -> list[AuditRecord]:
        """Audit events in sequence order, optionally filtered; with `limit`, the most recent `limit` of them."""
        clauses, params = ["1 = 1"], list[Any]()
        for clause, value in (("request_id = ?", request_id), ("agent = ?", agent), ("at >= ?", since)):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        sql = f"SELECT * FROM audit WHERE {' AND '.join(clauses)} ORDER BY seq DESC LIMIT ?"  # noqa: S608
        try:
            rows = await self._read(sql, (*params, -1 if limit is None else limit))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the audit trail: {exc}") from None
        return [_row_to_audit(row) for row in reversed(rows)]

    async def prune(self, *, before: float, operator: str) -> PruneResult:
        """Remove the oldest events, those up to the last one recorded before `before`, as `operator`.

        One transaction: first a `pruned` event is appended to the chain naming the last removed event
        (`through_seq`, `through_hash`), then it is registered in `audit_prunes`, and only then may the delete
        trigger let the events go. The first event left links to `through_hash`, so `verify` still passes.
        """
        def body(tx: Tx) -> tuple[int, int, int]:
            first, last, first_kept = tx.db.execute(
                "SELECT (SELECT MIN(seq) FROM audit), (SELECT MAX(seq) FROM audit),"
                " (SELECT MIN(seq) FROM audit WHERE at >= ?)", (before,),
            ).fetchone()
            if first is None:
                through, anchor = 0, GENESIS
            else:
                through = max(first - 1, last if first_kept is None else first_kept - 1)
                column, seq = ("prev_hash", first) if through < first else ("hash", through)
                anchor = tx.db.execute(f"SELECT {column} FROM audit WHERE seq = ?", (seq,)).fetchone()[0]  # noqa: S608
            count = 0 if first is None else max(0, through - first + 1)
            tx.append([Event(event=PRUNED_EVENT, actor=_actor(operator), detail={
                "before": iso(before), "through_seq": through, "through_hash": anchor, "events": count,
            })], request_id=None, agent=None, tool=None)
            record_seq = int(tx.db.execute("SELECT MAX(seq) FROM audit").fetchone()[0])
            tx.db.execute(
                "INSERT INTO audit_prunes (record_seq, through_seq, through_hash) VALUES (?, ?, ?)",
                (record_seq, through, anchor),
            )
            deleted = tx.db.execute("DELETE FROM audit WHERE seq <= ?", (through,)).rowcount
            return record_seq, through, deleted

        record_seq, through, deleted = await self.transaction(body)
        return PruneResult(record_seq=record_seq, through_seq=through, deleted=max(0, deleted))

    async def audit_after(self, seq: int, *, limit: int = 1000) -> list[AuditRecord]:
        """Audit events after `seq`, oldest first (for followers such as `argobox watch`)."""
        rows = await self._read("SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit))
        return [_row_to_audit(row) for row in rows]

    # Operator transitions -------------------------------------------------------------------------------------

    async def approve(self, request_id: str, *, operator: str, note: str) -> RequestRecord:
        """pending_approval -> approved, by `operator`; refused when missing, decided, or past its expiry."""
        now = self._clock()
        record = await self._transition(
            request_id,
            where="status = ? AND expires_at > ?",
            params=(RequestStatus.PENDING.value, now),
            sets={"status": RequestStatus.APPROVED.value, "decided_by": operator, "decided_at": now,
                  "note": self._redact.text(note),
                  "executor": this_executor()},
            events=[Event(event="approved", actor=f"operator:{operator}", detail={"note": note})],
        )
        if record is None:
            raise await self._refusal(request_id, "approve")
        return record

    async def deny(
        self, request_id: str, *, operator: str, reason: str, limits: Limits | None = None
    ) -> RequestRecord:
        """pending_approval -> denied, by `operator`; with `limits`, the denial counts toward the failure streak."""
        now = self._clock()
        record = await self._transition(
            request_id,
            where="status = ? AND expires_at > ?",
            params=(RequestStatus.PENDING.value, now),
            sets={"status": RequestStatus.DENIED.value, "decided_by": operator, "decided_at": now,
                  "note": self._redact.text(reason)},
            events=[Event(event="denied", actor=_actor(operator), detail={"reason": reason})],
            outcome=(limits, True) if limits is not None else None,
        )
        if record is None:
            raise await self._refusal(request_id, "deny")
        return record

    async def _refusal(self, request_id: str, verb: str) -> Refused:
        await self.expire_due()
        record = await self.get(request_id)
        if record is None:
            return Refused("not_found", f"no request {request_id!r}")
        if record.status is RequestStatus.EXPIRED:
            return Refused("expired", f"request {request_id} expired at {iso(record.expires_at)}; it cannot be {verb}d")
        who = f" by {record.decided_by}" if record.decided_by else ""
        return Refused("not_pending", f"request {request_id} is {record.status.value}{who}, not pending approval")

    async def begin_execution(self, request_id: str) -> RequestRecord:
        """approved -> executing; only the process that approved may do it, once."""
        record = await self._transition(
            request_id,
            where="status = ? AND executor = ?",
            params=(RequestStatus.APPROVED.value, this_executor()),
            sets={"status": RequestStatus.EXECUTING.value},
            events=[Event(event="executing", actor="argobox")],
        )
        if record is None:
            raise Refused("not_approved", f"request {request_id} is not approved for this process to execute")
        return record

    def _finishing(
        self, ok: bool, result: Any, error: str | None, *, cap: bool
    ) -> tuple[RequestStatus, dict[str, Any]]:
        """The status and the columns to set (redacted). With `cap` (a result its caller already has), a
        result over MAX_STORED_RESULT_CHARS is stored as a note of its size."""
        status = RequestStatus.SUCCEEDED if ok else RequestStatus.FAILED
        redacted = self._redact(result) if result is not None else None
        text = json.dumps(redacted, sort_keys=True) if redacted is not None else None
        if cap and text is not None and len(text) > MAX_STORED_RESULT_CHARS:
            text = json.dumps({"omitted": f"{len(text)} characters; the result was returned to the caller when the "
                                          f"call was made, and results over {MAX_STORED_RESULT_CHARS} characters "
                                          "are not kept"})
        sets = {
            "status": status.value,
            "result": text,
            "error": self._redact(error) if error is not None else None,
        }
        return status, sets

    async def finish(
        self, request_id: str, *, ok: bool, result: Any = None, error: str | None = None, detail: dict[str, Any],
        limits: Limits | None = None,
    ) -> RequestRecord:
        """executing -> succeeded or failed, with the (redacted) result or error, kept whole: the caller may fetch it
        later (an approved request's agent asks for it with argobox_request_status)."""
        status, sets = self._finishing(ok, result, error, cap=False)
        record = await self._transition(
            request_id, where="status = ?", params=(RequestStatus.EXECUTING.value,), sets=sets,
            events=[Event(event=status.value, actor="argobox", detail=detail)],
            outcome=(limits, not ok) if limits is not None else None,
        )
        if record is None:
            raise Refused("not_executing", f"request {request_id} is not executing")
        return record

    def finish_behind(
        self, record: RequestRecord, *, ok: bool, result: Any = None, error: str | None = None,
        detail: dict[str, Any], limits: Limits | None = None,
    ) -> RequestRecord:
        """`finish` without waiting for the write (see `transaction_behind`); returns the record as it will be
        (with `result` and `error` as given: the caller has redacted them for its answer).

        For reads answered at once only: they changed nothing, so their answer need not wait for their outcome
        record, and the caller has the result (so one over MAX_STORED_RESULT_CHARS is not kept). If the process dies
        first, the request is left `executing`, and marked `unknown` when ArgoBox next starts.
        """
        status = RequestStatus.SUCCEEDED if ok else RequestStatus.FAILED

        def prepare() -> Callable[[Tx], None]:
            _, sets = self._finishing(ok, result, error, cap=True)
            transition = _transition_body(
                record.id, where="status = ?", params=(RequestStatus.EXECUTING.value,), sets=sets,
                events=[Event(event=status.value, actor="argobox", detail=detail)],
                outcome=(limits, not ok) if limits is not None else None,
            )

            def body(tx: Tx) -> None:
                if transition(tx) is None:
                    logger.error("request %s was no longer executing when its outcome (%s) was recorded",
                                 record.id, status.value)

            return body

        self.transaction_behind(prepare, what=f"the outcome of request {record.id}")
        return replace(record, status=status, result=result, error=error, updated_at=self._clock())

    # Sweeps ---------------------------------------------------------------------------------------------------

    async def expire_due(self) -> int:
        """Mark every pending request past its expiry as expired, with an audit event each."""
        def body(tx: Tx) -> int:
            due = tx.db.execute(
                "UPDATE requests SET status = ?, updated_at = ? WHERE status = ? AND expires_at <= ?"
                " RETURNING id, agent, tool, expires_at",
                (RequestStatus.EXPIRED.value, tx.now, RequestStatus.PENDING.value, tx.now),
            ).fetchall()
            for row in due:
                tx.append(
                    [Event(event="expired", actor="argobox", detail={"expired_at": iso(row["expires_at"])})],
                    request_id=row["id"], agent=row["agent"], tool=row["tool"],
                )
            return len(due)

        return await self.transaction(body)

    async def recover_interrupted(self) -> list[str]:
        """Mark approved or executing requests whose executor process is gone as `unknown`; never re-run them."""
        rows = await self._read(
            "SELECT id, executor, status FROM requests WHERE status IN (?, ?)",
            (RequestStatus.APPROVED.value, RequestStatus.EXECUTING.value),
        )
        candidates = [(row["id"], row["executor"], row["status"]) for row in rows]
        recovered: list[str] = []
        for request_id, executor, status in candidates:
            if _executor_alive(executor):
                continue
            record = await self._transition(
                request_id,
                where="status = ? AND executor IS ?",
                params=(status, executor),
                sets={"status": RequestStatus.UNKNOWN.value},
                events=[Event(
                    event="interrupted", actor="argobox",
                    detail={"was": status, "executor": executor,
                            "message": "the executing process stopped; whether the action ran is unknown, "
                                       "check the target before retrying"},
                )],
            )
            if record is not None:
                recovered.append(request_id)
        return recovered


# Transaction bodies shared by several operations (they run on the connection thread) ----------------------------


def _transition_body(
    request_id: str, *, where: str, params: Sequence[Any], sets: dict[str, Any], events: Sequence[Event],
    outcome: tuple[Limits, bool] | None,
) -> Callable[[Tx], RequestRecord | None]:
    assignments = ", ".join(f"{column} = ?" for column in sets)
    sql = f"UPDATE requests SET {assignments}, updated_at = ? WHERE id = ? AND ({where}) RETURNING *"  # noqa: S608

    def body(tx: Tx) -> RequestRecord | None:
        rows = tx.db.execute(sql, (*sets.values(), tx.now, request_id, *params)).fetchall()
        if not rows:
            return None
        record = _row_to_request(rows[0])
        tx.append(events, request_id=request_id, agent=record.agent, tool=record.tool)
        if outcome is not None:
            _note_outcome(tx, record.agent, outcome[0], tx.now, failed=outcome[1])
        return record

    return body


def _insert(db: sqlite3.Connection, record: RequestRecord) -> None:
    db.execute(
        "INSERT INTO requests (id, agent, tool, arguments, digest, classification, effect, rule, reason,"
        " status, created_at, expires_at, decided_by, decided_at, executor, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            record.id, record.agent, record.tool, json.dumps(record.arguments, sort_keys=True),
            record.digest, record.classification, record.effect, record.rule, record.reason,
            record.status.value, record.created_at, record.expires_at, record.decided_by, record.decided_at,
            record.executor, record.updated_at,
        ),
    )


def _pending_twin(db: sqlite3.Connection, request_id: str | None) -> RequestRecord | None:
    if request_id is None:
        return None
    row = db.execute("SELECT * FROM requests WHERE id = ?", (request_id,)).fetchone()
    return _row_to_request(row) if row is not None else None


def _refuse(tx: Tx, agent: str, tool: str | None, tripped: Tripped, now: float) -> None:
    audited = budgets.record_refusal(tx.db, agent, tripped.limit, now)
    if audited is not None:
        detail = {"limit": tripped.limit, "retry_after_seconds": tripped.retry_after_seconds,
                  "message": tripped.message, "refusals": audited}
        tx.append([Event(event="rate_limited", actor="argobox", detail=detail)], request_id=None, agent=agent, tool=tool)


def _close_refusals(tx: Tx, agent: str) -> None:
    for limit, count, first_at, last_at in budgets.close_refusals(tx.db, agent):
        detail = {"limit": limit, "refusals": count, "first_at": iso(first_at), "last_at": iso(last_at),
                  "message": f"{count} more calls were refused by {limit}"}
        tx.append([Event(event="rate_limited", actor="argobox", detail=detail)], request_id=None, agent=agent, tool=None)


def _note_outcome(tx: Tx, agent: str, limits: Limits, now: float, *, failed: bool) -> None:
    tripped = budgets.note_outcome(tx.db, agent, limits, now, failed=failed)
    if tripped is not None:
        detail = {"cooldown_until": iso(tripped.cooldown_until), "failures": limits.failures.count,
                  "window_seconds": limits.failures.seconds}
        tx.append([Event(event="cooldown", actor="argobox", detail=detail)], request_id=None, agent=agent, tool=None)


def _chain_audit(tx: Tx) -> None:
    """Rebuild the audit table with the hash chain, sealing the events found (if any) as they are.

    Events recorded before were not tamper-evident; the `audit_chain_started` event says so.
    """
    db = tx.db
    db.execute("DROP TRIGGER audit_no_update")
    db.execute("DROP TRIGGER audit_no_delete")
    db.execute("DROP INDEX audit_by_request")
    db.execute("ALTER TABLE audit RENAME TO audit_unchained")
    for statement in _AUDIT_SCHEMA:
        if statement:
            db.execute(statement)
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
    db.executemany(_INSERT_AUDIT, rows)
    db.execute("DROP TABLE audit_unchained")
    if rows:
        tx.append([Event(event="audit_chain_started", actor="argobox", detail={
            "sealed_events": len(rows),
            "message": "the events before this one were recorded before the trail was hash-chained and "
                       "were sealed as found when the store was upgraded",
        })], request_id=None, agent=None, tool=None)
