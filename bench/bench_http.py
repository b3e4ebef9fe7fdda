"""Throughput and latency over streamable HTTP: concurrent agents calling an allowed read tool through the ArgoBox
daemon, against a bare `mcp` HTTP server doing the same adapter work (no tokens, policy, queue or audit).

Both servers run as subprocesses on 127.0.0.1 (free ports) and are driven by the official client, one HTTP client
and one MCP connection per agent, in the protocol era(s) chosen. Each round runs the agents against one server and
then the other, alternating which goes first, so machine noise hits both alike. Prints, per era: calls/s, p50 and
p99 latency for each server, and the ratios.

    python bench/bench_http.py [--agents 8] [--calls 100] [--rounds 3] [--mode auto|legacy|both]
                               [--baseline lowlevel|mcpserver] [--docker URL]

Without --docker (or ARGOBOX_TEST_DOCKER_HOST) it uses the simulated lab.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

HERE = Path(__file__).resolve().parent
ARGOBOX = Path(sys.executable).parent / "argobox"
WARMUP_CALLS = 10


def config_text(docker_line: str, agents: int) -> str:
    parts = [
        f'[storage]\npath = "bench.db"\n[docker]\n{docker_line}\n[[operators]]\nname = "alice"\n',
        "[limits]\nrequests_per_minute = 1000000\n",
    ]
    parts.extend(
        f'[agents.bench{i}]\ntoken_sha256 = "{hashlib.sha256(token(i).encode()).hexdigest()}"\n'
        f'[[agents.bench{i}.rules]]\ntools = ["docker_inspect_container"]\neffect = "allow"\n'
        for i in range(agents)
    )
    return "\n".join(parts)


def token(i: int) -> str:
    return f"bench-agent-{i}-token-0123456789abcdef"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def process(args: list[str], log: Path, ready: str, env: dict[str, str] | None = None) -> AsyncGenerator[str]:
    """Start a server; yield the first match group of `ready` in its output; stop it with SIGTERM."""
    with log.open("wb") as out:
        proc = await anyio.open_process(
            args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    output = anyio.Path(log)
    async with proc:
        try:
            with anyio.fail_after(30):
                # The server writes its log from another process: read it again until `ready` shows.
                while not (match := re.search(ready, await output.read_text(errors="replace"))):
                    if proc.returncode is not None:
                        sys.exit(f"{args[0]} exited:\n{await output.read_text(errors='replace')}")
                    await anyio.sleep(0.05)
            yield match[1]
        finally:
            with anyio.CancelScope(shield=True):
                proc.send_signal(signal.SIGTERM)
                with anyio.move_on_after(30) as waited:
                    await proc.wait()
                if waited.cancelled_caught:
                    proc.kill()
                    await proc.wait()


@asynccontextmanager
async def agents(url: str, tokens: list[str | None], mode: str) -> AsyncGenerator[list[Client]]:
    async with AsyncExitStack() as stack:
        clients: list[Client] = []
        for tok in tokens:
            headers = {"Authorization": f"Bearer {tok}"} if tok else {}
            http = await stack.enter_async_context(httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30)))
            client = await stack.enter_async_context(Client(streamable_http_client(url, http_client=http), mode=mode))
            await client.list_tools()  # as agents do; it also primes the client's output-schema check
            clients.append(client)
        yield clients


async def run_phase(clients: list[Client], calls: int, container: str, latencies: list[float]) -> float:
    """All agents at once, `calls` each; returns the wall time. Every call must succeed."""

    async def agent(client: Client) -> None:
        for _ in range(calls):
            start = time.perf_counter()
            result = await client.call_tool("docker_inspect_container", {"container": container})
            latencies.append((time.perf_counter() - start) * 1000)
            if result.is_error:
                raise SystemExit(f"a call failed: {result.content}")

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for client in clients:
            tg.start_soon(agent, client)
    return time.perf_counter() - start


async def measure(
    args: argparse.Namespace, workdir: Path, docker_line: str, bare_args: list[str], container: str
) -> None:
    config = workdir / "argobox.toml"
    config.write_text(config_text(docker_line, args.agents))
    bare_port = free_port()
    modes = ["auto", "legacy"] if args.mode == "both" else [args.mode]
    async with (
        process(
            [str(ARGOBOX), "--config", str(config), "serve", "--http", "127.0.0.1:0"],
            workdir / "daemon.log",
            r"serving MCP over streamable HTTP at (http://\S+/mcp)",
        ) as argobox_url,
        process(
            [sys.executable, str(HERE / "bare_server.py"), args.baseline, *bare_args, "--http", str(bare_port)],
            workdir / "bare.log",
            r"(Uvicorn running on http://\S+)",
            env={"PYTHONPATH": str(HERE.parent)},
        ),
    ):
        bare_url = f"http://127.0.0.1:{bare_port}/mcp"
        for mode in modes:
            tokens: list[str | None] = [token(i) for i in range(args.agents)]
            async with agents(argobox_url, tokens, mode) as ab, agents(bare_url, [None] * args.agents, mode) as bb:
                targets = {"argobox": ab, "bare": bb}
                for clients in targets.values():  # warm up both paths
                    await run_phase(clients, WARMUP_CALLS, container, [])
                latencies: dict[str, list[float]] = {"argobox": [], "bare": []}
                walls: dict[str, float] = {"argobox": 0.0, "bare": 0.0}
                for r in range(args.rounds):
                    order = ("argobox", "bare") if r % 2 == 0 else ("bare", "argobox")
                    for name in order:
                        walls[name] += await run_phase(targets[name], args.calls, container, latencies[name])
            report(mode, args, latencies, walls)


def report(mode: str, args: argparse.Namespace, latencies: dict[str, list[float]], walls: dict[str, float]) -> None:
    era = "2026-07-28" if mode == "auto" else "2025-11-25"
    print(f"\n[{era}] {args.agents} agents x {args.calls} calls x {args.rounds} rounds per server")
    throughput = {}
    for name, values in latencies.items():
        throughput[name] = len(values) / walls[name]
        print(
            f"{name:8s} n={len(values)} {throughput[name]:8.1f} calls/s  mean={statistics.mean(values):7.2f} ms  "
            f"p50={percentile(values, 0.5):7.2f} ms  p99={percentile(values, 0.99):7.2f} ms"
        )
    a, b = latencies["argobox"], latencies["bare"]
    print(
        f"ratio throughput (argobox / bare): {throughput['argobox'] / throughput['bare']:.3f}x   "
        f"latency p50 (argobox / bare): {percentile(a, 0.5) / percentile(b, 0.5):.3f}x   "
        f"p99: {percentile(a, 0.99) / percentile(b, 0.99):.3f}x"
    )


@asynccontextmanager
async def bench_container(base_url: str, name: str | None) -> AsyncGenerator[str]:
    """`name` if given; else a throw-away idle container of the test image (removed afterwards), else any one."""
    if name:
        yield name
        return
    import secrets

    import docker
    import docker.errors

    client = docker.DockerClient(base_url=base_url)
    created = None
    try:
        wanted = f"argobox-bench-{secrets.token_hex(4)}"
        try:
            created = client.containers.run(
                "argobox-test/busybox:latest",
                ["sh", "-c", 'trap "exit 0" TERM; while :; do sleep 1; done'],
                name=wanted,
                network_mode="none",
                detach=True,
                labels={"argobox.test": "1"},
            )
            yield wanted
        except docker.errors.ImageNotFound:
            found = [c.name for c in client.containers.list(all=True) if c.name]
            if not found:
                sys.exit("the Docker engine has no container to inspect; pass --container or create one")
            yield found[0]
    finally:
        if created is not None:
            created.remove(force=True)
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--calls", type=int, default=100, help="calls per agent per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--mode",
        choices=["auto", "legacy", "both"],
        default="both",
        help="client mode: auto speaks 2026-07-28, legacy the 2025-11-25 handshake",
    )
    parser.add_argument(
        "--baseline",
        choices=["lowlevel", "mcpserver"],
        default="lowlevel",
        help="bare server tier: lowlevel (what ArgoBox is built on; default) or the high-level MCPServer",
    )
    parser.add_argument("--docker", default=os.environ.get("ARGOBOX_TEST_DOCKER_HOST"))
    parser.add_argument("--container", default=None)
    args = parser.parse_args()
    anyio.run(run, args)


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="argobox-bench-http-") as tmp:
        workdir = Path(tmp)
        if args.docker:
            async with bench_container(args.docker, args.container) as container:
                print(f"backend: docker engine; container: {container}")
                await measure(args, workdir, f'base_url = "{args.docker}"', ["docker", args.docker], container)
        else:
            container = args.container or "jellyfin"
            print(f"backend: simulated lab; container: {container}")
            await measure(args, workdir, 'simulated_lab = "lab.json"', ["lab", str(workdir / "lab.json")], container)


if __name__ == "__main__":
    main()
