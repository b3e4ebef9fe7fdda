"""The configuration `argobox init` writes loads, and grants reads at once and every change behind approval."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import pytest

from argobox.policy.catalog import CATALOG, Classification
from argobox.policy.decide import Effect, decide
from argobox.server.config.model import parse_config
from argobox.server.config.starter import Starter, default_dirs, operator_name, starter_toml


def starter(tmp_path: Path, home: str | None) -> Starter:
    return Starter(
        store=tmp_path / "data" / "argobox.db",
        docker_url="unix:///var/run/docker.sock",
        homeassistant_url=home,
        operator="alice",
        operator_sha256=hashlib.sha256(b"op").hexdigest(),
        agent="openclaw",
        agent_sha256=hashlib.sha256(b"agent").hexdigest(),
    )


@pytest.mark.parametrize("home", [None, "http://127.0.0.1:8123"])
def test_the_starter_config_loads_and_puts_every_change_behind_approval(tmp_path: Path, home: str | None) -> None:
    path = tmp_path / "argobox.toml"
    config = parse_config(tomllib.loads(starter_toml(starter(tmp_path, home))), path)
    grant = config.grant("openclaw")
    examples = {"container": "web", "entity_id": "light.kitchen", "domain": "light", "service": "turn_on"}

    assert config.storage.path == tmp_path / "data" / "argobox.db"
    assert (config.homeassistant is not None) == (home is not None)
    assert config.operators[0].name == "alice" and config.operators[0].token_sha256 is not None
    for tool in grant.visible - {"argobox_request_status"}:
        args = {name: examples[name] for name in CATALOG[tool].target_args}
        expected = Effect.ALLOW if CATALOG[tool].classification is Classification.READ else Effect.APPROVE
        assert decide(grant, tool, args).effect is expected, tool
    assert any(t.startswith("ha_") for t in grant.visible) == (home is not None)


def test_default_folders_follow_root_and_the_user_xdg_folders() -> None:
    assert default_dirs(root=True) == (Path("/etc/argobox"), Path("/var/lib/argobox"))
    assert default_dirs(root=False, env={"HOME": "/home/u"}) == (
        Path("/home/u/.config/argobox"),
        Path("/home/u/.local/share/argobox"),
    )
    assert default_dirs(root=False, env={"HOME": "/h", "XDG_CONFIG_HOME": "/c", "XDG_DATA_HOME": "/d"}) == (
        Path("/c/argobox"),
        Path("/d/argobox"),
    )


@pytest.mark.parametrize(("user", "name"), [("Alice", "alice"), ("j.doe", "jdoe"), ("1x", "admin"), (None, "admin")])
def test_the_operator_is_named_after_the_local_user_when_that_is_a_valid_name(user: str | None, name: str) -> None:
    assert operator_name(user) == name


def test_the_starter_config_quotes_what_it_is_given_so_no_value_can_open_a_table(tmp_path: Path) -> None:
    odd = 'x"]\n[storage]\npath = "/tmp/evil'
    weird = Starter(
        store=tmp_path / 'a"b\\c',
        docker_url='unix:///run/"docker".sock\n[x]',
        homeassistant_url="http://127.0.0.1:8123",
        operator=odd,
        operator_sha256=hashlib.sha256(b"op").hexdigest(),
        agent=odd,
        agent_sha256=hashlib.sha256(b"agent").hexdigest(),
    )
    data = tomllib.loads(starter_toml(weird))

    assert set(data) == {"storage", "docker", "homeassistant", "approvals", "operators", "agents"}
    assert data["storage"]["path"] == str(tmp_path / 'a"b\\c')
    assert data["docker"]["base_url"] == 'unix:///run/"docker".sock\n[x]'
    assert data["operators"] == [{"name": odd, "token_sha256": hashlib.sha256(b"op").hexdigest()}]
    assert list(data["agents"]) == [odd] and len(data["agents"][odd]["rules"]) == 4
