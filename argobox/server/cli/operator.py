"""`argobox operator --as OPERATOR`: the operator-facing MCP server over stdio, for desktop MCP clients."""

from __future__ import annotations

import argparse

import anyio

from argobox.server.app import App, open_app
from argobox.server.cli.common import AS_HELP, EXIT_OK, OPERATOR_TOKEN_ENV, AddParser, Cli, claim
from argobox.server.mediation.notify import notify_forever
from argobox.server.mediation.operators import Permission, authorize
from argobox.server.store import Event


def add_parser(add: AddParser, common: argparse.ArgumentParser) -> None:
    operator = add(
        "operator",
        parents=[common],
        help="run the operator-facing MCP server over stdio",
        description="Run the operator's MCP server over stdio (for Claude Desktop and similar): list, explain, "
        f"approve and deny requests and read the audit trail as one configured operator (with ${OPERATOR_TOKEN_ENV} "
        "when it has a token_sha256). No agent name or token can open it.",
    )
    operator.add_argument("--as", dest="operator", required=True, metavar="OPERATOR", help=AS_HELP)
    operator.set_defaults(run=_run)


def _run(args: argparse.Namespace, cli: Cli) -> int:
    return anyio.run(_operator, args, cli)


async def _operator(args: argparse.Namespace, cli: Cli) -> int:
    from argobox.server.transport.operator import build_operator_server

    config = cli.load(args)
    operator = claim(args, channel="mcp-stdio")
    async with open_app(config) as app:
        await authorize(app, operator, Permission.VIEW)
        server = build_operator_server(app, operator)
        await app.store.audit(
            [Event(event="operator_connected", actor=f"operator:{args.operator}", detail={"transport": "stdio"})]
        )
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(notify_forever, app)
            tasks.start_soon(follow_config, app, f"operator server of {args.operator}")
            await server.run_stdio_async()
            tasks.cancel_scope.cancel()
    return EXIT_OK


async def follow_config(app: App, process: str) -> None:
    """Apply configuration changes (grants, operators) while a long-lived server runs."""
    from argobox.server.transport.watch import ConfigWatcher, Reload

    async def ignore(_: Reload) -> None:
        return None

    await ConfigWatcher(app, ignore, process=process).run()
