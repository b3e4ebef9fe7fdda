"""Figures a test file reports about itself (inputs tried, crash points, executions, leaks), for the README.

When the environment variable ARGOBOX_FIGURES is set, it is the path of a JSON file: each test file that reports
figures adds them there, into one JSON object, with the keys that apply among FIGURE_KEYS, each a whole number (other
keys are allowed and ignored by the table, e.g. the fuzzer's inputs per surface as an object of whole numbers).
Several test files of one run may write to the same path: their keys are kept side by side and the same key adds up,
so the crash test and the fuzzer can share a file; a file left by an earlier run is replaced. `scripts/reliability.py`
runs each test file that reports figures with a path of its own, then merges the objects into one table;
docs/security.md describes the format. Unset: nothing is written.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

FIGURE_KEYS = ("inputs", "crash_points", "executions_expected", "executions_seen", "leaks")
"""Inputs tried; crash points where a process was killed and recovered; executions the scenario calls for and
executions the backend itself reported; secrets or tracebacks found where they must not be."""
VARIABLE = "ARGOBOX_FIGURES"
RUN_KEY = "run"
RUN = time.time_ns()
"""This test process: what it writes adds up with what it wrote before; another run's file is replaced."""

Figures = Mapping[str, int | Mapping[str, int]]


def write_figures(figures: Figures) -> Path | None:
    """Add `figures` to the file ARGOBOX_FIGURES names (see the module); its path, or None when it is unset."""
    path = os.environ.get(VARIABLE)
    if not path:
        return None
    for key, value in figures.items():
        if key == RUN_KEY or not _whole(value, nested=key not in FIGURE_KEYS):
            raise ValueError(
                f"figure {key!r} = {value!r}: use whole numbers ({', '.join(FIGURE_KEYS)}), or for another key an "
                f"object of whole numbers, and not the key {RUN_KEY!r}"
            )
    target = Path(path)
    merged = _added(_this_run(target), figures)
    merged[RUN_KEY] = RUN
    scratch = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    scratch.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    scratch.replace(target)  # whole or not at all: a reader never sees half an object
    return target


def _whole(value: object, *, nested: bool) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return True
    if nested and isinstance(value, Mapping):
        return all(_whole(v, nested=False) for v in cast(Mapping[str, object], value).values())
    return False


def _this_run(path: Path) -> dict[str, Any]:
    """The figures already in `path` from this run; nothing when there are none, or they are another run's."""
    try:
        found: object = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    if not isinstance(found, dict):
        return {}
    figures = cast(dict[str, Any], found)
    return figures if figures.get(RUN_KEY) == RUN else {}


def _added(current: dict[str, Any], figures: Figures) -> dict[str, Any]:
    """`current` with `figures` added: a whole number to the same key's, an object key by key."""
    merged = dict(current)
    for key, value in figures.items():
        before = merged.get(key)
        if isinstance(value, Mapping):
            inner: dict[str, int] = dict(before) if isinstance(before, dict) else {}  # pyright: ignore[reportUnknownArgumentType]
            for name, count in value.items():
                inner[name] = inner.get(name, 0) + count
            merged[key] = inner
        else:
            merged[key] = (before if isinstance(before, int) else 0) + value
    return merged
