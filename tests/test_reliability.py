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


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]) -> Any:
    spec = importlib.util.spec_from_file_location("reliability", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def run(folder: Path, *args: str) -> Report:
        code = module.main(["--from", str(folder), *args])
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
