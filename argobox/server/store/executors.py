"""Who is executing, told in a way that survives PID namespaces and reused process ids: a lease per process.

Each process that opens the store holds an exclusive lock (flock) on a file of its own in `.<database>.executors/`
for as long as the store is open, and names that file in the `executor` of every request it starts executing
(`host:pid/<file>`). The kernel releases the lock when the process ends, however it ends, so a request found
executing is the work of a dead process exactly when the lock of its file can be taken, or the file is gone.

A process id could not tell this. ArgoBox's container image runs it as process 1: after a crash and a restart, the
`host:1` recorded by the dead process was the new process itself, and the request stayed `executing` for good,
with nobody able to approve, deny or recover it. Every process sharing a store shares one kernel (SQLite's WAL
needs shared memory), so the lock is seen by all of them, whatever namespace or host name each one has.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import socket
import time
from pathlib import Path

from argobox.server.files import create_exclusive, private_folder

STALE_AFTER_S = 60.0
"""A lease file whose lock is free is removed once it is this old (a younger one may be a process's own, created a
moment ago and not yet locked)."""


def executors_folder(db_path: Path) -> Path:
    """Where the lease files of the store at `db_path` live: a hidden folder beside the real file (every process
    finds the same one, whichever link it opened the store through, as SQLite finds the same WAL; hidden, so that
    `argobox.db*` still names the store's files only)."""
    real = db_path.resolve()
    return real.with_name(f".{real.name}.executors")


class Lease:
    """This process's lease on the store: take it with `Lease.take`, `release` it when the store closes."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd
        self.executor = f"{socket.gethostname()}:{os.getpid()}/{path.name}"
        """What a request executing here records as its executor."""

    @classmethod
    def take(cls, db_path: Path) -> Lease:
        """Create this process's lease file (never through a link) and lock it. Raises UnsafeFolder, OSError."""
        folder = executors_folder(db_path)
        private_folder(folder)
        path = folder / f"{os.getpid()}-{secrets.token_hex(8)}"
        fd = create_exclusive(path, flags=os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        return cls(path, fd)

    def release(self) -> None:
        """Remove the file, then drop the lock (a process that finds the file gone knows this one is done)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None


def lease_held(db_path: Path, executor: str) -> bool | None:
    """Whether the process that recorded `executor` still holds its lease: None when `executor` names no lease
    (a request recorded before leases existed: the caller checks its process id). When it cannot tell, True."""
    _, slash, name = executor.partition("/")
    if not slash:
        return None
    if not name or "/" in name or name.startswith("."):
        return True  # not a name this module writes: never recover on a guess
    try:
        fd = os.open(executors_folder(db_path) / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return False  # released, or removed as stale: either way its process has ended
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True  # locked: its process is alive (or the lock cannot be checked)
    finally:
        os.close(fd)
    return False


def remove_stale(db_path: Path, *, now: float | None = None) -> int:
    """Remove the lease files of processes that have ended (their lock free, the file older than STALE_AFTER_S);
    how many were removed. Best effort: a file that cannot be checked is left."""
    folder = executors_folder(db_path)
    cutoff = (time.time() if now is None else now) - STALE_AFTER_S
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        try:
            if not entry.is_file(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_mtime > cutoff:
                continue
        except OSError:
            continue
        if lease_held(db_path, f"/{entry.name}") is False:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed += 1
    return removed
