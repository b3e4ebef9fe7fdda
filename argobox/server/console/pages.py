"""The console's pages: Pending, each request, History, Audit and Budgets, and the decisions taken on them.

A decision is a form POST answered with a redirect to the request's page (so it works without JavaScript, and a
reload never repeats it); what happened is shown there once. A request decided or expired meanwhile (a stale page,
or two operators pressing Approve together) gets a plain message saying so: the store's conditional update lets
exactly one decision through.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from argobox.server.console import ops
from argobox.server.console.present import (
    event_view,
    status_words,
    summary_parts,
    supplied,
    supplied_arguments,
    targets,
)
from argobox.server.console.web import MAX_FIELD, Caller, Console, Handler

logger = logging.getLogger("argobox")

REQUEST_ID = re.compile(r"^[a-z0-9]{1,64}$")
AGENT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
HISTORY_LIMIT = 200
AUDIT_LIMIT = 100


def _store_errors(handler: Handler, console: Console) -> Handler:
    """A store that cannot be read or written gets a clear page, never a traceback."""

    @functools.wraps(handler)
    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except ops.StoreError as exc:
            logger.error("console: %s %s: the store failed: %s", request.method, request.url.path, exc)
            return console.refusal_page(
                None, 503, f"ArgoBox could not use its store ({exc}); nothing was changed. Try again in a moment."
            )

    return guarded


def routes(console: Console) -> list[Route]:
    pages = Pages(console)
    table: list[tuple[str, Handler, str]] = [
        ("/", pages.pending, "GET"),
        ("/pending/list", pages.pending_list, "GET"),
        ("/requests/{request_id}", pages.request, "GET"),
        ("/requests/{request_id}/status", pages.status, "GET"),
        ("/requests/{request_id}/approve", pages.approve, "POST"),
        ("/requests/{request_id}/deny", pages.deny, "POST"),
        ("/history", pages.history, "GET"),
        ("/audit", pages.audit, "GET"),
        ("/audit/export", pages.export, "GET"),
        ("/budgets", pages.budgets, "GET"),
        ("/budgets/{agent}/reset", pages.reset, "POST"),
    ]
    return [Route(path, _store_errors(handler, console), methods=[method]) for path, handler, method in table]


def _cards(requests: list[dict[str, Any]], catalog: Mapping[str, ops.ToolClass]) -> list[dict[str, Any]]:
    return [
        {**r, "parts": summary_parts(r["tool"], supplied_arguments(r), catalog), "words": status_words(r["status"])}
        for r in requests
    ]


def stale_message(exc: ops.Refused) -> tuple[str, str]:
    """What an operator is told when a decision could not be taken: (flash kind, message)."""
    if exc.code == "expired":
        return "stale", f"Too late: {exc}. Nothing was done."
    if exc.code in ("not_pending", "not_approved"):
        return "stale", f"Already decided meanwhile: {exc}. Nothing more was done."
    if exc.code == "not_found":
        return "error", f"{exc}."
    return "error", f"Refused: {exc}."


def _utc(value: str) -> float | None:
    """A `datetime-local` form value (read as UTC) as an epoch timestamp. Raises ValueError."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


