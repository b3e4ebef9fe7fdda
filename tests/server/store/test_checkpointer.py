"""The checkpointer: it never goes backwards nor covers a truncation, coalesces its writes, moves the WAL, and
never writes through a planted link."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import anyio
import pytest

from argobox.server.audit import Checkpoint, checkpoint_path, read_checkpoint, temporary_path, write_checkpoint
from argobox.server.mediation.audit_trail import verify_store
from argobox.server.store import Event, Store
from argobox.server.store.checkpointer import DELAY_S, MIN_INTERVAL_S, Checkpointer, write_delay
from tests.server.audit.trails import Clock, attacker, broken, make_trail

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0


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

    assert write_delay(last_write=100.0, now=100.0 + 60) == DELAY_S  # quiet for a minute: at once (20 ms)
    assert write_delay(last_write=100.0, now=100.0 + MIN_INTERVAL_S + 0.1) == DELAY_S
    assert write_delay(last_write=100.0, now=100.1) == pytest.approx(MIN_INTERVAL_S - 0.1)  # busy: spaced out
    assert DELAY_S < 0.1 <= MIN_INTERVAL_S <= 1.0


async def test_a_busy_store_writes_its_checkpoint_at_most_twice_a_second_and_closing_brings_it_to_the_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each checkpoint write costs the serving process a file read, a query and an fsync: a stream of commits gets
    a few of them, not one per commit (a slower machine only writes fewer)."""
    writes: list[int] = []
    advance = Checkpointer._advance  # pyright: ignore[reportPrivateUsage]

    def counted(self: Checkpointer) -> Checkpoint | None:
        written = advance(self)
        if written is not None:
            writes.append(written.seq)
        return written

    monkeypatch.setattr(Checkpointer, "_advance", counted)
    path = tmp_path / "s.db"
    async with Store.open(path, clock=Clock()) as store:
        commits = 0
        with anyio.move_on_after(1.2):  # commits every 5 ms for 1.2 s: 240 of them at most
            while True:
                await store.audit([Event(event="tested", actor="test", detail={"i": commits})])
                commits += 1
                await anyio.sleep(0.005)
        assert commits > 20
        assert 1 <= len(writes) <= 1 + 1.2 / MIN_INTERVAL_S, writes
    checkpoint = read_checkpoint(checkpoint_path(path))
    assert checkpoint is not None and checkpoint.seq == commits  # closing wrote the head at once


async def test_the_checkpointer_moves_the_wal_into_the_database(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    wal = path.with_name("s.db-wal")
    async with Store.open(path, clock=lambda: NOW) as store:
        for i in range(50):
            await store.audit([Event(event="filler", actor="argobox", detail={"i": i, "pad": "x" * 2000})])
        grown = wal.stat().st_size
        checkpointer = Checkpointer(path)
        try:
            assert not checkpointer.checkpoint_wal(threshold=grown + 1)  # below the threshold: nothing to do
            assert checkpointer.checkpoint_wal(threshold=1)
        finally:
            checkpointer.close()
        await store.audit([Event(event="after", actor="argobox")])  # restarts the WAL, truncated (size limit 0)
        restarted = wal.stat().st_size

    assert grown > 100_000 and restarted < grown // 10


def test_checkpointing_the_wal_never_creates_a_database(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "gone.db"
    path.with_name("gone.db-wal").write_bytes(b"\0" * 64)
    checkpointer = Checkpointer(path)
    try:
        with caplog.at_level(logging.ERROR, logger="argobox"):
            moved = [checkpointer.checkpoint_wal(threshold=1) for _ in range(3)]
    finally:
        checkpointer.close()

    assert moved == [False, False, False] and not path.exists()
    assert caplog.text.count("cannot checkpoint the WAL") == 1  # reported once, not on every commit


async def test_a_link_planted_where_the_temporary_file_goes_is_never_written_through(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    await make_trail(path, 3)
    checkpoint_path(path).unlink()
    outside = tmp_path / "elsewhere"
    outside.write_text("precious")
    temporary_path(checkpoint_path(path)).symlink_to(outside)  # where this thread's next write goes
    checkpointer = Checkpointer(path)
    try:
        written = checkpointer.advance()
    finally:
        checkpointer.close()

    assert outside.read_text() == "precious"
    assert written is not None and read_checkpoint(checkpoint_path(path)) == written and written.seq == 3
    assert not temporary_path(checkpoint_path(path)).exists()


async def test_a_link_planted_as_the_lock_file_stops_checkpoints_loudly_and_writes_nothing_through_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "s.db"
    outside = tmp_path / "elsewhere"
    path.with_name("s.db.checkpoint.lock").symlink_to(outside)

    with caplog.at_level(logging.ERROR, logger="argobox.audit"):
        await make_trail(path, 3)

    assert not outside.exists()
    assert read_checkpoint(checkpoint_path(path)) is None
    assert "could not write the audit checkpoint" in caplog.text
    assert broken(verify_store(path, key=None)) == (None, "checkpoint")
