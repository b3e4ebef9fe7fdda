"""Every `--limit` takes a whole number in a stated range: anything else is a usage error (exit 2), never a crash
and never silently another number."""

from __future__ import annotations

import pytest

from argobox.server.cli.main import main
from tests.conftest import WriteConfig

COMMANDS = [["requests"], ["audit"]]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("value", ["99999999999999999999", "0", "-5", "10001", "ten", "9" * 5000])
def test_a_limit_out_of_range_is_a_usage_error(
    write_config: WriteConfig, capsys: pytest.CaptureFixture[str], command: list[str], value: str
) -> None:
    config = write_config()
    with pytest.raises(SystemExit) as stopped:
        main(["--config", str(config), *command, "--limit", value])
    shown = capsys.readouterr()

    assert stopped.value.code == 2
    assert "argument --limit:" in shown.err and "a whole number from 1 to 10000" in shown.err
    assert "Traceback" not in shown.err and len(shown.err) < 1000


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("value", ["1", "10000"])
def test_a_limit_in_range_is_taken(
    write_config: WriteConfig, capsys: pytest.CaptureFixture[str], command: list[str], value: str
) -> None:
    status = main(["--config", str(write_config()), *command, "--limit", value, "--json"])
    assert status == 0 and capsys.readouterr().out.startswith("[")
