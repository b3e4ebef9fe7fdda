"""The audit trail as stored: append-only, pruned only through a recorded prune, one valid chain across
processes."""

from __future__ import annotations

import sqlite3
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from argobox.server.audit import checkpoint_path, read_checkpoint
from argobox.server.mediation.audit_trail import verify_store
from argobox.server.redact import Redactor
from argobox.server.store import Event, Store
from tests.server.audit.trails import Clock, make_trail, rows

pytestmark = pytest.mark.anyio


async def test_prune_removes_old_events_through_a_recorded_prune_and_verify_still_passes(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    clock = Clock()
    async with Store.open(path, clock=clock) as store:
        for i in range(6):
            await store.audit([Event(event="tested", actor="test", detail={"i": i})])
        cutoff = clock.now + 0.01  # events 1..6 are before it
        for i in range(3):
            await store.audit([Event(event="tested", actor="test", detail={"i": i})])
        result = await store.prune(before=cutoff, operator="alice")
        again = await store.prune(before=cutoff, operator="alice")
        trail = await store.audit_trail()

    assert (result.through_seq, result.deleted, result.record_seq) == (6, 6, 10)
    assert (again.through_seq, again.deleted) == (6, 0)
    assert [e.seq for e in trail] == [7, 8, 9, 10, 11]
    prune_event = trail[3]
    assert (prune_event.event, prune_event.actor) == ("pruned", "operator:alice")
    assert prune_event.detail["through_seq"] == 6 and prune_event.detail["events"] == 6
    assert trail[0].prev_hash == prune_event.detail["through_hash"]
    report = verify_store(path, key=None)
    assert report.ok, report.text()
    assert report.events == 5


async def test_events_cannot_be_deleted_without_a_recorded_prune(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    await make_trail(path, 4)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="only by a recorded prune"):
            db.execute("DELETE FROM audit WHERE seq <= 2")
        with pytest.raises(sqlite3.IntegrityError, match="first be recorded"):
            db.execute("INSERT INTO audit_prunes VALUES (4, 2, 'x')")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("UPDATE audit SET event = 'x' WHERE seq = 1")
    finally:
        db.close()


WRITER = textwrap.dedent("""
    import sys, time, anyio
    from pathlib import Path
    from argobox.server.store import Event, Store
    async def main():
        async with Store.open(Path(sys.argv[1]), clock=time.time) as store:
            for i in range(int(sys.argv[2])):
                await store.audit([Event(event="tick", actor=sys.argv[3], detail={"i": i}),
                                   Event(event="tock", actor=sys.argv[3], detail={"i": i})])
    anyio.run(main)
""")


async def test_concurrent_writers_in_several_processes_keep_one_valid_chain(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with Store.open(path, clock=Clock()):
        pass

    async def write(n: int) -> None:
        await anyio.run_process([sys.executable, "-c", WRITER, str(path), "40", f"w{n}"], stdout=None, stderr=None)

    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            for n in range(4):
                tg.start_soon(write, n)

    stored = rows(path)
    report = verify_store(path, key=None)
    checkpoint = read_checkpoint(checkpoint_path(path))

    assert len(stored) == 4 * 40 * 2 and [r["seq"] for r in stored] == list(range(1, 321))
    assert report.ok, report.text()
    assert checkpoint is not None and checkpoint.seq == 320
    assert "not checkpointed" not in report.text()


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


async def test_audit_details_are_redacted(tmp_path: Path) -> None:
    async with Store.open(tmp_path / "s.db", clock=Clock(), redactor=Redactor(["hunter2-secret-value"])) as store:
        await store.audit([Event(event="x", actor="t", detail={"password": "p4ss", "note": "hunter2-secret-value"})])
        (event,) = await store.audit_trail()

    assert event.detail == {"password": "<redacted>", "note": "<redacted>"}
