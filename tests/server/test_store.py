"""The store's state machine, races between connections and processes, expiry, crash recovery, fail-closed."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from argobox.policy.limits import Limits
from argobox.server.redact import Redactor
from argobox.server.store import CallFacts, Event, NewRequest, Refused, RequestRecord, RequestStatus, Store, StoreError

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def create(store: Store, request: NewRequest, events: list[Event]) -> RequestRecord:
    """Queue `request` through the store's one way in (budgets generous enough never to refuse it)."""
    admission = await store.admit(
        CallFacts(agent=request.agent), Limits(), tool=request.tool, events=events, request=request
    )
    assert admission.record is not None
    return admission.record


def pending(request_id: str = "req0000000000001", *, expires_at: float = 1_800_000_600.0) -> NewRequest:
    return NewRequest(
        id=request_id,
        agent="openclaw",
        tool="docker_restart_container",
        arguments={"container": "jellyfin"},
        digest="d" * 64,
        classification="mutate",
        effect="approve",
        rule="agents.openclaw.rules[1]",
        reason="needs approval",
        status=RequestStatus.PENDING,
        expires_at=expires_at,
    )


async def test_pending_request_runs_through_approve_execute_succeed(tmp_path: Path) -> None:
    clock = Clock()
    async with Store.open(tmp_path / "s.db", clock=clock) as store:
        await create(store, pending(), [Event(event="received", actor="agent:openclaw")])
        approved = await store.approve("req0000000000001", operator="alice", note="go")
        done = await store.finish("req0000000000001", ok=True, result={"state": "running"}, detail={})
        events = [e.event for e in await store.audit_trail(request_id="req0000000000001")]

    assert (approved.status, approved.decided_by, approved.note) == (RequestStatus.EXECUTING, "alice", "go")
    assert (done.status, done.result) == (RequestStatus.SUCCEEDED, {"state": "running"})
    assert events == ["received", "approved", "executing", "succeeded"]


async def test_decided_request_can_never_be_approved_again(tmp_path: Path) -> None:
    async with Store.open(tmp_path / "s.db", clock=Clock()) as store:
        await create(store, pending(), [])
        await store.deny("req0000000000001", operator="bob", reason="no")

        with pytest.raises(Refused) as info:
            await store.approve("req0000000000001", operator="alice", note="")
        with pytest.raises(Refused) as missing:
            await store.approve("nosuchrequest000", operator="alice", note="")

    assert info.value.code == "not_pending"
    assert "denied by bob" in str(info.value)
    assert missing.value.code == "not_found"


async def test_request_past_its_ttl_expires_and_cannot_be_approved(tmp_path: Path) -> None:
    clock = Clock()
    async with Store.open(tmp_path / "s.db", clock=clock) as store:
        await create(store, pending(expires_at=clock.now + 60), [])
        clock.now += 61

        with pytest.raises(Refused) as info:
            await store.approve("req0000000000001", operator="alice", note="")
        record = await store.get("req0000000000001")
        events = [e.event for e in await store.audit_trail(request_id="req0000000000001")]

    assert info.value.code == "expired"
    assert record is not None and record.status is RequestStatus.EXPIRED
    assert events == ["expired"]


async def test_two_connections_approving_at_once_yield_exactly_one_approval(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with Store.open(path, clock=Clock()) as first, Store.open(path, clock=Clock()) as second:
        await create(first, pending(), [])
        winners: list[str] = []
        refusals: list[str] = []

        async def approve(store: Store, who: str) -> None:
            try:
                await store.approve("req0000000000001", operator=who, note="")
                winners.append(who)
            except Refused as exc:
                refusals.append(exc.code)

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(approve, first, "alice")
                tg.start_soon(approve, second, "bob")
        approvals = [e for e in await first.audit_trail() if e.event == "approved"]

    assert len(winners) == 1
    assert refusals == ["not_pending"] * 9
    assert len(approvals) == 1


RACER = textwrap.dedent("""
    import sys, time, anyio
    from pathlib import Path
    from argobox.server.store import Store, Refused
    async def main():
        async with Store.open(Path(sys.argv[1]), clock=time.time) as store:
            while not Path(sys.argv[2]).exists():
                await anyio.sleep(0.005)
            try:
                await store.approve("req0000000000001", operator=sys.argv[3], note="")
                print("won")
            except Refused as exc:
                print(exc.code)
    anyio.run(main)
""")


async def test_processes_racing_to_approve_yield_exactly_one_approval(tmp_path: Path) -> None:
    path, go = tmp_path / "s.db", tmp_path / "go"
    async with Store.open(path, clock=Clock()) as store:
        await create(store, pending(expires_at=4_000_000_000.0), [])
    racers = [
        subprocess.Popen([sys.executable, "-c", RACER, str(path), str(go), who], stdout=subprocess.PIPE, text=True)
        for who in ("alice", "bob", "alice", "bob")
    ]
    await anyio.sleep(0.5)
    go.touch()
    outputs = sorted(p.communicate(timeout=30)[0].strip() for p in racers)

    assert outputs == ["not_pending", "not_pending", "not_pending", "won"]


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
    crashed = subprocess.run([sys.executable, "-c", CRASHER, str(path)], timeout=30, check=False)

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


async def test_audit_trail_refuses_update_and_delete(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with Store.open(path, clock=Clock()) as store:
        await store.audit([Event(event="hello", actor="test")])
    db = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE audit SET event = 'forged'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM audit")
    with pytest.raises(sqlite3.IntegrityError, match="bound to its agent"):
        db.execute(
            "INSERT INTO requests (id, agent, tool, arguments, digest, classification, effect, reason, status,"
            " created_at, updated_at) VALUES ('r', 'a', 't', '{}', 'd', 'mutate', 'approve', 'r', 'p', 0, 0)"
        )
        db.execute("UPDATE requests SET arguments = '{\"container\": \"postgres\"}' WHERE id = 'r'")
    db.close()


async def test_store_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with Store.open(path, clock=Clock()):
        pass

    assert os.stat(path).st_mode & 0o777 == 0o600


async def test_audit_details_are_redacted(tmp_path: Path) -> None:
    async with Store.open(tmp_path / "s.db", clock=Clock(), redactor=Redactor(["hunter2-secret-value"])) as store:
        await store.audit([Event(event="x", actor="t", detail={"password": "p4ss", "note": "hunter2-secret-value"})])
        (event,) = await store.audit_trail()

    assert event.detail == {"password": "<redacted>", "note": "<redacted>"}


async def test_locked_store_fails_closed_within_the_bounded_wait(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with Store.open(path, clock=Clock()):
        pass
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        async with Store.open(path, clock=Clock(), busy_timeout_ms=100) as store:
            pytest.fail(f"opened a locked store: {store}")
    except StoreError as exc:
        assert "not writable" in str(exc) or "locked" in str(exc)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


async def test_request_left_approved_by_an_older_store_of_a_dead_process_becomes_unknown(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with Store.open(path, clock=Clock()) as store:
        await create(store, pending(expires_at=4_000_000_000.0), [])
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    executor = f"{socket.gethostname()}:{dead.stdout.strip()}"
    with sqlite3.connect(path) as db:  # what approve() left behind before it also began the execution
        db.execute("UPDATE requests SET status = 'approved', executor = ?", (executor,))

    async with Store.open(path, clock=Clock()) as store:
        recovered = await store.recover_interrupted()
        record = await store.get("req0000000000001")

    assert recovered == ["req0000000000001"]
    assert record is not None and record.status is RequestStatus.UNKNOWN
