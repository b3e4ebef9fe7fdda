"""`argobox approve ID --as OPERATOR` and `argobox deny ID --as OPERATOR --reason TEXT`."""

from __future__ import annotations

import argparse
import json

from argobox.server.app import App
from argobox.server.cli.common import (
    AS_HELP,
    EXIT_FAILED,
    EXIT_OK,
    AddParser,
    Cli,
    claim,
    reason_text,
    with_app,
)
from argobox.server.cli.tables import request_summary
from argobox.server.mediation import operator_actions
from argobox.server.mediation.notify import flush
from argobox.server.mediation.operators import Permission, authorize
from argobox.server.mediation.outcome import outcome_of
from argobox.server.mediation.views import request_json
from argobox.server.store import RequestRecord, RequestStatus


def add_parser(add: AddParser, common: argparse.ArgumentParser) -> None:
    approve = add(
        "approve",
        parents=[common],
        help="approve a pending request and execute it",
        description="Approve a pending request and execute it here and now, exactly once; prints the outcome. "
        "Exit status 3 when the action ran and failed.",
    )
    approve.add_argument("id", metavar="ID", help="the pending request's id")
    approve.add_argument("--as", dest="operator", required=True, metavar="OPERATOR", help=AS_HELP)
    approve.add_argument("--note", default="", help="why, for the audit trail (optional)")
    approve.add_argument("--json", action="store_true", help="print the request as a JSON object (exact)")
    approve.set_defaults(run=with_app(_approve))

    deny = add(
        "deny",
        parents=[common],
        help="deny a pending request",
        description="Deny a pending request; the agent sees the reason.",
    )
    deny.add_argument("id", metavar="ID", help="the pending request's id")
    deny.add_argument("--as", dest="operator", required=True, metavar="OPERATOR", help=AS_HELP)
    deny.add_argument(
        "--reason", required=True, type=reason_text, help="why (required, not blank): the agent and the audit see it"
    )
    deny.add_argument("--json", action="store_true", help="print the request as a JSON object (exact)")
    deny.set_defaults(run=with_app(_deny))


async def _approve(app: App, args: argparse.Namespace, cli: Cli) -> int:
    operator = claim(args)
    await authorize(app, operator, Permission.DECIDE, request_id=args.id)
    pending = await app.store.get(args.id)
    if pending is not None and pending.status is RequestStatus.PENDING:
        # Stopping or restarting a container can take a while; say what is happening before it does.
        summary = request_summary(pending.tool, app.redactor(pending.arguments), catalog=app.config.catalog)
        cli.note(f"argobox: approving {pending.id} ({summary}); executing...")
    record = await operator_actions.approve(app, args.id, operator=operator, note=args.note)
    status = _print_decided(app, args, cli, record)
    await flush(app)
    return status


async def _deny(app: App, args: argparse.Namespace, cli: Cli) -> int:
    record = await operator_actions.deny(app, args.id, operator=claim(args), reason=args.reason)
    status = _print_decided(app, args, cli, record)
    await flush(app)
    return status


def _print_decided(app: App, args: argparse.Namespace, cli: Cli, record: RequestRecord) -> int:
    if args.json:
        cli.json(request_json(record, app.redactor, app.config.catalog))
    else:
        cli.out(outcome_of(record, app.config.catalog).message)
        if record.result is not None:
            cli.out(json.dumps(app.redactor(record.result), indent=2, sort_keys=True))
    return EXIT_FAILED if record.status is RequestStatus.FAILED else EXIT_OK
