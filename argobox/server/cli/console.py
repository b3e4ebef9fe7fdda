"""`argobox console [--listen HOST:PORT]`: the web operator console, and the operator MCP tools at its `/mcp`."""

from __future__ import annotations

import argparse

import anyio

from argobox.server.cli.common import EXIT_OK, AddParser, Cli


def add_parser(add: AddParser, common: argparse.ArgumentParser) -> None:
    console = add(
        "console",
        parents=[common],
        help="serve the web operator console (and the operator MCP tools at /mcp)",
        description="Serve the web operator console: operators sign in with their name and operator token and "
        "approve, deny and read from any browser. The operator MCP tools are served at /mcp too, with the "
        "operator's token as the bearer token. Listens on [console] listen (default 127.0.0.1:8766).",
    )
    console.add_argument(
        "--listen", metavar="HOST:PORT", help="where to listen (default: [console] listen, else 127.0.0.1:8766)"
    )
    console.add_argument(
        "--allow-non-loopback",
        action="store_true",
        help="allow a non-loopback address (put a TLS-terminating proxy in front and set [console] public_url)",
    )
    console.set_defaults(run=_run)


def _run(args: argparse.Namespace, cli: Cli) -> int:
    from argobox.server.console.serve import run_console

    config = cli.load(args)
    anyio.run(lambda: run_console(config, args.listen, allow_non_loopback=args.allow_non_loopback))
    return EXIT_OK
