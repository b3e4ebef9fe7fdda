"""Config loading: the example parses; every error names the file, the key path and what is expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from argobox.server.audit import write_keypair
from argobox.server.config import model as config_model
from argobox.server.config.model import ConfigError, load_config, resolve_config_path

REPO = Path(__file__).resolve().parents[3]


def test_example_config_parses_docker_only_with_the_store_in_a_data_folder() -> None:
    config = load_config(REPO / "config.example.toml")

    assert config.storage.path == Path("/var/lib/argobox/argobox.db")
    assert config.approvals.ttl_seconds == 1800
    assert [op.name for op in config.operators] == ["alice"]
    assert config.grant("openclaw").rules[1].args == {"container": ("jellyfin", "web-*")}
    limits = config.limits_for("openclaw")
    assert (limits.requests_per_minute, limits.mutations_per_hour, limits.cooldown_seconds) == (60, 10, 900)
    assert config.limits_for("someone-else").mutations_per_hour == 20
    assert config.homeassistant is None
    assert not any(tool.startswith("ha_") for tool in config.grant("openclaw").visible)


def uncomment_home(text: str) -> str:
    """The example with its Home Assistant parts uncommented: each block after a line saying "uncomment down to the
    blank line", one "# " (or a lone "#") off each line."""
    lines: list[str] = []
    active = False
    for line in text.splitlines():
        if active and not line.strip():
            active = False
        elif active:
            lines.append(line.removeprefix("# ") if line.startswith("# ") else line.removeprefix("#"))
            continue
        elif line.startswith("#") and line.rstrip().endswith("uncomment down to the blank line:"):
            active = True
        lines.append(line)
    return "\n".join(lines) + "\n"


def test_example_config_with_its_home_assistant_parts_uncommented_parses(tmp_path: Path) -> None:
    example = (REPO / "config.example.toml").read_text()
    home = uncomment_home(example)
    config = load_config(write(tmp_path, home))

    assert home.count("\n[homeassistant]\n") == 1 and home.count('\ntools = ["ha_') == 4
    assert config.homeassistant is not None and config.homeassistant.url == "http://homeassistant.local:8123"
    assert config.homeassistant.token_env == "ARGOBOX_HA_TOKEN" and config.homeassistant.timeout_seconds == 10
    assert config.homeassistant.simulated_home is None
    assert {"ha_list_entities", "ha_call_service"} <= config.grant("openclaw").visible
    assert len(config.grant("openclaw").rules) == 6


HA = "[homeassistant]\nurl = 'http://homeassistant.local:8123'\n"


