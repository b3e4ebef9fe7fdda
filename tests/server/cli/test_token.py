"""`argobox token new AGENT | --operator NAME [--write]`: a fresh token shown once, and its hash for the config."""

from __future__ import annotations

import os
import re
import stat

from argobox.server.config.model import load_config
from argobox.server.config.tokens import token_sha256
from tests.conftest import WriteConfig
from tests.server.cli.support import argobox, without_operator_token


def test_token_new_prints_the_token_once_and_the_line_to_paste(write_config: WriteConfig) -> None:
    path = write_config()
    before = path.read_text()
    done = argobox(path, "token", "new", "openclaw")

    assert done.returncode == 0, done.stderr
    token = re.search(r"^token: (\S+)$", done.stdout, re.M)
    line = re.search(r'^token_sha256 = "([0-9a-f]{64})"$', done.stdout, re.M)
    assert token and line and line[1] == token_sha256(token[1])
    assert "[agents.openclaw]" in done.stderr and "only this once" in done.stderr
    assert path.read_text() == before


def test_token_new_write_sets_the_hash_and_changes_nothing_else(write_config: WriteConfig) -> None:
    path = write_config(token_sha256="e" * 64)
    os.chmod(path, 0o640)
    before = path.read_text()
    done = argobox(path, "token", "new", "openclaw", "--write")
    token = re.search(r"^token: (\S+)$", done.stdout, re.M)

    assert done.returncode == 0, done.stderr
    assert token is not None
    after = path.read_text()
    assert after == before.replace("e" * 64, token_sha256(token[1]))
    assert load_config(path).agents["openclaw"].token_sha256 == token_sha256(token[1])
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert token[1] not in after


def test_token_new_refuses_unknown_agents_and_agents_without_a_table_of_their_own(write_config: WriteConfig) -> None:
    path = write_config()  # [agents.reader] exists only through [[agents.reader.rules]]
    before = path.read_text()

    unknown = argobox(path, "token", "new", "mallory")
    implied = argobox(path, "token", "new", "reader", "--write")

    assert unknown.returncode == 1 and "unknown agent 'mallory'" in unknown.stderr and unknown.stdout == ""
    assert implied.returncode == 2 and "paste the token_sha256 line by hand" in implied.stderr
    assert "token:" not in implied.stdout  # nothing was printed that would be lost
    assert path.read_text() == before


def test_an_operator_token_is_made_written_and_then_required(write_config: WriteConfig) -> None:
    path = write_config()
    printed = argobox(path, "token", "new", "--operator", "bob")
    written = argobox(path, "token", "new", "--operator", "alice", "--write")
    token = re.search(r"^token: (\S+)$", written.stdout, re.M)
    assert token is not None, written.stderr
    env = without_operator_token()
    without = argobox(path, "budgets", "reset", "openclaw", "--as", "alice", env=env)
    shown = argobox(
        path, "budgets", "reset", "openclaw", "--as", "alice", env={**env, "ARGOBOX_OPERATOR_TOKEN": token[1]}
    )

    line = re.search(r'^token_sha256 = "([0-9a-f]{64})"$', printed.stdout, re.M)
    assert printed.returncode == 0 and line is not None and "[[operators]] entry of bob" in printed.stderr
    assert written.returncode == 0 and "ARGOBOX_OPERATOR_TOKEN" in written.stderr
    operators = {op.name: op.token_sha256 for op in load_config(path).operators}
    assert operators == {"alice": token_sha256(token[1]), "bob": None}
    assert without.returncode == 1 and "requires a token" in without.stderr
    assert shown.returncode == 0, shown.stderr


def test_token_new_takes_an_agent_or_an_operator(write_config: WriteConfig) -> None:
    path = write_config()

    neither = argobox(path, "token", "new")
    both = argobox(path, "token", "new", "openclaw", "--operator", "alice")
    stranger = argobox(path, "token", "new", "--operator", "mallory")

    assert neither.returncode == 2 and "AGENT or --operator NAME" in neither.stderr
    assert both.returncode == 2 and "AGENT or --operator NAME" in both.stderr
    assert (
        stranger.returncode == 1 and "unknown operator 'mallory' (configured operators: alice, bob)" in stranger.stderr
    )
