"""Audit trail benchmarks: append throughput with the hash chain (committed), and `verify` time for a long trail.

    python bench/bench_audit.py [--events 3000] [--verify-events 1000000] [--processes 4] [--dir DIR]

Throughput goes through the real `Store` (aiosqlite, WAL, one `BEGIN IMMEDIATE` transaction per write, the chain
head read and the hash computed inside the INSERT, the checkpoint written by the background thread); the clock
stops after the store is closed, i.e. after the last checkpoint is on disk. It is measured for transactions of
1 event (a refusal), 3 events (a decision: received, decision, queued) and 100 events, and for several processes
writing decisions at once. Targets: >= 5,000 events/s; verify of 1,000,000 events <= 10 s.

The long trail for `verify` is generated directly with sqlite3 in batches (same schema, same hash function),
because appending a million events one decision at a time would only measure the benchmark's patience.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from argobox.server.audit import (  # noqa: E402
    GENESIS,
    Checkpoint,
    canonical_detail,
    checkpoint_path,
    event_hash,
    write_checkpoint,
)
from argobox.server.mediation.audit_trail import verify_store  # noqa: E402
from argobox.server.store import Event, Store  # noqa: E402

ARGUMENTS = {"container": "jellyfin"}
DECISION = {
    "effect": "approve",
    "rule": "agents.openclaw.rules[1]",
    "classification": "mutate",
    "reason": "docker_restart_container on 'jellyfin' needs approval (agents.openclaw.rules[1])",
}


def decision_events(n: int) -> list[Event]:
    return [
        Event(event="received", actor="agent:openclaw", detail={"arguments": ARGUMENTS, "n": n}),
        Event(event="decision", actor="policy", detail=DECISION),
        Event(event="queued", actor="argobox", detail={"ttl_seconds": 1800}),
    ]


async def append(path: Path, transactions: int, per_transaction: int) -> None:
    async with Store.open(path, clock=time.time) as store:
        for n in range(transactions):
            events = (
                decision_events(n)
                if per_transaction == 3
                else [
                    Event(event="refused", actor="argobox", detail={"reason": f"unknown tool 'x{n}'", "i": i})
                    for i in range(per_transaction)
                ]
            )
            await store.audit(events, agent="openclaw", tool="docker_restart_container")


def throughput(workdir: Path, events: int, per_transaction: int) -> float:
    path = workdir / f"throughput-{per_transaction}.db"
    transactions = max(1, events // per_transaction)
    start = time.perf_counter()
    anyio.run(append, path, transactions, per_transaction)
    elapsed = time.perf_counter() - start
    report = verify_store(path, key=None)
    assert report.ok and report.events == transactions * per_transaction, report.text()
    return transactions * per_transaction / elapsed


WRITER = """
import sys, time, anyio
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from bench.bench_audit import append
Path(sys.argv[4] + ".ready" + sys.argv[5]).touch()
while not Path(sys.argv[4]).exists():
    time.sleep(0.001)
