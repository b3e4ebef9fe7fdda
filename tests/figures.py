"""Figures a test file reports about itself (inputs tried, crash points, executions, leaks), for the README.

When the environment variable ARGOBOX_FIGURES names a folder, `write_figures("test_crash", {...})` writes
`<folder>/test_crash.json`: one JSON object per test file, with the keys that apply among FIGURE_KEYS, each a
whole number. `scripts/reliability.py` runs the tests with it set and merges the files into one table; the format
is described in docs/security.md. Without ARGOBOX_FIGURES nothing is written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

FIGURE_KEYS = ("inputs", "crash_points", "executions_expected", "executions_seen", "leaks")
"""Inputs tried; crash points where a process was killed and recovered; executions the scenario calls for and
executions the backend itself reported; secrets or tracebacks found where they must not be."""


def figures_folder() -> Path | None:
    """The folder named by ARGOBOX_FIGURES, or None when figures are not asked for."""
    folder = os.environ.get("ARGOBOX_FIGURES")
    return Path(folder) if folder else None


def write_figures(name: str, figures: dict[str, int]) -> Path | None:
    """Write `figures` as `<ARGOBOX_FIGURES>/<name>.json` (replacing an older one); the path, or None when unset."""
    folder = figures_folder()
    if folder is None:
        return None
    unknown = set(figures) - set(FIGURE_KEYS)
    if unknown:
        raise ValueError(f"unknown figure keys {sorted(unknown)}; use only {', '.join(FIGURE_KEYS)}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    return path