def test_homeassistant_section_is_optional_and_normalised(tmp_path: Path) -> None:
    docker_only = load_config(write(tmp_path, "[[agents.openclaw.rules]]\ntools = ['docker_*']\neffect = 'approve'\n"))
    home = load_config(write(tmp_path, "[homeassistant]\nurl = 'https://ha.example:8123/api/'\n"))
    simulated = load_config(write(tmp_path, "[homeassistant]\nsimulated_home = 'home.json'\n"))

    assert docker_only.homeassistant is None
    assert not any(t.startswith("ha_") for t in docker_only.grant("openclaw").visible)
    assert home.homeassistant is not None
    assert home.homeassistant.url == "https://ha.example:8123"
    assert home.homeassistant.token_env == "ARGOBOX_HA_TOKEN" and home.homeassistant.timeout_seconds == 10
    assert simulated.homeassistant is not None and simulated.homeassistant.simulated_home == tmp_path / "home.json"


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(body)
    return path


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param("[storage]\npath = 'x.db'\ncolour = 'red'\n", "storage.colour: unknown key", id="unknown-key"),
        pytest.param(
            "[approvals]\nttl_seconds = '30'\n",
            "approvals.ttl_seconds: expected a whole number, not the text '30'",
            id="wrong-type",
        ),
        pytest.param(
            "[approvals]\nttl_seconds = 1\n",
            "approvals.ttl_seconds: must be at least 10, not 1",
            id="out-of-range",
        ),
        pytest.param(
            "[[agents.openclaw.rules]]\ntools = ['docker_list_containers']\neffect = 'maybe'\n",
            "agents.openclaw.rules[0].effect: 'maybe' is not one of 'allow', 'approve' or 'deny'",
            id="bad-effect",
        ),
        pytest.param(
            "[[agents.openclaw.rules]]\ntools = ['docker_restart_container']\neffect = 'allow'\n",
            'agents.openclaw.rules[0]: effect = "allow" would let the mutating tool',
            id="blanket-allow",
        ),
        pytest.param("[agents.'Bad Name']\n", "agents.Bad Name (the name)", id="bad-agent-name"),
        pytest.param(
            "[[operators]]\nname = 'openclaw'\n[agents.openclaw]\n", "is also an agent", id="operator-is-agent"
        ),
        pytest.param("[agents.openclaw]\ntoken_sha256 = 'abc'\n", "agents.openclaw.token_sha256", id="bad-token-hash"),
        pytest.param("[storage\npath = 1\n", "invalid TOML", id="toml-syntax"),
        pytest.param(
            "[storage]\nbusy_timeout_ms = 0\n",
            "storage.busy_timeout_ms: must be at least 1, not 0",
            id="busy-timeout",
        ),
        pytest.param("[audit]\ncolour = 'red'\n", "audit.colour: unknown key", id="audit-unknown-key"),
        pytest.param(
            "[limits]\nmax_pending = 0\n",
            "limits.max_pending: must be at least 1, not 0",
            id="zero-budget",
        ),
        pytest.param(
            "[agents.a.limits]\nfailures = { count = 2 }\n",
            "agents.a.limits.failures.window_seconds",
            id="incomplete-window",
        ),
        pytest.param(
            "[[agents.openclaw.rules]]\ntools = ['ha_get_state']\neffect = 'allow'\n",
            "agents.openclaw.rules[0].tools: 'ha_get_state' names ha_get_state, which need a [homeassistant] section",
            id="ha-tool-without-section",
        ),
        pytest.param(
            HA + "[[agents.openclaw.rules]]\ntools = ['ha_call_service']\n"
            "args = { domain = ['lock'], service = ['unlock'], entity_id = ['lock.*'] }\neffect = 'allow'\n",
            'agents.openclaw.rules[0]: effect = "allow" would pre-approve ha_call_service on lock',
            id="lock-pre-approved-by-glob",
        ),
        pytest.param(
            HA + "[[agents.openclaw.rules]]\ntools = ['ha_call_service']\nargs = { domain = ['light'] }\n"
            "effect = 'allow'\n",
            "constrain domain, service, entity_id",
            id="ha-blanket-allow",
        ),
        pytest.param(
            "[homeassistant]\ntoken_env = 'ARGOBOX_HA_TOKEN'\n", "homeassistant: url is required", id="ha-url-missing"
        ),
        pytest.param(
            "[homeassistant]\nurl = 'ftp://ha.local'\n",
            "homeassistant.url: 'ftp://ha.local' must be an http:// or https:// URL",
            id="ha-url-scheme",
        ),
        pytest.param(
            "[homeassistant]\nurl = 'http://me:hunter2@ha.local'\n",
            "homeassistant.url: must not carry credentials",
            id="ha-url-credentials",
        ),
        pytest.param(
            "[homeassistant]\nurl = 'http://ha.local'\ntoken_env = 'HA TOKEN'\n",
            "homeassistant.token_env: 'HA TOKEN' is not valid: expected an environment variable name",
            id="ha-token-env-not-a-name",
        ),
        pytest.param(
            "[homeassistant]\nurl = 'http://ha.local'\ntoken_env = 'ARGOBOX_AGENT_TOKEN'\n",
            "homeassistant.token_env: ARGOBOX_AGENT_TOKEN is ArgoBox's own variable",
            id="ha-token-env-reserved",
        ),
        pytest.param(
            "[homeassistant]\nurl = 'http://ha.local'\ntoken = 'abc'\n",
            "homeassistant.token: unknown key",
            id="ha-token-in-file",
        ),
        pytest.param(
            "[homeassistant]\nurl = 'http://ha.local'\ntimeout_seconds = 0\n",
            "homeassistant.timeout_seconds: must be more than 0, not 0",
            id="ha-timeout",
        ),
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
    monkeypatch.setattr(config_model, "SYSTEM_CONFIG_DIR", tmp_path / "etc")
    monkeypatch.setattr(config_model.os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home"))
    with pytest.raises(ConfigError, match=r"no configuration: .*run `argobox init`"):
        resolve_config_path(None)


def test_config_path_falls_back_to_where_init_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ARGOBOX_CONFIG", raising=False)
    monkeypatch.setattr(config_model, "SYSTEM_CONFIG_DIR", tmp_path / "etc")
    monkeypatch.setattr(config_model.os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home"))
    system, user, here = tmp_path / "etc/argobox.toml", tmp_path / "home/argobox/argobox.toml", Path("argobox.toml")
    found: list[Path] = []
    for path in (system, user, here):  # each one found when it exists, and it wins over those found before it
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
        found.append(resolve_config_path(None))
    assert found == [system, user, here]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param('signing_key_file = "missing.pem"', "audit.signing_key_file: cannot read", id="missing"),
        pytest.param('signing_key_file = "a.pem.pub"', "audit.signing_key_file: ", id="public-as-private"),
        pytest.param('verify_key_file = "a.pem"', "audit.verify_key_file: ", id="private-as-public"),
        pytest.param(
            'signing_key_file = "a.pem"\nverify_key_file = "b.pem.pub"',
            "audit.verify_key_file: is not the public key of audit.signing_key_file",
            id="mismatch",
        ),
    ],
)
def test_audit_keys_are_loaded_with_the_config_and_errors_name_the_key(
    tmp_path: Path, body: str, expected: str
) -> None:
    write_keypair(tmp_path / "a.pem")
    write_keypair(tmp_path / "b.pem")
    path = write(tmp_path, f"[audit]\n{body}\n")

    with pytest.raises(ConfigError) as info:
        load_config(path)

    assert str(path.resolve()) in str(info.value)
    assert expected in str(info.value)