anyio.run(append, Path(sys.argv[1]), int(sys.argv[2]), 3)
"""


def concurrent_throughput(workdir: Path, events: int, processes: int) -> float:
    """Several processes start, wait for one signal, then each appends decisions; timed from the signal."""
    path, go = workdir / "concurrent.db", workdir / "go"
    anyio.run(append, path, 0, 3)  # create the schema first
    transactions = max(1, events // 3 // processes)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(transactions), str(HERE.parent), str(go), str(n)]
        )
        for n in range(processes)
    ]
    while not all((workdir / f"go.ready{n}").exists() for n in range(processes)):
        time.sleep(0.01)
    start = time.perf_counter()
    go.touch()
    if any(w.wait() != 0 for w in writers):
        sys.exit("a writer process failed")
    elapsed = time.perf_counter() - start
    report = verify_store(path, key=None)
    assert report.ok and report.events == processes * transactions * 3, report.text()
    return processes * transactions * 3 / elapsed


async def plain_inserts(path: Path, transactions: int, per_transaction: int) -> None:
    """The floor without the chain: the same rows into a plain table, one aiosqlite transaction each."""
    import aiosqlite

    async with aiosqlite.connect(path, isolation_level="IMMEDIATE") as db:
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("PRAGMA synchronous = NORMAL")
        await db.execute(
            "CREATE TABLE plain (seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL, request_id TEXT,"
            " event TEXT, actor TEXT, agent TEXT, tool TEXT, detail TEXT)"
        )
        await db.commit()
        for n in range(transactions):
            rows = [
                (
                    time.time(),
                    None,
                    e.event,
                    e.actor,
                    "openclaw",
                    "docker_restart_container",
                    canonical_detail(e.detail),
                )
                for e in decision_events(n)[:per_transaction]
            ]
            await db.executemany(
                "INSERT INTO plain (at, request_id, event, actor, agent, tool, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            await db.commit()


def plain_throughput(workdir: Path, events: int, per_transaction: int) -> float:
    transactions = max(1, events // per_transaction)
    start = time.perf_counter()
    anyio.run(plain_inserts, workdir / f"plain-{per_transaction}.db", transactions, per_transaction)
    return transactions * per_transaction / (time.perf_counter() - start)


def generate(path: Path, count: int, batch: int = 20_000) -> None:
    """A trail of `count` decision-shaped events, chained, written in large transactions."""
    anyio.run(append, path, 0, 3)  # the schema, as the store creates it
    details = [canonical_detail(e.detail) for e in decision_events(0)]
    names = [(e.event, e.actor) for e in decision_events(0)]
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = OFF")
    prev, at = GENESIS, 1_800_000_000.0
    for first in range(1, count + 1, batch):
        rows: list[tuple[object, ...]] = []
        for seq in range(first, min(first + batch, count + 1)):
            at += 0.001
            event, actor = names[seq % 3]
            request_id = f"req{seq // 3:013d}"
            digest = event_hash(
                seq, at, request_id, event, actor, "openclaw", "docker_restart_container", details[seq % 3], prev
            )
            rows.append(
                (
                    seq,
                    at,
                    request_id,
                    event,
                    actor,
                    "openclaw",
                    "docker_restart_container",
                    details[seq % 3],
                    prev,
                    digest,
                )
            )
            prev = digest
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO audit (seq, at, request_id, event, actor, agent, tool, detail, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    write_checkpoint(checkpoint_path(path), Checkpoint(seq=count, hash=prev))


def verify_time(workdir: Path, count: int) -> tuple[float, float, str]:
    path = workdir / "verify.db"
    start = time.perf_counter()
    generate(path, count)
    generated = time.perf_counter() - start
    start = time.perf_counter()
    report = verify_store(path, key=None)
    elapsed = time.perf_counter() - start
    assert report.ok and report.events == count, report.text()
    return elapsed, generated, report.text().splitlines()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--events", type=int, default=3000, help="events per throughput run")
    parser.add_argument("--verify-events", type=int, default=1_000_000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--dir", help="work here (default: a temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="argobox-bench-audit-", dir=args.dir) as tmp:
        workdir = Path(tmp)
        print(f"cpus: {os.cpu_count()}; sqlite {sqlite3.sqlite_version}; events per throughput run: {args.events}")
        for per_transaction in (1, 3):
            rate = plain_throughput(workdir, args.events, per_transaction)
            print(
                f"floor,  {per_transaction:3d} events/transaction, plain aiosqlite INSERT, no chain: {rate:8.0f} "
                "events/s"
            )
        for per_transaction, shape in ((1, "a refusal"), (3, "a decision"), (100, "a batch")):
            rate = throughput(workdir, args.events, per_transaction)
            print(
                f"append, {per_transaction:3d} events/transaction ({shape}): {rate:8.0f} events/s committed "
                "with the chain"
            )
        rate = concurrent_throughput(workdir, args.events * 2, args.processes)
        print(
            f"append, {args.processes} processes writing decisions at once: {rate:8.0f} events/s committed "
            "with the chain"
        )
        elapsed, generated, line = verify_time(workdir, args.verify_events)
        print(
            f"verify {args.verify_events:,} events: {elapsed:.2f} s (target <= 10 s; generated in "
            f"{generated:.1f} s): {line}"
        )


if __name__ == "__main__":
    main()
