"""An allowed read-only call through ArgoBox against a bare `mcp` server doing the same adapter work, over stdio.

The servers run as subprocesses and are driven by the official client; calls rotate between them so that machine
noise hits all alike. Prints p50/p99 for each, the ratio of means and the added latency. A third server, the
`recorded` floor (see bare_server.py), commits one SQLite row before the same adapter call: the least any gate pays
to record a call before acting on it, so the part of ArgoBox's cost above the floor is its own.

    python bench/bench_read_call.py [--calls 500] [--docker unix:///path/docker.sock]
                                    [--baseline lowlevel|mcpserver] [--no-floor]

Without --docker (or ARGOBOX_TEST_DOCKER_HOST) it uses the simulated lab. Target: ratio <= 1.15, p99 added <= 5 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

HERE = Path(__file__).resolve().parent
CONFIG = """\
[storage]
path = "bench.db"
[docker]
{docker}
[[operators]]
name = "alice"
[agents.bench.limits]
requests_per_minute = 1000000       # measure the gate, not the budget: every call must be admitted

[[agents.bench.rules]]
tools = ["docker_inspect_container"]
effect = "allow"
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(calls: int, servers: dict[str, StdioServerParameters], container: str) -> None:
    timings: dict[str, list[float]] = {name: [] for name in servers}
    async with AsyncExitStack() as stack:
        clients = {name: await stack.enter_async_context(Client(params)) for name, params in servers.items()}
        for name, client in clients.items():  # warm up every path
            for _ in range(20):
                result = await client.call_tool("docker_inspect_container", {"container": container})
                assert not result.is_error, (name, result.content)
        names = list(clients)
        for i in range(calls):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                start = time.perf_counter()
                result = await clients[name].call_tool("docker_inspect_container", {"container": container})
                timings[name].append((time.perf_counter() - start) * 1000)
                assert not result.is_error, (name, result.content)
    report(timings)


def report(timings: dict[str, list[float]]) -> None:
    for name, values in timings.items():
        print(
            f"{name:8s} n={len(values)} mean={statistics.mean(values):.3f} ms "
            f"p50={percentile(values, 0.5):.3f} ms p99={percentile(values, 0.99):.3f} ms"
        )
    a, b = timings["argobox"], timings["bare"]
    print(f"ratio (mean argobox / mean bare): {statistics.mean(a) / statistics.mean(b):.3f}x  (target <= 1.15x)")
    print(
        f"added latency p50: {percentile(a, 0.5) - percentile(b, 0.5):.3f} ms  "
        f"p99: {percentile(a, 0.99) - percentile(b, 0.99):.3f} ms  (target p99 added <= 5 ms)"
    )
    if "recorded" in timings:
        f = timings["recorded"]
        print(
            f"floor (mean recorded / mean bare): {statistics.mean(f) / statistics.mean(b):.3f}x, added p50 "
            f"{percentile(f, 0.5) - percentile(b, 0.5):.3f} ms; ArgoBox above the floor: p50 "
            f"{percentile(a, 0.5) - percentile(f, 0.5):.3f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--docker", default=os.environ.get("ARGOBOX_TEST_DOCKER_HOST"))
    parser.add_argument("--container", default=None, help="container to inspect (default: one from the backend)")
    parser.add_argument(
        "--baseline",
        choices=["lowlevel", "mcpserver"],
        default="lowlevel",
        help="bare server tier: lowlevel (what ArgoBox is built on; default) or the high-level MCPServer",
    )
    parser.add_argument("--no-floor", action="store_true", help="skip the recorded-floor server")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="argobox-bench-") as tmp:
        workdir = Path(tmp)
        if args.docker:
            container = args.container or first_container(args.docker)
            docker_line, bare_args = f'base_url = "{args.docker}"', ["docker", args.docker]
        else:
            container = args.container or "jellyfin"
            docker_line, bare_args = 'simulated_lab = "lab.json"', ["lab", str(workdir / "lab.json")]
        config = workdir / "argobox.toml"
        config.write_text(CONFIG.format(docker=docker_line))
        print(
            f"backend: {'docker engine' if args.docker else 'simulated lab'}; container: {container}; "
            f"calls: {args.calls} each, alternating; baseline: bare {args.baseline} server"
        )
        servers = {
            "argobox": StdioServerParameters(
                command=sys.executable, args=["-m", "argobox", "--config", str(config), "serve", "--agent", "bench"]
            )
        }
        tiers = {"bare": args.baseline, **({"recorded": "recorded"} if not args.no_floor else {})}
        for name, tier in tiers.items():
            servers[name] = StdioServerParameters(
                command=sys.executable,
                args=[str(HERE / "bare_server.py"), tier, *bare_args],
                env={"PYTHONPATH": str(HERE.parent)},
            )
        anyio.run(measure, args.calls, servers, container)


def first_container(base_url: str) -> str:
    import docker

    client: Any = docker.DockerClient(base_url=base_url)
    try:
        names = [c.name for c in client.containers.list(all=True)]
    finally:
        client.close()
    if not names:
        sys.exit("the Docker engine has no container to inspect; pass --container or create one")
    return names[0]


if __name__ == "__main__":
    main()
