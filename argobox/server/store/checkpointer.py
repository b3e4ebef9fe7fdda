"""The checkpointer: a thread that keeps the audit checkpoint at the head of the chain, and moves the WAL.

After each commit that appended audit events, `notify()`; the thread writes the checkpoint (see
`argobox.server.audit.checkpoint` for the file and its rules) 20 ms later (at most twice a second while commits keep
coming), and coalesces: one write covers every commit before it, so the decision path does not wait for the file
system. Several processes write, under an exclusive lock on `<database>.checkpoint.lock`. A truncated or rewritten
trail is logged and the old checkpoint kept as evidence for `verify`. Closing the store waits for the last write.

The same thread copies the WAL into the database once it has grown (a PASSIVE checkpoint), so that no commit on
the request path pays for it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from argobox.server.audit import (
    Checkpoint,
    CheckpointError,
    Signer,
    checkpoint_path,
    read_checkpoint,
    replacement_problem,
    write_checkpoint,
)
from argobox.server.files import open_private

logger = logging.getLogger("argobox.audit")

FLUSH_TIMEOUT_S: Final = 10.0
DELAY_S: Final = 0.02
"""A checkpoint is written this long after the commit that asked for it, covering every commit in between: the
writes of one call (its decision, then its outcome) get one checkpoint, written after the call has answered.
flush() (and so closing the store) writes at once."""
MIN_INTERVAL_S: Final = 0.5
"""Under a steady stream of commits, a checkpoint is written at most this often. Each write is a file read, a query,
a signature and an fsync on a thread of the serving process; at 50 a second they were the slowest 1% of agent calls
(the call that coincided with one waited for it), at 2 a second they are lost in the noise. The checkpoint then
trails the head by at most this long while the store is busy; `verify` reports the events after it as not yet
checkpointed, not as missing."""


WAL_CHECKPOINT_BYTES: Final = 4 * 1024 * 1024
"""Once the store's WAL holds this much, the checkpointer thread copies it into the database (a PASSIVE checkpoint:
it never blocks a writer). SQLite would otherwise do it inside whichever commit crosses its threshold, with an
fsync, adding tens of milliseconds to that one call."""


def write_delay(last_write: float, now: float) -> float:
    """How long the checkpoint thread waits, from `now`, before the write a commit asked for: DELAY_S after a quiet
    spell, and no sooner than MIN_INTERVAL_S after the last write (`last_write`) while commits keep coming."""
    return max(DELAY_S, last_write + MIN_INTERVAL_S - now)


_HEAD_SQL = (
    "SELECT seq, hash, (SELECT hash FROM audit WHERE seq = ?), (SELECT MAX(through_seq) FROM audit_prunes)"
    " FROM audit ORDER BY seq DESC LIMIT 1"
)


class Checkpointer:
    """Keeps `<database>.checkpoint` at the head of the chain; `notify()` after each commit that appended events.

    Writes happen in a background thread, one at a time, each covering everything committed before it.
    """

    def __init__(self, db_path: Path, *, signer: Signer | None = None, busy_timeout_ms: int = 5000) -> None:
        self._db_path = db_path
        self.path = checkpoint_path(db_path)
        self._lock_path = db_path.with_name(db_path.name + ".checkpoint.lock")
        self._signer = signer
        self._timeout_s = busy_timeout_ms / 1000
        self._cond = threading.Condition()
        self._requested = self._done = 0
        self._closing = self._urgent = self._idle = False
        self._thread: threading.Thread | None = None
        self._io = threading.Lock()
        self._db: sqlite3.Connection | None = None
        resolved = db_path.resolve()  # SQLite keeps the WAL beside the real file, not beside a symlink
        self._wal_path = resolved.with_name(resolved.name + "-wal")
        self._closed = False
        self._wal_db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._reported: str | None = None
        self._wal_reported: str | None = None

    def notify(self) -> None:
        """Ask for the checkpoint to be brought up to the head (returns at once)."""
        with self._cond:
            self._requested += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="argobox-checkpoint", daemon=True)
                self._thread.start()
            if self._idle:  # a thread pausing between writes is not woken for every commit
                self._cond.notify_all()

    def flush(self, timeout: float = FLUSH_TIMEOUT_S) -> bool:
        """Wait until every commit notified so far is covered by a written checkpoint (or was refused)."""
        with self._cond:
            target = self._requested
            self._urgent = True
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._done >= target, timeout)

    def close(self) -> None:
        """Flush, stop the thread and release the files."""
        if not self.flush():
            logger.error(
                "the audit checkpoint was not written within %.0f s; `argobox audit verify` will show "
                "the last events as not yet checkpointed",
                FLUSH_TIMEOUT_S,
            )
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=FLUSH_TIMEOUT_S)
        with self._io:
            for db in (self._db, self._wal_db):
                if db is not None:
                    db.close()
            self._db = self._wal_db = None
            self._closed = True
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def _run(self) -> None:
        last_write = -MIN_INTERVAL_S
        while True:
            with self._cond:
                self._idle = True
                self._cond.wait_for(lambda: self._done < self._requested or self._closing)
                self._idle = False
                if self._done >= self._requested:
                    return
                # coalesce the commits of the next moment (and, when busy, of the interval) into one write
                delay = write_delay(last_write, time.monotonic())
                self._cond.wait_for(lambda: self._urgent or self._closing, timeout=delay)
                self._urgent = False
                target = self._requested
            try:
                self.advance()
            except Exception:
                logger.exception("could not write the audit checkpoint %s", self.path)
            try:
                self.checkpoint_wal()
            except Exception:  # noqa: BLE001 - SQLite's own checkpoint remains as the safety net
                self._report_wal(f"could not checkpoint the WAL of {str(self._db_path)!r}", exc_info=True)
            last_write = time.monotonic()
            with self._cond:
                self._done = max(self._done, target)
                self._cond.notify_all()

    def advance(self) -> Checkpoint | None:
        """Bring the checkpoint up to the current head, if it may be. Returns what was written, if anything."""
        with self._io:
            if self._closed:
                return None
            return self._advance()

    def _advance(self) -> Checkpoint | None:
        with self._file_lock():
            try:
                current = read_checkpoint(self.path)
            except CheckpointError as exc:
                self._report(f"{exc}; it is kept as evidence and not replaced")
                return None
            try:
                head = self._head(current.seq if current is not None else None)
            except sqlite3.Error as exc:
                self._report(f"cannot read the audit trail to checkpoint it: {exc}")
                return None
            if head is None:
                if current is not None:
                    self._report(f"the checkpoint records seq {current.seq} but the audit trail is empty")
                return None
            problem = replacement_problem(current, *head)
            if problem is not None:
                self._report(problem)
                return None
            if current is not None and (current.seq, current.hash) == head[:2]:
                return None
            seq, hash_ = head[0], head[1]
            checkpoint = self._signer.sign(seq, hash_) if self._signer else Checkpoint(seq=seq, hash=hash_)
            try:
                write_checkpoint(self.path, checkpoint)
            except OSError as exc:
                self._report(f"cannot write the audit checkpoint {str(self.path)!r}: {exc.strerror or exc}")
                return None
            self._reported = None
            return checkpoint

    def checkpoint_wal(self, *, threshold: int = WAL_CHECKPOINT_BYTES) -> bool:
        """Copy the WAL into the database when it holds at least `threshold` bytes; whether all of it was copied.

        The store truncates its WAL when it restarts after a checkpoint, so the file's size is what is waiting.
        """
        try:
            if os.stat(self._wal_path).st_size < threshold:
                return False
        except FileNotFoundError:
            return False
        with self._io:
            if self._closed:
                return False
            try:
                if self._wal_db is None:
                    uri = self._db_path.resolve().as_uri() + "?mode=rw"  # never creates a database
                    self._wal_db = sqlite3.connect(
                        uri, uri=True, timeout=self._timeout_s, isolation_level=None, check_same_thread=False
                    )
                busy, _, _ = self._wal_db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error as exc:
                if self._wal_db is not None:
                    self._wal_db.close()
                    self._wal_db = None
                self._report_wal(
                    f"cannot checkpoint the WAL of {str(self._db_path)!r} (SQLite will, in a commit, "
                    f"past its own limit): {exc}"
                )
                return False
        self._wal_reported = None
        return not busy

    def _head(self, checkpoint_seq: int | None) -> tuple[int, str, str | None, int | None] | None:
        if self._db is None:
            uri = self._db_path.resolve().as_uri() + "?mode=ro"
            self._db = sqlite3.connect(
                uri, uri=True, timeout=self._timeout_s, isolation_level=None, check_same_thread=False
            )
        row = self._db.execute(_HEAD_SQL, (checkpoint_seq,)).fetchone()
        return None if row is None else (int(row[0]), str(row[1]), row[2], row[3])

    @contextmanager
    def _file_lock(self) -> Generator[None, None, None]:
        if self._lock_fd is None:
            self._lock_fd = open_private(self._lock_path)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _report_wal(self, problem: str, *, exc_info: bool = False) -> None:
        """Log a WAL problem once (until it changes or a checkpoint of the WAL succeeds)."""
        if problem != self._wal_reported:
            logger.error("%s", problem, exc_info=exc_info)
            self._wal_reported = problem

    def _report(self, problem: str) -> None:
        """Log a problem once (until it changes or a checkpoint is written again)."""
        if problem != self._reported:
            logger.error("audit checkpoint not updated: %s (run `argobox audit verify`)", problem)
            self._reported = problem
