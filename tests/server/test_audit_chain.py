"""The hash-chained audit trail: an attacker with the database file (triggers dropped, raw SQL) edits, deletes,
reorders or truncates events, and `verify` names the first broken seq and what is wrong; prune, migration,
concurrent writers across processes, the checkpoint rules, export and offline verification, and signatures."""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from argobox.server.audit import (
    GENESIS,
    Checkpoint,
    VerifyReport,
    canonical_detail,
    canonical_event,
    checkpoint_path,
    event_hash,
    load_signer,
    load_verify_key,
    read_checkpoint,
    verify_export,
    write_checkpoint,
    write_keypair,
)
from argobox.server.mediation.audit_trail import export_jsonl, verify_store
from argobox.server.store.checkpointer import Checkpointer
from argobox.server.redact import Redactor
from argobox.server.store import Event, Store

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        self.now += 0.125
        return self.now


async def make_trail(path: Path, count: int = 10, **open_kwargs: object) -> None:
    async with Store.open(path, clock=Clock(), **open_kwargs) as store:  # type: ignore[arg-type]
        for i in range(count):
            await store.audit(
                [Event(event="tested", actor="test", detail={"i": i, "note": f"event {i}"})],
                agent="openclaw",
                tool="docker_list_containers",
            )


def attacker(path: Path) -> sqlite3.Connection:
    """Someone with write access to the database file: raw SQL, the append-only triggers dropped."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP TRIGGER audit_no_update")
    db.execute("DROP TRIGGER audit_no_delete")
    return db


def rows(path: Path) -> list[sqlite3.Row]:
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        return list(db.execute("SELECT * FROM audit ORDER BY seq"))
    finally:
        db.close()


def broken(report: VerifyReport) -> tuple[int | None, str]:
    assert report.broken is not None, report.text()
    return report.broken.seq, report.broken.kind


# The canonical form -------------------------------------------------------------------------------------------


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
    assert all(r["prev_hash"] == p["hash"] for p, r in zip(stored, stored[1:], strict=False))
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


# What an attacker with the file can do, and what verify says -------------------------------------------------


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


async def test_checkpoint_never_goes_backwards_nor_covers_a_truncation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "s.db"
    await make_trail(path)
    attacker(path).execute("DELETE FROM audit WHERE seq >= 8")
    with caplog.at_level(logging.ERROR, logger="argobox.audit"):
        await make_trail(path, 5)  # legitimate writers carry on: seq 8..12 again, from the truncated head
    checkpoint = read_checkpoint(checkpoint_path(path))

    assert checkpoint is not None and checkpoint.seq == 10  # kept as evidence, not moved to 12
    assert broken(verify_store(path, key=None)) == (10, "rewritten")
    assert "no longer has the hash the checkpoint records" in caplog.text


def test_checkpoint_is_only_replaced_by_a_higher_seq(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    sqlite3.connect(path).close()
    cp = checkpoint_path(path)
    write_checkpoint(cp, Checkpoint(seq=3, hash="a" * 64))
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(
        "CREATE TABLE audit (seq INTEGER PRIMARY KEY, hash TEXT); CREATE TABLE audit_prunes "
        "(record_seq INTEGER, through_seq INTEGER, through_hash TEXT);"
        "INSERT INTO audit VALUES (1, 'x'), (2, 'y');"
    )
    head = "b" * 64
    checkpointer = Checkpointer(path)
    try:
        assert checkpointer.advance() is None  # the head (2) is below the checkpoint (3): nothing is written
        db.execute("INSERT INTO audit VALUES (3, ?), (4, ?)", ("a" * 64, head))
        written = checkpointer.advance()
    finally:
        checkpointer.close()
        db.close()

    assert written is not None and (written.seq, written.hash) == (4, head)
    assert read_checkpoint(cp) == written


def test_a_checkpoint_is_written_moments_after_a_quiet_spell_and_spaced_out_while_busy() -> None:
    from argobox.server.store.checkpointer import DELAY_S, MIN_INTERVAL_S, write_delay

    assert write_delay(last_write=100.0, now=100.0 + 60) == DELAY_S  # quiet for a minute: at once (20 ms)
    assert write_delay(last_write=100.0, now=100.0 + MIN_INTERVAL_S + 0.1) == DELAY_S
    assert write_delay(last_write=100.0, now=100.1) == pytest.approx(MIN_INTERVAL_S - 0.1)  # busy: spaced out
    assert DELAY_S < 0.1 <= MIN_INTERVAL_S <= 1.0


async def test_a_busy_store_writes_its_checkpoint_at_most_twice_a_second_and_closing_brings_it_to_the_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each checkpoint write costs the serving process a file read, a query and an fsync: a stream of commits gets
    a few of them, not one per commit (a slower machine only writes fewer)."""
    import anyio

    from argobox.server.store import checkpointer as audit_checkpoint

    writes: list[int] = []
    advance = audit_checkpoint.Checkpointer._advance  # pyright: ignore[reportPrivateUsage]

    def counted(self: Checkpointer) -> Checkpoint | None:
        written = advance(self)
        if written is not None:
            writes.append(written.seq)
        return written

    monkeypatch.setattr(audit_checkpoint.Checkpointer, "_advance", counted)
    path = tmp_path / "s.db"
    async with Store.open(path, clock=Clock()) as store:
        commits = 0
        with anyio.move_on_after(1.2):  # commits every 5 ms for 1.2 s: 240 of them at most
            while True:
                await store.audit([Event(event="tested", actor="test", detail={"i": commits})])
                commits += 1
                await anyio.sleep(0.005)
        assert commits > 20
        assert 1 <= len(writes) <= 1 + 1.2 / audit_checkpoint.MIN_INTERVAL_S, writes
    checkpoint = read_checkpoint(checkpoint_path(path))
    assert checkpoint is not None and checkpoint.seq == commits  # closing wrote the head at once


