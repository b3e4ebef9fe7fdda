"""Trails to verify: written through the real store, then attacked with raw SQL as someone holding the file would."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from argobox.server.audit import Signer, VerifyReport
from argobox.server.store import Event, Store


class Clock:
    """A clock that moves 125 ms on every reading, so that every event has its own time."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        self.now += 0.125
        return self.now


async def make_trail(path: Path, count: int = 10, *, signer: Signer | None = None) -> None:
    async with Store.open(path, clock=Clock(), signer=signer) as store:
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
