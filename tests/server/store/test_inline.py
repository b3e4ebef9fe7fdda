"""An agent call's small transactions run on the event loop when the store is idle, and on the connection thread,
within the bounded wait, when another process holds the write lock; writes left behind start once the answer is
sent, or join the next such transaction (one commit), each undone alone if it fails."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from argobox.server.mediation.audit_trail import verify_store
from argobox.server.store import Event, RequestStatus, Store, StoreError, Tx
from argobox.server.store import connection as connection_module
from tests.server.store.test_connection import NOW, admit, executing

pytestmark = pytest.mark.anyio


def recording(seen: list[int]) -> Callable[[Tx], str]:
    def body(tx: Tx) -> str:
        seen.append(threading.get_ident())
        tx.append([Event(event="inline", actor="argobox")], request_id=None, agent=None, tool=None)
        return "done"

    return body


async def test_a_small_transaction_runs_on_the_loop_when_the_store_is_idle(tmp_path: Path) -> None:
    seen: list[int] = []
    async with Store.open(tmp_path / "s.db", clock=lambda: NOW) as store:
        result = await store._connection.transaction(recording(seen), inline=True)  # pyright: ignore[reportPrivateUsage]
        events = [e.event for e in await store.audit_trail()]

    assert result == "done" and seen == [threading.get_ident()]
    assert events[-1] == "inline"


async def test_while_another_process_writes_it_waits_on_the_connection_thread(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    seen: list[int] = []
    async with Store.open(path, clock=lambda: NOW) as store:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:

                    async def write() -> None:
                        await store._connection.transaction(recording(seen), inline=True)  # pyright: ignore[reportPrivateUsage]

                    tg.start_soon(write)
                    await anyio.wait_all_tasks_blocked()  # waiting for the lock, on the connection thread
                    assert seen == []
                    holder.execute("COMMIT")
        finally:
            holder.close()
        events = [e.event for e in await store.audit_trail()]

    assert len(seen) == 1 and seen[0] != threading.get_ident()
    assert events[-1] == "inline"


async def test_past_the_bounded_wait_it_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    seen: list[int] = []
    async with Store.open(path, clock=lambda: NOW, busy_timeout_ms=200) as store:
        before = len(await store.audit_trail())
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with anyio.fail_after(10), pytest.raises(StoreError, match="not writable: database is locked"):
                await store._connection.transaction(recording(seen), inline=True)  # pyright: ignore[reportPrivateUsage]
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        after = len(await store.audit_trail())

    assert seen == [] and after == before


async def test_an_outcome_left_behind_starts_when_the_answer_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection_module, "BEHIND_DELAY_S", 3600.0)  # only `answered` starts it
    path = tmp_path / "s.db"
    async with Store.open(path, clock=lambda: NOW) as store:
        await admit(store, executing())
        record = await store.get("read000000000001")
        assert record is not None
        store.finish_behind(record, ok=True, result={"state": "running"}, detail={"summary": {}})
        assert not store._connection._behind  # pyright: ignore[reportPrivateUsage]
        store.answered()
        await anyio.lowlevel.checkpoint()  # the answer's turn ends: the write starts next
        started = set(store._connection._behind)  # pyright: ignore[reportPrivateUsage]
        assert started  # by the answer, not by a timer
        with anyio.fail_after(10):
            await asyncio.wait(started)
        # Read by another connection, so that this store's own catching up plays no part.
        row = sqlite3.connect(path).execute("SELECT status FROM requests WHERE id = 'read000000000001'").fetchone()

    assert row == (RequestStatus.SUCCEEDED.value,)


def counting_commits(store: Store) -> list[int]:
    """How many commits appended audit events from now on (the store's checkpoint is told of each)."""
    commits: list[int] = []
    told = store._connection._committed  # pyright: ignore[reportPrivateUsage]
    assert told is not None

    def counted() -> None:
        commits.append(1)
        told()

    store._connection._committed = counted  # pyright: ignore[reportPrivateUsage]
    return commits


async def test_an_outcome_still_waiting_joins_the_next_admission_in_one_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection_module, "BEHIND_DELAY_S", 3600.0)
    async with Store.open(tmp_path / "s.db", clock=lambda: NOW) as store:
        await admit(store, executing("read000000000001"))
        record = await store.get("read000000000001")
        assert record is not None
        commits = counting_commits(store)
        store.finish_behind(record, ok=True, result={"state": "running"}, detail={"summary": {}})
        await admit(store, executing("read000000000002"))
        trail = [(e.request_id, e.event) for e in await store.audit_trail()]
        first = await store.get("read000000000001")

    assert commits == [1]
    assert first is not None and first.status is RequestStatus.SUCCEEDED
    assert trail[-2:] == [("read000000000001", "succeeded"), ("read000000000002", "received")]


