"""How the store runs its work: one hand-off per transaction, writes left behind kept in order, locks waited for
within a bound, and the files it makes private."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiosqlite
import anyio
import pytest

from argobox.policy.limits import Limits
from argobox.server.audit import checkpoint_path, read_checkpoint
from argobox.server.store import CallFacts, Event, NewRequest, RequestStatus, Store, StoreError, Tx
from argobox.server.store.connection import Connection

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0


def pending(request_id: str = "req0000000000001") -> NewRequest:
    return NewRequest(
        id=request_id,
        agent="openclaw",
        tool="docker_restart_container",
        arguments={"container": "jellyfin"},
        digest="e" * 64,
        classification="mutate",
        effect="approve",
        rule="agents.openclaw.rules[1]",
        reason="needs approval",
        status=RequestStatus.PENDING,
        expires_at=NOW + 600,
    )


def executing(request_id: str = "read000000000001") -> NewRequest:
    return NewRequest(
        id=request_id,
        agent="openclaw",
        tool="docker_inspect_container",
        arguments={"container": "jellyfin"},
        digest="d" * 64,
        classification="read",
        effect="allow",
        rule="agents.openclaw.rules[0]",
        reason="allowed",
        status=RequestStatus.EXECUTING,
        decided_by="policy",
    )


async def admit(store: Store, request: NewRequest) -> None:
    admission = await store.admit(
        CallFacts(agent=request.agent),
        Limits(),
        tool=request.tool,
        request=request,
        events=[Event(event="received", actor="agent:openclaw")],
    )
    assert admission.record is not None


def test_aiosqlite_still_has_the_queue_the_store_hands_work_to() -> None:
    # Store._hop relies on this private entry point (there is no public one); fail here, loudly, if it goes away.
    assert callable(getattr(aiosqlite.Connection, "_execute", None))
    assert isinstance(getattr(aiosqlite.Connection, "_conn", None), property)


async def test_a_transaction_runs_whole_on_the_connection_thread_in_one_hand_off(tmp_path: Path) -> None:
    async with Store.open(tmp_path / "s.db", clock=lambda: NOW) as store:
        seen: list[tuple[int, bool]] = []
        hops = 0
        hop = store._connection._hop  # pyright: ignore[reportPrivateUsage]

        async def counting(fn: Callable[[sqlite3.Connection], Any]) -> Any:
            nonlocal hops
            hops += 1
            return await hop(fn)

        store._connection._hop = counting  # pyright: ignore[reportPrivateUsage]

        def body(tx: Tx) -> None:
            seen.append((threading.get_ident(), tx.db.in_transaction))
            tx.append(
                [Event(event="one", actor="argobox"), Event(event="two", actor="argobox")],
                request_id=None,
                agent=None,
                tool=None,
            )
            tx.db.execute("SELECT 1")

        await store.transaction(body)
        events = [e.event for e in await store.audit_trail()]

    assert hops == 2  # the transaction, then the read of the trail
    assert seen == [(seen[0][0], True)] and seen[0][0] != threading.get_ident()
    assert events[-2:] == ["one", "two"]


async def test_a_body_that_raises_leaves_nothing_behind(tmp_path: Path) -> None:
    async with Store.open(tmp_path / "s.db", clock=lambda: NOW) as store:
        before = len(await store.audit_trail())

        def body(tx: Tx) -> None:
            tx.append([Event(event="half", actor="argobox")], request_id=None, agent=None, tool=None)
            raise sqlite3.OperationalError("disk I/O error")

        with pytest.raises(StoreError, match="not writable: disk I/O error"):
            await store.transaction(body)
        await store.audit([Event(event="after", actor="argobox")])  # the connection is usable again
        events = [e.event for e in await store.audit_trail()]

    assert len(events) == before + 1 and events[-1] == "after"


async def test_an_outcome_left_behind_lands_before_anything_the_store_does_next(tmp_path: Path) -> None:
    async with Store.open(tmp_path / "s.db", clock=lambda: NOW) as store:
        await admit(store, executing())
        record = await store.get("read000000000001")
        assert record is not None
        answered = store.finish_behind(record, ok=True, result={"state": "running"}, detail={"summary": {}})
        # No await between the answer and this read: it must still see the outcome.
        stored = await store.get("read000000000001")
        events = [e.event for e in await store.audit_trail(request_id="read000000000001")]

    assert answered.status is RequestStatus.SUCCEEDED and answered.result == {"state": "running"}
    assert stored is not None and (stored.status, stored.result) == (RequestStatus.SUCCEEDED, {"state": "running"})
    assert events == ["received", "succeeded"]


def slow_hand_offs(store: Store) -> None:
    """Make the store's writes left behind take a while to reach the connection thread."""
    hop = store._connection._hop  # pyright: ignore[reportPrivateUsage]

    async def slow(fn: Callable[[sqlite3.Connection], Any]) -> Any:
        await anyio.sleep(0.2)
        return await hop(fn)

    store._connection._hop = slow  # pyright: ignore[reportPrivateUsage]


