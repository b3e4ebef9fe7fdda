"""The `argobox` command: the agent server, the operator's queue and audit commands, and the demo.

Exit status: 0 done; 1 refused (no such request, not pending, expired, unknown operator or agent) or audit
verification failed; 2 bad usage or configuration; 3 the approved action ran and failed; 4 the store could not be
used.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from argobox import __version__
from argobox.server.cli import (
    audit,
    budgets,
    check,
    console,
    decisions,
    demo,
    doctor,
    init,
    listen,
    operator,
    queue,
    serve,
    token,
)
from argobox.server.cli.common import (
    CONFIG_HELP,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_STORE,
    EXIT_USAGE,
    Cli,
    CommandError,
    Run,
    config_parent,
)
from argobox.server.config.model import ConfigError
from argobox.server.store import Refused, StoreError

COMMANDS = (init, doctor, check, serve, operator, console, listen, token, queue, decisions, audit, budgets, demo)
"""The command groups, each a module that adds its own subcommands (in this order in `argobox --help`)."""


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: every subcommand sets `run`, the function that carries it out."""
    parser = argparse.ArgumentParser(
        prog="argobox",
        description=(__doc__ or "").split("\n\n", 1)[0].replace("\n", " "),
        epilog="Run `argobox COMMAND --help` for what a command does and takes.",
    )
    parser.add_argument("--config", metavar="PATH", default=None, help=CONFIG_HELP)
    parser.add_argument("--version", action="version", version=f"argobox {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = config_parent()
    for group in COMMANDS:
        group.add_parser(sub.add_parser, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Run | None = getattr(args, "run", None)
    if run is None:  # bare `argobox`
        parser.print_help()
        return EXIT_OK
    cli = Cli()
    cli.log_to_stderr()
    try:
        return run(args, cli)
    except CommandError as exc:
        cli.fail(str(exc))
        return exc.status
    except ConfigError as exc:
        cli.fail(str(exc))
        return EXIT_USAGE
    except Refused as exc:
        cli.fail(str(exc))
        return EXIT_REFUSED
    except StoreError as exc:
        cli.fail(f"store unavailable: {exc}")
        return EXIT_STORE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `argobox audit --json | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
