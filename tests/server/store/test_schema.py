"""Named migrations: each in one transaction with its record; stores counted by `user_version` upgrade; a store
upgraded by a newer ArgoBox is refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest

from argobox.policy.limits import Limits
from argobox.server.mediation.audit_trail import verify_store
from argobox.server.store import Event, Store, StoreError, Tx, budgets, schema
from argobox.server.store.budgets import CallFacts
from argobox.server.store.schema import MIGRATIONS, Migration
from tests.server.audit.trails import Clock

pytestmark = pytest.mark.anyio


SCHEMA_1_AUDIT = """
CREATE TABLE requests (id TEXT PRIMARY KEY, agent TEXT NOT NULL, tool TEXT NOT NULL, arguments TEXT NOT NULL,
  digest TEXT NOT NULL, classification TEXT NOT NULL, effect TEXT NOT NULL, rule TEXT, reason TEXT NOT NULL,
  status TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL, decided_by TEXT, decided_at REAL, note TEXT,
  executor TEXT, result TEXT, error TEXT, updated_at REAL NOT NULL);
CREATE TABLE audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, request_id TEXT, event TEXT NOT NULL,
  actor TEXT NOT NULL, agent TEXT, tool TEXT, detail TEXT NOT NULL);
CREATE INDEX audit_by_request ON audit (request_id, seq);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'append-only'); END;
INSERT INTO audit (at, request_id, event, actor, agent, tool, detail) VALUES
  (1800000000.5, 'r1', 'received', 'agent:openclaw', 'openclaw', 'docker_list_containers', '{"arguments": {}}'),
  (1800000001, 'r1', 'decision', 'policy', 'openclaw', 'docker_list_containers', '{"effect": "allow"}');
