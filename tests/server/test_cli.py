"""The `argobox` command as an operator uses it: identities, exit statuses, JSON shapes, and the demo."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import anyio

from argobox.server.app import open_app
from argobox.server.config.model import load_config
from argobox.server.mediation import agent_calls
from tests.conftest import WriteConfig

ARGOBOX = str(Path(sys.executable).with_name("argobox"))


def argobox(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ARGOBOX, "--config", str(config), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_serve_refuses_unknown_agents_and_wrong_tokens_and_audits_it(write_config: WriteConfig) -> None:
    token = "correct-horse-battery-staple-0123456789"
    config = write_config(token_sha256=hashlib.sha256(token.encode()).hexdigest())
    base_env = {"PATH": "/usr/bin:/bin", "HOME": str(config.parent)}

    def serve(agent: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ARGOBOX, "--config", str(config), "serve", "--agent", agent],
            input="",
            capture_output=True,
            text=True,
            timeout=60,
            env={**base_env, **env},
            check=False,
        )

    unknown = serve("mallory", {})
    missing = serve("openclaw", {})
    wrong = serve("openclaw", {"ARGOBOX_AGENT_TOKEN": "not-the-token-at-all"})
    right = serve("openclaw", {"ARGOBOX_AGENT_TOKEN": token})
    audit = json.loads(argobox(config, "audit", "--json").stdout)

    assert unknown.returncode == 1 and "unknown agent 'mallory'" in unknown.stderr
    assert missing.returncode == 1 and "requires a token" in missing.stderr
    assert wrong.returncode == 1 and "does not match" in wrong.stderr
    assert right.returncode == 0, right.stderr
    assert [e["event"] for e in audit].count("agent_refused") == 3
    assert token not in json.dumps(audit) and "not-the-token-at-all" not in json.dumps(audit)


def test_operator_commands_exit_non_zero_for_unknown_requests_and_operators(write_config: WriteConfig) -> None:
    config = write_config()

    missing = argobox(config, "approve", "nosuchrequest123", "--as", "alice")
    stranger = argobox(config, "deny", "nosuchrequest123", "--as", "mallory", "--reason", "x")
    shown = argobox(config, "show", "nosuchrequest123")
    audit = json.loads(argobox(config, "audit", "--json").stdout)

    assert missing.returncode == 1 and "no request 'nosuchrequest123'" in missing.stderr
    assert stranger.returncode == 1 and "'mallory' is not a configured operator" in stranger.stderr
    assert shown.returncode == 1
    assert [(e["event"], e["actor"]) for e in audit] == [("operator_refused", "operator:mallory")]


def test_malformed_config_is_a_clear_error_with_exit_status_2(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text("[approvals]\nttl_seconds = 'soon'\n")

    result = argobox(config, "requests")

    assert result.returncode == 2
    assert "approvals.ttl_seconds: Input should be a valid integer" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_shows_the_first_proof_holding(tmp_path: Path) -> None:
    result = subprocess.run(
        [ARGOBOX, "demo", "--dir", str(tmp_path)], capture_output=True, text=True, timeout=180, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "pending_approval" in result.stdout
    assert "succeeded: restart container 'jellyfin'" in result.stdout
    assert "the first proof held" in result.stdout
    lab = json.loads((tmp_path / "lab.json").read_text())
    assert lab["jellyfin"]["restart_count"] == 1
    assert lab["postgres"]["restart_count"] == 0
    assert "the Home Assistant gate held" in result.stdout
    assert "lock.front_door: locked → unlock" in result.stdout
    home = json.loads((tmp_path / "home.json").read_text())
    assert home["light.living_room_lamp"]["state"] == "on"
    assert home["light.kitchen"]["state"] == "on"  # turning it off was denied
    assert home["lock.front_door"]["state"] == "unlocked"


def test_budgets_show_use_and_reset_clears_a_cooldown_both_audited(write_config: WriteConfig) -> None:
    config = write_config(
        extra="[agents.openclaw.limits]\nfailures = { count = 1, window_seconds = 60, cooldown_seconds = 600 }\n"
    )

    async def deny_once() -> None:
        async with open_app(load_config(config)) as app:
            await agent_calls.call_tool(app, "openclaw", "docker_stop_container", {"container": "postgres"})

    anyio.run(deny_once)
    before = json.loads(argobox(config, "budgets", "--json").stdout)
    reset = argobox(config, "budgets", "reset", "openclaw", "--as", "alice")
    after = json.loads(argobox(config, "budgets", "--json").stdout)
    unknown = argobox(config, "budgets", "reset", "mallory", "--as", "alice")
    anonymous = argobox(config, "budgets", "reset", "openclaw")
    audit = [e["event"] for e in json.loads(argobox(config, "audit", "--json").stdout)]

    assert next(b for b in before if b["agent"] == "openclaw")["cooldown_until"] is not None
    assert reset.returncode == 0 and "cooldown until" in reset.stdout
    assert next(b for b in after if b["agent"] == "openclaw")["cooldown_until"] is None
    assert unknown.returncode == 1 and "unknown agent 'mallory'" in unknown.stderr
    assert anonymous.returncode == 2 and "--as" in anonymous.stderr
    assert audit.count("budgets_viewed") == 2 and audit.count("budget_reset") == 1 and "cooldown" in audit


def test_an_operator_with_a_token_must_show_it_for_cli_actions(write_config: WriteConfig) -> None:
    token = "operator-cli-token-0123456789"
    config = write_config()
    config.write_text(
        config.read_text().replace(
            '[[operators]]\nname = "alice"',
            f'[[operators]]\nname = "alice"\ntoken_sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"',
        )
    )

    async def queue() -> str:
        async with open_app(load_config(config)) as app:
            outcome = await agent_calls.call_tool(
                app, "openclaw", "docker_restart_container", {"container": "jellyfin"}
            )
            return outcome.request_id or ""

    request_id = anyio.run(queue)
    env = {k: v for k, v in os.environ.items() if k != "ARGOBOX_OPERATOR_TOKEN"}
    cli = [ARGOBOX, "--config", str(config), "approve", request_id, "--as", "alice"]
    without = subprocess.run(cli, capture_output=True, text=True, timeout=60, env=env, check=False)
    wrong = subprocess.run(
        cli,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**env, "ARGOBOX_OPERATOR_TOKEN": "nope-nope-nope"},
    )
    right = subprocess.run(
        cli, capture_output=True, text=True, timeout=60, check=False, env={**env, "ARGOBOX_OPERATOR_TOKEN": token}
    )

    assert without.returncode == 1 and "requires a token" in without.stderr
    assert wrong.returncode == 1 and "does not match operator 'alice'" in wrong.stderr
    assert right.returncode == 0, right.stderr
