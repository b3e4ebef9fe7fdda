"""The hash chain of the audit trail: an attacker with the database file (triggers dropped, raw SQL) edits, deletes,
reorders or truncates events, and `verify` names the first broken seq and what is wrong."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import pytest

from argobox.server.audit import (
    GENESIS,
    canonical_detail,
    canonical_event,
    checkpoint_path,
    event_hash,
    read_checkpoint,
)
from argobox.server.mediation.audit_trail import verify_store
from argobox.server.store import Event, Store
from tests.server.audit.trails import Clock, attacker, broken, make_trail, rows

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "detail",
    [
        {},
        {"b": 1, "a": [1, 2.5, None, True]},
        {"text": 'h\u00e9llo \u2603 \U0001f600 "q" \\ \n'},
        {"nested": {"z": {"y": [{"x": -0.0}]}}, "big": 10**20},
    ],
)
@pytest.mark.parametrize("at", [1_800_000_000.0, 1_800_000_000.123456, 0.1 + 0.2])
def test_canonical_event_is_sorted_compact_json(detail: dict[str, object], at: float) -> None:
    fields = {
        "seq": 7,
        "at": at,
        "request_id": "abc",
        "event": "received",
        "actor": "agent:\u00e9",
        "agent": None,
        "tool": "docker_list_containers",
        "detail": detail,
        "prev_hash": GENESIS,
    }
    reference = json.dumps(fields, sort_keys=True, separators=(",", ":"))

    fast = canonical_event(
        7, at, "abc", "received", "agent:\u00e9", None, "docker_list_containers", canonical_detail(detail), GENESIS
    )

    assert fast == reference
    assert json.loads(fast)["at"] == at  # the float round-trips exactly


async def test_events_are_chained_and_checkpointed(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    await make_trail(path, 5)
    stored = rows(path)
    checkpoint = read_checkpoint(checkpoint_path(path))

    assert [r["seq"] for r in stored] == [1, 2, 3, 4, 5]
    assert stored[0]["prev_hash"] == GENESIS
    assert all(r["prev_hash"] == p["hash"] for p, r in pairwise(stored))
    assert all(
        r["hash"]
        == event_hash(
            r["seq"],
            r["at"],
            r["request_id"],
            r["event"],
            r["actor"],
            r["agent"],
            r["tool"],
            r["detail"],
            r["prev_hash"],
        )
        for r in stored
    )
    assert checkpoint is not None and (checkpoint.seq, checkpoint.hash) == (5, stored[-1]["hash"])
    assert checkpoint_path(path).stat().st_mode & 0o777 == 0o600
    assert verify_store(path, key=None).text().splitlines()[0] == f"ok: 5 events, head {stored[-1]['hash']}"


async def test_empty_trail_verifies(tmp_path: Path) -> None:
    async with Store.open(tmp_path / "s.db", clock=Clock()):
        pass

    assert verify_store(tmp_path / "s.db", key=None).text() == f"ok: 0 events, head {GENESIS}"


async def test_edited_event_is_detected_at_its_seq(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    await make_trail(path)
    attacker(path).execute('UPDATE audit SET detail = \'{"i":4,"note":"nothing happened"}\' WHERE seq = 5')

    report = verify_store(path, key=None)

    assert broken(report) == (5, "edited")
    assert "does not match its hash" in report.text()


async def test_edited_event_with_its_own_hash_recomputed_is_detected_at_its_seq(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    await make_trail(path)
    row = rows(path)[4]
    forged = '{"i":4,"note":"nothing happened"}'
    digest = event_hash(
        5, row["at"], row["request_id"], row["event"], row["actor"], row["agent"], row["tool"], forged, row["prev_hash"]
    )
    attacker(path).execute("UPDATE audit SET detail = ?, hash = ? WHERE seq = 5", (forged, digest))

    report = verify_store(path, key=None)

    assert broken(report) == (5, "edited")
    assert "replaced" in report.text()


async def test_deleted_events_are_detected(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    await make_trail(path)
    attacker(path).execute("DELETE FROM audit WHERE seq IN (4, 5)")

    report = verify_store(path, key=None)

    assert broken(report) == (4, "deleted")
    assert "events 4..5 are missing" in report.text()


async def test_deleted_first_events_are_detected(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    await make_trail(path)
    attacker(path).execute("DELETE FROM audit WHERE seq <= 2")

    assert broken(verify_store(path, key=None)) == (1, "deleted")


async def test_reordered_events_are_detected(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    await make_trail(path)
    db = attacker(path)
    db.execute("UPDATE audit SET seq = -3 WHERE seq = 3")
    db.execute("UPDATE audit SET seq = 3 WHERE seq = 6")
    db.execute("UPDATE audit SET seq = 6 WHERE seq = -3")

    report = verify_store(path, key=None)

    assert broken(report) == (3, "reordered")
    assert "events were moved" in report.text()


async def test_truncated_tail_is_detected_by_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    await make_trail(path)
    attacker(path).execute("DELETE FROM audit WHERE seq >= 8")

    report = verify_store(path, key=None)

    assert broken(report) == (8, "truncated")
    assert "events 8..10 were removed from the end" in report.text()


async def test_trail_rewritten_up_to_the_checkpoint_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    await make_trail(path)
    db = attacker(path)
    prev = rows(path)[3]["hash"]
    for row in rows(path)[4:]:  # a consistent new chain from seq 5 on
        detail = row["detail"].replace("event", "EVENT")
        digest = event_hash(
            row["seq"],
            row["at"],
            row["request_id"],
            row["event"],
            row["actor"],
            row["agent"],
            row["tool"],
            detail,
            prev,
        )
        db.execute(
            "UPDATE audit SET detail = ?, prev_hash = ?, hash = ? WHERE seq = ?", (detail, prev, digest, row["seq"])
        )
        prev = digest

    assert broken(verify_store(path, key=None)) == (10, "rewritten")


async def test_missing_or_damaged_checkpoint_fails_verification(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    await make_trail(path, 3)
    checkpoint_path(path).unlink()
    missing = verify_store(path, key=None)
    checkpoint_path(path).write_text("{not json")
    damaged = verify_store(path, key=None)

    assert broken(missing) == (None, "checkpoint") and "there is no checkpoint" in missing.text()
    assert broken(damaged) == (None, "checkpoint") and "damaged" in damaged.text()


async def test_deletion_beyond_a_prune_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    clock = Clock()
    async with Store.open(path, clock=clock) as store:
        for i in range(4):
            await store.audit([Event(event="tested", actor="test", detail={"i": i})])
        await store.prune(before=clock.now + 0.01, operator="alice")  # removes 1..4, records seq 5
        for i in range(3):
            await store.audit([Event(event="tested", actor="test", detail={"i": i})])
    db = attacker(path)
    db.execute("DELETE FROM audit WHERE seq = 6")  # after the prune event (seq 5)
    after_prune = verify_store(path, key=None)
    db.execute("DELETE FROM audit WHERE seq = 5")  # the prune event itself
    prune_event_gone = verify_store(path, key=None)

    assert broken(after_prune) == (6, "deleted")
    assert broken(prune_event_gone) == (1, "deleted")
