"""The queue as operators read it: `argobox requests`, `argobox show ID` and `argobox watch`."""

from __future__ import annotations

import argparse

import anyio

from argobox.server.app import App
from argobox.server.cli.common import EXIT_OK, EXIT_REFUSED, AddParser, Cli, CommandError, limit_count, with_app
from argobox.server.cli.tables import audit_line, request_summary, requests_table
from argobox.server.mediation.explain import explain, explain_text
from argobox.server.mediation.notify import notify_forever
from argobox.server.mediation.views import request_json
from argobox.server.store import AuditRecord, RequestStatus
from argobox.server.text import shorten

STATUS_ALIASES = {"pending": RequestStatus.PENDING}
"""Short names `--status` accepts too (the operator server's `list_requests` takes the same)."""
WATCHED = frozenset(
    {"queued", "approved", "denied", "succeeded", "failed", "expired", "interrupted", "rate_limited", "cooldown"}
)
"""The events `watch` shows without --all: a request's life and the budget refusals."""
WATCH_POLL_SECONDS = 0.5


def add_parser(add: AddParser, common: argparse.ArgumentParser) -> None:
    requests = add(
        "requests",
        parents=[common],
        help="list requests, newest first",
        description="List the agents' requests, newest first: each with the action and its target as ArgoBox "
        "understands them, then the free-form arguments (cut).",
    )
    requests.add_argument(
        "--status",
        choices=[*STATUS_ALIASES, *(s.value for s in RequestStatus)],
        help="only requests in this status (pending is short for pending_approval)",
    )
    requests.add_argument("--agent", metavar="NAME", help="only this agent's requests")
    requests.add_argument(
        "--limit", type=limit_count, default=100, metavar="N", help="at most N requests, 1 to 10000 (default 100)"
    )
    requests.add_argument("--json", action="store_true", help="print a JSON array (exact, for jq)")
    requests.set_defaults(run=with_app(_requests))

    show = add(
        "show",
        parents=[common],
        help="show one request with its timeline",
        description="Show one request: who asked and when, what in words, how it was classified, the rule that "
        "decided (quoted from the configuration), why it needs approval, the target's state now, the agent's "
        "budget, and the full timeline.",
    )
    show.add_argument("id", metavar="ID", help="the request's id (from `argobox requests` or a notification)")
    show.add_argument("--json", action="store_true", help="print a JSON object (exact, for jq)")
    show.set_defaults(run=with_app(_show))

    watch = add(
        "watch",
        parents=[common],
        help="follow new requests and decisions live",
        description="Print the pending requests, then follow new requests and decisions as they happen "
        "(Ctrl-C to stop). Notifications are delivered meanwhile.",
    )
    watch.add_argument("--all", action="store_true", help="every audit event, not only requests and decisions")
    watch.set_defaults(run=with_app(_watch))


async def _requests(app: App, args: argparse.Namespace, cli: Cli) -> int:
    status = STATUS_ALIASES.get(args.status) or (RequestStatus(args.status) if args.status else None)
    records = await app.store.list_requests(status=status, agent=args.agent, limit=args.limit)
    if args.json:
        cli.json([request_json(r, app.redactor, app.config.catalog) for r in records])
    else:
        cli.out(requests_table(records, app.redactor, app.config.catalog))
    return EXIT_OK


async def _show(app: App, args: argparse.Namespace, cli: Cli) -> int:
    record = await app.store.get(args.id)
    if record is None:
        raise CommandError(f"no request {shorten(args.id, 64)!r}", EXIT_REFUSED)
    data = await explain(app, record)
    if args.json:
        cli.json(data)
    else:
        cli.out(explain_text(data))
    return EXIT_OK


async def _watch(app: App, args: argparse.Namespace, cli: Cli) -> int:
    """Follow the audit trail: pending requests first, then every new request and decision as it happens."""
    pending = await app.store.list_requests(status=RequestStatus.PENDING)
    shown = requests_table(pending, app.redactor, app.config.catalog) if pending else "no pending requests"
    cli.out(shown, flush=True)
    head = await app.store.audit_trail(limit=1)
    last = head[-1].seq if head else 0
    summaries: dict[str, str] = {}
    cli.note("watching for new requests and decisions (Ctrl-C to stop)")
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(notify_forever, app)
        while True:
            await app.store.expire_due()
            for event in await app.store.audit_after(last):
                last = event.seq
                if args.all or event.event in WATCHED:
                    cli.out(await _watched(app, event, summaries), flush=True)
            await anyio.sleep(WATCH_POLL_SECONDS)
    return EXIT_OK  # the task group ends only by an exception (Ctrl-C)


async def _watched(app: App, event: AuditRecord, summaries: dict[str, str]) -> str:
    """A request's event led by the request's summary (the action and its target); any other event as is."""
    if event.request_id is None or event.event not in WATCHED:
        return audit_line(event, app.redactor)
    if event.request_id not in summaries:
        record = await app.store.get(event.request_id)
        if record is None:
            return audit_line(event, app.redactor)
        arguments = app.redactor(record.arguments)
        summaries[event.request_id] = request_summary(record.tool, arguments, catalog=app.config.catalog)
    return audit_line(event, app.redactor, summary=summaries[event.request_id])