@pytest.mark.parametrize("cancelled", [False, True])
async def test_closing_the_store_waits_for_the_writes_left_behind(tmp_path: Path, cancelled: bool) -> None:
    with anyio.CancelScope() as scope:
        async with Store.open(tmp_path / "s.db", clock=lambda: NOW) as store:
            await admit(store, executing())
            record = await store.get("read000000000001")
            assert record is not None
            slow_hand_offs(store)
            store.finish_behind(record, ok=False, error="container jellyfin not found", detail={"error": "missing"})
            if cancelled:  # e.g. the server is stopped right after answering
                scope.cancel()
                await anyio.lowlevel.checkpoint()
    async with Store.open(tmp_path / "s.db", clock=lambda: NOW) as store:
        stored = await store.get("read000000000001")

    assert stored is not None and (stored.status, stored.error) == (
        RequestStatus.FAILED,
        "container jellyfin not found",
    )


async def test_a_cancelled_caller_still_sees_its_transaction_through(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with Store.open(path, clock=lambda: NOW) as store:
        await admit(store, pending())
        approved = None
        with anyio.CancelScope() as scope:
            scope.cancel()
            approved = await store.approve("req0000000000001", operator="alice", note="")
        stored = await store.get("req0000000000001")
        head = (await store.audit_trail())[-1]
    checkpoint = read_checkpoint(checkpoint_path(path))

    # The change was committed and returned to its caller (which gets the cancellation at its next await), and
    # the audit checkpoint covers it: no commit goes without its checkpoint.
    assert approved is not None and approved.status is RequestStatus.EXECUTING
    assert stored is not None and stored.status is RequestStatus.EXECUTING
    assert checkpoint is not None and (checkpoint.seq, checkpoint.hash) == (head.seq, head.hash)


async def test_a_write_left_behind_that_fails_is_logged_and_later_work_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(tx: Tx) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    async with Store.open(tmp_path / "s.db", clock=lambda: NOW) as store:
        with caplog.at_level(logging.ERROR, logger="argobox"):
            store.transaction_behind(lambda: broken, what="the outcome of request x")
            await store.audit([Event(event="after", actor="argobox")])

    assert "could not record the outcome of request x" in caplog.text and "disk is full" in caplog.text


async def test_a_huge_result_is_kept_only_when_its_caller_already_has_it(tmp_path: Path) -> None:
    lines = [f"line {i} " + "x" * 200 for i in range(1000)]
    async with Store.open(tmp_path / "s.db", clock=lambda: NOW) as store:
        await admit(store, executing("read000000000001"))
        await admit(store, executing("read000000000002"))
        record = await store.get("read000000000001")
        assert record is not None
        answered = store.finish_behind(record, ok=True, result={"lines": lines}, detail={})
        inline = await store.get("read000000000001")
        # An approved request's agent fetches its result later: it is kept whole.
        approved = await store.finish("read000000000002", ok=True, result={"lines": lines}, detail={})

    assert answered.result == {"lines": lines}
    assert inline is not None and inline.result is not None and set(inline.result) == {"omitted"}
    assert "returned to the caller" in inline.result["omitted"]
    assert approved.result == {"lines": lines}


async def test_a_new_store_opens_while_another_process_holds_its_write_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Switching a new database to WAL fails at once, without SQLite's busy wait, while another connection holds the
    # write lock (as when two stdio servers start together on a new store): opening waits and tries again.
    path = tmp_path / "s.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE elsewhere (x)")
    holder.execute("BEGIN IMMEDIATE")
    refused: list[str] = []
    call = Connection.call

    async def release_once_refused(self: Connection, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        try:
            return await call(self, fn)
        except sqlite3.OperationalError as exc:
            if not refused:  # the store found the lock taken: the other process now lets go
                refused.append(str(exc))
                holder.execute("COMMIT")
            raise

    monkeypatch.setattr(Connection, "call", release_once_refused)
    try:
        with anyio.fail_after(30):
            async with Store.open(path, clock=lambda: NOW) as store:
                await store.audit([Event(event="opened", actor="argobox")])
                events = [e.event for e in await store.audit_trail()]
    finally:
        holder.close()

    assert refused == ["database is locked"]
    assert events == ["opened"]
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_a_store_locked_past_the_bounded_wait_is_refused_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE elsewhere (x)")
    holder.execute("BEGIN IMMEDIATE")
    try:
        with anyio.fail_after(10), pytest.raises(StoreError, match="cannot prepare the store: database is locked"):
            async with Store.open(path, clock=lambda: NOW, busy_timeout_ms=200):
                pass
    finally:
        holder.close()


async def test_store_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with Store.open(path, clock=lambda: NOW):
        pass

    assert os.stat(path).st_mode & 0o777 == 0o600


async def test_locked_store_fails_closed_within_the_bounded_wait(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with Store.open(path, clock=lambda: NOW):
        pass
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        async with Store.open(path, clock=lambda: NOW, busy_timeout_ms=100) as store:
            pytest.fail(f"opened a locked store: {store}")
    except StoreError as exc:
        assert "not writable" in str(exc) or "locked" in str(exc)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


async def test_a_store_in_a_folder_every_user_may_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)

    with pytest.raises(StoreError, match="can be written by every user"):
        async with Store.open(shared / "s.db", clock=lambda: NOW):
            pass

    assert list(shared.iterdir()) == []


async def test_a_link_to_nothing_where_the_database_goes_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "s.db"
    target.parent.mkdir()
    (tmp_path / "s.db").symlink_to(target)

    with pytest.raises(StoreError, match="symbolic link to nothing"):
        async with Store.open(tmp_path / "s.db", clock=lambda: NOW):
            pass

    assert not target.exists()


async def test_a_new_store_gets_a_private_folder(tmp_path: Path) -> None:
    async with Store.open(tmp_path / "new" / "s.db", clock=lambda: NOW):
        pass

    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o700
