"""What every `argobox` command shares: exit statuses, loading the configuration, who the operator is, and output.

All text a command shows goes through `Cli`: redacted (the secrets of the environment and, once the configuration is
loaded, the ones it names), then made inert for a terminal (`argobox.server.text.inert`), because much of it was
written by agents or backends. `--json` output is redacted the same way, then printed exactly, as JSON (which escapes
every control character).
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import anyio

from argobox.server.app import App, build_redactor, open_app
from argobox.server.config.model import Config, load_config, resolve_config_path
from argobox.server.mediation.operators import OperatorClaim
from argobox.server.redact import RedactingFormatter, Redactor
from argobox.server.text import inert
from argobox.server.times import TimeFormatError, parse_time

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_FAILED, EXIT_STORE = 0, 1, 2, 3, 4
"""Done; refused (or audit verification failed); bad usage or configuration; the approved action ran and failed;
the store could not be used."""
EXIT_INTERRUPTED = 130
AGENT_TOKEN_ENV = "ARGOBOX_AGENT_TOKEN"  # noqa: S105 - the name of a variable, not a token
OPERATOR_TOKEN_ENV = "ARGOBOX_OPERATOR_TOKEN"  # noqa: S105 - the name of a variable, not a token
CONFIG_HELP = (
    "configuration file (default: $ARGOBOX_CONFIG, else ./argobox.toml, else the one `argobox init` writes: "
    "~/.config/argobox/argobox.toml, or /etc/argobox/argobox.toml)"
)
AS_HELP = f"the configured operator doing it (with its token in ${OPERATOR_TOKEN_ENV} when it has a token_sha256)"


class CommandError(Exception):
    """Raised by a command to stop with a message and an exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class _TerminalLogFormatter(RedactingFormatter):
    """Log lines on stderr: redacted, then inert (a log line may quote what an agent sent)."""

    def format(self, record: logging.LogRecord) -> str:
        return inert(super().format(record), lines=True)


@dataclass(slots=True)
class Cli:
    """One run of the `argobox` command: where its output goes, and the redactor every line passes through.

    The redactor starts with the secrets of the environment and grows with the configuration (`load`), for the
    command's own output, its error message and its log lines alike.
    """

    redactor: Redactor = field(default_factory=build_redactor)
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    _log_format: RedactingFormatter | None = None

    def log_to_stderr(self) -> None:
        """Send log records to stderr, each through the redactor and made inert."""
        self._log_format = _TerminalLogFormatter(self.redactor, "argobox: %(levelname)s %(message)s")
        handler = logging.StreamHandler(self.stderr)
        handler.setFormatter(self._log_format)
        logging.basicConfig(level=logging.INFO, handlers=[handler])

    def load(self, args: argparse.Namespace) -> Config:
        """The configuration named by `--config` (or its defaults); its secrets are redacted from then on."""
        config = load_config(resolve_config_path(getattr(args, "config", None)))
        self.redactor = build_redactor(config)
        if self._log_format is not None:
            self._log_format.use(self.redactor)
        return config

    def out(self, text: str, *, flush: bool = False) -> None:
        """Print text for the operator on stdout: redacted and inert (line feeds kept)."""
        print(inert(self.redactor.text(text), lines=True), file=self.stdout, flush=flush)

    def secret(self, label: str, value: str) -> None:
        """Show a secret ArgoBox just made (a new token) on stdout, once, exactly: the one output never redacted."""
        print(f"{label}: {value}", file=self.stdout, flush=True)

    def json(self, value: Any) -> None:
        """Print `value` as JSON: every string in it redacted like any other output (a view may have shaped it from
        the configuration, whose URLs can carry credentials), then exact: JSON escapes every control character."""
        print(json.dumps(self.redactor.strings(value), indent=2, sort_keys=True), file=self.stdout)

    def note(self, text: str) -> None:
        """A line for the operator on stderr (progress, hints), redacted and inert."""
        print(inert(self.redactor.text(text), lines=True), file=self.stderr, flush=True)

    def fail(self, message: str) -> None:
        """The one way a command reports why it stopped."""
        self.note(f"argobox: {message}")


Run = Callable[[argparse.Namespace, Cli], int]
AddParser = Callable[..., argparse.ArgumentParser]
"""`add_parser` of the subcommands' action: each command module adds its own parser with it."""
AppCommand = Callable[[App, argparse.Namespace, Cli], Awaitable[int]]


def with_app(command: AppCommand) -> Run:
    """A command that runs against the configured store and backends (opened for it, closed after)."""

    def run(args: argparse.Namespace, cli: Cli) -> int:
        config = cli.load(args)

        async def opened() -> int:
            async with open_app(config) as app:
                return await command(app, args, cli)

        return anyio.run(opened)

    return run


def claim(args: argparse.Namespace, *, channel: str = "cli") -> OperatorClaim:
    """The operator named by `--as`, with the token in ARGOBOX_OPERATOR_TOKEN (if any) as its proof."""
    return OperatorClaim(args.operator, token=os.environ.get(OPERATOR_TOKEN_ENV) or None, channel=channel)


def cli_actor(operator: str | None) -> str:
    """Who ran a CLI command: the named operator, else the local user account."""
    if operator:
        return f"operator:{operator}"
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"cli:{user}"


def config_parent() -> argparse.ArgumentParser:
    """The `--config` option every subcommand accepts after its name, too."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=CONFIG_HELP)
    return common


def timestamp(value: str) -> float:
    """`parse_time` for argparse: an ISO 8601 date or date-time, UTC unless it says otherwise."""
    try:
        return parse_time(value)
    except TimeFormatError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


MAX_LIMIT = 10_000
"""The largest `--limit` any command takes: more is never what an operator reading a terminal wants."""


def limit_count(value: str) -> int:
    """A `--limit` for argparse: a whole number from 1 to MAX_LIMIT; anything else is a usage error."""
    expected = f"give a whole number from 1 to {MAX_LIMIT}"
    try:
        number = int(value)
    except ValueError:  # also a number of more digits than int() reads
        number = None if not value.strip().lstrip("+-").isdigit() else MAX_LIMIT + 1
    if number is None:
        raise argparse.ArgumentTypeError(f"{value[:40]!r} is not a whole number; {expected}")
    if not 1 <= number <= MAX_LIMIT:
        shown = value if len(value) <= 40 else f"{value[:20]}... ({len(value)} characters)"
        raise argparse.ArgumentTypeError(f"{shown} is out of range; {expected}")
    return number


def reason_text(value: str) -> str:
    """A denial's reason for argparse: required, and not blank."""
    if not value.strip():
        raise argparse.ArgumentTypeError("a denial needs a reason: say why, so the agent and the audit trail know")
    return value
