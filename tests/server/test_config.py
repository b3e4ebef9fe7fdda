"""Config loading: the example parses; every error names the file, the key path and what is expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from argobox.server.config import ConfigError, load_config, resolve_config_path

REPO = Path(__file__).resolve().parents[2]


def test_example_config_parses_and_resolves_paths_next_to_the_file() -> None:
    config = load_config(REPO / "config.example.toml")

    assert config.storage.path == REPO / "argobox.db"
    assert config.approvals.ttl_seconds == 1800
    assert [op.name for op in config.operators] == ["alice"]
    assert config.grant("openclaw").rules[1].args == {"container": ("jellyfin", "web-*")}
    limits = config.limits_for("openclaw")
    assert (limits.requests_per_minute, limits.mutations_per_hour, limits.cooldown_seconds) == (60, 10, 900)
    assert config.limits_for("someone-else").mutations_per_hour == 20


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(body)
    return path


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param("[storage]\npath = 'x.db'\ncolour = 'red'\n", "storage.colour: unknown key", id="unknown-key"),
        pytest.param("[approvals]\nttl_seconds = '30'\n", "approvals.ttl_seconds: Input should be a valid integer",
                     id="wrong-type"),
        pytest.param("[approvals]\nttl_seconds = 1\n", "approvals.ttl_seconds: Input should be greater than or equal",
                     id="out-of-range"),
        pytest.param("[[agents.openclaw.rules]]\ntools = ['docker_list_containers']\neffect = 'maybe'\n",
                     "agents.openclaw.rules[0].effect: Input should be 'allow', 'approve' or 'deny'", id="bad-effect"),
        pytest.param("[[agents.openclaw.rules]]\ntools = ['docker_restart_container']\neffect = 'allow'\n",
                     "agents.openclaw.rules[0]: effect = \"allow\" would let the mutating tool", id="blanket-allow"),
        pytest.param("[agents.'Bad Name']\n", "agents.Bad Name (the name)", id="bad-agent-name"),
        pytest.param("[[operators]]\nname = 'openclaw'\n[agents.openclaw]\n", "is also an agent", id="operator-is-agent"),
        pytest.param("[agents.openclaw]\ntoken_sha256 = 'abc'\n", "agents.openclaw.token_sha256", id="bad-token-hash"),
        pytest.param("[storage\npath = 1\n", "invalid TOML", id="toml-syntax"),
        pytest.param("[limits]\nmax_pending = 0\n", "limits.max_pending: Input should be greater than or equal to 1",
                     id="zero-budget"),
        pytest.param("[agents.a.limits]\nfailures = { count = 2 }\n", "agents.a.limits.failures.window_seconds",
                     id="incomplete-window"),
    ],
)
def test_config_errors_name_file_key_and_expectation(tmp_path: Path, body: str, expected: str) -> None:
    path = write(tmp_path, body)

    with pytest.raises(ConfigError) as info:
        load_config(path)

    assert str(path.resolve()) in str(info.value) or str(path) in str(info.value)
    assert expected in str(info.value)


def test_missing_and_non_utf8_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the configuration file"):
        load_config(tmp_path / "absent.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(binary)


def test_config_path_comes_from_flag_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ARGOBOX_CONFIG", "/from/env.toml")
    assert resolve_config_path("/from/flag.toml") == Path("/from/flag.toml")
    assert resolve_config_path(None) == Path("/from/env.toml")
    monkeypatch.delenv("ARGOBOX_CONFIG")
    with pytest.raises(ConfigError, match="no configuration"):
        resolve_config_path(None)
