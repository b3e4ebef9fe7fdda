"""What each SQL statement of a read call costs inside ArgoBox's store, in one process.

    python bench/store_statements.py [--tool docker_list_containers|ha_get_state] [--calls 2000]

The backends answer at once, as in `mediation_cpu.py`, and the real store is used: the admission committed before
the backend is asked, the outcome after the answer. After a warm-up, every statement run on the store's connection
is timed (its wall time, on whichever thread runs it) and the totals are printed per call, the costliest first.
Machine noise moves each figure; the ranking and the share of the commits is what this is for.
"""

from __future__ import annotations

import argparse
import gc
import sqlite3
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import anyio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from mediation_cpu import ARGUMENTS, CONFIG, Engine, Home  # noqa: E402
from mediation_runs import TOOLS  # noqa: E402

from argobox.server.app import open_app  # noqa: E402
from argobox.server.config.model import load_config  # noqa: E402
from argobox.server.mediation import agent_calls  # noqa: E402
from argobox.server.transport.agent import _result  # pyright: ignore[reportPrivateUsage]  # noqa: E402

WARMUP_CALLS = 300
GAP_S = 0.001
"""The client's turn between two calls."""


class TimedConnection:
    """A sqlite3 connection whose `execute` and `executemany` add their wall time to `totals`, by statement."""

    def __init__(self, inner: sqlite3.Connection, totals: dict[str, list[float]]) -> None:
        self._inner = inner
        self._totals = totals

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _timed(self, key: str, started: float) -> None:
        entry = self._totals[" ".join(key.split())[:100]]
        entry[0] += 1
        entry[1] += time.perf_counter() - started

    def execute(self, sql: str, parameters: Any = ()) -> sqlite3.Cursor:
        started = time.perf_counter()
        try:
            return self._inner.execute(sql, parameters)
        finally:
            self._timed(sql, started)

    def executemany(self, sql: str, rows: Iterable[Any]) -> sqlite3.Cursor:
        started = time.perf_counter()
        try:
            return self._inner.executemany(sql, rows)
        finally:
            self._timed("(many) " + sql, started)


async def measure(tool: str, calls: int) -> dict[str, list[float]]:
    """Each statement's [count, seconds] over `calls` calls of `tool`, after the warm-up."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    with tempfile.TemporaryDirectory(prefix="argobox-bench-sql-") as tmp:
        path = Path(tmp) / "sql.toml"
        path.write_text(CONFIG)
        async with open_app(load_config(path), docker=Engine(), homeassistant=Home()) as app:  # type: ignore[arg-type]
            gc.freeze()  # as `argobox serve` does once started

            async def run(count: int) -> None:
                for _ in range(count):
                    outcome = await agent_calls.call_tool(app, "bench", tool, ARGUMENTS[tool])
                    _result(outcome, app.redactor).model_dump_json(by_alias=True, exclude_unset=True)
                    app.store.answered()
                    await anyio.sleep(GAP_S)

            connection = app.store._connection  # pyright: ignore[reportPrivateUsage]
            await run(WARMUP_CALLS)
            await connection.catch_up()
            db = connection.db
            db._connection = TimedConnection(db._connection, totals)  # type: ignore[assignment]
            await run(calls)
            await connection.catch_up()
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tool", choices=TOOLS, default=TOOLS[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    totals = anyio.run(measure, args.tool, args.calls)
    whole = sum(seconds for _, seconds in totals.values())
    print(f"{args.tool}: {args.calls} calls, SQL {whole / args.calls * 1e6:.1f} us a call")
    for statement, (count, seconds) in sorted(totals.items(), key=lambda item: -item[1][1]):
        print(f"{seconds / args.calls * 1e6:8.1f} us a call  {int(count) / args.calls:4.1f}x  {statement}")


if __name__ == "__main__":
    main()