PRAGMA user_version = 1;
"""


async def test_schema_1_store_is_upgraded_with_its_events_sealed(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_1_AUDIT)
    db.close()

    async with Store.open(path, clock=Clock()) as store:
        trail = await store.audit_trail()

    assert [(e.seq, e.event) for e in trail] == [(1, "received"), (2, "decision"), (3, "audit_chain_started")]
    assert trail[0].detail == {"arguments": {}} and trail[2].detail["sealed_events"] == 2
    report = verify_store(path, key=None)
    assert report.ok and report.events == 3, report.text()
    indexes = dict(
        sqlite3.connect(path)
        .execute("SELECT name, sql FROM sqlite_master WHERE tbl_name = 'calls' AND type = 'index'")
        .fetchall()
    )
    assert "WHERE mutation = 1" in indexes["calls_mutations"]  # and the later migrations ran after it
    assert "WHERE digest IS NOT NULL" in indexes["calls_by_digest"]


def recorded(path: Path) -> list[tuple[str, float | None]]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT name, applied_at FROM schema_migrations ORDER BY rowid").fetchall()
    finally:
        db.close()


def user_version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


async def test_a_new_store_records_each_migration_by_name(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with Store.open(path, clock=Clock()):
        pass

    names = [name for name, _ in recorded(path)]
    assert names == [m.name for m in MIGRATIONS]
    assert all(applied_at is not None for _, applied_at in recorded(path))
    assert user_version(path) == len(MIGRATIONS)  # an older ArgoBox still sees how far the store went


async def test_a_store_counted_by_user_version_is_adopted_without_running_anything_again(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with Store.open(path, clock=Clock()) as store:
        await store.audit([Event(event="before", actor="test")])
    with sqlite3.connect(path) as db:  # as an ArgoBox from before migrations had names left it
        db.execute("DROP TABLE schema_migrations")

    async with Store.open(path, clock=Clock()) as store:
        trail = await store.audit_trail()

    assert [e.event for e in trail] == ["before"]
    assert recorded(path) == [(m.name, None) for m in MIGRATIONS]


async def test_a_migration_that_fails_leaves_the_ones_before_it_and_nothing_of_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.db"

    def half_done(tx: Tx) -> None:
        tx.db.execute("CREATE TABLE half (x)")
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(schema, "MIGRATIONS", (*MIGRATIONS, Migration("half_done", half_done)))
    with pytest.raises(StoreError, match="disk I/O error"):
        async with Store.open(path, clock=Clock()):
            pass
    tables = {row[0] for row in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    assert [name for name, _ in recorded(path)] == [m.name for m in MIGRATIONS]
    assert "half" not in tables and user_version(path) == len(MIGRATIONS)


async def test_a_store_upgraded_by_a_newer_argobox_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with Store.open(path, clock=Clock()):
        pass
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO schema_migrations (name, applied_at) VALUES ('from_the_future', 0)")
    numbered = tmp_path / "numbered.db"
    with sqlite3.connect(numbered) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")

    with pytest.raises(StoreError, match=r"upgraded by a newer ArgoBox .*from_the_future.*upgrade ArgoBox"):
        async with Store.open(path, clock=Clock()):
            pass
    with pytest.raises(StoreError, match="written by a newer ArgoBox"):
        async with Store.open(numbered, clock=Clock()):
            pass


async def test_two_openers_of_a_new_store_apply_each_migration_once(tmp_path: Path) -> None:
    path = tmp_path / "s.db"

    async def open_once() -> None:
        async with Store.open(path, clock=Clock()):
            pass

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(open_once)

    assert [name for name, _ in recorded(path)] == [m.name for m in MIGRATIONS]


async def test_calls_counted_before_the_numbering_are_numbered_in_order_by_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store from before `calls_in_order` keeps its budgets: each agent's calls are numbered by time (then by
    row), and the window is counted from the numbers as it was counted row by row."""
    path = tmp_path / "s.db"
    monkeypatch.setattr(schema, "MIGRATIONS", MIGRATIONS[:-1])
    assert MIGRATIONS[-1].name == "calls_in_order"
    async with Store.open(path, clock=Clock()):
        pass
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO calls (agent, at, mutation) VALUES (?, ?, 0)",
            [("a", 30.0), ("a", 10.0), ("b", 5.0), ("a", 20.0), ("a", 20.0)],
        )
    monkeypatch.setattr(schema, "MIGRATIONS", MIGRATIONS)
    async with Store.open(path, clock=Clock()):
        pass
    with sqlite3.connect(path) as db:
        numbered = db.execute("SELECT agent, at, n FROM calls ORDER BY agent, n").fetchall()
        window = budgets.usage(db, CallFacts(agent="a"), Limits(), 75.0, full=False).usage.requests  # after 15.0

    assert numbered == [("a", 10.0, 1), ("a", 20.0, 2), ("a", 20.0, 3), ("a", 30.0, 4), ("b", 5.0, 1)]
    assert (window.count, window.oldest_at) == (3, 20.0)


async def test_a_call_counted_by_an_argobox_from_before_the_numbering_is_numbered_too(tmp_path: Path) -> None:
    """A daemon started before the upgrade inserts calls without a number: the store numbers them (and keeps their
    times in order), so the window's count never falls short while old and new processes share the store."""
    path = tmp_path / "s.db"
    async with Store.open(path, clock=Clock()):
        pass
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO calls (agent, at, n, mutation) VALUES ('a', 50.0, 1, 0)")
        db.execute("INSERT INTO calls (agent, at, mutation) VALUES ('a', 40.0, 0)")  # as the old code inserts
        db.execute("INSERT INTO calls (agent, at, mutation) VALUES ('b', 45.0, 0)")
        numbered = db.execute("SELECT agent, at, n FROM calls ORDER BY agent, n").fetchall()
        window = budgets.usage(db, CallFacts(agent="a"), Limits(), 100.0, full=False).usage.requests  # after 40.0

    assert numbered == [("a", 50.0, 1), ("a", 50.0, 2), ("b", 45.0, 1)]
    assert window.count == 2
