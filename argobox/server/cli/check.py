"""`argobox check AGENT TOOL [JSON_ARGS] [--json]`: a dry run of the policy for one call.

Exit status: 0 the call would be allowed or queued; 1 it would be denied, rate limited or refused (an unknown agent
or tool, bad arguments); 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from argobox.server.app import App
from argobox.server.cli.common import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, AddParser, Cli, CommandError, with_app
from argobox.server.mediation.agent_calls import UnknownTool
from argobox.server.mediation.dry_run import dry_run, dry_run_text


def add_parser(add: AddParser, common: argparse.ArgumentParser) -> None:
    check = add(
        "check",
        parents=[common],
        help="what the policy would do with one call, without making it",
        description="Decide one call as the server would: the effect (allow, approve or deny), the rule quoted from "
        "the configuration, the reason, and the budgets that would apply right now. Nothing runs, nothing is "
        "queued and no budget changes. Exit 0 when the call would be allowed or queued, 1 when it would not.",
    )
    check.add_argument("agent", metavar="AGENT", help="a configured agent")
    check.add_argument("tool", metavar="TOOL", help="a tool name, e.g. docker_restart_container")
    check.add_argument(
        "arguments",
        metavar="JSON_ARGS",
        nargs="?",
        default="{}",
        help='the call\'s arguments as a JSON object, e.g. \'{"container": "jellyfin"}\' (default: {})',
    )
    check.add_argument("--json", action="store_true", help="print the dry run as JSON")
    check.set_defaults(run=with_app(_check))


def _arguments(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CommandError(
            f'JSON_ARGS is not JSON ({exc}); give an object such as \'{{"container": "web"}}\'', EXIT_USAGE
        ) from None
    if not isinstance(value, dict):
        raise CommandError('JSON_ARGS must be a JSON object, such as \'{"container": "web"}\'', EXIT_USAGE)
    return value  # pyright: ignore[reportUnknownVariableType]


async def _check(app: App, args: argparse.Namespace, cli: Cli) -> int:
    arguments = _arguments(args.arguments)
    try:
        data = await dry_run(app, args.agent, args.tool, arguments)
    except UnknownTool as exc:
        raise CommandError(f"{exc} (not in the grant of {args.agent}, or no such tool)", EXIT_REFUSED) from None
    if args.json:
        cli.json(data)
    else:
        cli.out(dry_run_text(data))
    runs = data["effect"] != "deny" and data["rate_limited"] is None
    return EXIT_OK if runs else EXIT_REFUSED
