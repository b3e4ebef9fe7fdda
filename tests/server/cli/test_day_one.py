"""Day one: `argobox init` writes a first configuration, `argobox doctor` checks the setup against the real Docker
engine, `argobox check` dry-runs a call. Each is the real command in its own process."""

from __future__ import annotations

import grp
import http.server
import json
import os
import re
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from argobox.server.config.model import load_config
from argobox.server.config.tokens import token_sha256
from tests.conftest import WriteConfig
from tests.server.cli.support import argobox


def init(tmp_path: Path, *args: str) -> tuple[Path, dict[str, str]]:
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    env.pop("DOCKER_HOST", None)
    done = argobox(None, "init", "--dir", str(tmp_path / "etc"), "--data-dir", str(tmp_path / "data"), *args, env=env)
    assert done.returncode == 0, done.stderr
    tokens = dict(re.findall(r"^(operator|agent) token \(\w+\): (\S+)$", done.stdout, re.M))
    return tmp_path / "etc" / "argobox.toml", tokens


@pytest.mark.docker
def test_init_then_doctor_is_green_on_a_real_engine(tmp_path: Path, docker_base_url: str) -> None:
    config, tokens = init(tmp_path, "--docker", docker_base_url, "--operator", "alice")
    again = argobox(None, "init", "--dir", str(tmp_path / "etc"), "--data-dir", str(tmp_path / "data"))
    doctor = argobox(config, "doctor")
    strict = argobox(config, "doctor", "--strict")
    report = json.loads(argobox(config, "doctor", "--json").stdout)
    loaded = load_config(config)
    text = config.read_text()

    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert set(tokens) == {"operator", "agent"}
    assert tokens["operator"] not in text and tokens["agent"] not in text
    assert loaded.operators[0].token_sha256 == token_sha256(tokens["operator"])
    assert loaded.agents["openclaw"].token_sha256 == token_sha256(tokens["agent"])
    assert loaded.homeassistant is None and loaded.storage.path == (tmp_path / "data" / "argobox.db").resolve()
    assert again.returncode == 1 and "never overwrites" in again.stderr and config.read_text() == text
    assert doctor.returncode == 0, doctor.stdout
    assert re.search(r"^ok\s+docker: Docker Engine \S+ \(API \S+\)$", doctor.stdout, re.M), doctor.stdout
    assert "every change waits for an operator's approval" in doctor.stdout
    assert strict.returncode == 1  # no notification channel is a warning
    checks = {(f["check"], f["severity"]) for f in report["findings"]}
    assert ("docker", "ok") in checks and ("audit", "ok") in checks and ("notifications", "warning") in checks
    assert report["surface"]["agents"][0]["mutations_without_approval"] == []


def test_init_with_a_group_lets_that_group_read_the_configuration_and_no_one_else(tmp_path: Path) -> None:
    group = grp.getgrgid(os.getgroups()[0] if os.getgroups() else os.getgid())
    made = argobox(
        None, "init", "--dir", str(tmp_path / "etc"), "--data-dir", str(tmp_path / "data"), "--group", group.gr_name,
        "--docker", "unix:///nonexistent.sock",
    )  # fmt: skip
    unknown = argobox(None, "init", "--dir", str(tmp_path / "etc2"), "--group", "no-such-group-x9")
    config = tmp_path / "etc" / "argobox.toml"

    assert made.returncode == 0, made.stderr
    assert (stat.S_IMODE(config.stat().st_mode), config.stat().st_gid) == (0o640, group.gr_gid)
    assert (stat.S_IMODE(config.parent.stat().st_mode), config.parent.stat().st_gid) == (0o750, group.gr_gid)
    assert f"group {group.gr_name}" in made.stdout
    assert unknown.returncode == 2 and "no group 'no-such-group-x9'" in unknown.stderr
    assert not (tmp_path / "etc2").exists()


def test_doctor_names_each_error_and_what_to_do(write_config: WriteConfig, tmp_path: Path) -> None:
    no_operators = write_config(docker=f'base_url = "unix://{tmp_path}/missing.sock"')
    no_operators.write_text(
        no_operators.read_text().replace('[[operators]]\nname = "alice"\n\n[[operators]]\nname = "bob"\n', "")
    )
    broken = tmp_path / "broken.toml"
    broken.write_text('[docker]\nbaseurl = "unix:///x"\n')

    missing = argobox(no_operators, "doctor")
    invalid = argobox(broken, "doctor")

    assert missing.returncode == 2
    assert "FAIL  operators: no [[operators]]" in missing.stdout and "argobox token new --operator" in missing.stdout
    assert "FAIL  docker: Docker engine at" in missing.stdout and "-> check [docker] base_url" in missing.stdout
    assert invalid.returncode == 2 and "did you mean 'base_url'" in invalid.stdout


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[bytes]]]:
    received: list[bytes] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # the stdlib's signature
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def test_doctor_sends_a_test_notification_through_each_channel(
    write_config: WriteConfig, receiver: tuple[str, list[bytes]]
) -> None:
    url, received = receiver
    config = write_config(
        extra=f'\n[notifications]\nwebhooks = [{{ url = "{url}" }}, {{ url = "http://127.0.0.1:9/refused" }}]\n'
    )

    done = argobox(config, "doctor", "--send-test")

    assert "ok    notifications: webhooks[0]: test notification accepted" in done.stdout
    assert "FAIL  notifications: webhooks[1]: cannot reach the receiver" in done.stdout
    assert done.returncode == 2
    assert len(received) == 1 and json.loads(received[0])["event"] == "test"


def test_check_dry_runs_a_call_and_records_nothing(write_config: WriteConfig) -> None:
    config = write_config()

    queued = argobox(config, "check", "openclaw", "docker_restart_container", '{"container": "jellyfin"}')
    denied = argobox(config, "check", "openclaw", "docker_restart_container", '{"container": "postgres"}')
    unknown = argobox(config, "check", "reader", "docker_restart_container", '{"container": "jellyfin"}')
    bad = argobox(config, "check", "openclaw", "docker_restart_container", "{not json")
    as_json = json.loads(argobox(config, "check", "openclaw", "docker_list_containers", "--json").stdout)
    trail = json.loads(argobox(config, "audit", "--json").stdout)

    assert queued.returncode == 0 and "effect:  approve" in queued.stdout and 'effect = "approve"' in queued.stdout
    assert denied.returncode == 1 and "outside the grant" in denied.stdout
    assert unknown.returncode == 1 and "Unknown tool: docker_restart_container" in unknown.stderr
    assert bad.returncode == 2 and "JSON_ARGS is not JSON" in bad.stderr
    assert as_json["effect"] == "allow" and as_json["rule"] == "agents.openclaw.rules[0]"
    assert trail == []
