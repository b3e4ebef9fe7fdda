"""Home Assistant as the operator's phone sees it, for the tests of approving from the phone: users made through
Home Assistant's own auth API (with a token from the login flow), button presses fired as those users, and a
recording of what Home Assistant announces on its event bus (service calls, button events)."""

from __future__ import annotations

import json
import secrets
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Generator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anyio

PHONE_SERVICE = "mobile_app_phone"
"""The notify service scripts/homeassistant.sh configures as the operator's phone."""
EVENT = "mobile_app_notification_action"
WAIT_S = 30


class Hidden(str):
    """A secret that pytest's failure reports show as '***'."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'"


# Home Assistant users, through its own auth API -------------------------------------------------------------------


@dataclass(frozen=True)
class HaUser:
    id: str
    token: Hidden


@dataclass(frozen=True)
class People:
    argobox: HaUser
    """The owner, whose token ArgoBox uses."""
    phone: HaUser
    """The operator's phone (an administrator, so that the test may fire the event over REST as this user)."""
    stranger: HaUser
    """Another administrator, mapped to no operator."""


def ha_http(
    method: str, url: str, *, token: str | None = None, body: Any = None, form: dict[str, str] | None = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    elif form is not None:
        data, headers["Content-Type"] = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310 - the test's Home Assistant
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def ws_url(ha_url: str) -> str:
    return ha_url.replace("http://", "ws://", 1) + "/api/websocket"


def ws_call(ha_url: str, token: str, command: str, **fields: Any) -> Any:
    from homeassistant_api import WebsocketClient

    with WebsocketClient(ws_url(ha_url), token) as ws:
        return ws.recv_result(ws.send(command, **fields)).result


def make_user(ha_url: str, owner_token: str, label: str, *, admin: bool = True) -> HaUser:
    """A Home Assistant user (an administrator unless told) with a password, and an access token from the login
    flow."""
    name, password = f"argobox-test-{label}-{secrets.token_hex(3)}", secrets.token_urlsafe(18)
    group = "system-admin" if admin else "system-users"
    created = ws_call(ha_url, owner_token, "config/auth/create", name=name, group_ids=[group])
    user_id = created["user"]["id"]
    ws_call(
        ha_url,
        owner_token,
        "config/auth_provider/homeassistant/create",
        user_id=user_id,
        username=name,
        password=password,
    )
    client_id = f"{ha_url}/"
    status, flow = ha_http(
        "POST",
        f"{ha_url}/auth/login_flow",
        body={"client_id": client_id, "handler": ["homeassistant", None], "redirect_uri": client_id},
    )
    assert status == 200, flow
    status, done = ha_http(
        "POST",
        f"{ha_url}/auth/login_flow/{flow['flow_id']}",
        body={"client_id": client_id, "username": name, "password": password},
    )
    assert status == 200 and done["type"] == "create_entry", done
    status, tokens = ha_http(
        "POST",
        f"{ha_url}/auth/token",
        form={"grant_type": "authorization_code", "code": done["result"], "client_id": client_id},
    )
    assert status == 200, "the login flow gave no token"
    return HaUser(id=user_id, token=Hidden(tokens["access_token"]))


def press(ha_url: str, user: HaUser, action: str, **data: Any) -> None:
    """What the companion app does when a button is pressed, as `user`: the event, with the action key."""
    status, body = ha_http("POST", f"{ha_url}/api/events/{EVENT}", token=user.token, body={"action": action, **data})
    assert status == 200, body


# Home Assistant's event bus, recorded --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fired:
    event_type: str
    data: dict[str, Any]
    user_id: str | None


class Bus:
    """Every `call_service` and button event Home Assistant announces on its bus while the block runs."""

    def __init__(self) -> None:
        self.fired: list[Fired] = []
        self.error: str | None = None

    def notifications(self, tag: str) -> list[dict[str, Any]]:
        """The service data of every call of notify.mobile_app_phone for the request with `tag`."""
        return [
            f.data["service_data"]
            for f in self.fired
            if f.event_type == "call_service"
            and (f.data["domain"], f.data["service"]) == ("notify", PHONE_SERVICE)
            and f.data["service_data"].get("data", {}).get("tag") == tag
        ]

    def calls(self, domain: str, service: str) -> int:
        return sum(
            1
            for f in self.fired
            if f.event_type == "call_service" and (f.data["domain"], f.data["service"]) == (domain, service)
        )

    async def wait(self, what: Callable[[], Any], within: float = WAIT_S) -> Any:
        with anyio.fail_after(within):
            while not (found := what()):
                assert self.error is None, f"the event subscription ended: {self.error}"
                await anyio.sleep(0.05)
        return found


@contextmanager
def recorded(ha_url: str, token: str) -> Generator[Bus]:
    from homeassistant_api import WebsocketClient
    from homeassistant_api.models.websocket import FiredEvent

    bus, ready = Bus(), threading.Event()
    stop = f"argobox_test_stop_{secrets.token_hex(6)}"

    def listen() -> None:
        try:
            with WebsocketClient(ws_url(ha_url), token) as ws, ws.listen_events() as events:
                ready.set()
                for event in events:
                    if not isinstance(event, FiredEvent) or event.event_type == stop:
                        return
                    if event.event_type in ("call_service", EVENT):
                        user = event.context.user_id if event.context else None
                        bus.fired.append(Fired(event.event_type, event.data, user))
        except OSError as exc:  # a read timeout after a long quiet spell: the waits report it
            bus.error = f"{type(exc).__name__}: {exc}"

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert ready.wait(10), "could not subscribe to Home Assistant's events"
    try:
        yield bus
    finally:
        ha_http("POST", f"{ha_url}/api/events/{stop}", token=token, body={})
        thread.join(10)
