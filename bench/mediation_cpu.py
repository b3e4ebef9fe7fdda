"""ArgoBox's own work for one read call, in one process, with backends that answer at once: what mediation costs
whatever the backends do, and a figure the load of a shared machine moves much less than the latencies of processes.

The two backends return what the real ones return for the reads of `bench_mediation.py` (a container list, and the
weather-like entity with its attributes), already built: only ArgoBox's steps are measured, the real store included
(admission committed before the backend is asked, outcome after, the hash chain, the budgets). Between two calls the
loop is idle for GAP_S, as while a client reads an answer, so that the outcome is written as in a server. For each
read: the wall time and the CPU time of the answer's path (from the call to the serialised answer), and the CPU time
of the whole call, the outcome's write included (process CPU time over blocks of calls, median block).
"""

from __future__ import annotations

import gc
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import anyio
from mediation_runs import BENCH_ENTITY, TOOLS, weather_attributes

from argobox.adapters.base import ContainerSummary, EntityDetail, bounded_attributes
from argobox.server.app import open_app
from argobox.server.config.model import load_config
from argobox.server.mediation import agent_calls
from argobox.server.transport.agent import _result  # pyright: ignore[reportPrivateUsage]

CONFIG = """[storage]
path = "cpu.db"
[docker]
base_url = "unix:///nonexistent/docker.sock"
[homeassistant]
url = "http://127.0.0.1:9"
[[operators]]
name = "alice"
[limits]
requests_per_minute = 1000000
[agents.bench]
[[agents.bench.rules]]
tools = ["docker_list_containers", "ha_get_state"]
effect = "allow"
"""
GAP_S = 0.003
"""The client's turn between two calls."""
ARGUMENTS = {"docker_list_containers": {"all": True}, "ha_get_state": {"entity_id": BENCH_ENTITY}}


class Engine:
    """One idle container, as the bench's engine has."""

    async def list_containers(self, *, all: bool) -> list[ContainerSummary]:
        return [
            ContainerSummary(
                id="0123456789ab",
                name="argobox-bench-0a1b2c3d",
                image="argobox-test/busybox:latest",
                state="running",
                status="Up 2 minutes",
            )
        ]

    async def aclose(self) -> None:
        pass


class Home:
    """The bench's weather entity."""

    async def get_state(self, entity_id: str) -> EntityDetail:
        return EntityDetail(
            entity_id=entity_id,
            name="Forecast Home",
            state="cloudy",
            domain="sensor",
            last_changed="2026-12-06T10:58:03.123456+00:00",
            last_updated="2026-12-06T10:58:03.123456+00:00",
            attributes=bounded_attributes(weather_attributes()),
        )

    async def aclose(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Own:
    answer_p50_ms: float
    """Wall time of the answer's path, median call."""
    answer_p99_ms: float
    answer_cpu_ms: float
    """CPU time of the answer's path, median call."""
    whole_cpu_ms: float
    """CPU time of the whole call, the outcome's write included, median block of calls."""


async def own_work(*, calls: int = 300, blocks: int = 5) -> dict[str, Own]:
    """Each read's `Own` figures, after a warm-up block."""
    found: dict[str, Own] = {}
    with tempfile.TemporaryDirectory(prefix="argobox-bench-cpu-") as tmp:
        path = Path(tmp) / "cpu.toml"
        path.write_text(CONFIG)
        config = load_config(path)
        async with open_app(config, docker=Engine(), homeassistant=Home()) as app:  # type: ignore[arg-type]
            gc.freeze()  # as `argobox serve` does once started
            for tool in TOOLS:
                walls: list[float] = []
                cpus: list[float] = []
                wholes: list[float] = []
                for block in range(blocks + 1):
                    started = time.process_time()
                    for _ in range(calls):
                        wall, cpu = time.perf_counter(), time.thread_time()
                        outcome = await agent_calls.call_tool(app, "bench", tool, ARGUMENTS[tool])
                        _result(outcome, app.redactor).model_dump_json(by_alias=True, exclude_unset=True)
                        if block:  # the first block warms up
                            walls.append(time.perf_counter() - wall)
                            cpus.append(time.thread_time() - cpu)
                        app.store.answered()  # the answer is out: the outcome is written meanwhile
                        await anyio.sleep(GAP_S)
                    if block:
                        wholes.append((time.process_time() - started) / calls)
                walls.sort()
                found[tool] = Own(
                    statistics.median(walls) * 1000,
                    walls[int(0.99 * len(walls))] * 1000,
                    statistics.median(cpus) * 1000,
                    statistics.median(wholes) * 1000,
                )
    return found
