"""What hearing the phone's buttons needs, and the audit record of whether a process hears them.

A long-lived ArgoBox process (`argobox serve --http`, the console, `argobox listen`) subscribes to `EVENT_TYPE` over
Home Assistant's WebSocket API when `[notifications.homeassistant] actions = true`. Each change of its connection
worth keeping is audited as `LISTENER_EVENT` with this process, so that `argobox doctor` (and anyone reading the
trail) can tell whether the buttons are being heard, and were at a given time.
"""

from __future__ import annotations

import logging
import os
from enum import StrEnum

from argobox.server.app import App
from argobox.server.config.model import Config
from argobox.server.store import Event, StoreError, this_executor

logger = logging.getLogger("argobox")

EVENT_TYPE = "mobile_app_notification_action"
"""The event the companion app fires when a notification's button is pressed."""
LISTENER_EVENT = "ha_listener"


class ListenerStatus(StrEnum):
    """The `state` of a `LISTENER_EVENT`."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    """Lost or never made; the process keeps retrying (`error` says why)."""
    STOPPED = "stopped"
    """The process stopped listening."""


def listener_refusal(config: Config) -> str | None:
    """Why this configuration has no phone listener, or None when it has one."""
    settings = config.notifications.homeassistant
    if settings is None or not settings.actions:
        return "the phone listener needs [notifications.homeassistant] with actions = true"
    home = config.homeassistant
    if home is None or home.url is None:
        return "the phone listener needs a real Home Assistant: [homeassistant] url"
    if not os.environ.get(home.token_env, "").strip():
        return f"the phone listener needs the Home Assistant token in the environment variable {home.token_env}"
    return None


async def record_listener(
    app: App, state: ListenerStatus, *, url: str, ha_user_id: str | None = None, error: str | None = None
) -> None:
    """Audit a change of this process's listener (a failure to record it is logged, never raised)."""
    detail = {
        "state": state.value,
        "url": url,
        "process": this_executor(),
        **({"ha_user_id": ha_user_id} if ha_user_id else {}),
        **({"error": error} if error else {}),
    }
    try:
        await app.store.audit([Event(event=LISTENER_EVENT, actor="argobox", detail=detail)])
    except StoreError as exc:
        logger.error("could not audit the Home Assistant listener's %s: %s", state.value, exc)