# Pruning ------------------------------------------------------------------------------------------------------


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


# Migration and concurrency ------------------------------------------------------------------------------------

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


WRITER = textwrap.dedent("""
    import sys, time, anyio
    from pathlib import Path
    from argobox.server.store import Event, Store
    async def main():
        async with Store.open(Path(sys.argv[1]), clock=time.time) as store:
            while not Path(sys.argv[2]).exists():
                await anyio.sleep(0.005)
            for i in range(int(sys.argv[3])):
                await store.audit([Event(event="tick", actor=sys.argv[4], detail={"i": i}),
                                   Event(event="tock", actor=sys.argv[4], detail={"i": i})])
    anyio.run(main)
""")


async def test_concurrent_writers_in_several_processes_keep_one_valid_chain(tmp_path: Path) -> None:
    path, go = tmp_path / "s.db", tmp_path / "go"
    async with Store.open(path, clock=Clock()):
        pass
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(go), "40", f"w{n}"]) for n in range(4)]
    go.touch()
    codes = [w.wait(timeout=120) for w in writers]

    stored = rows(path)
    report = verify_store(path, key=None)
    checkpoint = read_checkpoint(checkpoint_path(path))

    assert codes == [0, 0, 0, 0]
    assert len(stored) == 4 * 40 * 2 and [r["seq"] for r in stored] == list(range(1, 321))
    assert report.ok, report.text()
    assert checkpoint is not None and checkpoint.seq == 320
    assert "not checkpointed" not in report.text()


# Export and offline verification ------------------------------------------------------------------------------


async def export(path: Path, out: Path, *, since: float | None = None, redactor: Redactor | None = None) -> list[str]:
    with out.open("w") as file:
        export_jsonl(path, file, since=since, redact=redactor or Redactor())
    return out.read_text().splitlines()


