"""Agent and operator tokens: matching, uniqueness, and the careful in-place edit of the config file."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from argobox.server.config.model import ConfigError, load_config
from argobox.server.config.tokens import (
    TokenWriteError,
    agent_for_token,
    new_token,
    token_sha256,
    write_operator_token_hash,
    write_token_hash,
)
from tests.conftest import WriteConfig


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

    with pytest.raises(ConfigError, match=r"agents\.openclaw, agents\.other: the same token_sha256"):
        load_config(path)


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

    assert path.read_text() == before


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


COMMENTED = """\
# The homelab's ArgoBox.
[storage]
path = "argobox.db"   # next to this file

[[operators]]
name = "alice"        # the one who approves

[[operators]]
name = "bob"
token_sha256 = "{old}"  # bob's phone

[agents.openclaw]
# OpenClaw on the desktop
token_sha256 = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' # rotated in May

[[agents.openclaw.rules]]
tools = ["docker_list_containers"]
effect = "allow"
""".format(old="b" * 64)


def test_token_write_keeps_comments_and_layout_and_changes_only_the_hash(tmp_path: Path) -> None:
    path = tmp_path / "argobox.toml"
    path.write_text(COMMENTED)

    write_token_hash(path, "openclaw", "c" * 64)
    write_operator_token_hash(path, "alice", "d" * 64)
    write_operator_token_hash(path, "bob", "e" * 64)

    assert path.read_text() == (
        COMMENTED.replace("a" * 64, "c" * 64)  # its quotes too
        .replace('name = "alice"        # the one who approves\n', 'name = "alice"        # the one who approves\n'
                 f'token_sha256 = "{"d" * 64}"\n')
        .replace("b" * 64, "e" * 64)
    )  # fmt: skip
    config = load_config(path)
    assert [op.token_sha256 for op in config.operators] == ["d" * 64, "e" * 64]


def test_operator_token_write_refuses_what_it_cannot_edit_safely(tmp_path: Path) -> None:
    inline = tmp_path / "inline.toml"
    inline.write_text('operators = [{ name = "alice" }]\n')
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('[[operators]]\nname = "alice"\n')
    taken = tmp_path / "taken.toml"
    taken.write_text(f'[[operators]]\nname = "alice"\n\n[agents.openclaw]\ntoken_sha256 = "{"9" * 64}"\n')
    before = {p: p.read_text() for p in (inline, unknown, taken)}

    with pytest.raises(TokenWriteError, match=r"not written as \[\[operators\]\] tables"):
        write_operator_token_hash(inline, "alice", "f" * 64)
    with pytest.raises(TokenWriteError, match=r"no \[\[operators\]\] entry with name = 'mallory'"):
        write_operator_token_hash(unknown, "mallory", "f" * 64)
    with pytest.raises(TokenWriteError, match=r"(?s)would not be valid.*an agent's token can never open the operator"):
        write_operator_token_hash(taken, "alice", "9" * 64)
    assert {p: p.read_text() for p in before} == before


def test_token_write_keeps_the_line_endings_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "argobox.toml"
    path.write_bytes(b'[storage]\r\npath = "a.db"\r\n\r\n[agents.openclaw]\r\nrules = []\r\n')

    write_token_hash(path, "openclaw", "f" * 64)

    assert path.read_bytes() == (
        b'[storage]\r\npath = "a.db"\r\n\r\n[agents.openclaw]\r\nrules = []\r\ntoken_sha256 = "' + b"f" * 64 + b'"\r\n'
    )
