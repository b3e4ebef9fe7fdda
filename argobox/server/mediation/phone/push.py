"""The Home Assistant push: one notification per request on the phone, with Approve and Deny buttons while it waits.

Every push about a request carries `data.tag = "argobox-<request id>"`, so the companion app shows one notification
per request: the push that says who decided and how replaces the one with the buttons, whichever channel decided.
With `[notifications.homeassistant] actions = true`, a push about a request that is still pending carries the
buttons (`data.actions`): Approve and Deny, each with its one-time code, and a third one that opens the request's
console page when `[console] public_url` is set. The codes are made when the push is sent, never stored.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from argobox.policy.decide import request_digest
from argobox.server.app import App
from argobox.server.mediation.phone.codes import KeyFileError, action_key, key_file, load_or_create_key
from argobox.server.store import RequestRecord, RequestStatus

logger = logging.getLogger("argobox")

HOME_CHANNEL = "homeassistant"
"""The outbox channel of the Home Assistant push (as `argobox.server.mediation.notify.channels` names it)."""
REFUSED_EVENT = "phone_refused"
REFUSED_TITLE = "ArgoBox: button refused"


def tag(request_id: str) -> str:
    """The companion app's `tag`: a later push with the same tag replaces the earlier one."""
    return f"argobox-{request_id}"


def console_url(app: App, request_id: str) -> str | None:
    """The request's page on the console, when `[console] public_url` is configured.

    Read with getattr: the `[console]` section comes with the console, and a configuration without it has no such
    page to open."""
    console: object = getattr(app.config, "console", None)
    public: object = getattr(console, "public_url", None)
    if not isinstance(public, str) or not public.startswith(("http://", "https://")):
        return None
    return f"{public.rstrip('/')}/requests/{request_id}"


def buttons(app: App, record: RequestRecord) -> list[dict[str, str]]:
    """The push's `actions`: Approve and Deny with their codes, and Open when the console has a public URL.

    Raises KeyFileError when the action key cannot be used."""
    key = load_or_create_key(key_file(app.config.storage.path))
    digest = request_digest(record.agent, record.tool, record.arguments)
    actions = [
        {"action": action_key(key, record.id, digest, "approve"), "title": "Approve"},
        {"action": action_key(key, record.id, digest, "deny"), "title": "Deny"},
    ]
    uri = console_url(app, record.id)
    if uri is not None:
        actions.append({"action": "URI", "title": "Open", "uri": uri})
    return actions


def _waiting(app: App, record: RequestRecord) -> bool:
    expires = record.expires_at
    return record.status is RequestStatus.PENDING and (expires is None or expires > app.clock())


async def home_push_data(app: App, body: dict[str, Any]) -> dict[str, Any] | None:
    """The `data` field of the Home Assistant push for an outbox `body`: its request's tag and, when buttons are
    configured and the request still waits, the buttons. None for a push about no request."""
    request: dict[str, Any] = body.get("request") or {}
    request_id = request.get("id")
    if not isinstance(request_id, str):
        return None
    data: dict[str, Any] = {"tag": tag(request_id)}
    settings = app.config.notifications.homeassistant
    if settings is None or not settings.actions:
        return data
    record = await app.store.get(request_id)
    if record is None or not _waiting(app, record):
        return data
    try:
        data["actions"] = buttons(app, record)
    except KeyFileError as exc:
        logger.error("the push for request %s goes without Approve and Deny buttons: %s", request_id, exc)
    return data


async def push_refusal(app: App, record: RequestRecord, message: str) -> None:
    """Queue a short push to the operator's phone saying why a button press was refused (same tag: it replaces
    the request's push, and brings the buttons back while the request still waits). Raises StoreError."""
    if app.config.notifications.homeassistant is None:
        return
    body = {
        "event": REFUSED_EVENT,
        "title": REFUSED_TITLE,
        "message": app.redactor.text(message),
        "request": {"id": record.id},
    }
    await app.store.queue_notifications(
        request_id=record.id, event=REFUSED_EVENT, channels=[HOME_CHANNEL], payload=json.dumps(body, sort_keys=True)
    )
