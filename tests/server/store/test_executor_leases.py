"""Executor leases: a request left executing is recovered exactly when the process that ran it has ended, told by
its lease (a lock the kernel drops with the process), not by a process id another process may hold now.

tests/e2e/test_crash.py kills a real `argobox approve` running as process 1 of its own PID namespace, as in the
container image, where a restarted ArgoBox is process 1 again.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from argobox.server.store import RequestStatus, Store
from argobox.server.store.executors import STALE_AFTER_S, Lease, executors_folder, lease_held, remove_stale
from tests.server.store.queue import Clock, create, pending

pytestmark = pytest.mark.anyio

REQUEST = "req0000000000001"
EXECUTOR = textwrap.dedent("""
    import os, signal, sys, time, anyio
    from pathlib import Path
    from argobox.server.store import Store
    async def main():
        async with Store.open(Path(sys.argv[1]), clock=time.time) as store:
            await store.approve("req0000000000001", operator="alice", note="")
            print("executing", flush=True)
            if sys.argv[2] == "die":
                os.kill(os.getpid(), signal.SIGKILL)  # killed mid-execution, before recording the outcome
            sys.stdin.readline()  # alive, executing, until told to go
    anyio.run(main)
""")


async def queued_store(path: Path) -> None:
    async with Store.open(path, clock=Clock()) as store:
        await create(store, pending(expires_at=4_000_000_000.0), [])


def executor_of(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return str(db.execute("SELECT executor FROM requests WHERE id = ?", (REQUEST,)).fetchone()[0])


async def recover(path: Path) -> tuple[list[str], RequestStatus | None]:
    async with Store.open(path, clock=Clock()) as store:
        recovered = await store.recover_interrupted()
        record = await store.get(REQUEST)
    return recovered, record.status if record is not None else None


async def test_a_dead_executor_whose_process_id_is_in_use_again_is_recovered(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    await queued_store(path)
    with anyio.fail_after(30):
        died = await anyio.run_process([sys.executable, "-c", EXECUTOR, str(path), "die"], check=False)
    executor = executor_of(path)
    host, _, lease = executor.partition("/")
    reused = f"{socket.gethostname()}:{os.getpid()}/{lease}"  # its process id is now a live process's: this one
    with sqlite3.connect(path) as db:
        db.execute("UPDATE requests SET executor = ? WHERE id = ?", (reused, REQUEST))

    recovered, status = await recover(path)

    assert died.returncode == -signal.SIGKILL
    assert host.startswith(f"{socket.gethostname()}:") and host != f"{socket.gethostname()}:{os.getpid()}" and lease
    assert recovered == [REQUEST] and status is RequestStatus.UNKNOWN


async def test_a_live_executor_in_another_process_is_left_alone_until_it_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    await queued_store(path)
    command = [sys.executable, "-c", EXECUTOR, str(path), "wait"]
    with anyio.fail_after(60):
        async with await anyio.open_process(command) as live:
            assert live.stdout is not None
            assert b"executing" in await live.stdout.receive()
            while_alive = await recover(path)
            live.kill()
            await live.wait()
        after_death = await recover(path)

    assert while_alive == ([], RequestStatus.EXECUTING)
    assert after_death == ([REQUEST], RequestStatus.UNKNOWN)


async def test_a_lease_is_released_when_the_store_closes_and_stale_ones_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with Store.open(path, clock=Clock()):
        during = sorted(p.name for p in executors_folder(path).iterdir())
    held = Lease.take(path)
    dead = Lease.take(path)
    young = Lease.take(path)
    for lease in (dead, young):  # their processes ended: the file is left, its lock is free
        assert lease._fd is not None  # pyright: ignore[reportPrivateUsage]
        os.close(lease._fd)  # pyright: ignore[reportPrivateUsage]
        lease._fd = None  # pyright: ignore[reportPrivateUsage]
    os.utime(dead.path, (0, 0))  # long ago; `young` was made just now
    try:
        removed = remove_stale(path, now=STALE_AFTER_S + 1)
        left = sorted(p.name for p in executors_folder(path).iterdir())
        states = [lease_held(path, lease.executor) for lease in (held, dead, young)]
    finally:
        held.release()

    assert len(during) == 1  # the store's own lease, while it was open; released when it closed
    assert removed == 1 and left == sorted([held.path.name, young.path.name])
    assert states == [True, False, False]  # dead and young are free; only the old one goes, on its age


def test_an_executor_recorded_before_leases_names_no_lease(tmp_path: Path) -> None:
    assert lease_held(tmp_path / "s.db", f"{socket.gethostname()}:{os.getpid()}") is None
    assert lease_held(tmp_path / "s.db", "host:1/../../etc/passwd") is True  # not a lease name: never a guess
