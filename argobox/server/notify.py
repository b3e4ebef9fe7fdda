"""Telling the operator: a durable outbox of notifications, delivered to webhooks, ntfy-style topics and a Home
Assistant `notify.*` service.

A notification is written to the shared store when a request is queued or decided, then delivered by whichever
ArgoBox process is running (the agent server, the operator server, the CLI before it exits). A failed delivery is
retried a bounded number of times with backoff and every failure is audited; it never blocks or loses the
request. Channels are stored by position (`webhooks[0]`), never by URL, so a URL holding a secret stays in the
config file only; payloads pass through the redactor.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import sqlite3
import urllib.error
import urllib.request
from typing import Any

import anyio

from argobox.adapters.base import AdapterError
from argobox.policy.catalog import describe_call
from argobox.server.app import App
from argobox.server.config import Config
from argobox.server.store import Event, RequestRecord, Tx, iso

logger = logging.getLogger("argobox")

SEND_TIMEOUT_SECONDS = 5.0
MAX_ATTEMPTS = 4
BACKOFF_SECONDS = 2.0
POLL_SECONDS = 1.0


class DeliveryFailed(Exception):
    """Raised by a sender when a channel did not accept a notification."""


def channels(config: Config) -> list[str]:
    """Every configured channel, by position: `webhooks[0]`, `ntfy[1]`, ..."""
    n = config.notifications
    urls = [f"webhooks[{i}]" for i in range(len(n.webhooks))] + [f"ntfy[{i}]" for i in range(len(n.ntfy))]
    return urls + (["homeassistant"] if n.homeassistant is not None else [])


def _approve_hint(config: Config, request_id: str) -> str:
    operator = config.operators[0].name if len(config.operators) == 1 else "<operator>"
    return f"argobox approve {request_id} --as {operator}"


def console_link(config: Config, request_id: str) -> str | None:
    """The request's page in the web console, when `[console] public_url` says where operators reach it."""
    if config.console is None or config.console.public_url is None:
        return None
    return f"{config.console.public_url}/requests/{request_id}"


def payload(app: App, event: str, record: RequestRecord) -> dict[str, Any]:
    """What every channel is told about `record` (redacted; no secrets)."""
    what = describe_call(record.tool, record.arguments)
    link = console_link(app.config, record.id)
    if event == "queued":
        where = f"Open {link} to decide, or approve with: " if link else "Approve with: "
        message = (f"ArgoBox: agent {record.agent} asks to {what} ({record.tool}). "
                   f"{where}{_approve_hint(app.config, record.id)}")
    else:
        by = f" by {record.decided_by}" if record.decided_by else ""
        message = f"ArgoBox: request {record.id} ({what}, agent {record.agent}) was {event}{by}; now {record.status.value}"
        message += f" ({link})" if link else ""
    return app.redactor({
        "event": event,
        "message": message,
        "request": {
            "id": record.id, "agent": record.agent, "tool": record.tool, "arguments": record.arguments,
            "summary": what, "status": record.status.value, "rule": record.rule, "reason": record.reason,
            "expires_at": iso(record.expires_at), "decided_by": record.decided_by, "note": record.note,
        },
        "approve_command": _approve_hint(app.config, record.id) if event == "queued" else None,
        "url": link,
    })


async def enqueue(app: App, event: str, record: RequestRecord) -> None:
    """Put one notification per configured channel in the outbox (no-op without channels)."""
    targets = channels(app.config)
    if not targets:
        return
    body = json.dumps(payload(app, event, record), sort_keys=True)
    now = app.clock()
    rows = [(now, record.id, event, channel, body, now) for channel in targets]

    def insert(tx: Tx) -> None:
        tx.db.executemany(
            "INSERT INTO outbox (created_at, request_id, event, channel, payload, next_at, status)"
            " VALUES (?, ?, ?, ?, ?, ?, 'pending')", rows,
        )

    await app.store.transaction(insert)


