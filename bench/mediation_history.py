"""The long-history run of `bench_mediation.py`: a store with a long trail against a fresh one, and the operator's
commands on it.

The long store is the real schema (made by `Store.open`), filled directly with sqlite3 in large transactions: each
read request with its four chained events (received, decision, executing, succeeded), a month of them ending two
hours ago, and the checkpoint at the head, as ArgoBox leaves a store it has used; appending a million events one
call at a time would only measure the benchmark's patience.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp import Client
from mediation_runs import ARGOBOX, Backends, interleave

from argobox.server.audit import GENESIS, Checkpoint, canonical_detail, checkpoint_path, event_hash, write_checkpoint
from argobox.server.store import Store

EVENTS_PER_REQUEST = 4
INSERT_REQUEST = f"INSERT INTO requests VALUES ({', '.join('?' * 20)})"  # noqa: S608 - placeholders only
COMMANDS = {"requests": ["requests"], "show": ["show", "{id}"], "audit --request": ["audit", "--request", "{id}"]}
TIMER = """
import contextlib, io, json, sys, time
from argobox.server.cli.main import main
config, request_id, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
commands = json.loads(sys.argv[4])
out = {}
for name, argv in commands.items():
    argv = ["--config", config, *[a.replace("{id}", request_id) for a in argv]]
    times = []
    for _ in range(runs + 1):  # the first one imports what the command needs: not counted
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            status = main(argv)
        times.append((time.perf_counter() - start) * 1000)
        assert status == 0, (name, status)
    out[name] = times[1:]
print(json.dumps(out))
"""


@dataclass
class History:
    events: int
    requests: int
    build_seconds: float
    p50_change: list[float] = field(default_factory=list[float])
    cli: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict[str, tuple[list[float], list[float]]])


def _request_row(n: int, at: float) -> tuple[Any, ...]:
    tool = ("docker_list_containers", "ha_get_state")[n % 2]
    arguments = {"all": True} if n % 2 == 0 else {"entity_id": "light.kitchen"}
    result: dict[str, object] = {"containers": []} if n % 2 == 0 else {"entity_id": "light.kitchen", "state": "off"}
    return (
        f"hist{n:016d}",
        "bench",
        tool,
        json.dumps(arguments, sort_keys=True),
        f"{n:064x}",
        "read",
        "allow",
        "agents.bench.rules[0]",
        f"{tool} is allowed by agents.bench.rules[0]",
        "succeeded",
        at,
        None,
        "policy",
        at,
        None,
        "bench-history",
        json.dumps(result, sort_keys=True),
        None,
        at + 0.003,
        None,
    )


def _events(n: int, at: float, arguments: str) -> list[tuple[str, str, str]]:
    decision = {"effect": "allow", "rule": "agents.bench.rules[0]", "reason": "allowed", "classification": "read"}
    return [
        ("received", "agent:bench", canonical_detail({"arguments": json.loads(arguments)})),
        ("decision", "policy", canonical_detail(decision)),
        ("executing", "argobox", canonical_detail({})),
        ("succeeded", "argobox", canonical_detail({"summary": {"n": n}})),
    ]


async def build(path: Path, events: int, batch: int = 5_000) -> tuple[int, str]:
    """Fill a new store at `path` with `events` audit events (a quarter as many requests); returns the request
    count and the id of the last request."""
    async with Store.open(path, clock=time.time):
        pass  # the schema, as ArgoBox makes it
    requests = events // EVENTS_PER_REQUEST
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")
    prev, seq = GENESIS, 0
    end = time.time() - 7200
    start = end - 30 * 86400
    for first in range(0, requests, batch):
        request_rows: list[tuple[Any, ...]] = []
        audit_rows: list[tuple[Any, ...]] = []
        for n in range(first, min(first + batch, requests)):
            at = start + (end - start) * n / requests
            row = _request_row(n, at)
            request_rows.append(row)
            request_id, tool = str(row[0]), str(row[2])
            for event, actor, detail in _events(n, at, str(row[3])):
                seq += 1
                digest = event_hash(seq, at, request_id, event, actor, "bench", tool, detail, prev)
                audit_rows.append((seq, at, request_id, event, actor, "bench", tool, detail, prev, digest))
                prev = digest
        db.execute("BEGIN")
        db.executemany(f"INSERT INTO requests VALUES ({', '.join('?' * 20)})", request_rows)  # noqa: S608 - no input
        db.executemany("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", audit_rows)
        db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    write_checkpoint(checkpoint_path(path), Checkpoint(seq=seq, hash=prev))
    return requests, f"hist{requests - 1:016d}"


async def history(backends: Backends, workdir: Path, *, events: int, rounds: int, calls: int) -> History:
    async with backends.ready() as ready:
        started = time.perf_counter()
        long_config = ready.config(workdir, "long")
        requests, last = await build(long_config.with_suffix(".db"), events)
        found = History(events, requests, time.perf_counter() - started)
        servers = {"long": ready.argobox_stdio(long_config), "fresh": ready.argobox_stdio(ready.config(workdir, "new"))}
        async with Client(servers["long"]) as long, Client(servers["fresh"]) as fresh:
            rounds_found = await interleave({"long": long, "fresh": fresh}, ready, rounds=rounds, calls=calls)
        for tool in rounds_found.tools():
            for a, b in zip(
                rounds_found.percentile("long", tool, 0.5), rounds_found.percentile("fresh", tool, 0.5), strict=True
            ):
                found.p50_change.append(a / b - 1)
        found.cli = _cli_times(long_config, last, rounds, ready.env())
    return found


def _cli_times(
    config: Path, request_id: str, runs: int, env: dict[str, str]
) -> dict[str, tuple[list[float], list[float]]]:
    """Each command's time inside the process (imports done), and as a process of its own."""

    environment = {**os.environ, **env}
    inside = json.loads(
        subprocess.run(
            [sys.executable, "-c", TIMER, str(config), request_id, str(runs), json.dumps(COMMANDS)],
            capture_output=True,
            text=True,
            check=True,
            env=environment,
        ).stdout
    )
    out: dict[str, tuple[list[float], list[float]]] = {}
    for name, argv in COMMANDS.items():
        walls: list[float] = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run(
                [str(ARGOBOX), "--config", str(config), *[a.replace("{id}", request_id) for a in argv]],
                stdout=subprocess.DEVNULL,
                check=True,
                env=environment,
            )
            walls.append((time.perf_counter() - start) * 1000)
        out[name] = (inside[name], walls)
    return out
