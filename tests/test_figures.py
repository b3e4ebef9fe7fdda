"""tests/figures.py: test files that write to the same figures file in one run keep each other's keys and add up the
keys they share; a file an earlier run left is replaced; anything but whole numbers is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import figures

add = figures.write_figures  # (not called by its name here: scripts/reliability.py runs the files that do)


@pytest.fixture
def path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "figures.json"
    monkeypatch.setenv(figures.VARIABLE, str(target))
    return target


def read(path: Path) -> dict[str, object]:
    found: dict[str, object] = json.loads(path.read_text())
    found.pop(figures.RUN_KEY)
    return found


def test_two_test_files_of_one_run_share_the_file_without_clobbering_each_other(path: Path) -> None:
    add({"crash_points": 9, "executions_expected": 15, "executions_seen": 15})
    add({"inputs": 10_056, "leaks": 0, "crashes": 0, "surfaces": {"agent_tools": 6_219, "http": 309}})
    add({"inputs": 44, "leaks": 1, "surfaces": {"http": 1, "stdio": 43}})

    assert read(path) == {
        "crash_points": 9,
        "executions_expected": 15,
        "executions_seen": 15,
        "inputs": 10_100,
        "leaks": 1,
        "crashes": 0,
        "surfaces": {"agent_tools": 6_219, "http": 310, "stdio": 43},
    }


def test_a_file_left_by_an_earlier_run_is_replaced(path: Path) -> None:
    path.write_text(json.dumps({"inputs": 999, "leaks": 3, figures.RUN_KEY: figures.RUN - 1}))

    add({"inputs": 5, "leaks": 0})

    assert read(path) == {"inputs": 5, "leaks": 0}


def test_figures_that_are_not_whole_numbers_are_refused(path: Path) -> None:
    for wrong in ({"inputs": 1.5}, {"leaks": {"a": 1}}, {"surfaces": {"a": "1"}}, {figures.RUN_KEY: 1}):
        with pytest.raises(ValueError, match="whole numbers"):
            add(wrong)  # type: ignore[arg-type]

    assert not path.exists()


def test_nothing_is_written_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(figures.VARIABLE, raising=False)

    assert add({"inputs": 1}) is None
