"""The Home Assistant event listener: backoff, connection state and error translation, against servers that are
down, are not Home Assistant, or are the real Home Assistant (scripts/homeassistant.sh).

Its survival of a real Home Assistant restart is in tests/e2e/test_phone.py.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import urllib.request
from collections.abc import Generator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import pytest

from argobox.adapters.ha_events import BusEvent, Connection, HomeAssistantEvents, ListenerState, backoff_delay

pytestmark = pytest.mark.anyio

EVENT = "argobox_test_event"


@pytest.mark.parametrize(
    ("failures", "jitter", "expected"),
    [
        (1, 1.0, 1.0),
        (2, 1.0, 2.0),
        (3, 1.0, 4.0),
        (7, 1.0, 60.0),
        (1000, 1.0, 60.0),
        (1, 0.0, 0.8),
        (7, 0.0, 48.0),
    ],
)
def test_backoff_doubles_up_to_its_cap_with_a_bounded_spread(failures: int, jitter: float, expected: float) -> None:
    assert backoff_delay(failures, initial=1.0, cap=60.0, jitter=jitter) == pytest.approx(expected)


class Watch:
    """Every state the listener reports, and a way to wait for one."""

    def __init__(self) -> None:
        self.states: list[ListenerState] = []
        self._changed = anyio.Event()

    def __call__(self, state: ListenerState) -> None:
        self.states.append(state)
        self._changed.set()

    async def until(self, status: Connection, count: int = 1) -> ListenerState:
        with anyio.fail_after(20):
            while sum(1 for s in self.states if s.status is status) < count:
                self._changed = anyio.Event()
                await self._changed.wait()
        return [s for s in self.states if s.status is status][count - 1]


async def run_until(
    listener: HomeAssistantEvents,
    watch: Watch,
    status: Connection,
    count: int = 1,
    events: list[BusEvent] | None = None,
) -> ListenerState:
    async def collect(event: BusEvent) -> None:
        if events is not None:
            events.append(event)

    state: ListenerState | None = None
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(listener.run, collect)
        state = await watch.until(status, count)
        tasks.cancel_scope.cancel()
    assert state is not None
    return state


def listener(
    url: str,
    watch: Watch,
    token: str = "not-a-token",  # noqa: S107 - a token no Home Assistant accepts
    **kwargs: Any,
) -> HomeAssistantEvents:
    return HomeAssistantEvents(
        url=url,
        token=token,
        token_env="ARGOBOX_HA_TOKEN",
        event_type=EVENT,
        on_state=watch,
        backoff_initial=0.01,
        backoff_max=0.05,
        **kwargs,
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_home_assistant_down_is_retried_with_a_message_and_stops_cleanly() -> None:
    watch = Watch()
    url = f"http://127.0.0.1:{closed_port()}"

    state = await run_until(listener(url, watch), watch, Connection.RETRYING, count=3)

    assert state.error == (
        f"could not connect to Home Assistant at {url}: connection refused; check that it is "
        "running and that [homeassistant] url is right"
    )
    assert [s.failures for s in watch.states if s.status is Connection.RETRYING] == [1, 2, 3]
    assert watch.states[-1].status is Connection.STOPPED


@pytest.fixture
def not_home_assistant() -> Generator[str]:
    class Plain(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"hello"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Plain)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_a_server_that_is_not_home_assistant_is_named_as_such(not_home_assistant: str) -> None:
    watch = Watch()

    state = await run_until(listener(not_home_assistant, watch), watch, Connection.RETRYING)

    assert state.error is not None and "did not accept a WebSocket connection at /api/websocket" in state.error


@pytest.mark.homeassistant
async def test_a_refused_token_is_reported_without_the_token(ha_url: str) -> None:
    watch, token = Watch(), "wrong-" + secrets.token_hex(16)

    state = await run_until(listener(ha_url, watch, token), watch, Connection.RETRYING)

    assert state.error == (
        f"Home Assistant at {ha_url} refused the token in ARGOBOX_HA_TOKEN; the operator must set "
        "a valid long-lived access token"
    )
    assert all(token not in (s.error or "") for s in watch.states)


def fire(ha_url: str, token: str, data: dict[str, Any]) -> None:
    request = urllib.request.Request(  # noqa: S310 - the loopback URL of the test's Home Assistant
        f"{ha_url}/api/events/{EVENT}",
        data=json.dumps(data).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the test's Home Assistant
        assert response.status == 200


@pytest.mark.homeassistant
async def test_events_arrive_with_the_user_home_assistant_stamped(ha_url: str, ha_token: str) -> None:
    watch, events, arrived = Watch(), list[BusEvent](), anyio.Event()
    subscriber = listener(ha_url, watch, ha_token)

    async def collect(event: BusEvent) -> None:
        events.append(event)
        arrived.set()

    connected: ListenerState | None = None
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(subscriber.run, collect)
        connected = await watch.until(Connection.CONNECTED)
        await anyio.to_thread.run_sync(fire, ha_url, ha_token, {"action": "X", "user_id": "someone-else"})
        with anyio.fail_after(20):
            await arrived.wait()
        tasks.cancel_scope.cancel()

    assert connected is not None and connected.user_id is not None and connected.ha_version is not None
    assert len(events) == 1 and events[0].event_type == EVENT
    assert events[0].data == {"action": "X", "user_id": "someone-else"}
    assert events[0].user_id == connected.user_id  # the token's user, whatever the data says
    assert events[0].context_id


@pytest.mark.homeassistant
async def test_a_silent_link_is_taken_for_dead_and_reconnected(ha_url: str, ha_token: str) -> None:
    watch = Watch()

    state = await run_until(listener(ha_url, watch, ha_token, idle_timeout=0.3), watch, Connection.CONNECTED, 2)

    dropped = next(s for s in watch.states if s.status is Connection.RETRYING)
    assert (
        dropped.error
        == f"Home Assistant at {ha_url} did not answer (read events from) within 0.3 s; the link may be down"
    )
    assert state.status is Connection.CONNECTED


@pytest.mark.homeassistant
async def test_a_user_that_may_not_hear_the_events_is_told_to_be_an_administrator(ha_url: str, ha_token: str) -> None:
    from tests.ha_phone import make_user, ws_call

    watch, user = Watch(), await anyio.to_thread.run_sync(lambda: make_user(ha_url, ha_token, "plain", admin=False))
    try:
        state = await run_until(listener(ha_url, watch, user.token), watch, Connection.RETRYING)
    finally:
        await anyio.to_thread.run_sync(lambda: ws_call(ha_url, ha_token, "config/auth/delete", user_id=user.id))

    assert state.error == (
        f"Home Assistant at {ha_url} does not let the user of the token in ARGOBOX_HA_TOKEN hear {EVENT} events; "
        "make that user an administrator"
    )