async def test_export_is_one_json_object_per_line_and_verifies_offline(tmp_path: Path) -> None:
    path, out = tmp_path / "s.db", tmp_path / "export.jsonl"
    await make_trail(path, 4)
    lines = await export(path, out)
    objects = [json.loads(line) for line in lines]

    assert len(objects) == 5 and objects[-1]["checkpoint"]["seq"] == 4
    assert {
        "seq",
        "at",
        "request_id",
        "event",
        "actor",
        "agent",
        "tool",
        "detail",
        "prev_hash",
        "hash",
        "at_epoch",
    } <= set(objects[0])
    report = verify_export(out, key=None)
    assert report.ok, report.text()
    assert report.text().splitlines()[0] == f"ok: 4 events, head {objects[3]['hash']}"


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        pytest.param(lambda ls: [ls[0], ls[1].replace("event 1", "event X"), *ls[2:]], (2, "edited"), id="edited"),
        pytest.param(lambda ls: [ls[0], *ls[2:]], (2, "deleted"), id="deleted"),
        pytest.param(lambda ls: [ls[0], ls[2], ls[1], *ls[3:]], (3, "reordered"), id="reordered"),
        pytest.param(lambda ls: [*ls[:2], ls[-1]], (3, "truncated"), id="truncated"),
        pytest.param(
            lambda ls: [ls[0].replace('"at":"2027', '"at":"2028'), *ls[1:]], (None, "edited"), id="shown-time"
        ),
    ],
)
async def test_tampered_export_is_detected_offline(tmp_path: Path, tamper: object, expected: tuple[int, str]) -> None:
    path, out = tmp_path / "s.db", tmp_path / "export.jsonl"
    await make_trail(path, 4)
    lines = await export(path, out)
    out.write_text("\n".join(tamper(lines)) + "\n")  # type: ignore[operator]

    assert broken(verify_export(out, key=None)) == expected


async def test_partial_export_since_a_date_verifies_from_its_first_event(tmp_path: Path) -> None:
    path, out = tmp_path / "s.db", tmp_path / "export.jsonl"
    await make_trail(path, 6)
    since = rows(path)[3]["at"]
    lines = await export(path, out, since=since)
    report = verify_export(out, key=None)

    assert [json.loads(line).get("seq") for line in lines[:-1]] == [4, 5, 6]
    assert report.ok and "starts at seq 4" in report.text(), report.text()


async def test_events_redacted_again_on_export_are_flagged_not_called_edited(tmp_path: Path) -> None:
    path, out = tmp_path / "s.db", tmp_path / "export.jsonl"
    await make_trail(path, 3)
    lines = await export(path, out, redactor=Redactor(["event 1"]))
    report = verify_export(out, key=None)

    assert "event 1" not in "\n".join(lines)
    assert [json.loads(line).get("redacted_on_export") for line in lines[:-1]] == [None, True, None]
    assert report.ok and "1 events were redacted again on export" in report.text(), report.text()


# Signatures ---------------------------------------------------------------------------------------------------


async def test_signed_checkpoint_verifies_and_a_bad_or_missing_signature_fails(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    public, _ = write_keypair(tmp_path / "audit.pem")
    other, _ = write_keypair(tmp_path / "other.pem")
    await make_trail(path, 3, signer=load_signer(tmp_path / "audit.pem"))
    key = load_verify_key(public)
    signed = read_checkpoint(checkpoint_path(path))
    assert signed is not None and signed.signature is not None

    good = verify_store(path, key=key)
    wrong_key = verify_store(path, key=load_verify_key(other))
    write_checkpoint(
        checkpoint_path(path),
        Checkpoint(
            seq=signed.seq, hash=signed.hash, key_id=signed.key_id, signature=signed.signature[:-8] + "AAAAAAA="
        ),
    )
    forged = verify_store(path, key=key)
    write_checkpoint(checkpoint_path(path), Checkpoint(seq=signed.seq, hash=signed.hash))
    missing = verify_store(path, key=key)

    assert good.ok and "signature verified" in good.text(), good.text()
    assert broken(wrong_key) == (3, "signature")
    assert broken(forged) == (3, "signature")
    assert broken(missing) == (3, "signature") and "not signed" in missing.text()


async def test_signature_covers_the_export_offline(tmp_path: Path) -> None:
    path, out = tmp_path / "s.db", tmp_path / "export.jsonl"
    public, _ = write_keypair(tmp_path / "audit.pem")
    await make_trail(path, 3, signer=load_signer(tmp_path / "audit.pem"))
    lines = await export(path, out)
    key = load_verify_key(public)
    good = verify_export(out, key=key)
    out.write_text("\n".join(lines[:-1]) + "\n")  # the signed checkpoint line removed

    assert good.ok, good.text()
    assert broken(verify_export(out, key=key)) == (None, "signature")


def test_keypair_is_never_overwritten_and_the_private_key_is_private(tmp_path: Path) -> None:
    public, key_id = write_keypair(tmp_path / "k.pem")

    assert (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600
    assert load_signer(tmp_path / "k.pem").key_id == load_verify_key(public).key_id == key_id
    with pytest.raises(Exception, match="already exists"):
        write_keypair(tmp_path / "k.pem")
