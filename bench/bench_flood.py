"""A runaway agent fires 10,000 mutation calls: how fast ArgoBox refuses them and what is left afterwards.

    python bench/bench_flood.py [--calls 10000] [--stdio]

In-process by default (the real enforcement path and store, the simulated lab as backend); `--stdio` drives a real
`argobox serve` process with the official MCP client instead. Prints refusals per second, the mean cost of a
refusal, peak memory, and the final queue, audit and counter sizes. Target: a refusal costs about 1 ms or less.
"""

from __future__ import annotations

import argparse
import resource
import sqlite3
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import anyio

CONFIG = """\
[storage]
path = "flood.db"
[docker]
simulated_lab = "lab.json"
[[operators]]
name = "alice"
[[agents.looper.rules]]
tools = ["docker_restart_container"]
args = { container = ["jellyfin", "web-*"] }
effect = "approve"
"""
TARGETS = ("jellyfin", "web-api", "web-frontend")


async def flood_in_process(config: Path, calls: int) -> dict[str, int]:
    from argobox.server.app import open_app
    from argobox.server.config.model import load_config
    from argobox.server.mediation import agent_calls

    statuses: dict[str, int] = {}
    async with open_app(load_config(config)) as app:
        for i in range(calls):
            outcome = await agent_calls.call_tool(
                app, "looper", "docker_restart_container", {"container": TARGETS[i % 3]}
            )
            statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
    return statuses


async def flood_stdio(config: Path, calls: int) -> dict[str, int]:
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "argobox", "--config", str(config), "serve", "--agent", "looper"]
    )
    statuses: dict[str, int] = {}
    async with Client(params) as client:
        for i in range(calls):
            result = await client.call_tool("docker_restart_container", {"container": TARGETS[i % 3]})
            status = str(result.structured_content.get("status", "?")) if result.structured_content else "?"
            statuses[status] = statuses.get(status, 0) + 1
    return statuses


def sizes(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        out = {
            table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608
            for table in ("requests", "audit", "calls", "refusals")
        }
        out["pending"] = conn.execute("SELECT COUNT(*) FROM requests WHERE status = 'pending_approval'").fetchone()[0]
    out["store_bytes"] = sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--stdio", action="store_true", help="drive a real `argobox serve` over MCP stdio")
    parser.add_argument("--trace-memory", action="store_true", help="peak Python allocations (slows every call)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="argobox-flood-") as tmp:
        config = Path(tmp) / "argobox.toml"
        config.write_text(CONFIG)
        if args.trace_memory:
            tracemalloc.start()
        start = time.perf_counter()
        statuses = anyio.run(flood_stdio if args.stdio else flood_in_process, config, args.calls)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory() if args.trace_memory else (0, 0)
        refused = statuses.get("rate_limited", 0)
        print(
            f"mode: {'stdio (official client, real argobox serve)' if args.stdio else 'in-process'}; "
            f"calls: {args.calls}; elapsed {elapsed:.2f} s"
        )
        print(f"outcomes: {dict(sorted(statuses.items()))}")
        print(
            f"refusals per second: {refused / elapsed:,.0f}; mean cost per call: {elapsed / args.calls * 1000:.3f} ms"
            "  (target: a refusal costs about 1 ms or less)"
        )
        traced = f"peak traced Python memory: {peak / 1e6:.1f} MB; " if args.trace_memory else ""
        print(f"{traced}max RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
        print(f"final sizes: {sizes(Path(tmp) / 'flood.db')}")


if __name__ == "__main__":
    main()
