"""Regenerate the reliability figures of docs/security.md and the README: run the tests that report figures, then
print one table.

    python scripts/reliability.py            # run them (with the real backends, through scripts/test.sh) and print
    python scripts/reliability.py --from D   # only print the figures already in folder D
    python scripts/reliability.py --json     # the merged figures as one JSON object instead of a table

A test file reports figures by calling `tests.figures.write_figures` (or by reading ARGOBOX_FIGURES itself): this
script finds those files, runs them with ARGOBOX_FIGURES set to a folder, and merges the JSON object each one wrote
there (keys `inputs`, `crash_points`, `executions_expected`, `executions_seen`, `leaks`, as apply). It exits 1 when
the tests fail or report nothing, and when executions seen differ from executions expected or a leak was found.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import cast

REPO = Path(__file__).resolve().parents[1]
KEYS = ("inputs", "crash_points", "executions_expected", "executions_seen", "leaks")
HEADINGS = ("inputs", "crash points", "executions expected", "executions seen", "leaks")
MARKERS = ("write_figures(", "ARGOBOX_FIGURES")


def reporting_tests() -> list[str]:
    """The test files that report figures, relative to the repository."""
    found = [
        path.relative_to(REPO).as_posix()
        for path in sorted((REPO / "tests").rglob("test_*.py"))
        if any(marker in path.read_text(encoding="utf-8") for marker in MARKERS)
    ]
    if not found:
        raise SystemExit("reliability: no test file reports figures (none calls tests.figures.write_figures)")
    return found


def run_tests(files: list[str], folder: Path) -> int:
    """Run `files` through scripts/test.sh (which starts the backends they need) with ARGOBOX_FIGURES=folder."""
    env = {**os.environ, "ARGOBOX_FIGURES": str(folder)}
    command = ["bash", str(REPO / "scripts" / "test.sh"), "-q", "-p", "no:cacheprovider", *files]
    print(f"reliability: running {' '.join(files)}", file=sys.stderr, flush=True)
    return subprocess.run(command, cwd=REPO, env=env, check=False).returncode


def read_figures(folder: Path) -> dict[str, dict[str, int]]:
    """Each `<name>.json` of `folder`: the figures of one test file, by name."""
    figures: dict[str, dict[str, int]] = {}
    for path in sorted(folder.glob("*.json")):
        data: object = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise SystemExit(f"reliability: {path} holds {type(data).__name__}, not a JSON object of figures")
        fields = cast(dict[str, object], data)
        figures[path.stem] = {key: int(str(fields[key])) for key in KEYS if key in fields}
    return figures


def merged(figures: dict[str, dict[str, int]]) -> dict[str, int]:
    """The figures of every file added up (a key no file reports is left out)."""
    total: dict[str, int] = {}
    for row in figures.values():
        for key, value in row.items():
            total[key] = total.get(key, 0) + value
    return total


def table(figures: dict[str, dict[str, int]]) -> str:
    """One row per test file and a total, in columns; "-" where a file does not report a figure."""
    rows = [("test file", *HEADINGS)]
    rows += [(name, *(str(row[k]) if k in row else "-" for k in KEYS)) for name, row in figures.items()]
    total = merged(figures)
    rows.append(("total", *(str(total[k]) if k in total else "-" for k in KEYS)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:-1], "-" * len(lines[0]), lines[-1]])


def problems(total: dict[str, int]) -> list[str]:
    """What in the figures is a failure, whatever the tests said."""
    found: list[str] = []
    if total.get("executions_seen", 0) != total.get("executions_expected", 0):
        found.append(f"executions seen {total.get('executions_seen')} != expected {total.get('executions_expected')}")
    if total.get("leaks", 0):
        found.append(f"{total['leaks']} leaks found")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--from", dest="source", metavar="FOLDER", help="print the figures in FOLDER; run nothing")
    parser.add_argument("--json", action="store_true", help="print the merged figures as one JSON object")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="argobox-figures-") as scratch:
        folder = Path(args.source) if args.source else Path(scratch)
        status = 0 if args.source else run_tests(reporting_tests(), folder)
        figures = read_figures(folder)
    if not figures:
        print("reliability: the tests wrote no figures", file=sys.stderr)
        return 1
    total = merged(figures)
    print(json.dumps({"files": figures, "total": total}, indent=2, sort_keys=True) if args.json else table(figures))
    for problem in problems(total):
        print(f"reliability: {problem}", file=sys.stderr)
    return 1 if status or problems(total) else 0


if __name__ == "__main__":
    sys.exit(main())
