"""`argobox doctor` warns about a console served beyond loopback without TLS in front, and says in the surface report
that `serve --http` beyond loopback needs a TLS-terminating proxy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from argobox.server.cli.main import main

CONFIG = """\
[storage]
path = "{folder}/argobox.db"

[docker]
simulated_lab = "lab.json"

[notifications]
webhooks = [{{ url = "https://hooks.example.org/argobox" }}]

[[operators]]
name = "alice"
token_sha256 = "{zeros}"

[agents.openclaw]
token_sha256 = "{ones}"

[[agents.openclaw.rules]]
tools = ["docker_list_containers"]
effect = "allow"
"""


def doctor(tmp_path: Path, capsys: pytest.CaptureFixture[str], console: str, *flags: str) -> tuple[int, str]:
    folder = tmp_path / "store"
    folder.mkdir(mode=0o700, exist_ok=True)
    config = tmp_path / "argobox.toml"
    config.write_text(CONFIG.format(folder=folder, zeros="0" * 64, ones="1" * 64) + console)
    status = main(["--config", str(config), "doctor", *flags])
    return status, capsys.readouterr().out


@pytest.mark.parametrize(
    "console",
    [
        '[console]\nlisten = "0.0.0.0:8766"\n',
        '[console]\nlisten = "192.168.1.5:8766"\npublic_url = "http://argobox.lan:8766"\n',
        '[console]\nlisten = "[::]:8766"\n',
    ],
    ids=["any-address", "plain-http-public-url", "ipv6-any"],
)
def test_a_console_beyond_loopback_without_https_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], console: str
) -> None:
    status, text = doctor(tmp_path, capsys, console)
    strict, _ = doctor(tmp_path, capsys, console, "--strict")
    _, raw = doctor(tmp_path, capsys, console, "--json")
    findings = json.loads(raw)["findings"]

    assert (status, strict) == (0, 1), text
    assert "WARN  console: [console] listen" in text and "not a loopback address" in text
    assert "TLS-terminating proxy" in text and "public_url" in text
    assert [f["severity"] for f in findings if f["check"] == "console"] == ["warning"]


@pytest.mark.parametrize(
    "console",
    [
        "",
        '[console]\nlisten = "127.0.0.1:8766"\n',
        '[console]\nlisten = "[::1]:8766"\n',
        '[console]\nlisten = "localhost:8766"\n',
        '[console]\nlisten = "0.0.0.0:8766"\npublic_url = "https://argobox.example.org"\n',
    ],
    ids=["no-console", "loopback", "ipv6-loopback", "localhost", "behind-https"],
)
def test_a_console_on_loopback_or_behind_https_is_healthy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], console: str
) -> None:
    strict, text = doctor(tmp_path, capsys, console, "--strict")

    assert strict == 0, text
    assert "WARN" not in text


def test_the_surface_report_says_the_http_daemon_needs_tls_beyond_loopback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, text = doctor(tmp_path, capsys, "")
    _, raw = doctor(tmp_path, capsys, "", "--json")

    assert "argobox serve --http" in json.loads(raw)["surface"]["listeners"]["http"]
    assert any(
        line.startswith("    http: argobox serve --http") and "TLS-terminating proxy" in line
        for line in text.splitlines()
    ), text