async def test_a_write_left_behind_that_fails_is_undone_alone_and_the_admission_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(connection_module, "BEHIND_DELAY_S", 3600.0)

    def half_then_broken(tx: Tx) -> None:
        tx.append([Event(event="half", actor="argobox")], request_id=None, agent=None, tool=None)
        raise sqlite3.OperationalError("database or disk is full")

    async with Store.open(tmp_path / "s.db", clock=lambda: NOW) as store:
        with caplog.at_level(logging.ERROR, logger="argobox"):
            store.transaction_behind(lambda: half_then_broken, what="the outcome of request x")
            await admit(store, executing("read000000000002"))
        events = [e.event for e in await store.audit_trail()]
        admitted = await store.get("read000000000002")

    report = verify_store(tmp_path / "s.db", key=None)  # the admission chained after the undone part, not on it

    assert "could not record the outcome of request x" in caplog.text and "disk is full" in caplog.text
    assert "half" not in events and events[-1] == "received"
    assert admitted is not None and admitted.status is RequestStatus.EXECUTING
    assert report.ok, report.text()


async def test_an_admission_that_fails_is_undone_alone_and_the_outcome_before_it_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection_module, "BEHIND_DELAY_S", 3600.0)

    def refused(tx: Tx) -> None:
        tx.append([Event(event="half", actor="argobox")], request_id=None, agent=None, tool=None)
        raise sqlite3.IntegrityError("UNIQUE constraint failed: requests.id")

    async with Store.open(tmp_path / "s.db", clock=lambda: NOW) as store:
        await admit(store, executing("read000000000001"))
        record = await store.get("read000000000001")
        assert record is not None
        store.finish_behind(record, ok=True, result={"state": "running"}, detail={"summary": {}})
        with pytest.raises(StoreError, match="not writable: UNIQUE constraint failed"):
            await store._connection.transaction(refused, inline=True)  # pyright: ignore[reportPrivateUsage]
        events = [e.event for e in await store.audit_trail()]
        first = await store.get("read000000000001")

    assert "half" not in events and events[-1] == "succeeded"
    assert verify_store(tmp_path / "s.db", key=None).ok
    assert first is not None and first.status is RequestStatus.SUCCEEDED


async def test_the_connection_waits_for_a_lock_only_inside_work_on_its_thread(tmp_path: Path) -> None:
    """Between two pieces of work on the connection's thread its lock wait is zero, so that a transaction run on the
    event loop finds the write lock busy at once and leaves it to the thread (a wait there would stop the loop);
    work on the thread waits within the bounded wait."""
    async with Store.open(tmp_path / "s.db", clock=lambda: NOW, busy_timeout_ms=1234) as store:
        connection = store._connection  # pyright: ignore[reportPrivateUsage]
        inside = await connection.call(lambda db: int(db.execute("PRAGMA busy_timeout").fetchone()[0]))
        await admit(store, executing("read000000000003"))  # an inline transaction: sets no wait of its own
        between = int(connection.db._conn.execute("PRAGMA busy_timeout").fetchone()[0])  # pyright: ignore[reportPrivateUsage]

    assert (inside, between) == (1234, 0)
