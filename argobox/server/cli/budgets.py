"""`argobox budgets` (each agent's budget use) and `argobox budgets reset AGENT --as OPERATOR`."""

from __future__ import annotations

import argparse
from typing import Any

from argobox.server.app import App
from argobox.server.cli.common import AS_HELP, EXIT_OK, AddParser, Cli, claim, cli_actor, with_app
from argobox.server.cli.tables import budgets_table
from argobox.server.mediation import operator_actions
from argobox.server.mediation.views import budget_json
from argobox.server.store import Event
from argobox.server.times import iso


def add_parser(add: AddParser, common: argparse.ArgumentParser) -> None:
    budgets = add(
        "budgets",
        parents=[common],
        help="show each agent's budget use; reset a cooldown and the changes per target",
        description="Show each agent's budget use now: calls this minute, changes this hour, changes per target "
        "(each container or entity changed in the [limits] per_target window), pending requests, failure streak "
        "and cooldown (viewing is audited).",
    )
    budgets.add_argument("--json", action="store_true", help="print a JSON array (exact, for jq)")
    budgets.set_defaults(run=with_app(_budgets))
    actions = budgets.add_subparsers(dest="budgets_action", metavar="ACTION")
    reset = actions.add_parser(
        "reset",
        parents=[common],
        help="clear an agent's cooldown, failure streak and changes per target",
        description="Clear an agent's cooldown, failure streak and changes per target (so each target may be "
        "changed again), as an operator (audited). The calls this minute and changes this hour are not cleared.",
    )
    reset.add_argument("agent", metavar="AGENT", help="the configured agent whose budget to reset")
    reset.add_argument("--as", dest="operator", required=True, metavar="OPERATOR", help=AS_HELP)
    reset.set_defaults(run=with_app(_reset))


async def _budgets(app: App, args: argparse.Namespace, cli: Cli) -> int:
    rows: list[dict[str, Any]] = []
    for agent in sorted(app.config.agents):
        limits = app.config.limits_for(agent)
        usage, failures = await app.store.budget(agent, limits)
        targets = await app.store.target_use(agent, limits)
        rows.append(budget_json(agent, limits, usage, failures, now=app.clock(), targets=targets))
    await app.store.audit([Event(event="budgets_viewed", actor=cli_actor(None), detail={"agents": len(rows)})])
    if args.json:
        cli.json(rows)
    else:
        cli.out(budgets_table(rows))
    return EXIT_OK


async def _reset(app: App, args: argparse.Namespace, cli: Cli) -> int:
    cleared = await operator_actions.reset_budget(app, args.agent, operator=claim(args))
    until = f", cooldown until {iso(cleared.cooldown_until)} lifted" if cleared.cooldown_until else ""
    cli.out(
        f"reset the budget of {args.agent}: failure streak {cleared.streak} cleared{until}; changes per target cleared"
    )
    return EXIT_OK
