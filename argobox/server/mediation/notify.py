"""Telling the operator: a durable outbox of notifications, delivered to webhooks, ntfy-style topics and a Home
Assistant `notify.*` service.

A notification is written to the shared store when a request is queued or decided, then delivered by whichever
ArgoBox process is running (the agent server, the operator server, the CLI before it exits). A failed delivery is
retried a bounded number of times with backoff and every failure is audited; it never blocks or loses the
request. Channels are stored by position (`webhooks[0]`), never by URL, so a URL holding a secret stays in the
config file only; payloads pass through the redactor. The outbox itself is the store's (`Store.queue_notifications`,
`claim_notifications`, `settle_notification`); this module says what a notification holds and delivers it.

Webhooks and ntfy topics are posted with an async HTTP client (httpx2, the one the MCP SDK brings). A URL's
`user:password@` never reaches the client: it is taken out of the URL and sent as an `Authorization: Basic`
header, so the credentials are never handed to the name resolver, and they are redacted wherever a URL is shown.
The Home Assistant push carries its request's tag, so that a later push about the request replaces the earlier
one, and Approve and Deny buttons while it waits when configured (`argobox.server.mediation.phone.push`).
"""

from __future__ import annotations

import base64
import json
import logging
import os
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import anyio
import httpx2

from argobox.adapters.base import AdapterError
from argobox.policy.catalog import describe_call
from argobox.server.app import App
from argobox.server.config.model import Config
from argobox.server.mediation.phone.push import home_push_data
from argobox.server.store import Event, Notification, RequestRecord, StoreError
from argobox.server.text import inert
from argobox.server.times import iso

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
    """What every channel is told about `record` (redacted; no secrets), with a link to its page in the console when
    `[console] public_url` is set."""
    what = inert(describe_call(record.tool, record.arguments, app.config.catalog))  # agent text, shown inert
    link = console_link(app.config, record.id)
    if event == "queued":
        where = f"Open {link} to decide, or approve with: " if link else "Approve with: "
        message = (
            f"ArgoBox: agent {record.agent} asks to {what} ({record.tool}). "
            f"{where}{_approve_hint(app.config, record.id)}"
        )
    else:
        by = f" by {record.decided_by}" if record.decided_by else ""
        message = (
            f"ArgoBox: request {record.id} ({what}, agent {record.agent}) was {event}{by}; now {record.status.value}"
        )
        message += f" ({link})" if link else ""
    return app.redactor(
        {
            "event": event,
            "message": message,
            "request": {
                "id": record.id,
                "agent": record.agent,
                "tool": record.tool,
                "arguments": record.arguments,
                "summary": what,
                "status": record.status.value,
                "rule": record.rule,
                "reason": record.reason,
                "expires_at": iso(record.expires_at),
                "decided_by": record.decided_by,
                "note": record.note,
            },
            "approve_command": _approve_hint(app.config, record.id) if event == "queued" else None,
            "url": link,
        }
    )


async def enqueue(app: App, event: str, record: RequestRecord) -> None:
    """Put one notification per configured channel in the outbox (no-op without channels)."""
    targets = channels(app.config)
    if not targets:
        return
    body = json.dumps(payload(app, event, record), sort_keys=True)
    await app.store.queue_notifications(request_id=record.id, event=event, channels=targets, payload=body)


