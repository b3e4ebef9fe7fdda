"""Agent tokens: matching, uniqueness, `argobox token new` and its careful in-place config edit."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from argobox.server.config.model import ConfigError, load_config
from argobox.server.config.tokens import TokenWriteError, agent_for_token, new_token, token_sha256, write_token_hash
from tests.conftest import WriteConfig


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "argobox", *args], capture_output=True, text=True, timeout=60)


def test_a_token_matches_its_agent_only() -> None:
    hashes = {"a": token_sha256("tok-a"), "b": token_sha256("tok-b"), "c": None}

    assert agent_for_token("tok-a", hashes) == "a"
    assert agent_for_token("tok-b", hashes) == "b"
    assert agent_for_token("tok-c", hashes) is None
    assert agent_for_token("", hashes) is None
    assert token_sha256("tok-a") == hashlib.sha256(b"tok-a").hexdigest()


def test_fresh_tokens_are_long_random_and_header_safe() -> None:
    tokens = {new_token() for _ in range(50)}

    assert len(tokens) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", t) for t in tokens)


def test_two_agents_cannot_share_a_token(write_config: WriteConfig) -> None:
    digest = "d" * 64
    path = write_config(token_sha256=digest, extra=f'\n[agents.other]\ntoken_sha256 = "{digest}"\n')

    with pytest.raises(ConfigError, match="agents.openclaw, agents.other: the same token_sha256"):
        load_config(path)


def test_token_new_prints_the_token_once_and_the_line_to_paste(write_config: WriteConfig) -> None:
    path = write_config()
    before = path.read_text()
    done = run("--config", str(path), "token", "new", "openclaw")

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
    done = run("--config", str(path), "token", "new", "openclaw", "--write")
    token = re.search(r"^token: (\S+)$", done.stdout, re.M)

    assert done.returncode == 0, done.stderr
    assert token is not None
    after = path.read_text()
    assert after == before.replace("e" * 64, token_sha256(token[1]))
    assert load_config(path).agents["openclaw"].token_sha256 == token_sha256(token[1])
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert token[1] not in after


def test_token_write_inserts_a_line_after_the_agent_table_header(write_config: WriteConfig) -> None:
    path = write_config()
    before = path.read_text()
    write_token_hash(path, "openclaw", "f" * 64)

    assert path.read_text() == before.replace(
        "[agents.openclaw]\n", f'[agents.openclaw]\ntoken_sha256 = "{"f" * 64}"\n', 1
    )


def test_token_write_refuses_an_agent_without_its_own_table_header(write_config: WriteConfig) -> None:
    path = write_config()  # [agents.reader] exists only through [[agents.reader.rules]]
    before = path.read_text()

    with pytest.raises(TokenWriteError, match=r"not written as its own table header"):
        write_token_hash(path, "reader", "f" * 64)
    done = run("--config", str(path), "token", "new", "reader", "--write")

    assert path.read_text() == before
    assert done.returncode == 2 and "paste the token_sha256 line by hand" in done.stderr
    assert "token:" not in done.stdout  # nothing was printed that would be lost


def test_token_new_for_an_unknown_agent_is_refused(write_config: WriteConfig) -> None:
    done = run("--config", str(write_config()), "token", "new", "mallory")

    assert done.returncode == 1 and "unknown agent 'mallory'" in done.stderr and done.stdout == ""


def test_token_write_refuses_a_file_it_cannot_edit_safely(tmp_path: Path) -> None:
    path = tmp_path / "argobox.toml"
    path.write_text('[storage]\npath = "a.db"\n[agents]\nopenclaw = { rules = [] }\n')
    before = path.read_text()

    with pytest.raises(TokenWriteError, match="inline table"):
        write_token_hash(path, "openclaw", "a" * 64)
    assert path.read_text() == before


def test_token_write_refuses_a_hash_another_agent_already_has(write_config: WriteConfig) -> None:
    taken = "9" * 64
    path = write_config(extra=f'\n[agents.other]\ntoken_sha256 = "{taken}"\n')
    before = path.read_text()

    with pytest.raises(TokenWriteError, match="would not be valid"):
        write_token_hash(path, "openclaw", taken)
    assert path.read_text() == before
