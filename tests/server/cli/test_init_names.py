"""`argobox init` refuses an agent or operator name that is not a configured name, in one line, before writing."""

from __future__ import annotations

from pathlib import Path

import pytest

from argobox.server.cli.main import main


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--operator", 'bad name"x'),
        ("--agent", "a b"),
        ("--agent", "x]\n[storage]"),
        ("--agent", "openclaw\n"),
        ("--operator", "Alice"),
        ("--agent", "a" * 65),
    ],
)
def test_init_refuses_a_bad_name_in_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    status = main(["init", "--dir", str(tmp_path / "etc"), "--data-dir", str(tmp_path / "data"), flag, value])
    shown = capsys.readouterr()

    assert status == 2
    assert shown.out == ""
    assert shown.err.startswith(f"argobox: {flag} ") and shown.err.count("\n") == 1, shown.err
    assert "lowercase letter" in shown.err and "Traceback" not in shown.err
    assert not (tmp_path / "etc").exists() and not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("flag", "url"), [("--docker", "unix:///run/\udcff.sock"), ("--homeassistant", "http://127.0.0.1:8123/\ud800")]
)
def test_init_refuses_an_argument_that_is_not_text_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, url: str
) -> None:
    status = main(["init", "--dir", str(tmp_path / "etc"), "--data-dir", str(tmp_path / "data"), flag, url])
    shown = capsys.readouterr()

    assert status == 2 and shown.out == "" and "Traceback" not in shown.err
    assert shown.err.startswith("argobox: ") and shown.err.count("\n") == 1, shown.err
    assert not (tmp_path / "etc").exists()
