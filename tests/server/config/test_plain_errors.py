"""Configuration errors in plain words: a misspelled tool or value gets a "did you mean", a value of the wrong form
is told what form is expected (never pydantic's "Input should be ..."), and internal keys are never suggested."""

from __future__ import annotations

from pathlib import Path

import pytest

from argobox.server.config.model import ConfigError, load_config

RULE = "[[agents.openclaw.rules]]\ntools = [{tools}]\neffect = {effect}\n"
PYDANTIC_WORDING = ("Input should", "String should", "should match pattern", "valid integer", "instance of")


def error_of(tmp_path: Path, body: str) -> str:
    path = tmp_path / "argobox.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value).split(":\n  ", 1)[1]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            RULE.format(tools="'docker_restart_containr'", effect="'approve'"),
            "line 2: agents.openclaw.rules[0].tools: 'docker_restart_containr' matches no known tool; "
            "did you mean 'docker_restart_container'?",
            id="tool-typo",
        ),
        pytest.param(
            RULE.format(tools="'docker_list'", effect="'allow'"),
            "did you mean 'docker_list_containers'?",
            id="tool-prefix",
        ),
        pytest.param(
            RULE.format(tools="'zzz_*'", effect="'allow'"),
            "line 2: agents.openclaw.rules[0].tools: 'zzz_*' matches no known tool; the known tools are "
            "docker_container_logs, docker_inspect_container",
            id="tool-nothing-close-lists-the-short-catalog",
        ),
        pytest.param(
            RULE.format(tools="'docker_list_containers'", effect="'alow'"),
            "line 3: agents.openclaw.rules[0].effect: 'alow' is not one of 'allow', 'approve' or 'deny'; "
            "did you mean 'allow'?",
            id="effect-typo",
        ),
        pytest.param(
            RULE.format(tools="'docker_list_containers'", effect="'maybe'"),
            "line 3: agents.openclaw.rules[0].effect: 'maybe' is not one of 'allow', 'approve' or 'deny'",
            id="effect-unknown",
        ),
        pytest.param(
            "[[operators]]\nname = 'Alice'\n",
            "line 2: operators[0].name: 'Alice' is not a valid name: expected a lowercase letter, then up to 63 "
            "lowercase letters, digits, '-' or '_'",
            id="name-pattern",
        ),
        pytest.param(
            "[agents.openclaw]\ntoken_sha256 = 'abc'\n",
            "line 2: agents.openclaw.token_sha256: 'abc' is not valid: expected 64 lowercase hexadecimal digits",
            id="sha256-pattern",
        ),
        pytest.param(
            "[homeassistant]\nurl = 'http://ha.local'\ntoken_env = 'HA TOKEN'\n",
            "line 3: homeassistant.token_env: 'HA TOKEN' is not valid: expected an environment variable name",
            id="env-pattern",
        ),
        pytest.param(
            "[approvals]\nttl_seconds = '30'\n",
            "line 2: approvals.ttl_seconds: expected a whole number, not the text '30' (write numbers without quotes)",
            id="int-in-quotes",
        ),
        pytest.param(
            "[approvals]\nttl_seconds = 1\n",
            "line 2: approvals.ttl_seconds: must be at least 10, not 1",
            id="too-small",
        ),
        pytest.param(
            "[docker]\ntimeout_seconds = 0\n",
            "line 2: docker.timeout_seconds: must be more than 0, not 0",
            id="not-positive",
        ),
        pytest.param(
            "[storage]\npath = 5\n",
            "line 2: storage.path: expected a path in quotes, not 5",
            id="path-not-text",
        ),
        pytest.param(
            "[docker]\nbase_url = true\n",
            "line 2: docker.base_url: expected text in quotes, not true",
            id="text-not-bool",
        ),
        pytest.param(
            RULE.format(tools="", effect="'allow'"),
            "line 2: agents.openclaw.rules[0].tools: must have at least 1 entry",
            id="empty-list",
        ),
        pytest.param("sourse = 1\n", "line 1: sourse: unknown key; did you mean 'storage'?", id="no-internal-hint"),
        pytest.param(
            "source = '/etc/argobox/other.toml'\n", "line 1: source: unknown key", id="internal-key-is-unknown"
        ),
    ],
)
def test_config_errors_are_plain_sentences(tmp_path: Path, body: str, expected: str) -> None:
    error = error_of(tmp_path, body)

    assert expected in error, error
    assert not any(words in error for words in PYDANTIC_WORDING), error
    assert ", source" not in error and "mean 'source'" not in error


def test_an_unknown_top_level_key_lists_the_keys_without_internal_ones(tmp_path: Path) -> None:
    error = error_of(tmp_path, "colour = 'red'\n")

    assert error == (
        "line 1: colour: unknown key (expected one of: storage, docker, homeassistant, approvals, audit, limits, "
        "notifications, http, operators, console, agents, hosts, runbooks)"
    )
