"""The phone listener in a long-lived ArgoBox process: `argobox serve --http` (and the console) run it in the
background when `[notifications.homeassistant] actions = true`; `argobox listen` runs it alone.

It subscribes to `mobile_app_notification_action` over Home Assistant's WebSocket API with ArgoBox's own token
(`[homeassistant] token_env`) and hands every press to `PressHandler`. Whether it is connected is logged on every
change, and audited (`ha_listener`, with this process) when it connects, when it first fails (after a connection,
or from the start), and when it stops: `argobox doctor` reads those records.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from argobox.adapters.ha_events import Connection, HomeAssistantEvents, ListenerState
from argobox.server.app import App
from argobox.server.mediation.phone.listening import EVENT_TYPE, ListenerStatus, listener_refusal, record_listener
from argobox.server.mediation.phone.press import PressHandler, operator_for

logger = logging.getLogger("argobox")

TRANSITIONS_BUFFERED = 16


@dataclass(frozen=True, slots=True)
class _Change:
    status: ListenerStatus
    ha_user_id: str | None
    error: str | None


class _Reporter:
    """Logs every change of the connection, and hands the ones worth auditing on (`_Change`)."""

    def __init__(self, app: App, url: str, changes: MemoryObjectSendStream[_Change]) -> None:
        self._app = app
        self._url = url
        self._changes = changes
        self._audited: ListenerStatus | None = None

    def __call__(self, state: ListenerState) -> None:
        if state.status is Connection.CONNECTED:
            self._log_connected(state)
            self._hand_on(_Change(ListenerStatus.CONNECTED, state.user_id, None))
        elif state.status is Connection.RETRYING:
            logger.warning("Home Assistant listener: not connected: %s; retrying in %s s", state.error, state.retry_in)
            if state.failures == 1:  # the first failure after a connection, or from the start; not every retry
                self._hand_on(_Change(ListenerStatus.DISCONNECTED, None, state.error))
        elif state.status is Connection.STOPPED:
            logger.info("Home Assistant listener: stopped")
            self._hand_on(_Change(ListenerStatus.STOPPED, None, None))

    def _log_connected(self, state: ListenerState) -> None:
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
                "operator %s has ArgoBox's own Home Assistant user as ha_user_id; presses from it are refused: map "
                "the operator's own Home Assistant user",
                mapped.name,
            )

    def _hand_on(self, change: _Change) -> None:
        if change.status is self._audited:
            return
        self._audited = change.status
        try:
            self._changes.send_nowait(change)
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            logger.warning("Home Assistant listener: a change of connection was not audited (too many at once)")


async def _record(app: App, url: str, change: _Change) -> None:
    await record_listener(app, change.status, url=url, ha_user_id=change.ha_user_id, error=change.error)


async def _record_changes(app: App, url: str, changes: MemoryObjectReceiveStream[_Change]) -> None:
    async for change in changes:
        await _record(app, url, change)


async def listen_forever(app: App) -> None:
    """Hear the phone's buttons until cancelled (a background task); returns at once when the configuration has no
    phone listener (logging why when buttons were asked for)."""
    refusal = listener_refusal(app.config)
    home = app.config.homeassistant
    if refusal is not None or home is None or home.url is None:
        settings = app.config.notifications.homeassistant
        if refusal is not None and settings is not None and settings.actions:
            logger.error("%s; the phone's Approve and Deny buttons will not be heard", refusal)
        return
    send, receive = anyio.create_memory_object_stream[_Change](TRANSITIONS_BUFFERED)
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
                tasks.start_soon(_record_changes, app, home.url, receive.clone())
                await events.run(handler.handle)
        finally:
            with anyio.CancelScope(shield=True):  # the last changes (stopped) are recorded, and counted refusals
                await handler.flush()
                while True:
                    try:
                        change = receive.receive_nowait()
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                    await _record(app, home.url, change)


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
