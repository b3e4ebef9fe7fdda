"""`--json` output goes through the same redactor as the text output: a credential in the configuration (a Docker URL
with a password, a webhook URL with a token) never reaches stdout, whichever command prints it."""

from __future__ import annotations

import json

import pytest

from argobox.server.cli.main import main
from tests.conftest import WriteConfig

PASSWORD = "hunter2secret"
HOOK_TOKEN = "hooktoken0123456789"
NOTIFICATIONS = f"""
[notifications]
webhooks = [{{ url = "https://ops:{PASSWORD}@hooks.example.org/argobox?token={HOOK_TOKEN}" }}]
"""


@pytest.mark.parametrize(
    "command",
    [
        ["doctor", "--json"],
        ["doctor"],
        ["check", "openclaw", "docker_restart_container", '{"container": "jellyfin"}', "--json"],
        ["budgets", "--json"],
        ["requests", "--json"],
        ["audit", "--json"],
    ],
    ids=" ".join,
)
def test_no_configured_credential_reaches_the_output(
    write_config: WriteConfig, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    config = write_config(docker=f'base_url = "tcp://admin:{PASSWORD}@127.0.0.1:1"', extra=NOTIFICATIONS)
    main(["--config", str(config), *command])
    shown = capsys.readouterr()

    assert PASSWORD not in shown.out + shown.err and HOOK_TOKEN not in shown.out + shown.err
    if "--json" in command:
        json.loads(shown.out)


def test_doctor_json_keeps_the_finding_with_the_credential_removed(
    write_config: WriteConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(docker=f'base_url = "tcp://admin:{PASSWORD}@127.0.0.1:1"')
    status = main(["--config", str(config), "doctor", "--json"])
    report = json.loads(capsys.readouterr().out)
    docker = next(f for f in report["findings"] if f["check"] == "docker")

    assert status == 2 and docker["severity"] == "error"
    assert "tcp://admin:<redacted>@127.0.0.1:1" in docker["fix"]
    assert all(isinstance(entry["has_token"], bool) for entry in report["surface"]["agents"])