def test_audit_keys_resolve_next_to_the_file(tmp_path: Path) -> None:
    write_keypair(tmp_path / "a.pem")
    config = load_config(write(tmp_path, '[audit]\nsigning_key_file = "a.pem"\n'))
    signer, key = config.audit.signer(), config.audit.verify_key()

    assert config.audit.signing_key_file == tmp_path.resolve() / "a.pem"
    assert signer is not None and key is not None and key.key_id == signer.key_id


def test_errors_give_the_line_and_suggest_the_key_probably_meant(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "# the homelab\n"
        "[docker]\n"
        "baseurl = 'unix:///run/docker.sock'\n"
        "\n"
        "[agents.openclaw]\n"
        "limts = { max_pending = 2 }\n"
        "\n"
        "[[agents.openclaw.rules]]\n"
        "tools = ['docker_list_containers']\n"
        "effect = 'allow'\n"
        "\n"
        "[[agents.openclaw.rules]]\n"
        "tools = ['docker_restart_container']\n"
        "effect = 'alow'\n"
        "[notifications]\n"
        "colour = 'red'\n",
    )

    with pytest.raises(ConfigError) as info:
        load_config(path)

    assert str(info.value).splitlines()[1:] == [
        "  line 3: docker.baseurl: unknown key; did you mean 'base_url'?",
        "  line 6: agents.openclaw.limts: unknown key; did you mean 'limits'?",
        "  line 14: agents.openclaw.rules[1].effect: 'alow' is not one of 'allow', 'approve' or 'deny'; "
        "did you mean 'allow'?",
        "  line 16: notifications.colour: unknown key (expected one of: webhooks, ntfy, homeassistant)",
    ]


def test_policy_problems_and_shared_tokens_give_their_line_once(tmp_path: Path) -> None:
    token = "a" * 64
    path = write(
        tmp_path,
        f"[[operators]]\nname = 'alice'\ntoken_sha256 = '{token}'\n\n"
        f"[agents.openclaw]\ntoken_sha256 = '{token}'\n\n"
        "[[agents.openclaw.rules]]\ntools = ['docker_restart_container']\neffect = 'allow'\n",
    )

    with pytest.raises(ConfigError) as info:
        load_config(path)

    problems = str(info.value).splitlines()[1:]
    assert problems[0] == (
        "  line 3: operators: 'alice' has the same token_sha256 as agents.openclaw; an agent's token can never open "
        "the operator server"
    )
    assert problems[1].startswith('  line 8: agents.openclaw.rules[0]: effect = "allow" would let the mutating tool')
    assert len(problems) == 2
