"""The request queue's transitions: approve, execute, finish, deny, expire; one winner among racing connections and
processes."""

from __future__ import annotations

import sys
import textwrap
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from argobox.server.store import Event, Refused, RequestRecord, RequestStatus, Store
from tests.server.store.queue import Clock, create, pending

pytestmark = pytest.mark.anyio


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
            print("ready", flush=True)
            await anyio.to_thread.run_sync(sys.stdin.readline)  # the start: one line, sent to every racer at once
            try:
                await store.approve("req0000000000001", operator=sys.argv[2], note="")
                print("won", flush=True)
            except Refused as exc:
                print(exc.code, flush=True)
    anyio.run(main)
""")


async def test_processes_racing_to_approve_yield_exactly_one_approval(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with Store.open(path, clock=Clock()) as store:
        await create(store, pending(expires_at=4_000_000_000.0), [])
    async with AsyncExitStack() as stack:
        racers = [
            await stack.enter_async_context(await anyio.open_process([sys.executable, "-c", RACER, str(path), who]))
            for who in ("alice", "bob", "alice", "bob")
        ]
        lines = [BufferedByteReceiveStream(racer.stdout) for racer in racers if racer.stdout is not None]
        with anyio.fail_after(60):
            for line in lines:  # every racer has its store open and waits for the start
                assert await line.receive_until(b"\n", 64) == b"ready"
            for racer in racers:
                assert racer.stdin is not None
                await racer.stdin.send(b"go\n")
            outputs = sorted([(await line.receive_until(b"\n", 64)).decode() for line in lines])
            codes = [await racer.wait() for racer in racers]

    assert outputs == ["not_pending", "not_pending", "not_pending", "won"]
    assert codes == [0, 0, 0, 0]


async def test_requests_are_listed_by_tool_and_by_when_they_were_made(tmp_path: Path) -> None:
    clock = Clock()
    async with Store.open(tmp_path / "s.db", clock=clock) as store:
        await create(store, pending("req0000000000001"), [])
        clock.now += 100
        stop = replace(pending("req0000000000002"), tool="docker_stop_container", digest="e" * 64)
        await create(store, stop, [])
        start = clock.now

        def ids(records: list[RequestRecord]) -> list[str]:
            return [r.id for r in records]

        restarts = ids(await store.list_requests(tool="docker_restart_container"))
        since = ids(await store.list_requests(since=start))
        until = ids(await store.list_requests(until=start))  # exclusive
        both = ids(await store.list_requests(since=start - 100, until=start + 1))

    assert restarts == ["req0000000000001"]
    assert since == ["req0000000000002"]
    assert until == ["req0000000000001"]
    assert both == ["req0000000000002", "req0000000000001"]  # newest first
