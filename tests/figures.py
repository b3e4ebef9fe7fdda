"""Figures a test file reports about itself (inputs tried, crash points, executions, leaks), for the README.

When the environment variable ARGOBOX_FIGURES is set, it is the path of a JSON file: the test file writes its
figures there as one JSON object, with the keys that apply among FIGURE_KEYS, each a whole number (other keys are
allowed and ignored by the table). `scripts/reliability.py` runs each test file that reports figures with a path of
its own, then merges the objects into one table; docs/security.md describes the format. Unset: nothing is written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

FIGURE_KEYS = ("inputs", "crash_points", "executions_expected", "executions_seen", "leaks")
"""Inputs tried; crash points where a process was killed and recovered; executions the scenario calls for and
executions the backend itself reported; secrets or tracebacks found where they must not be."""


def write_figures(figures: dict[str, int]) -> Path | None:
    """Write `figures` to the file ARGOBOX_FIGURES names (replacing it); its path, or None when it is unset."""
    path = os.environ.get("ARGOBOX_FIGURES")
    if not path:
        return None
    unknown = set(figures) - set(FIGURE_KEYS)
    if unknown:
        raise ValueError(f"unknown figure keys {sorted(unknown)}; use only {', '.join(FIGURE_KEYS)}")
    Path(path).write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    return Path(path)
