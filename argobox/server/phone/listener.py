"""The phone listener in a long-lived ArgoBox process: `argobox serve --http` (and the console) run it in the
background when `[notifications.homeassistant] actions = true`; `argobox listen` runs it alone.

It subscribes to `mobile_app_notification_action` over Home Assistant's WebSocket API with ArgoBox's own token
(`[homeassistant] token_env`) and hands every press to `PressHandler`. Whether it is connected is logged on every
change, and each connection and disconnection is audited (`ha_listener`, with this process), so that a later look
(`argobox audit`, a health check) can tell whether buttons were being heard at a given time.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from argobox.adapters.ha_events import Connection, HomeAssistantEvents, ListenerState
from argobox.server.app import App
from argobox.server.config import Config
from argobox.server.phone.press import PressHandler, operator_for
from argobox.server.store import Event, StoreError, this_executor

logger = logging.getLogger("argobox")

EVENT_TYPE = "mobile_app_notification_action"
AUDIT_EVENT = "ha_listener"


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


class _Reporter:
    """Logs every change of the connection, and hands connections and disconnections on to be audited."""

    def __init__(self, app: App, url: str, transitions: MemoryObjectSendStream[ListenerState]) -> None:
        self._app = app
        self._url = url
        self._transitions = transitions
        self._connected = False

    def __call__(self, state: ListenerState) -> None:
        if state.status is Connection.CONNECTED:
            version = f" (Home Assistant {state.ha_version})" if state.ha_version else ""
            logger.info(
                "Home Assistant listener: connected to %s as user %s%s; listening for %s",
                self._url,
                state.user_id,
                version,
                EVENT_TYPE,
            )
            mapped = operator_for(self._app, state.user_id) if state.user_id else None
            if mapped is not None:
                logger.warning(
                    "operator %s has ArgoBox's own Home Assistant user as ha_user_id; presses from it are "
                    "refused: map the operator's own Home Assistant user",
                    mapped.name,
                )
        elif state.status is Connection.RETRYING:
            logger.warning("Home Assistant listener: not connected: %s; retrying in %s s", state.error, state.retry_in)
        elif state.status is Connection.STOPPED:
            logger.info("Home Assistant listener: stopped")
        connected = state.status is Connection.CONNECTED
        if connected != self._connected:
            self._connected = connected
            try:
                self._transitions.send_nowait(state)
            except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
                logger.warning("Home Assistant listener: a change of connection was not audited (too many at once)")


async def _audit_transition(app: App, url: str, state: ListenerState) -> None:
    connected = state.status is Connection.CONNECTED
    detail = {
        "state": "connected" if connected else "disconnected",
        "url": url,
        "process": this_executor(),
        **({"ha_user_id": state.user_id} if connected and state.user_id else {}),
        **({"error": state.error} if not connected and state.error else {}),
    }
    try:
        await app.store.audit([Event(event=AUDIT_EVENT, actor="argobox", detail=detail)])
    except StoreError as exc:
        logger.error("could not audit the Home Assistant listener's %s: %s", detail["state"], exc)


async def _audit_transitions(app: App, url: str, transitions: MemoryObjectReceiveStream[ListenerState]) -> None:
    async for state in transitions:
        await _audit_transition(app, url, state)


async def listen_forever(app: App) -> None:
    """Hear the phone's buttons until cancelled (a background task); returns at once when the configuration has no
    phone listener (logging why when buttons were asked for)."""
    refusal = listener_refusal(app.config)
    if refusal is not None:
        settings = app.config.notifications.homeassistant
        if settings is not None and settings.actions:
            logger.error("%s; the phone's Approve and Deny buttons will not be heard", refusal)
        return
    home = app.config.homeassistant
    assert home is not None and home.url is not None  # listener_refusal checked both
    send, receive = anyio.create_memory_object_stream[ListenerState](16)
    events = HomeAssistantEvents(
        url=home.url,
        token=os.environ[home.token_env].strip(),
        token_env=home.token_env,
        event_type=EVENT_TYPE,
        on_state=_Reporter(app, home.url, send),
    )
    handler = PressHandler(app, own_user=lambda: events.state.user_id)
    with send, receive:
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(_audit_transitions, app, home.url, receive.clone())
                await events.run(handler.handle)
        finally:
            with anyio.CancelScope(shield=True):  # the last change (stopped) is recorded too, and counted refusals
                await handler.flush()
                while True:
                    try:
                        state = receive.receive_nowait()
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                    await _audit_transition(app, home.url, state)


async def run_listener(app: App, *, background: Sequence[Callable[[App], Coroutine[Any, Any, None]]] = ()) -> None:
    """`argobox listen`: the listener and the `background` tasks (notification delivery, config reloads) until
    SIGTERM or SIGINT. A decision under way when the signal comes is finished and recorded first."""
    async with anyio.create_task_group() as tasks:
        for task in background:
            tasks.start_soon(task, app)
        tasks.start_soon(listen_forever, app)
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                logger.info("received %s: stopping the phone listener", signal.Signals(signum).name)
                break
        tasks.cancel_scope.cancel()
