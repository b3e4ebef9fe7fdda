"""Where the time of one read call goes inside `argobox serve`, between the client's request and its answer.

    python bench/profile_call.py [--calls 300] [--cprofile FILE]

Needs the backends of `bench_mediation.py` (ARGOBOX_TEST_DOCKER_HOST, ARGOBOX_TEST_HA_URL,
ARGOBOX_TEST_HA_TOKEN_FILE; `make bench` and scripts/test.sh start them). The stdio server is started through this
same file (`--serve`), which wraps the real functions at the steps of a call with timestamps (no hook in ArgoBox
itself) and then runs `argobox serve` unchanged; the official client makes `--calls` calls of each read, one at a
time. Printed: for each read, the median and 90th percentile of each step, on the event loop or in a worker thread,
and the pauses of the garbage collector. With `--cprofile FILE`, the event loop's thread is also profiled with
cProfile from the end of the warm-up (start-up left out) and its heaviest functions by own time are printed.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

WARMUP_CALLS = 30
"""Calls made before the profiler starts, and left out of the step timings."""
STEPS = [
    ("line", "the request's line read from stdin"),
    ("call", "the SDK parsed it and called ArgoBox's handler"),
    ("admitted", "grant, validation, policy, budgets: the decision committed"),
    ("backend", "the backend's work (a worker thread)"),
    ("outcome", "result redacted, serialised, the outcome left behind"),
    ("written", "the answer built, serialised by the SDK and written"),
    ("recorded", "after the answer: the outcome committed"),
]


class Marks:
    """Timestamps of the steps of the call in progress, one list per call, written to a file when serving ends."""

    def __init__(self, path: str, profile: str | None = None) -> None:
        self.path = path
        self.profile_path = profile
        self.profiler = cProfile.Profile() if profile else None
        self.calls: list[dict[str, Any]] = []
        self.current: dict[str, Any] = {}
        self.gc_pauses: list[float] = []
        self._gc_start = 0.0

    def mark(self, name: str, **facts: Any) -> None:
        self.current.setdefault(name, time.perf_counter())
        self.current.update(facts)

    def next_call(self) -> None:
        if "line" in self.current and "written" in self.current:
            self.calls.append(self.current)
            if self.profiler is not None and len(self.calls) == WARMUP_CALLS:
                self.profiler.enable()  # what serving costs, without the start and the first calls
        self.current = {}

    def gc(self, phase: str, info: dict[str, Any]) -> None:
        if not self.calls:  # starting up and warming up: not serving yet
            return
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.gc_pauses.append((time.perf_counter() - self._gc_start) * 1000)

    def dump(self) -> None:
        self.next_call()
        if self.profiler is not None and self.profile_path:
            self.profiler.disable()
            self.profiler.dump_stats(self.profile_path)
        Path(self.path).write_text(json.dumps({"calls": self.calls, "gc": self.gc_pauses}))


def install(marks: Marks) -> None:
    """Wrap the functions at the steps of a call (see STEPS)."""
    from argobox.server.mediation import agent_calls
    from argobox.server.store import Store, connection
    from argobox.server.transport import pipes, stdio

    original_readline = pipes.LineReader.readline

    async def readline(self: Any, limit: int) -> bytes:
        line = await original_readline(self, limit)
        if b'"tools/call"' in line:
            marks.next_call()
            marks.mark("line")
        return line

    pipes.LineReader.readline = readline
    stdio.LineReader = pipes.LineReader

    original_call = agent_calls.call_tool

    async def call_tool(app: Any, agent: str, tool: str, raw_args: dict[str, Any]) -> Any:
        marks.mark("call", tool=tool)
        outcome = await original_call(app, agent, tool, raw_args)
        marks.mark("outcome")
        return outcome

    agent_calls.call_tool = call_tool

    original_admit = Store.admit

    async def admit(self: Any, *args: Any, **kwargs: Any) -> Any:
        admission = await original_admit(self, *args, **kwargs)
        marks.mark("admitted")
        return admission

    Store.admit = admit

    import anyio.to_thread

    original_run_sync = anyio.to_thread.run_sync

    async def run_sync(func: Any, *args: Any, **kwargs: Any) -> Any:
        result = await original_run_sync(func, *args, **kwargs)
        if "admitted" in marks.current:
            marks.mark("backend")
        return result

    anyio.to_thread.run_sync = run_sync

    original_flush = pipes.Writer.flush

    async def flush(self: Any) -> None:
        await original_flush(self)
        if "outcome" in marks.current:
            marks.mark("written")

    pipes.Writer.flush = flush

    original_write = connection.Connection._write_behind  # pyright: ignore[reportPrivateUsage]

    async def write_behind(self: Any, behind: Any) -> None:
        await original_write(self, behind)
        marks.mark("recorded")

    connection.Connection._write_behind = write_behind  # pyright: ignore[reportPrivateUsage]


def serve(argv: list[str]) -> int:
    marks = Marks(os.environ["ARGOBOX_PROFILE_MARKS"], os.environ.get("ARGOBOX_PROFILE_CPROFILE"))
    install(marks)
    gc.callbacks.append(marks.gc)
    from argobox.server.cli import main as argobox

    try:
        return argobox(argv)
    finally:
        marks.dump()


def report(path: Path) -> None:
    found = json.loads(path.read_text())
    by_tool: dict[str, list[dict[str, Any]]] = {}
    for call in found["calls"]:
        by_tool.setdefault(call["tool"], []).append(call)
    for tool, made in by_tool.items():
        calls = made[WARMUP_CALLS // 2 :]  # each tool's share of the warm-up
        print(f"\n{tool}: {len(calls)} calls (ms, median / 90th percentile)")
        previous = "line"
        for step, what in STEPS[1:]:
            took = [(c[step] - c[previous]) * 1000 for c in calls if step in c and previous in c]
            if took:
                took.sort()
                print(f"  {step:<9} {statistics.median(took):6.3f} / {took[int(0.9 * len(took))]:6.3f}  {what}")
            previous = step if step != "recorded" else previous
        total = sorted((c["written"] - c["line"]) * 1000 for c in calls)
        p90 = total[int(0.9 * len(total))]
        print(f"  {'total':<9} {statistics.median(total):6.3f} / {p90:6.3f}  line in to answer out")
    pauses = sorted(found["gc"])
    if pauses:
        print(
            f"\ngarbage collections while serving: {len(pauses)}, median {statistics.median(pauses):.2f} ms, "
            f"longest {pauses[-1]:.2f} ms, {sum(pauses):.0f} ms in all"
        )


async def drive(args: argparse.Namespace, backends: Any, me: str) -> None:
    from mcp import Client, StdioServerParameters
    from mediation_runs import TOOLS

    with tempfile.TemporaryDirectory(prefix="argobox-profile-") as tmp:
        workdir = Path(tmp)
        marks = workdir / "marks.json"
        async with backends.ready() as ready:
            config = ready.config(workdir, "profile")
            command = [me, "--serve", "--config", str(config), "serve", "--agent", "bench"]
            env = {**ready.env(), "ARGOBOX_PROFILE_MARKS": str(marks)}
            if args.cprofile:
                env["ARGOBOX_PROFILE_CPROFILE"] = args.cprofile
            async with Client(StdioServerParameters(command=sys.executable, args=command, env=env)) as client:
                for _ in range(args.calls):
                    for tool in TOOLS:
                        result = await client.call_tool(tool, ready.arguments(tool))
                        if result.is_error:
                            raise SystemExit(f"{tool} failed: {result.content}")
        if args.cprofile:
            import pstats

            pstats.Stats(args.cprofile).sort_stats("tottime").print_stats(args.top)
        else:
            report(marks)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        sys.exit(serve(sys.argv[2:]))
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="calls of each read")
    parser.add_argument("--cprofile", help="profile the server's event loop with cProfile, writing its statistics here")
    parser.add_argument("--top", type=int, default=40, help="functions printed with --cprofile")
    args = parser.parse_args()
    import anyio
    from mediation_runs import Backends

    if args.cprofile:
        args.cprofile = str(Path(args.cprofile).resolve())
    backends = Backends(
        os.environ["ARGOBOX_TEST_DOCKER_HOST"],
        os.environ["ARGOBOX_TEST_HA_URL"].rstrip("/"),
        Path(os.environ["ARGOBOX_TEST_HA_TOKEN_FILE"]).read_text().strip(),
    )
    anyio.run(drive, args, backends, str(Path(__file__).resolve()))


if __name__ == "__main__":
    main()