def _post(url: str, data: bytes, headers: dict[str, str]) -> None:
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")  # noqa: S310 - http(s) only
    try:
        with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_SECONDS) as response:  # noqa: S310
            response.read(1024)
    except urllib.error.HTTPError as exc:
        raise DeliveryFailed(f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryFailed(f"cannot reach the receiver: {reason}") from None
    except (ValueError, http.client.HTTPException) as exc:  # a URL urllib cannot use, or a broken answer
        raise DeliveryFailed(f"cannot deliver: {type(exc).__name__}: {exc}") from None


def _title(body: dict[str, Any]) -> str:
    return "ArgoBox: approval needed" if body["event"] == "queued" else f"ArgoBox: request {body['event']}"


async def _send_home(app: App, body: dict[str, Any]) -> None:
    settings = app.config.notifications.homeassistant
    if settings is None or app.homeassistant is None:
        raise DeliveryFailed("the homeassistant channel is no longer configured")
    try:
        await app.homeassistant.notify(settings.service, title=_title(body), message=body["message"])
    except AdapterError as exc:
        raise DeliveryFailed(str(exc)) from None


def _send(config: Config, channel: str, body: dict[str, Any]) -> None:
    kind, _, index = channel.rstrip("]").partition("[")
    entries = config.notifications.webhooks if kind == "webhooks" else config.notifications.ntfy
    if not index.isdigit() or int(index) >= len(entries):
        raise DeliveryFailed(f"channel {channel} is no longer configured")
    url = entries[int(index)].url
    if kind == "webhooks":
        _post(url, json.dumps(body).encode(), {"Content-Type": "application/json", "User-Agent": "argobox"})
    else:
        headers = {"Title": _title(body), "Tags": "lock", "User-Agent": "argobox"}
        if body.get("url"):
            headers["Click"] = body["url"]  # tapping the push opens the request's page in the console
        _post(url, body["message"].encode(), headers)


async def deliver_due(app: App) -> int:
    """Claim and deliver the notifications that are due; returns how many were handled."""
    now = app.clock()

    def claim(tx: Tx) -> list[sqlite3.Row]:
        tx.db.execute("UPDATE outbox SET status = 'pending' WHERE status = 'sending' AND claimed_at < ?",
                      (now - 4 * SEND_TIMEOUT_SECONDS,))  # a sender that died mid-way
        return tx.db.execute(
            "UPDATE outbox SET status = 'sending', claimed_at = ?, attempts = attempts + 1 WHERE id IN"
            " (SELECT id FROM outbox WHERE status = 'pending' AND next_at <= ? ORDER BY id LIMIT 20)"
            " RETURNING id, request_id, event, channel, payload, attempts",
            (now, now),
        ).fetchall()

    rows = await app.store.transaction(claim)
    for row in rows:
        await _deliver_one(app, row["id"], row["request_id"], row["channel"], json.loads(row["payload"]), row["attempts"])
    return len(rows)


async def _deliver_one(app: App, row_id: int, request_id: str | None, channel: str, body: dict[str, Any],
                       attempts: int) -> None:
    try:
        if channel == "homeassistant":
            await _send_home(app, body)
        else:
            await anyio.to_thread.run_sync(_send, app.config, channel, body)
    except Exception as exc:  # noqa: BLE001 - one bad channel must never stall the outbox or fail the caller
        error = app.redactor.text(str(exc) if isinstance(exc, DeliveryFailed) else f"{type(exc).__name__}: {exc}")
        final = attempts >= MAX_ATTEMPTS
        status, next_at = ("failed", None) if final else ("pending", app.clock() + BACKOFF_SECONDS * 2 ** attempts)
        detail = {"channel": channel, "event": body.get("event"), "attempt": attempts, "error": error,
                  "will_retry": not final}
        await _settle(app, row_id, status, next_at, error, Event(event="notification_failed", actor="argobox",
                                                                  detail=detail), request_id)
        return
    detail = {"channel": channel, "event": body.get("event"), "attempt": attempts}
    await _settle(app, row_id, "sent", None, None, Event(event="notified", actor="argobox", detail=detail), request_id)


async def _settle(app: App, row_id: int, status: str, next_at: float | None, error: str | None, event: Event,
                  request_id: str | None) -> None:
    def settle(tx: Tx) -> None:
        tx.db.execute(
            "UPDATE outbox SET status = ?, next_at = COALESCE(?, next_at), last_error = ? WHERE id = ?",
            (status, next_at, error, row_id),
        )
        tx.append([event], request_id=request_id, agent=None, tool=None)

    await app.store.transaction(settle)


async def flush(app: App, *, within: float = 10.0) -> None:
    """Deliver what is due now, giving up after `within` seconds (used by short-lived CLI commands)."""
    if not channels(app.config):
        return
    with anyio.move_on_after(within):
        while await deliver_due(app):
            pass


async def notify_forever(app: App) -> None:
    """Background delivery for long-running servers: poll the outbox until cancelled."""
    if not channels(app.config):
        return
    while True:
        try:
            await deliver_due(app)
        except Exception:  # noqa: BLE001 - top of a background loop: log and keep the server alive
            logger.exception("notification delivery failed (pid %s)", os.getpid())
        await anyio.sleep(POLL_SECONDS)
