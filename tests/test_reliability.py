"""scripts/reliability.py merges the figures the tests write (one JSON object per test file) into one table."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "reliability.py"


@dataclass
class Report:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def script() -> Any:
    """scripts/reliability.py, loaded as a module."""
    spec = importlib.util.spec_from_file_location("reliability", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def report(script: Any, capsys: pytest.CaptureFixture[str]) -> Any:
    """Run the script on a folder of figures already written: its exit status and output."""

    def run(folder: Path, *args: str) -> Report:
        code = script.main(["--from", str(folder), *args])
        out, err = capsys.readouterr()
        return Report(code, out, err)

    return run


def test_the_figures_of_each_test_file_are_added_up_in_one_table(tmp_path: Path, report: Any) -> None:
    (tmp_path / "test_crash.json").write_text(
        json.dumps({"crash_points": 8, "executions_expected": 16, "executions_seen": 16})
    )
    (tmp_path / "test_fuzz.json").write_text(json.dumps({"inputs": 10240, "leaks": 0}))

    shown = report(tmp_path)
    merged = json.loads(report(tmp_path, "--json").stdout)

    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[-1].split() == ["total", "10240", "8", "16", "16", "0"]
    assert merged["total"] == {
        "inputs": 10240,
        "crash_points": 8,
        "executions_expected": 16,
        "executions_seen": 16,
        "leaks": 0,
    }
    assert merged["files"]["test_fuzz"] == {"inputs": 10240, "leaks": 0}


def test_a_leak_or_an_execution_too_many_fails_the_report(tmp_path: Path, report: Any) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"executions_expected": 2, "executions_seen": 3, "leaks": 1}))

    shown = report(tmp_path)

    assert shown.returncode == 1
    assert "executions seen 3 != expected 2" in shown.stderr and "1 leaks found" in shown.stderr


def test_no_figures_is_a_failure_not_an_empty_table(tmp_path: Path, report: Any) -> None:
    shown = report(tmp_path)

    assert shown.returncode == 1 and "wrote no figures" in shown.stderr


def test_the_figures_are_written_between_their_markers_and_nowhere_else(tmp_path: Path, script: Any) -> None:
    module = script
    page = tmp_path / "page.md"
    page.write_text("before\n<!-- figures -->\nold\n<!-- /figures -->\nafter\n")
    figures = {"test_crash": {"crash_points": 9, "executions_expected": 15, "executions_seen": 15}}

    module.write_block(page, "figures", module.markdown_table(figures))
    line = module.headline(module.merged({**figures, "test_fuzz": {"inputs": 10240, "leaks": 0}}))

    assert page.read_text().splitlines() == [
        "before",
        "<!-- figures -->",
        "| test file | inputs | crash points | executions expected | executions seen | leaks |",
        "|---|---|---|---|---|---|",
        "| `test_crash` |  | 9 | 15 | 15 |  |",
        "<!-- /figures -->",
        "after",
    ]
    assert line.splitlines() == [
        "- 9 crash points: 15 executions expected, 15 seen by the engine; nothing ran twice or without its record",
        "- 10,240 generated inputs: 0 leaks",
    ]
