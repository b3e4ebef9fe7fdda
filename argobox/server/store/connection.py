"""How the store runs its work on its one SQLite connection: transactions, reads, and writes left behind.

SQLite in WAL mode through aiosqlite. Every state change is one `BEGIN IMMEDIATE` transaction, run whole in one go:
one hand-off per decision, not one per statement. Work runs on aiosqlite's connection thread, one queue item per
read or transaction, in order: nothing interleaves, so the store needs no lock of its own.

The transactions of an agent's call (its admission, its outcome) are small and bounded, and run on the event loop
itself (`inline`) when nothing is queued on the connection thread and the write lock is free at once: a hand-off
costs more than such a transaction (the thread's wake-up, and the interpreter lock passed back and forth), and the
loop has nothing else to do meanwhile that the thread would let it do. When another process holds the write lock,
the transaction goes to the thread and waits there, within the bounded wait, as every other one does.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any, TypeVar

import aiosqlite
import anyio

from argobox.server.redact import Redactor
from argobox.server.store.batch import Batched, Prepared, batched
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
NO_WAIT = "PRAGMA busy_timeout = 0"
"""The connection's lock wait between two pieces of work on its thread: a transaction run on the event loop must
find the write lock free at once or leave it to the thread, which sets the bounded wait for its own work (setting
and resetting it around each inline transaction instead cost two statements on every agent call's path)."""
BEHIND_DELAY_S = 0.005
"""A write left behind (the outcome of a read answered first) starts once the transport has sent the answer
(`Connection.answered`), or this long after it was asked for where nobody says so; any later work of the store
writes it first, at once."""

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
        self._waiting: list[tuple[Callable[[], Body[Any]], str]] = []
        """Writes left behind not started yet (see `transaction_behind`), in order."""
        self._timer: asyncio.Handle | None = None
        self._behind: set[asyncio.Task[Any]] = set()
        self._handed = 0
        """Work handed to the connection thread (counted on the loop)..."""
        self._returned = [0]
        """... and finished there (counted on that thread): the thread is idle when both are equal."""

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` on the connection's own thread, in one hand-off, after any write left behind."""
        if self._waiting or self._behind:
            await self.catch_up()
        return await self._hop(fn)

    async def _hop(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` on aiosqlite's connection thread, now.

        aiosqlite has no public call for this: `_execute` is the queue its own methods put their work on (a test
        guards it, so an aiosqlite release that changes it fails loudly rather than silently)."""
        returned, wait = self._returned, f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}"

        def counted(db: sqlite3.Connection) -> T:
            try:
                db.execute(wait)  # work on this thread may wait for another process, within the bounded wait
                return fn(db)
            finally:
                with suppress(sqlite3.Error):
                    db.execute(NO_WAIT)  # and none in between, when `_inline` may use the connection
                returned[0] += 1  # only this thread writes it

        self._handed += 1
        return await self.db._execute(counted, self.db._conn)  # pyright: ignore[reportPrivateUsage, reportUnknownMemberType]

    async def catch_up(self) -> None:
        """Write the writes left behind (`transaction_behind`) now, and wait for them to land."""
        while self._waiting or self._behind:
            self._start_waiting()
            if self._behind:
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

    async def transaction(self, body: Body[T], *, inline: bool = False) -> T:
        """Run `body` as one `BEGIN IMMEDIATE` transaction: committed when it returns, rolled back when it raises.

        `body` must not block on anything but SQLite. It runs on the connection thread; with `inline` (a small,
        bounded body, such as an agent call's admission), on the event loop itself when the connection thread is
        idle and the write lock is free at once, together with the writes left behind that still wait (each in its
        own savepoint, before `body`: one commit for all). Raises StoreError when the store cannot be written
        (locked past the bounded wait, read-only, disk full).
        """
        if inline:
            while self._behind:  # writes left behind already under way go first
                await asyncio.wait(set(self._behind))
            if self._idle():
                behind = self._take_waiting()
                try:
                    done, found = self._inline(batched(behind, body))
                except StoreError:
                    self._put_back(behind)
                    raise
                if done and found is not None:
                    try:
                        return found.unwrap()
                    except sqlite3.Error as exc:
                        raise StoreError(f"the store is not writable: {exc}") from None
                self._put_back(behind)
        return await self._transaction(body, hop=self.call)

    def transaction_behind(self, prepare: Callable[[], Body[Any]], *, what: str) -> None:
        """Run a small transaction without waiting for it: the caller answers first.

        It starts when the transport says the answer is on its way (`answered`), BEHIND_DELAY_S later at the latest,
        or as soon as any other work of this store begins, whichever comes first:
        ordering is kept, every later read or write of this store waits for it. `prepare()` runs then, on the event
        loop and outside the write lock (serialising and redacting belong there), and returns the transaction's
        body, run as `transaction(body, inline=True)` would. A transaction that fails whole (the store locked or
        unwritable) is retried once, then logged (`what` names the write); a write that fails on its own among
        others is undone alone and logged. The caller has already answered; a read whose outcome is lost stays
        `executing` until the next start marks it `unknown`.
        """
        self._waiting.append((prepare, what))
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(BEHIND_DELAY_S, self._start_waiting)

    def answered(self) -> None:
        """An answer is on its way: the writes left behind start next (rather than after BEHIND_DELAY_S), unless a
        transaction comes first and takes them along."""
        if self._waiting:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_soon(self._start_waiting)

    def _idle(self) -> bool:
        """Whether nothing handed to the connection thread is still running there."""
        return self._handed == self._returned[0]

    def _take_waiting(self) -> list[Prepared]:
        """The writes left behind that wait, prepared (`prepare()` runs now), and none left waiting."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        items, self._waiting = self._waiting, []
        prepared: list[Prepared] = []
        for prepare, what in items:
            try:
                prepared.append((prepare(), what))
            except Exception as exc:  # noqa: BLE001 - the top of a write nobody awaits: logged, as a failed write
                logger.error("could not record %s: %s", what, exc)
        return prepared

    def _put_back(self, behind: list[Prepared]) -> None:
        """Writes taken along by a transaction that did not run (or failed): they wait again, first in line."""
        if behind:
            self._waiting[:0] = [(_ready(body), what) for body, what in behind]
            if self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(BEHIND_DELAY_S, self._start_waiting)

    def _start_waiting(self) -> None:
        """Start writing the writes left behind that wait, in order, in one transaction, in one task."""
        behind = self._take_waiting()
        if not behind:
            return
        earlier = set(self._behind)

        async def write() -> None:
            if earlier:  # a write still being retried goes first
                await asyncio.wait(earlier)
            await self._write_behind(behind)

        task = asyncio.get_running_loop().create_task(write())
        self._behind.add(task)

        def settled(done: asyncio.Task[Any]) -> None:
            self._behind.discard(done)
            if not done.cancelled() and (exc := done.exception()) is not None:
                logger.error("could not record %s: %s", ", ".join(what for _, what in behind), exc)

        task.add_done_callback(settled)

    async def _write_behind(self, behind: list[Prepared]) -> None:
        """Commit `behind` as one transaction; a failure is retried once, then logged (their callers answered)."""
        body: Body[Batched[None]] = batched(behind)
        for attempt in (1, 2):
            try:
                if attempt == 1 and self._idle():
                    done, _ = self._inline(body)
                    if done:
                        return
                await self._transaction(body, hop=self._hop)
                return
            except StoreError as exc:
                if attempt == 2:
                    for _, what in behind:
                        logger.error("could not record %s: %s", what, exc)
                else:
                    await anyio.sleep(0.1)

    def _inline(self, body: Body[T]) -> tuple[bool, T | None]:
        """Run `body` as a transaction here, now, if the write lock is free at once: (True, its result); else
        (False, None), and nothing was done. Raises StoreError as `transaction` does."""
        db: sqlite3.Connection = self.db._conn  # pyright: ignore[reportPrivateUsage]
        try:
            if db.in_transaction:  # left open by a ROLLBACK that failed: end it, or nothing could ever be written
                db.execute("ROLLBACK")
            try:
                db.execute("BEGIN IMMEDIATE")  # no busy wait between two hops (see `_hop`): busy at once or free
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                    raise
                return False, None  # another process writes: wait for it on the connection thread
            return True, self._run(db, body)
        except sqlite3.Error as exc:
            raise StoreError(f"the store is not writable: {exc}") from None

    def _run(self, db: sqlite3.Connection, body: Body[T]) -> T:
        """The rest of a transaction begun with BEGIN IMMEDIATE: `body`, then COMMIT, or ROLLBACK if anything fails."""
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

    async def _transaction(self, body: Body[T], *, hop: Hop[T]) -> T:
        def run(db: sqlite3.Connection) -> T:
            if db.in_transaction:  # left open by a ROLLBACK that failed: end it, or nothing could ever be written
                db.execute("ROLLBACK")
            db.execute("BEGIN IMMEDIATE")
            return self._run(db, body)

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


def _ready(body: Body[Any]) -> Callable[[], Body[Any]]:
    """`body`, already prepared, as a write left behind waits for it."""
    return lambda: body
