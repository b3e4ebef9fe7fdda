"""The runs of `bench_mediation.py`: ArgoBox and the bare `MCPServer` of `bare_reads.py` side by side, over stdio
and HTTP, one agent or several at once, and their cold start. The long-history run is in `mediation_history.py`."""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
import urllib.request
from collections.abc import AsyncGenerator, Generator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from bench_http import agents, bench_container, free_port, process
from mcp import Client, StdioServerParameters
from process_cpu import CpuMeter, has

HERE = Path(__file__).resolve().parent
ARGOBOX = Path(sys.executable).parent / "argobox"
BENCH_ENTITY = "sensor.argobox_bench_weather"
WARMUP = 20
TOOLS = ("docker_list_containers", "ha_get_state")
AGENT_TOKEN = "bench-agent-{}-token-0123456789abcdef"


@dataclass(frozen=True, slots=True)
class Ready:
    """The backends, with the container and the entity the reads read."""

    docker_url: str
    ha_url: str
    ha_token: str
    container: str
    entity: str

    def arguments(self, tool: str) -> dict[str, Any]:
        return {"all": True} if tool == "docker_list_containers" else {"entity_id": self.entity}

    def env(self) -> dict[str, str]:
        return {"ARGOBOX_HA_TOKEN": self.ha_token, "PYTHONPATH": str(HERE.parent)}

    def config(self, workdir: Path, name: str, *, agents: int = 0) -> Path:
        """An ArgoBox configuration: both backends, the store `name`.db, the agent `bench` (stdio) and `agents`
        agents with tokens (HTTP), each allowed both reads without a budget in the way."""
        parts = [
            f'[storage]\npath = "{name}.db"\n[docker]\nbase_url = "{self.docker_url}"\n'
            f'[homeassistant]\nurl = "{self.ha_url}"\n[[operators]]\nname = "alice"\n'
            "[limits]\nrequests_per_minute = 1000000\n"
        ]
        for agent, digest in [("bench", None)] + [
            (f"bench{i}", hashlib.sha256(AGENT_TOKEN.format(i).encode()).hexdigest()) for i in range(agents)
        ]:
            parts.append(f"[agents.{agent}]\n" + (f'token_sha256 = "{digest}"\n' if digest else ""))
            parts.append(f'[[agents.{agent}.rules]]\ntools = {json.dumps(list(TOOLS))}\neffect = "allow"\n')
        path = workdir / f"{name}.toml"
        path.write_text("\n".join(parts))
        return path

    def argobox_stdio(self, config: Path) -> StdioServerParameters:
        args = ["-m", "argobox", "--config", str(config), "serve", "--agent", "bench"]
        return StdioServerParameters(command=sys.executable, args=args, env=self.env())

    def bare_stdio(self) -> StdioServerParameters:
        args = [str(HERE / "bare_reads.py"), "--docker", self.docker_url, "--ha", self.ha_url]
        return StdioServerParameters(command=sys.executable, args=args, env=self.env())


@dataclass(frozen=True, slots=True)
class Backends:
    docker_url: str
    ha_url: str
    ha_token: str

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Backends:
        return cls(args.docker, args.ha.rstrip("/"), Path(args.ha_token_file).read_text().strip())

    @asynccontextmanager
    async def ready(self) -> AsyncGenerator[Ready]:
        async with bench_container(self.docker_url, None) as container:
            with bench_entity(self.ha_url, self.ha_token) as entity:
                yield Ready(self.docker_url, self.ha_url, self.ha_token, container, entity)


def weather_attributes() -> dict[str, object]:
    """A weather entity's attributes, as the met.no integration reports them (about 1.5 KB of JSON)."""
    forecast = [
        {
            "condition": ("cloudy", "rainy", "sunny", "partlycloudy")[i % 4],
            "datetime": f"2026-12-{7 + i:02d}T11:00:00+00:00",
            "precipitation": round(0.4 * i, 1),
            "temperature": 4.5 + i,
            "templow": -1.0 + i / 2,
            "wind_bearing": 180.0 + 10 * i,
            "wind_speed": 11.2 + i,
        }
        for i in range(5)
    ]
    return {
        "temperature": 3.9,
        "dew_point": 1.2,
        "temperature_unit": "°C",
        "humidity": 87,
        "cloud_coverage": 99.2,
        "pressure": 1002.3,
        "pressure_unit": "hPa",
        "wind_bearing": 202.6,
        "wind_speed": 16.6,
        "wind_speed_unit": "km/h",
        "visibility_unit": "km",
        "precipitation_unit": "mm",
        "attribution": "Weather forecast from met.no, delivered by the Norwegian Meteorological Institute.",
        "entity_picture": "https://api.met.no/images/weathericons/cloudy.png",
        "forecast": forecast,
        "friendly_name": "Forecast Home",
        "supported_features": 3,
        "updated": "2026-12-06T10:58:03.123456+00:00",
        "source": "met.no; station=18700; model=meps",
    }