class Pages:
    def __init__(self, console: Console) -> None:
        self.c = console
        self.app = console.app

    def _request_id(self, request: Request) -> str | None:
        value = str(request.path_params["request_id"])
        return value if REQUEST_ID.fullmatch(value) else None

    async def pending(self, request: Request) -> Response:
        caller = await self.c.caller(request, ops.Permission.VIEW)
        if isinstance(caller, Response):
            return caller
        return self.c.page(
            "pending.html",
            caller,
            page="pending",
            requests=_cards(await ops.pending(self.app), self.app.config.catalog),
        )

    async def pending_list(self, request: Request) -> Response:
        """The Pending list alone, for the page's script to refresh (not counted as activity for the idle timeout)."""
        caller = await self.c.caller(request, ops.Permission.VIEW, api=True)
        if isinstance(caller, Response):
            return caller
        html = self.c.env.get_template("_pending_list.html").render(
            requests=_cards(await ops.pending(self.app), self.app.config.catalog)
        )
        return HTMLResponse(html)

    async def request(self, request: Request) -> Response:
        caller = await self.c.caller(request, ops.Permission.VIEW)
        if isinstance(caller, Response):
            return caller
        request_id = self._request_id(request)
        record = await ops.request(self.app, request_id) if request_id else None
        if record is None:
            return self.c.refusal_page(
                caller, 404, "There is no such request. It may have been pruned from the store, or the link is wrong."
            )
        data = await ops.explain_request(self.app, record)
        data["timeline"] = [event_view(e) for e in data["timeline"]]
        return self.c.page(
            "request.html",
            caller,
            page="request",
            r=data,
            x=data["explanation"],
            parts=summary_parts(record.tool, record.arguments, self.app.config.catalog),
            supplied=supplied(data),
            targets=targets(record.tool, record.arguments, self.app.config.catalog),
            words=status_words(data["status"]),
            pending=data["status"] == "pending_approval",
        )

    async def status(self, request: Request) -> Response:
        """The request's status as JSON, for the page's script to notice a decision taken elsewhere."""
        caller = await self.c.caller(request, ops.Permission.VIEW, api=True)
        if isinstance(caller, Response):
            return caller
        request_id = self._request_id(request)
        record = await ops.request(self.app, request_id) if request_id else None
        if record is None:
            return JSONResponse({"error": "no such request"}, status_code=404)
        return JSONResponse(
            {"status": record.status.value, "words": status_words(record.status.value), "decided_by": record.decided_by}
        )

    async def _decide(self, request: Request, field: str) -> tuple[Caller, str, str] | Response:
        request_id = self._request_id(request)
        checked = await self.c.form(request, ops.Permission.DECIDE, request_id=request_id)
        if isinstance(checked, Response):
            return checked
        caller, form = checked
        if request_id is None:
            return self.c.refusal_page(caller, 404, "There is no such request.")
        text = str(form.get(field) or "").strip()
        if len(text) > MAX_FIELD:
            caller.session.flash("error", f"The {field} is longer than {MAX_FIELD} characters; nothing was done.")
            return RedirectResponse(f"/requests/{request_id}", status_code=303)
        return caller, request_id, text

    async def approve(self, request: Request) -> Response:
        decided = await self._decide(request, "note")
        if isinstance(decided, Response):
            return decided
        caller, request_id, note = decided
        try:
            record = await ops.approve(self.app, request_id, operator=caller.claim, note=note)
        except ops.Refused as exc:
            caller.session.flash(*stale_message(exc))
        else:
            kind = "ok" if record.status is ops.RequestStatus.SUCCEEDED else "error"
            caller.session.flash(kind, f"Approved by you. Outcome: {ops.outcome_message(self.app, record)}")
        return RedirectResponse(f"/requests/{request_id}", status_code=303)

    async def deny(self, request: Request) -> Response:
        decided = await self._decide(request, "reason")
        if isinstance(decided, Response):
            return decided
        caller, request_id, reason = decided
        if not reason:
            caller.session.flash("error", "A reason is required to deny (the agent is told it); nothing was done.")
            return RedirectResponse(f"/requests/{request_id}", status_code=303)
        try:
            await ops.deny(self.app, request_id, operator=caller.claim, reason=reason)
        except ops.Refused as exc:
            caller.session.flash(*stale_message(exc))
        else:
            caller.session.flash("ok", "Denied by you; the agent is told your reason.")
        return RedirectResponse(f"/requests/{request_id}", status_code=303)

    async def history(self, request: Request) -> Response:
        caller = await self.c.caller(request, ops.Permission.VIEW)
        if isinstance(caller, Response):
            return caller
        q = request.query_params
        chosen = {key: str(q.get(key) or "")[:64] for key in ("agent", "tool", "status", "since", "until")}
        problems: list[str] = []
        try:
            status = ops.RequestStatus(chosen["status"]) if chosen["status"] else None
        except ValueError:
            status, chosen["status"] = None, ""
            problems.append("unknown status; showing every status")
        try:
            since, until = _utc(chosen["since"]), _utc(chosen["until"])
        except ValueError:
            since = until = None
            problems.append("a time is not a date and time such as 2026-11-25T10:00; showing all times")
        wanted = ops.HistoryFilter(
            agent=chosen["agent"] or None,
            tool=chosen["tool"] or None,
            status=status,
            since=since,
            until=until,
            limit=HISTORY_LIMIT,
        )
        requests = _cards(await ops.history(self.app, wanted), self.app.config.catalog)
        return self.c.page(
            "history.html",
            caller,
            page="history",
            requests=requests,
            chosen=chosen,
            problems=problems,
            agents=sorted(self.app.config.agents),
            tools=sorted(self.app.config.catalog),
            statuses=list(ops.RequestStatus),
            limit=HISTORY_LIMIT,
        )

    async def audit(self, request: Request) -> Response:
        caller = await self.c.caller(request, ops.Permission.VIEW)
        if isinstance(caller, Response):
            return caller
        verification = await ops.verify_audit(self.app)
        events = [event_view(e) for e in reversed(await ops.audit_events(self.app, limit=AUDIT_LIMIT))]
        return self.c.page(
            "audit.html",
            caller,
            page="audit",
            verification=verification,
            events=events,
            limit=AUDIT_LIMIT,
            show_request=True,
        )

    async def export(self, request: Request) -> Response:
        caller = await self.c.caller(request, ops.Permission.VIEW)
        if isinstance(caller, Response):
            return caller
        text = await ops.export_audit(self.app)
        await self.c.audit.record(
            "audit_exported", f"operator:{caller.operator.name}", {"via": "console", "lines": text.count("\n")}
        )
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return Response(
            text,
            media_type="application/jsonl; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="argobox-audit-{stamp}.jsonl"'},
        )

    async def budgets(self, request: Request) -> Response:
        caller = await self.c.caller(request, ops.Permission.VIEW)
        if isinstance(caller, Response):
            return caller
        return self.c.page("budgets.html", caller, page="budgets", rows=await ops.budgets(self.app))

    async def reset(self, request: Request) -> Response:
        checked = await self.c.form(request, ops.Permission.RESET_BUDGET)
        if isinstance(checked, Response):
            return checked
        caller, _ = checked
        agent = str(request.path_params["agent"])
        if not AGENT_NAME.fullmatch(agent) or agent not in self.app.config.agents:
            caller.session.flash("error", "There is no such agent; nothing was reset.")
            return RedirectResponse("/budgets", status_code=303)
        try:
            cleared = await ops.reset_budget(self.app, agent, operator=caller.claim)
        except ops.Refused as exc:
            caller.session.flash("error", f"Refused: {exc}. Nothing was reset.")
        else:
            caller.session.flash("ok", f"{cleared}.")
        return RedirectResponse("/budgets", status_code=303)
