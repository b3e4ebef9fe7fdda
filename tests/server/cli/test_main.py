"""The `argobox` command line as a whole: help for everything, bare `argobox`, and configuration errors."""

# pyright: reportPrivateUsage=false
# (argparse keeps a parser's subcommands and their help nowhere public: this test reads them where argparse does.)

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from argobox.server.cli.main import build_parser, main
from tests.conftest import WriteConfig
from tests.server.cli.support import argobox


def subcommands(
    parser: argparse.ArgumentParser, path: str = "argobox"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every (sub)command's parser, by its command line."""
    for action in subparser_actions(parser):
        for name, sub in action.choices.items():
            yield f"{path} {name}", sub
            yield from subcommands(sub, f"{path} {name}")


def subparser_actions(parser: argparse.ArgumentParser) -> list[argparse._SubParsersAction[argparse.ArgumentParser]]:
    """The actions of `parser` that hold subcommands."""
    return [
        cast("argparse._SubParsersAction[argparse.ArgumentParser]", action)
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
    ]


def test_every_subcommand_and_every_argument_has_help() -> None:
    parser = build_parser()
    commands = dict(subcommands(parser))
    listed = {
        f"{path} {choice.dest}": choice.help
        for path, command in [("argobox", parser), *commands.items()]
        for action in subparser_actions(command)
        for choice in action._choices_actions
    }
    arguments = {
        f"{path} {'/'.join(action.option_strings) or action.dest}": action.help
        for path, command in commands.items()
        for action in command._actions
        if not isinstance(action, argparse._SubParsersAction | argparse._HelpAction)
    }

    assert {"argobox serve", "argobox token new", "argobox audit prune", "argobox budgets reset"} <= set(commands)
    assert [path for path, command in commands.items() if not command.description] == []
    assert [path for path, text in listed.items() if not text] == []
    assert [path for path, text in arguments.items() if not text] == []


def test_bare_argobox_prints_help_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    status = main([])
    shown = capsys.readouterr()

    assert status == 0
    assert shown.out.startswith("usage: argobox") and "approve" in shown.out and shown.err == ""


def test_malformed_config_is_a_clear_error_with_exit_status_2(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text("[approvals]\nttl_seconds = 'soon'\n")

    result = argobox(config, "requests")

    assert result.returncode == 2
    assert "line 2: approvals.ttl_seconds: expected a whole number, not the text 'soon'" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_key_is_shown_with_its_line_and_the_key_probably_meant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "argobox.toml"
    config.write_text('# my homelab\n[docker]\nbase_url = "unix:///run/docker.sock"\ntimeout_secs = 5\n')

    status = main(["--config", str(config), "requests"])
    shown = capsys.readouterr().err

    assert status == 2
    assert "line 4: docker.timeout_secs: unknown key; did you mean 'timeout_seconds'?" in shown
    assert "pydantic" not in shown


def test_every_error_message_hides_the_secrets_the_config_names(write_config: WriteConfig, tmp_path: Path) -> None:
    secret = "ha-secret-value-0123456789"
    config = write_config(homeassistant='simulated_home = "home.json"\ntoken_env = "MY_HA_TOKEN"')
    env = {**os.environ, "MY_HA_TOKEN": secret}

    shown = argobox(config, "show", secret, env=env)
    exported = argobox(config, "audit", "export", "--output", str(tmp_path / secret / "trail.jsonl"), env=env)

    assert shown.returncode == 1 and "no request '<redacted>'" in shown.stderr
    assert exported.returncode == 2 and "cannot write" in exported.stderr
    assert secret not in shown.stderr + exported.stderr
