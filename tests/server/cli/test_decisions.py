"""`argobox approve` and `argobox deny`: who may decide, what is said while an approval runs, and the reason a
denial needs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import anyio

from argobox.server.app import open_app
from argobox.server.config.model import load_config
from argobox.server.mediation import agent_calls
from tests.conftest import WriteConfig
from tests.server.cli.support import argobox, without_operator_token


def queue_restart(config: Path, container: str = "jellyfin") -> str:
    """An agent asks to restart `container`; the request waits for an operator."""

    async def queue() -> str:
        async with open_app(load_config(config)) as app:
            outcome = await agent_calls.call_tool(app, "openclaw", "docker_restart_container", {"container": container})
            assert outcome.request_id is not None, outcome
            return outcome.request_id

    return anyio.run(queue)


def test_operator_commands_exit_non_zero_for_unknown_requests_and_operators(write_config: WriteConfig) -> None:
    config = write_config()

    missing = argobox(config, "approve", "nosuchrequest123", "--as", "alice")
    stranger = argobox(config, "deny", "nosuchrequest123", "--as", "mallory", "--reason", "x")
    shown = argobox(config, "show", "nosuchrequest123")
    audit = json.loads(argobox(config, "audit", "--json").stdout)

    assert missing.returncode == 1 and "no request 'nosuchrequest123'" in missing.stderr
    assert "executing" not in missing.stderr
    assert stranger.returncode == 1 and "'mallory' is not a configured operator" in stranger.stderr
    assert shown.returncode == 1
    assert [(e["event"], e["actor"]) for e in audit] == [("operator_refused", "operator:mallory")]


def test_approve_says_what_it_executes_before_it_runs(write_config: WriteConfig) -> None:
    config = write_config()
    request_id = queue_restart(config)

    approved = argobox(config, "approve", request_id, "--as", "alice", "--note", "planned")
    again = argobox(config, "approve", request_id, "--as", "alice")

    assert approved.returncode == 0, approved.stderr
    assert f"approving {request_id} (restart container 'jellyfin'); executing..." in approved.stderr
    assert approved.stdout.startswith("succeeded: restart container 'jellyfin'")
    assert again.returncode == 1 and "executing" not in again.stderr


def test_a_denial_needs_a_reason_that_is_not_blank(write_config: WriteConfig) -> None:
    config = write_config()
    request_id = queue_restart(config)

    blank = argobox(config, "deny", request_id, "--as", "alice", "--reason", "   ")
    missing = argobox(config, "deny", request_id, "--as", "alice")
    listed = json.loads(argobox(config, "requests", "--status", "pending", "--json").stdout)

    assert blank.returncode == 2 and "a denial needs a reason" in blank.stderr
    assert missing.returncode == 2 and "--reason" in missing.stderr
    assert [(r["id"], r["status"]) for r in listed] == [(request_id, "pending_approval")]


def test_an_operator_with_a_token_must_show_it_for_cli_actions(write_config: WriteConfig) -> None:
    token = "operator-cli-token-0123456789"
    config = write_config()
    config.write_text(
        config.read_text().replace(
            '[[operators]]\nname = "alice"',
            f'[[operators]]\nname = "alice"\ntoken_sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"',
        )
    )
    request_id = queue_restart(config)
    env = without_operator_token()

    without = argobox(config, "approve", request_id, "--as", "alice", env=env)
    wrong = argobox(config, "approve", request_id, "--as", "alice", env={**env, "ARGOBOX_OPERATOR_TOKEN": "nope-nope"})
    right = argobox(config, "approve", request_id, "--as", "alice", env={**env, "ARGOBOX_OPERATOR_TOKEN": token})

    assert without.returncode == 1 and "requires a token" in without.stderr
    assert wrong.returncode == 1 and "does not match operator 'alice'" in wrong.stderr
    assert "executing" not in without.stderr + wrong.stderr
    assert right.returncode == 0, right.stderr
