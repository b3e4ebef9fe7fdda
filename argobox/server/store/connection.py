"""How the store runs its work on its one SQLite connection: transactions, reads, and writes left behind.

SQLite in WAL mode through aiosqlite. Every state change is one `BEGIN IMMEDIATE` transaction, run whole on
aiosqlite's connection thread: one hand-off per decision, not one per statement. All work runs on that thread, one
queue item per read or transaction, in order: nothing interleaves, so the store needs no lock of its own.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import aiosqlite
import anyio

from argobox.server.redact import Redactor
from argobox.server.store.records import Clock, StoreError
from argobox.server.store.sealing import Sealer
from argobox.server.store.tx import Body, Tx

T = TypeVar("T")

logger = logging.getLogger("argobox")

WAL_AUTOCHECKPOINT_PAGES = 10_000
"""SQLite's own checkpoint, in the committing connection, only past this many WAL pages (about 40 MB): a safety net
for when the checkpointer thread cannot keep up; normally it moves the WAL long before."""
WAL_SIZE_LIMIT_BYTES = 0
"""The WAL file is truncated each time it restarts after a checkpoint, so its size says how much is waiting."""

Hop = Callable[[Callable[[sqlite3.Connection], T]], Any]


class Connection:
    """The store's connection: `transaction`, `read`, and `transaction_behind` for writes its caller need not await.

    `committed` is called (on the connection thread) after each commit that appended audit events.
    """

    def __init__(
        self,
        db: aiosqlite.Connection,
        *,
        clock: Clock,
        redactor: Redactor,
        sealer: Sealer,
        busy_timeout_ms: int,
        committed: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.redactor = redactor
        self.sealer = sealer
        self._busy_timeout_ms = busy_timeout_ms
        self._committed = committed
        self._behind: set[asyncio.Task[Any]] = set()

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` on the connection's own thread, in one hand-off, after any write left behind."""
        if self._behind:
            await self.catch_up()
        return await self._hop(fn)

    async def _hop(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` on aiosqlite's connection thread, now.

        aiosqlite has no public call for this: `_execute` is the queue its own methods put their work on (a test
        guards it, so an aiosqlite release that changes it fails loudly rather than silently)."""
        return await self.db._execute(fn, self.db._conn)  # pyright: ignore[reportPrivateUsage, reportUnknownMemberType]

    async def catch_up(self) -> None:
        """Wait for the writes left behind (`transaction_behind`) to land."""
        while self._behind:
            await asyncio.wait(set(self._behind))

    async def read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """One query in one hand-off; its snapshot ends with it."""
        return await self.read_with(lambda db: db.execute(sql, params).fetchall())

    async def read_with(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`call(fn)` for a read: an SQLite error becomes StoreError."""
        try:
            return await self.call(fn)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the store: {exc}") from None

    async def transaction(self, body: Body[T]) -> T:
        """Run `body` as one `BEGIN IMMEDIATE` transaction: committed when it returns, rolled back when it raises.

        `body` runs on the connection thread and must not block on anything but SQLite. Raises StoreError when the
        store cannot be written (locked past the bounded wait, read-only, disk full).
        """
        return await self._transaction(body, hop=self.call)

    def transaction_behind(self, prepare: Callable[[], Body[Any]], *, what: str) -> None:
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

    async def _transaction(self, body: Body[T], *, hop: Hop[T]) -> T:
        def run(db: sqlite3.Connection) -> T:
            if db.in_transaction:  # left open by a ROLLBACK that failed: end it, or nothing could ever be written
                db.execute("ROLLBACK")
            db.execute("BEGIN IMMEDIATE")
            try:
                tx = Tx(db, clock=self.clock, redactor=self.redactor, sealer=self.sealer)
                result = body(tx)
                db.execute("COMMIT")
            except BaseException:
                try:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise
            if tx.appended and self._committed is not None:
                self._committed()  # here, so that no commit goes without its checkpoint
            return result

        try:
            # A transaction handed over runs to its end on the connection thread whatever the caller does; the
            # caller waits for it, so a cancelled caller never leaves behind a change it did not see committed.
            with anyio.CancelScope(shield=True):
                return await hop(run)
        except sqlite3.Error as exc:
            raise StoreError(f"the store is not writable: {exc}") from None
        raise AssertionError("unreachable: a shielded scope ends with its result")  # for the type checker

    async def prepare(self) -> None:
        """Set the connection up: its bounded lock wait, WAL, and when SQLite itself moves the WAL."""

        def pragmas(db: sqlite3.Connection) -> None:
            db.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            # The checkpointer thread moves the WAL into the database (see checkpointer.WAL_CHECKPOINT_BYTES), so
            # that no commit on the request path pays for it; SQLite's own checkpoint stays as a far safety net.
            db.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
            db.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}")

        # Switching a new database to WAL takes an exclusive lock without SQLite's busy wait, so two processes
        # opening a new store at once can see "database is locked": wait and try again, within the bounded wait.
        deadline = anyio.current_time() + self._busy_timeout_ms / 1000
        delay = 0.005
        while True:
            try:
                await self.call(pragmas)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or anyio.current_time() + delay > deadline:
                    raise StoreError(f"cannot prepare the store: {exc}") from None
            except sqlite3.Error as exc:
                raise StoreError(f"cannot prepare the store: {exc}") from None
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.1)