def without_credentials(url: str) -> tuple[str, str | None]:
    """`url` without its `user:password@`, and the `Authorization` header that carries them (None without any)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
    return urlunsplit(parts._replace(netloc=hostport)), f"Basic {token}"


def _credentials(config: Config, channel: str) -> list[str]:
    """The password (as written and decoded) in the URL of `channel`, for redacting whatever its delivery reports."""
    url = _channel_url(config, channel)
    password = urlsplit(url).password if url is not None else None
    return [password, unquote(password)] if password else []


async def _post(client: httpx2.AsyncClient, url: str, content: bytes, headers: dict[str, str]) -> None:
    bare, authorization = without_credentials(url)
    if authorization is not None:
        headers = {**headers, "Authorization": authorization}
    try:
        async with client.stream("POST", bare, content=content, headers=headers) as response:
            status, reason = response.status_code, response.reason_phrase  # the answer's body is never read
    except httpx2.TimeoutException:
        raise DeliveryFailed(f"cannot reach the receiver: no answer within {SEND_TIMEOUT_SECONDS:g} s") from None
    except httpx2.TransportError as exc:
        raise DeliveryFailed(f"cannot reach the receiver: {str(exc) or type(exc).__name__}") from None
    except (httpx2.HTTPError, httpx2.InvalidURL, ValueError) as exc:  # a URL the client cannot use
        raise DeliveryFailed(f"cannot deliver: {type(exc).__name__}: {exc}") from None
    if not 200 <= status < 300:
        raise DeliveryFailed(f"HTTP {status} {reason}")


def _title(body: dict[str, Any]) -> str:
    if body["event"] == "test":
        return "ArgoBox: test"
    return "ArgoBox: approval needed" if body["event"] == "queued" else f"ArgoBox: request {body['event']}"


async def _send_home(app: App, body: dict[str, Any]) -> None:
    settings = app.config.notifications.homeassistant
    if settings is None or app.homeassistant is None:
        raise DeliveryFailed("the homeassistant channel is no longer configured")
    data = await home_push_data(app, body)  # the request's tag, and its buttons when configured
    title = body.get("title") or _title(body)  # a push of the phone's own (a refused button) has its title
    try:
        await app.homeassistant.notify(settings.service, title=title, message=body["message"], data=data)
    except AdapterError as exc:
        raise DeliveryFailed(str(exc)) from None


def _channel_url(config: Config, channel: str) -> str | None:
    """The URL of a `webhooks[i]` or `ntfy[i]` channel, or None when it is no longer configured."""
    kind, _, index = channel.rstrip("]").partition("[")
    entries = config.notifications.webhooks if kind == "webhooks" else config.notifications.ntfy
    if not index.isdigit() or int(index) >= len(entries):
        return None
    return entries[int(index)].url


async def _send(client: httpx2.AsyncClient, config: Config, channel: str, body: dict[str, Any]) -> None:
    url = _channel_url(config, channel)
    if url is None:
        raise DeliveryFailed(f"channel {channel} is no longer configured")
    if channel.startswith("webhooks["):
        headers = {"Content-Type": "application/json", "User-Agent": "argobox"}
        await _post(client, url, json.dumps(body).encode(), headers)
    else:
        headers = {"Title": _title(body), "Tags": "lock", "User-Agent": "argobox"}
        if body.get("url"):
            headers["Click"] = body["url"]  # tapping the push opens the request's page in the console
        await _post(client, url, body["message"].encode(), headers)


async def deliver_due(app: App) -> int:
    """Claim and deliver the notifications that are due; returns how many were handled."""
    claimed = await app.store.claim_notifications(stale_after=4 * SEND_TIMEOUT_SECONDS)  # older: a sender died
    if claimed:
        async with httpx2.AsyncClient(timeout=SEND_TIMEOUT_SECONDS, follow_redirects=False) as client:
            for notification in claimed:
                await _deliver_one(app, client, notification)
    return len(claimed)


async def _deliver_one(app: App, client: httpx2.AsyncClient, notification: Notification) -> None:
    body: dict[str, Any] = json.loads(notification.payload)
    channel, attempts = notification.channel, notification.attempts
    try:
        if channel == "homeassistant":
            await _send_home(app, body)
        else:
            await _send(client, app.config, channel, body)
    except Exception as exc:  # noqa: BLE001 - one bad channel must never stall the outbox or fail the caller
        redactor = app.redactor.with_secrets(_credentials(app.config, channel))
        error = redactor.text(str(exc) if isinstance(exc, DeliveryFailed) else f"{type(exc).__name__}: {exc}")
        final = attempts >= MAX_ATTEMPTS
        retry_at = None if final else app.clock() + BACKOFF_SECONDS * 2**attempts
        detail = {
            "channel": channel,
            "event": body.get("event"),
            "attempt": attempts,
            "error": error,
            "will_retry": not final,
        }
        event = Event(event="notification_failed", actor="argobox", detail=detail)
        await app.store.settle_notification(notification, retry_at=retry_at, error=error, event=event)
        return
    detail = {"channel": channel, "event": body.get("event"), "attempt": attempts}
    event = Event(event="notified", actor="argobox", detail=detail)
    await app.store.settle_notification(notification, retry_at=None, error=None, event=event)


async def send_test(app: App, channel: str) -> str | None:
    """Send a test notification through `channel` now (not through the outbox): None when it was accepted, else
    why not (redacted)."""
    body = {"event": "test", "message": "ArgoBox: a test notification from argobox doctor; nothing waits for you"}
    try:
        if channel == "homeassistant":
            await _send_home(app, body)
        else:
            async with httpx2.AsyncClient(timeout=SEND_TIMEOUT_SECONDS, follow_redirects=False) as client:
                await _send(client, app.config, channel, body)
    except DeliveryFailed as exc:
        return app.redactor.with_secrets(_credentials(app.config, channel)).text(str(exc))
    return None


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
        except Exception:
            logger.exception("notification delivery failed (pid %s)", os.getpid())
        await anyio.sleep(POLL_SECONDS)


async def announce(app: App, event: str, record: RequestRecord) -> None:
    """Queue notifications; a failure here never fails or loses the request itself."""
    try:
        await enqueue(app, event, record)
    except StoreError as exc:
        logger.error("could not queue notifications for request %s: %s", record.id, exc)
