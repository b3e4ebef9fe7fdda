"""Regenerate the reliability figures of docs/security.md and the README: run the tests that report figures, then
print one table.

    python scripts/reliability.py            # run them (with the real backends, through scripts/test.sh) and print
    python scripts/reliability.py --from D   # only print the figures already in folder D (one <name>.json each)
    python scripts/reliability.py --json     # the merged figures as one JSON object instead of a table
    python scripts/reliability.py --write    # also write them into docs/security.md and the README (`make figures`)

A test file reports figures when ARGOBOX_FIGURES is set: it writes one JSON object to the file that variable names
(keys `inputs`, `crash_points`, `executions_expected`, `executions_seen`, `leaks`, as apply; other keys are ignored
here). This script finds those files (they mention ARGOBOX_FIGURES or call tests.figures.write_figures), runs each
one with a path of its own, and merges the objects. It exits 1 when a test fails or nothing is reported, and when
executions seen differ from executions expected or a leak was found.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import cast

REPO = Path(__file__).resolve().parents[1]
KEYS = ("inputs", "crash_points", "executions_expected", "executions_seen", "leaks")
HEADINGS = ("inputs", "crash points", "executions expected", "executions seen", "leaks")
MARKERS = ("write_figures(", "ARGOBOX_FIGURES")
BACKENDS = ("docker-engine", "homeassistant")
DOCS = REPO / "docs" / "security.md"
README = REPO / "README.md"


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
    """Run each of `files` through scripts/test.sh with ARGOBOX_FIGURES=<folder>/<its name>.json; the backends are
    started once for all of them (and stopped after, if they were not running before)."""
    started = [backend for backend in BACKENDS if _backend("status", backend).returncode != 0]
    status = 0
    try:
        for backend in BACKENDS:
            if _backend("start", backend).returncode != 0:
                raise SystemExit(f"reliability: scripts/{backend}.sh could not start; see its messages above")
        for file in files:
            env = {**os.environ, "ARGOBOX_FIGURES": str(folder / f"{Path(file).stem}.json")}
            command = ["bash", str(REPO / "scripts" / "test.sh"), "-q", "-p", "no:cacheprovider", file]
            print(f"reliability: running {file}", file=sys.stderr, flush=True)
            status |= subprocess.run(command, cwd=REPO, env=env, check=False).returncode
    finally:
        for backend in reversed(started):
            _backend("stop", backend)
    return status


def _backend(action: str, backend: str) -> subprocess.CompletedProcess[bytes]:
    """`scripts/<backend>.sh <action>`; its export lines are not needed here (scripts/test.sh reads them again)."""
    script = str(REPO / "scripts" / f"{backend}.sh")
    return subprocess.run(["bash", script, action], cwd=REPO, stdout=subprocess.DEVNULL, check=False)


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


def markdown_table(figures: dict[str, dict[str, int]]) -> str:
    """The table for docs/security.md: one row per test file, blank where a file does not report a figure."""
    rows = ["| test file | " + " | ".join(HEADINGS) + " |", "|---" * (len(KEYS) + 1) + "|"]
    rows += [f"| `{name}` | " + " | ".join(str(row.get(k, "")) for k in KEYS) + " |" for name, row in figures.items()]
    return "\n".join(rows)


def headline(total: dict[str, int]) -> str:
    """The README's lines: what the crash test and the fuzzer found, in figures."""
    lines: list[str] = []
    if "crash_points" in total:
        lines.append(
            f"- {total['crash_points']} crash points: {total.get('executions_expected', 0)} executions expected, "
            f"{total.get('executions_seen', 0)} seen by the engine; nothing ran twice or without its record"
        )
    if "inputs" in total:
        lines.append(f"- {total['inputs']:,} generated inputs: {total.get('leaks', 0)} leaks")
    return "\n".join(lines)


def write_block(path: Path, name: str, body: str) -> None:
    """Replace what lies between `<!-- name -->` and `<!-- /name -->` in `path` with `body`."""
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(rf"(<!-- {re.escape(name)} -->\n).*?(<!-- /{re.escape(name)} -->)", re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"reliability: {path} has no <!-- {name} --> ... <!-- /{name} --> block to write into")
    path.write_text(pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text, count=1), encoding="utf-8")


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
    parser.add_argument("--write", action="store_true", help="write them into docs/security.md and the README")
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
    if status or problems(total):
        return 1
    if args.write:
        write_block(DOCS, "figures", markdown_table(figures))
        write_block(README, "figures-headline", headline(total))
        print(f"reliability: wrote the figures into {DOCS.relative_to(REPO)} and README.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
