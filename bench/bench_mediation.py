"""What ArgoBox adds to a read call, against a bare `MCPServer` doing the same backend work, on real backends.

    python bench/bench_mediation.py [--rounds 5] [--calls 100] [--agents 8] [--agent-calls 40] [--cold 8]
                                    [--history 1000000] [--only stdio,http,flood,cold,own,history] [--quick]

Needs a Docker engine (--docker, or ARGOBOX_TEST_DOCKER_HOST) and a Home Assistant (--ha and --ha-token-file, or
ARGOBOX_TEST_HA_URL and ARGOBOX_TEST_HA_TOKEN_FILE); `make bench` starts the private ones of the tests. The servers
run as subprocesses driven by the official client; every comparison is made side by side in one run, the calls
interleaved call by call (or, for 8 agents at once, round by round in alternating order), so that machine noise
hits both alike. Each figure is the median over rounds, with the lowest and highest round in brackets.

The Docker read is `docker_list_containers` (all=true, one idle container of the test image is created for it);
the Home Assistant read is `ha_get_state` of an entity whose state this benchmark sets with a weather-like map of
attributes (a forecast, times, a URL), as real integrations have, and removes afterwards.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from mediation_cpu import own_work  # noqa: E402
from mediation_history import history  # noqa: E402
from mediation_runs import Backends, Rounds, cold_start, concurrent_http, interleaved_http, interleaved_stdio  # noqa: E402

GOALS = {"p50": 0.8, "p99": 2.5, "cold": 1.2, "throughput": 0.8, "flood_p99": 5.0, "flat": 0.10, "cli_ms": 100}
PEERS = [
    "Peers, as measured in issue 19 (quoted, not rerun; one interleaved run, Docker Engine 20.10, Home Assistant",
    "2024.3, 5 rounds of 200 calls, time of a read through the gate / time through a bare `mcp` server):",
    "  Docker read: ArgoBox then 1.29x; FastMCP 4 proxy with an allow-list and logging 1.95x; mcp-proxy (no gating)",
    "  2.77x; IBM ContextForge 6-14x. Home Assistant state: ArgoBox then 1.77x; ha-mcp with Tool Security Policies",
    "  2.96x. With 200,000 audit events and 50,000 requests in the store: ArgoBox then 1.06x a fresh store.",
]


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    """The median, with the lowest and highest value in brackets."""
    if not values:
        return "n/a"
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}..{fmt.format(max(values))}]"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def latency_rows(title: str, rounds: Rounds, cpu_lines: list[str]) -> list[str]:
    rows: list[str] = []
    for tool in rounds.tools():
        p50, p99 = rounds.added(tool, 0.5), rounds.added(tool, 0.99)
        bare = rounds.percentile("bare", tool, 0.5)
        ratio = rounds.ratio(tool)
        ok = statistics.median(p50) <= GOALS["p50"] and statistics.median(p99) <= GOALS["p99"]
        rows.append(
            f"| {tool}, {title} | {spread(p50)} ms | {spread(p99)} ms | {spread(bare)} ms | {spread(ratio)}x "
            f"| {verdict(ok)} |"
        )
    if rounds.cpu and rounds.cpu[0]:
        cpu_lines.append(cpu_line(title, rounds.cpu_of("argobox"), rounds.cpu_of("bare")))
    return rows


def cpu_line(title: str, argobox: list[float], bare: list[float]) -> str:
    """The CPU time each server process used per call (both reads), by round: what the load of the machine hardly
    changes."""
    added = [a - b for a, b in zip(argobox, bare, strict=True)]
    return f"  {title}: argobox {spread(argobox)} ms, bare {spread(bare)} ms, added {spread(added)} ms of CPU per call"


async def run(args: argparse.Namespace) -> None:
    backends = Backends.from_args(args)
    only = set(args.only.split(",")) if args.only else {"own", "stdio", "http", "flood", "cold", "history"}
    print(f"cpus: {os.cpu_count()}; load average {os.getloadavg()[0]:.2f}; rounds {args.rounds}")
    print(f"Docker engine {backends.docker_url}; Home Assistant {backends.ha_url}\n")
    table = [
        "| read call (real backends) | added p50 | added p99 | bare p50 | ratio of means | goal (p50 <= 0.8 ms, "
        "p99 <= 2.5 ms) |",
        "|---|---|---|---|---|---|",
    ]
    lines: list[str] = []
    cpu_lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="argobox-bench-mediation-") as tmp:
        workdir = Path(tmp)
        async with backends.ready() as ready:
            if "stdio" in only:
                rounds = await interleaved_stdio(ready, workdir, rounds=args.rounds, calls=args.calls)
                table += latency_rows("stdio", rounds, cpu_lines)
            if "http" in only:
                rounds = await interleaved_http(ready, workdir, rounds=args.rounds, calls=args.calls)
                table += latency_rows("HTTP daemon", rounds, cpu_lines)
            if "flood" in only:
                flood = await concurrent_http(
                    ready, workdir, rounds=args.rounds, agents=args.agents, calls=args.agent_calls
                )
                ok = statistics.median(flood.ratios) >= GOALS["throughput"] and (
                    statistics.median(flood.p99_added) <= GOALS["flood_p99"]
                )
                lines.append(
                    f"HTTP daemon, {args.agents} agents at once ({args.agent_calls} calls each a round, both reads): "
                    f"{spread(flood.argobox_rate, '{:.0f}')} calls/s vs bare {spread(flood.bare_rate, '{:.0f}')}; "
                    f"ratio {spread(flood.ratios)}x; p99 added {spread(flood.p99_added)} ms "
                    f"(goal >= 0.8x, p99 added <= 5 ms: {verdict(ok)})"
                )
                cpu_lines.append(
                    cpu_line(f"HTTP daemon, {args.agents} agents", flood.cpu["argobox"], flood.cpu["bare"])
                )
            if "cold" in only:
                cold = await cold_start(ready, workdir, runs=args.cold)
                ok = statistics.median(cold.ratios) <= GOALS["cold"]
                lines.append(
                    f"cold start to the first tools/list, stdio, both backends configured: argobox "
                    f"{spread(cold.argobox, '{:.0f}')} ms, bare {spread(cold.bare, '{:.0f}')} ms, ratio "
                    f"{spread(cold.ratios)}x (goal <= 1.2x: {verdict(ok)})"
                )
        if "own" in only:
            own = await own_work()
            lines.append("ArgoBox's own work per read, in one process with backends that answer at once:")
            lines += [
                f"  {tool}: the answer in {f.answer_p50_ms:.2f} ms (p99 {f.answer_p99_ms:.2f} ms), "
                f"{f.answer_cpu_ms:.2f} ms of CPU; {f.whole_cpu_ms:.2f} ms of CPU with the outcome's write"
                for tool, f in own.items()
            ]
        if "history" in only:
            found = await history(backends, workdir, events=args.history, rounds=args.rounds, calls=args.calls)
            flat = statistics.median(found.p50_change)
            lines.append(
                f"history: {found.events:,} audit events, {found.requests:,} requests (built in "
                f"{found.build_seconds:.0f} s): the Docker read's p50 {spread(found.p50_change, '{:+.1%}')} vs a "
                f"fresh store (goal within 10 %: {verdict(abs(flat) <= GOALS['flat'])})"
            )
            for command, (inside, process) in found.cli.items():
                ok = statistics.median(inside) < GOALS["cli_ms"]
                lines.append(
                    f"  argobox {command}: {spread(inside, '{:.0f}')} ms in the command (goal < 100 ms: "
                    f"{verdict(ok)}); {spread(process, '{:.0f}')} ms as a process, Python's start included"
                )
    print("\n".join(table))
    print()
    print("\n".join(lines))
    if cpu_lines:
        print(
            "\nCPU time of each server process per call (user and system, every thread; median [lowest..highest] "
            "round):"
        )
        print("\n".join(cpu_lines))
    print()
    print("\n".join(PEERS))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=100, help="calls of each tool on each server a round")
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--agent-calls", type=int, default=60, help="calls of each agent a round, 8 agents at once")
    parser.add_argument("--cold", type=int, default=8, help="cold starts of each server")
    parser.add_argument("--history", type=int, default=1_000_000, help="audit events in the long store")
    parser.add_argument("--only", help="comma-separated: stdio,http,flood,cold,own,history")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 40 calls, 4 cold starts, 200,000 events")
    parser.add_argument("--docker", default=os.environ.get("ARGOBOX_TEST_DOCKER_HOST"))
    parser.add_argument("--ha", default=os.environ.get("ARGOBOX_TEST_HA_URL"))
    parser.add_argument("--ha-token-file", default=os.environ.get("ARGOBOX_TEST_HA_TOKEN_FILE"))
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.calls, args.agent_calls, args.cold, args.history = 3, 40, 20, 4, 200_000
    if not args.docker or not args.ha or not args.ha_token_file:
        sys.exit(
            "needs a Docker engine and a Home Assistant: run `make bench`, or pass --docker, --ha, --ha-token-file"
        )
    started = time.perf_counter()
    anyio.run(run, args)
    print(f"\n(took {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
