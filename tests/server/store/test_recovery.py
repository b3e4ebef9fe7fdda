"""Crash recovery: a request whose executing process died becomes `unknown` and never runs again; a live one is
left alone."""

from __future__ import annotations

import socket
import sqlite3
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from argobox.server.store import Refused, RequestStatus, Store
from tests.server.store.queue import Clock, create, pending

pytestmark = pytest.mark.anyio


CRASHER = textwrap.dedent("""
    import os, sys, time, anyio
    from pathlib import Path
    from argobox.server.store import Store
    async def main():
        async with Store.open(Path(sys.argv[1]), clock=time.time) as store:
            await store.approve("req0000000000001", operator="alice", note="")
            os._exit(9)  # the executor dies mid-way, before recording the outcome
    anyio.run(main)
""")


async def test_request_left_executing_by_a_crashed_process_becomes_unknown_and_never_reruns(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with Store.open(path, clock=Clock()) as store:
        await create(store, pending(expires_at=4_000_000_000.0), [])
    with anyio.fail_after(30):
        crashed = await anyio.run_process([sys.executable, "-c", CRASHER, str(path)], check=False)

    async with Store.open(path, clock=Clock()) as store:
        recovered = await store.recover_interrupted()
        record = await store.get("req0000000000001")
        with pytest.raises(Refused):
            await store.approve("req0000000000001", operator="alice", note="")
        events = [e.event for e in await store.audit_trail(request_id="req0000000000001")]

    assert crashed.returncode == 9
    assert recovered == ["req0000000000001"]
    assert record is not None and record.status is RequestStatus.UNKNOWN
    assert events == ["approved", "executing", "interrupted"]


async def test_live_executor_is_not_marked_unknown(tmp_path: Path) -> None:
    async with Store.open(tmp_path / "s.db", clock=Clock()) as store:
        await create(store, pending(), [])
        await store.approve("req0000000000001", operator="alice", note="")

        assert await store.recover_interrupted() == []


async def test_request_left_approved_by_an_older_store_of_a_dead_process_becomes_unknown(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with Store.open(path, clock=Clock()) as store:
        await create(store, pending(expires_at=4_000_000_000.0), [])
    with anyio.fail_after(30):
        dead = await anyio.run_process([sys.executable, "-c", "import os; print(os.getpid())"])
    executor = f"{socket.gethostname()}:{dead.stdout.decode().strip()}"
    with sqlite3.connect(path) as db:  # what approve() left behind before it also began the execution
        db.execute("UPDATE requests SET status = 'approved', executor = ?", (executor,))

    async with Store.open(path, clock=Clock()) as store:
        recovered = await store.recover_interrupted()
        record = await store.get("req0000000000001")

    assert recovered == ["req0000000000001"]
    assert record is not None and record.status is RequestStatus.UNKNOWN
