"""Home Assistant's event bus over its WebSocket API: one subscription, kept alive across restarts.

`HomeAssistantEvents.run` connects to `<url>/api/websocket`, authenticates with the access token, asks which user
that token belongs to (`auth/current_user`: an event fired through a service ArgoBox calls carries that user),
subscribes to one event type and hands every such event to a callback, one at a time, while it keeps reading. When
the connection drops (Home Assistant restarting, or a network cut noticed because not even Home Assistant's
heartbeat, sent every 55 s, arrived within `idle_timeout`), it reconnects after a bounded exponential backoff.
`state` says at any moment whether it is connected, and `on_state` hears every change.

The client is homeassistant-api's `AsyncWebsocketClient` (already a dependency: niquests and wsproto underneath).
Every failure is translated here into an `AdapterError` whose message names the URL and the next step, never the
token; it is kept in `state.error` while the listener retries.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Generator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, NoReturn

import anyio
import niquests
import urllib3.exceptions
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from homeassistant_api import AsyncWebsocketClient
from homeassistant_api import errors as ha_errors
from homeassistant_api.models.websocket import FiredEvent
from pydantic import ValidationError

from argobox.adapters.base import AdapterError, BackendRejected, BackendUnavailable

logger = logging.getLogger("argobox")
# The client logs every message it receives at INFO, event data included (a notification action key is a one-time
# code): keep it to warnings.
logging.getLogger("homeassistant_api").setLevel(logging.WARNING)

CONNECT_TIMEOUT_SECONDS = 10.0
"""Connecting, authenticating and subscribing must be done within this."""
IDLE_TIMEOUT_SECONDS = 90.0
"""Home Assistant pings every WebSocket client every 55 s; silence for longer than this means the link is dead."""
BACKOFF_INITIAL_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0
QUEUE_SIZE = 64
"""Events received while the callback is still busy with an earlier one; more than this are dropped (logged)."""
CLOSE_SECONDS = 2.0
CONNECTING = "connect to"


class Connection(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RETRYING = "retrying"
    """Disconnected, waiting for the next attempt (`ListenerState.retry_in`)."""
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenerState:
    """Where the listener stands. `error` is why the last attempt or connection ended (safe to show)."""

    status: Connection
    since: float
    """When it entered this status (the listener's clock, epoch seconds)."""
    error: str | None = None
    failures: int = 0
    """Failed attempts since the last successful subscription."""
    retry_in: float | None = None
    ha_version: str | None = None
    user_id: str | None = None
    """The Home Assistant user the token belongs to (ArgoBox's own user), once connected."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BusEvent:
    """One event from Home Assistant's bus. `user_id` comes from the event's context, stamped by Home Assistant
    (the user whose token or companion app fired it); `data` is whatever the sender put there."""

    event_type: str
    data: dict[str, Any]
    user_id: str | None
    context_id: str | None
    origin: str


def backoff_delay(failures: int, *, initial: float, cap: float, jitter: float) -> float:
    """The wait before attempt `failures + 1`: doubling from `initial`, never above `cap`, spread by `jitter` (a
    number in [0, 1)) over the upper fifth so that several listeners do not reconnect in lockstep."""
    base = min(cap, initial * 2 ** max(0, min(failures - 1, 30)))
    return base * (0.8 + 0.2 * jitter)


@dataclass(slots=True)
class HomeAssistantEvents:
    """A resilient subscription to `event_type` on the Home Assistant at `url` (e.g. http://homeassistant.local:8123).

    `token` is the long-lived access token, read by the caller from the environment variable `token_env` (named in
    messages, never the value).
    """

    url: str
    token: str
    token_env: str
    event_type: str
    on_state: Callable[[ListenerState], None] | None = None
    connect_timeout: float = CONNECT_TIMEOUT_SECONDS
    idle_timeout: float = IDLE_TIMEOUT_SECONDS
    backoff_initial: float = BACKOFF_INITIAL_SECONDS
    backoff_max: float = BACKOFF_MAX_SECONDS
    clock: Callable[[], float] = time.time
    jitter: Callable[[], float] = random.random
    _state: ListenerState = field(init=False)
    _dropped: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/").removesuffix("/api")
        self._state = ListenerState(status=Connection.CONNECTING, since=self.clock())

    @property
    def state(self) -> ListenerState:
        return self._state

    async def run(self, on_event: Callable[[BusEvent], Awaitable[None]]) -> None:
        """Stay subscribed until cancelled, calling `on_event` for each event in the order received. An exception
        from `on_event` is logged and the next event is handled."""
        send, receive = anyio.create_memory_object_stream[BusEvent](QUEUE_SIZE)
        try:
            async with anyio.create_task_group() as tasks, send:
                tasks.start_soon(self._deliver, receive, on_event)
                await self._keep_subscribed(send)
        finally:
            self._set(status=Connection.STOPPED, error=None, retry_in=None)

    async def _keep_subscribed(self, send: MemoryObjectSendStream[BusEvent]) -> NoReturn:
        failures = 0
        while True:
            self._set(status=Connection.CONNECTING, retry_in=None)
            try:
                await self._session(send)
            except AdapterError as exc:
                connected = self._state.status is Connection.CONNECTED
                failures = 1 if connected else failures + 1
                delay = backoff_delay(
                    failures, initial=self.backoff_initial, cap=self.backoff_max, jitter=self.jitter()
                )
                self._set(status=Connection.RETRYING, error=str(exc), failures=failures, retry_in=round(delay, 1))
                await anyio.sleep(delay)

    async def _session(self, send: MemoryObjectSendStream[BusEvent]) -> NoReturn:
        """One connection: connect, authenticate, subscribe, then read until it ends. Raises AdapterError."""
        session = niquests.AsyncSession(retries=0, timeout=(self.connect_timeout, self.idle_timeout))
        client = AsyncWebsocketClient(f"{self.url}/api/websocket", self.token, session=session)
        try:
            with self._errors(CONNECTING), anyio.fail_after(self.connect_timeout):
                await client.__aenter__()
                user_id = str((await client.recv_result_dict(await client.send("auth/current_user")))["id"])
                version = (await client.recv_result_dict(await client.send("get_config"))).get("version")
                subscription = await client.send("subscribe_events", event_type=self.event_type)
                await client.recv_result(subscription)
            self._set(
                status=Connection.CONNECTED,
                error=None,
                failures=0,
                retry_in=None,
                ha_version=str(version) if version else None,
                user_id=user_id,
            )
            while True:
                with self._errors("read events from"):
                    response = await client.recv_event(subscription)
                if isinstance(response.event, FiredEvent) and response.event.event_type == self.event_type:
                    self._queue(send, response.event)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_SECONDS):
                await self._close(client, session)

    def _queue(self, send: MemoryObjectSendStream[BusEvent], fired: FiredEvent) -> None:
        context = fired.context
        event = BusEvent(
            event_type=fired.event_type,
            data=dict(fired.data),
            origin=fired.origin,
            user_id=context.user_id if context is not None else None,
            context_id=context.id if context is not None else None,
        )
        try:
            send.send_nowait(event)
        except anyio.WouldBlock:
            self._dropped += 1
            logger.warning(
                "dropped a %s event from Home Assistant: %d are already waiting (%d dropped so far)",
                self.event_type,
                QUEUE_SIZE,
                self._dropped,
            )

    async def _deliver(
        self, receive: MemoryObjectReceiveStream[BusEvent], on_event: Callable[[BusEvent], Awaitable[None]]
    ) -> None:
        async with receive:
            async for event in receive:
                try:
                    await on_event(event)
                except Exception:  # the top of a delivery loop: one bad event must not stop the others
                    logger.exception("could not handle a %s event", self.event_type)

    @staticmethod
    async def _close(client: AsyncWebsocketClient, session: niquests.AsyncSession) -> None:
        """Close the socket and the session, whatever stage the connection reached."""
        closing = (OSError, ha_errors.HomeassistantAPIError, urllib3.exceptions.HTTPError)
        try:
            await client.__aexit__(None, None, None)  # closes the WebSocket, then the session
            return
        except AttributeError:
            pass  # no WebSocket was opened
        except closing as exc:
            logger.debug("closing the Home Assistant WebSocket: %s", exc)
        try:
            await session.close()
        except closing as exc:
            logger.debug("closing the Home Assistant session: %s", exc)

    def _set(self, **changes: Any) -> None:
        status = changes.get("status", self._state.status)
        if status is not self._state.status:
            changes["since"] = self.clock()
        self._state = replace(self._state, **changes)
        if self.on_state is not None:
            self.on_state(self._state)

    @contextmanager
    def _errors(self, what: str) -> Generator[None]:
        """Translate client, protocol and transport exceptions into AdapterErrors that say what to check."""
        where = f"Home Assistant at {self.url}"
        try:
            yield
        except ha_errors.UnauthorizedError:
            raise BackendRejected(
                f"{where} refused the token in {self.token_env}; the operator must set a valid long-lived access token"
            ) from None
        except ha_errors.ReceivingError as exc:
            if what == CONNECTING and "upgrade" in str(exc):  # "Server did not upgrade to WebSocket"
                raise _not_a_websocket(where) from None
            raise BackendUnavailable(f"{where} closed the WebSocket connection (restarting or stopped?)") from None
        except niquests.exceptions.Timeout:
            raise BackendUnavailable(
                f"{where} did not answer ({what}) within {self.idle_timeout:g} s; the link may be down"
            ) from None
        except TimeoutError:
            raise BackendUnavailable(
                f"could not {what} {where} within {self.connect_timeout:g} s; check that it is running"
            ) from None
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            if what == CONNECTING and "WebSocket" in str(exc):  # an HTTP answer that is no WebSocket handshake
                raise _not_a_websocket(where) from None
            reason = "connection refused" if _refused(exc) else type(exc).__name__
            raise BackendUnavailable(
                f"could not {what} {where}: {reason}; check that it is running and that [homeassistant] url is right"
            ) from None
        except ha_errors.ResponseError as exc:
            if "unauthorized" in str(exc).lower():  # "[unauthorized] Unauthorized": not an administrator
                raise BackendRejected(
                    f"{where} does not let the user of the token in {self.token_env} hear {self.event_type} events; "
                    "make that user an administrator"
                ) from None
            raise BackendRejected(f"{where} gave an unexpected WebSocket answer ({type(exc).__name__})") from None
        except (ha_errors.HomeassistantAPIError, ValidationError, TypeError, ValueError, KeyError) as exc:
            raise BackendRejected(
                f"{where} gave an unexpected WebSocket answer ({type(exc).__name__}); is it a Home Assistant?"
            ) from None


def _not_a_websocket(where: str) -> BackendRejected:
    return BackendRejected(f"{where} did not accept a WebSocket connection at /api/websocket; is it a Home Assistant?")


def _refused(exc: BaseException) -> bool:
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 8:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError) or "Connect call failed" in str(current):
            return True
        todo += [c for c in (current.__cause__, current.__context__) if c is not None]
        todo += [a for a in current.args if isinstance(a, BaseException)]
    return False