@contextmanager
def bench_entity(url: str, token: str) -> Generator[str]:
    """Set the benchmark's entity in Home Assistant (through its REST API), and remove it afterwards."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = json.dumps({"state": "cloudy", "attributes": weather_attributes()}).encode()
    address = f"{url}/api/states/{BENCH_ENTITY}"
    with urllib.request.urlopen(urllib.request.Request(address, data=body, headers=headers, method="POST"), timeout=10):  # noqa: S310 - loopback, given
        pass
    try:
        yield BENCH_ENTITY
    finally:
        with urllib.request.urlopen(urllib.request.Request(address, headers=headers, method="DELETE"), timeout=10):  # noqa: S310
            pass


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Rounds:
    """Latencies (ms) by round, server and tool."""

    data: list[dict[str, dict[str, list[float]]]] = field(default_factory=list[dict[str, dict[str, list[float]]]])
    cpu: list[dict[str, float]] = field(default_factory=list[dict[str, float]])
    """CPU milliseconds each server process used per call, by round (both reads together)."""

    def new_round(self, servers: list[str]) -> dict[str, dict[str, list[float]]]:
        self.data.append({s: {t: [] for t in TOOLS} for s in servers})
        return self.data[-1]

    def tools(self) -> list[str]:
        return [t for t in TOOLS if self.data and all(values[t] for values in self.data[0].values())]

    def percentile(self, server: str, tool: str, q: float) -> list[float]:
        return [percentile(r[server][tool], q) for r in self.data]

    def added(self, tool: str, q: float, server: str = "argobox", base: str = "bare") -> list[float]:
        return [a - b for a, b in zip(self.percentile(server, tool, q), self.percentile(base, tool, q), strict=True)]

    def ratio(self, tool: str) -> list[float]:
        return [statistics.mean(r["argobox"][tool]) / statistics.mean(r["bare"][tool]) for r in self.data]

    def cpu_of(self, server: str) -> list[float]:
        return [r[server] for r in self.cpu if server in r]

    def cpu_added(self, server: str = "argobox", base: str = "bare") -> list[float]:
        return [r[server] - r[base] for r in self.cpu if server in r and base in r]


async def _timed(client: Client, tool: str, arguments: dict[str, Any], out: list[float]) -> None:
    start = time.perf_counter()
    result = await client.call_tool(tool, arguments)
    out.append((time.perf_counter() - start) * 1000)
    if result.is_error:
        raise SystemExit(f"{tool} failed: {result.content}")


async def interleave(
    clients: dict[str, Client], ready: Ready, *, rounds: int, calls: int, meters: dict[str, CpuMeter] | None = None
) -> Rounds:
    """Each round: `calls` calls of each tool on each server, rotating which server goes first; with `meters`, the
    CPU time each server process used in the round, per call."""
    for client in clients.values():  # warm every path
        for tool in TOOLS:
            for _ in range(WARMUP):
                await _timed(client, tool, ready.arguments(tool), [])
    found = Rounds()
    names = list(clients)
    for _ in range(rounds):
        current = found.new_round(names)
        before = {name: meter.ms() for name, meter in (meters or {}).items()}
        for i in range(calls):
            for tool in TOOLS:
                for name in names[i % len(names) :] + names[: i % len(names)]:
                    await _timed(clients[name], tool, ready.arguments(tool), current[name][tool])
        per_call = len(TOOLS) * calls
        found.cpu.append({name: (meter.ms() - before[name]) / per_call for name, meter in (meters or {}).items()})
    return found


async def interleaved_stdio(ready: Ready, workdir: Path, *, rounds: int, calls: int) -> Rounds:
    config = ready.config(workdir, "stdio")
    servers = {"argobox": ready.argobox_stdio(config), "bare": ready.bare_stdio()}
    async with AsyncExitStack() as stack:
        clients = {name: await stack.enter_async_context(Client(params)) for name, params in servers.items()}
        meters = {"argobox": CpuMeter(has(str(config))), "bare": CpuMeter(has("bare_reads.py", lacks="--http"))}
        return await interleave(clients, ready, rounds=rounds, calls=calls, meters=meters)


def http_meters(agent_count: int) -> dict[str, CpuMeter]:
    """The CPU meters of the two servers of `http_servers(..., agent_count)`."""
    return {
        "argobox": CpuMeter(has(f"http{agent_count}.toml", "--http")),
        "bare": CpuMeter(has("bare_reads.py", "--http")),
    }


@asynccontextmanager
async def http_servers(ready: Ready, workdir: Path, agent_count: int) -> AsyncGenerator[tuple[str, str]]:
    """The ArgoBox daemon and the bare server over streamable HTTP; yields their URLs."""
    config = ready.config(workdir, f"http{agent_count}", agents=agent_count)
    port = free_port()
    bare = [sys.executable, str(HERE / "bare_reads.py"), "--docker", ready.docker_url, "--ha", ready.ha_url]
    async with (
        process(
            [str(ARGOBOX), "--config", str(config), "serve", "--http", "127.0.0.1:0"],
            workdir / f"daemon{agent_count}.log",
            r"serving MCP over streamable HTTP at (http://\S+/mcp)",
            env=ready.env(),
        ) as argobox_url,
        process(
            [*bare, "--http", str(port)], workdir / f"bare{agent_count}.log", r"(Uvicorn running on)", env=ready.env()
        ),
    ):
        yield argobox_url, f"http://127.0.0.1:{port}/mcp"


async def interleaved_http(ready: Ready, workdir: Path, *, rounds: int, calls: int) -> Rounds:
    async with (
        http_servers(ready, workdir, 1) as (argobox_url, bare_url),
        agents(argobox_url, [AGENT_TOKEN.format(0)], "auto") as (argobox,),
        agents(bare_url, [None], "auto") as (bare,),
    ):
        clients = {"argobox": argobox, "bare": bare}
        return await interleave(clients, ready, rounds=rounds, calls=calls, meters=http_meters(1))


@dataclass
class Flood:
    argobox_rate: list[float] = field(default_factory=list[float])
    bare_rate: list[float] = field(default_factory=list[float])
    ratios: list[float] = field(default_factory=list[float])
    p99_added: list[float] = field(default_factory=list[float])
    cpu: dict[str, list[float]] = field(default_factory=lambda: {"argobox": [], "bare": []})
    """CPU milliseconds each server process used per call, by round."""


async def _phase(clients: list[Client], ready: Ready, calls: int, latencies: list[float]) -> float:
    """Every agent at once, `calls` calls each (the two reads in turn); returns the wall time."""

    async def agent(client: Client, first: int) -> None:
        for i in range(calls):
            tool = TOOLS[(first + i) % len(TOOLS)]
            await _timed(client, tool, ready.arguments(tool), latencies)

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for n, client in enumerate(clients):
            tg.start_soon(agent, client, n)
    return time.perf_counter() - start


async def concurrent_http(ready: Ready, workdir: Path, *, rounds: int, agents: int, calls: int) -> Flood:
    tokens: list[str | None] = [AGENT_TOKEN.format(i) for i in range(agents)]
    found = Flood()
    async with (
        http_servers(ready, workdir, agents) as (argobox_url, bare_url),
        _agents(argobox_url, tokens) as argobox,
        _agents(bare_url, [None] * agents) as bare,
    ):
        targets = {"argobox": argobox, "bare": bare}
        meters = http_meters(agents)
        for clients in targets.values():
            await _phase(clients, ready, 5, [])
        for r in range(rounds):
            rate: dict[str, float] = {}
            p99: dict[str, float] = {}
            for name in ("argobox", "bare") if r % 2 == 0 else ("bare", "argobox"):
                latencies: list[float] = []
                before = meters[name].ms()
                wall = await _phase(targets[name], ready, calls, latencies)
                found.cpu[name].append((meters[name].ms() - before) / len(latencies))
                rate[name], p99[name] = len(latencies) / wall, percentile(latencies, 0.99)
            found.argobox_rate.append(rate["argobox"])
            found.bare_rate.append(rate["bare"])
            found.ratios.append(rate["argobox"] / rate["bare"])
            found.p99_added.append(p99["argobox"] - p99["bare"])
    return found


def _agents(url: str, tokens: list[str | None]) -> Any:
    return agents(url, tokens, "auto")


@dataclass
class Cold:
    argobox: list[float] = field(default_factory=list[float])
    bare: list[float] = field(default_factory=list[float])
    ratios: list[float] = field(default_factory=list[float])


async def _first_listing(params: StdioServerParameters) -> float:
    """Milliseconds from starting the server to the answer of its first tools/list."""
    start = time.perf_counter()
    async with Client(params) as client:
        listed = await client.list_tools()
        elapsed = (time.perf_counter() - start) * 1000
    if {t.name for t in listed.tools} < set(TOOLS):
        raise SystemExit(f"the first tools/list lacks a read: {[t.name for t in listed.tools]}")
    return elapsed


async def cold_start(ready: Ready, workdir: Path, *, runs: int) -> Cold:
    """Starts of each server in turn (the store already exists, as after the first start); one of each first to
    warm the file cache."""
    servers = {"argobox": ready.argobox_stdio(ready.config(workdir, "cold")), "bare": ready.bare_stdio()}
    for params in servers.values():
        await _first_listing(params)
    found = Cold()
    for i in range(runs):
        order = ("argobox", "bare") if i % 2 == 0 else ("bare", "argobox")
        timings = {name: await _first_listing(servers[name]) for name in order}
        found.argobox.append(timings["argobox"])
        found.bare.append(timings["bare"])
        found.ratios.append(timings["argobox"] / timings["bare"])
    return found
