"""Approving from the phone, end to end: the real `argobox serve --http` daemon (and `argobox listen`), the real Home
Assistant (scripts/homeassistant.sh) and real Home Assistant users.

The operator's phone is a second Home Assistant user, made through Home Assistant's own auth API, with a token from
its login flow. ArgoBox's push reaches Home Assistant as a real call of `notify.mobile_app_phone`; the test reads the
action keys from that call as Home Assistant announced it on its event bus, and "presses" a button the way Home
Assistant records a companion app's press: the event `mobile_app_notification_action`, fired by that user (over the
REST API, which needs an administrator: the operator's user is one, and so is the unmapped user that is refused).
What is asserted is what Home Assistant reports (entity states, the service calls on its bus) and the audit trail.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncGenerator, Callable, Generator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process

from tests.conftest import HOME_RULES, WriteConfig
from tests.fixtures_homeassistant import LOCK, REPO_ROOT
from tests.http_daemon import ARGOBOX, OPENCLAW_TOKEN, connect, http_daemon, sha

pytestmark = [pytest.mark.homeassistant, pytest.mark.anyio]

TOKEN_ENV = "ARGOBOX_HA_TOKEN"
PHONE_SERVICE = "mobile_app_phone"
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


def _http(
    method: str, url: str, *, token: str | None = None, body: Any = None, form: dict[str, str] | None = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    elif form is not None:
        data, headers["Content-Type"] = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def _ws_url(ha_url: str) -> str:
    return ha_url.replace("http://", "ws://", 1) + "/api/websocket"


def _ws_call(ha_url: str, token: str, command: str, **fields: Any) -> Any:
    from homeassistant_api import WebsocketClient

    with WebsocketClient(_ws_url(ha_url), token) as ws:
        return ws.recv_result(ws.send(command, **fields)).result


def _make_user(ha_url: str, owner_token: str, label: str) -> HaUser:
    """A Home Assistant administrator with a password, and an access token from the login flow."""
    name, password = f"argobox-test-{label}-{secrets.token_hex(3)}", secrets.token_urlsafe(18)
    created = _ws_call(ha_url, owner_token, "config/auth/create", name=name, group_ids=["system-admin"])
    user_id = created["user"]["id"]
    _ws_call(
        ha_url,
        owner_token,
        "config/auth_provider/homeassistant/create",
        user_id=user_id,
        username=name,
        password=password,
    )
    client_id = f"{ha_url}/"
    status, flow = _http(
        "POST",
        f"{ha_url}/auth/login_flow",
        body={"client_id": client_id, "handler": ["homeassistant", None], "redirect_uri": client_id},
    )
    assert status == 200, flow
    status, done = _http(
        "POST",
        f"{ha_url}/auth/login_flow/{flow['flow_id']}",
        body={"client_id": client_id, "username": name, "password": password},
    )
    assert status == 200 and done["type"] == "create_entry", done
    status, tokens = _http(
        "POST",
        f"{ha_url}/auth/token",
        form={"grant_type": "authorization_code", "code": done["result"], "client_id": client_id},
    )
    assert status == 200, "the login flow gave no token"
    return HaUser(id=user_id, token=Hidden(tokens["access_token"]))


@pytest.fixture(scope="module")
def people(ha_url: str, ha_token: str) -> Iterator[People]:
    owner = HaUser(id=_ws_call(ha_url, ha_token, "auth/current_user")["id"], token=Hidden(ha_token))
    phone, stranger = _make_user(ha_url, ha_token, "phone"), _make_user(ha_url, ha_token, "stranger")
    try:
        yield People(argobox=owner, phone=phone, stranger=stranger)
    finally:
        for user in (phone, stranger):
            _ws_call(ha_url, ha_token, "config/auth/delete", user_id=user.id)


def press(ha_url: str, user: HaUser, action: str, **data: Any) -> None:
    """What the companion app does when a button is pressed, as `user`: the event, with the action key."""
    status, body = _http("POST", f"{ha_url}/api/events/{EVENT}", token=user.token, body={"action": action, **data})
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

    async def wait(self, what: Callable[[], Any], timeout: float = WAIT_S) -> Any:
        with anyio.fail_after(timeout):
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
            with WebsocketClient(_ws_url(ha_url), token) as ws, ws.listen_events() as events:
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
        _http("POST", f"{ha_url}/api/events/{stop}", token=token, body={})
        thread.join(10)


# ArgoBox ---------------------------------------------------------------------------------------------------------------


def phone_config(write_config: WriteConfig, ha_url: str, phone: HaUser) -> Path:
    extra = f"""{HOME_RULES}
[notifications.homeassistant]
service = "notify.{PHONE_SERVICE}"
actions = true

[[operators]]
name = "carol"
ha_user_id = "{phone.id}"
"""
    return write_config(
        homeassistant=f'url = "{ha_url}"\ntoken_env = "{TOKEN_ENV}"\n', token_sha256=sha(OPENCLAW_TOKEN), extra=extra
    )


def trail(config: Path, request_id: str | None = None) -> list[dict[str, Any]]:
    """The audit trail, read from the store (read-only; for waiting). The final checks use `argobox audit`."""
    with sqlite3.connect(f"file:{config.parent / 'argobox.db'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT request_id, event, actor, detail FROM audit ORDER BY seq").fetchall()
    return [
        {"request_id": r, "event": e, "actor": a, "detail": json.loads(d)}
        for r, e, a, d in rows
        if request_id is None or r == request_id
    ]


def refusals(config: Path) -> list[tuple[str, str]]:
    return [
        (e["detail"]["refusal"], e["detail"]["ha_user_id"])
        for e in trail(config)
        if e["event"] == "phone_action_refused"
    ]


def argobox_audit(config: Path, request_id: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(ARGOBOX), "--config", str(config), "audit", "--request", request_id, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ},
    )
    return json.loads(done.stdout)


def buttons(push: dict[str, Any]) -> dict[str, str]:
    return {a["title"]: a["action"] for a in push.get("data", {}).get("actions", [])}


def tampered(key: str) -> str:
    return key[:-1] + ("a" if key[-1] != "a" else "b")


def lock_call(service: str) -> dict[str, Any]:
    return {"domain": "lock", "service": service, "entity_id": LOCK}


async def queue_from_agent(url: str, service: str) -> str:
    async with connect(url, OPENCLAW_TOKEN) as agent:
        queued = await agent.call_tool("ha_call_service", lock_call(service))
    assert queued.structured_content is not None and queued.structured_content["status"] == "pending_approval"
    return queued.structured_content["request_id"]


def state_of(ha_url: str, token: str, entity_id: str) -> str:
    status, body = _http("GET", f"{ha_url}/api/states/{entity_id}", token=token)
    assert status == 200, body
    return body["state"]


# The tests ---------------------------------------------------------------------------------------------------------------


async def test_the_operators_phone_approves_once_and_every_other_press_is_refused_and_audited(
    write_config: WriteConfig, ha_url: str, people: People, ha_reset: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, people.argobox.token)
    config = phone_config(write_config, ha_url, people.phone)
    with recorded(ha_url, people.argobox.token) as bus, anyio.fail_after(120):
        async with http_daemon(config) as daemon:
            await daemon.wait_for_log(rf"Home Assistant listener: connected to \S+ as user {people.argobox.id}")
            request_id = await queue_from_agent(daemon.url, "unlock")
            tag = f"argobox-{request_id}"
            (push,) = await bus.wait(lambda: bus.notifications(tag))
            keys = buttons(push)

            async def refused(user: HaUser, action: str, kind: str) -> None:
                press(ha_url, user, action)
                await bus.wait(lambda: (kind, user.id) in refusals(config))

            await refused(people.argobox, keys["Approve"], "argobox_user")
            await refused(people.stranger, keys["Approve"], "unmapped_user")
            await refused(people.phone, tampered(keys["Approve"]), "wrong_code")
            await refused(people.phone, keys["Approve"].replace("_APPROVE_", "_DENY_"), "wrong_decision")
            locked_while_refused = state_of(ha_url, people.argobox.token, LOCK)
            press(ha_url, people.phone, keys["Approve"])
            await bus.wait(lambda: any(e["event"] == "succeeded" for e in trail(config, request_id)))
            await refused(people.phone, keys["Approve"], "reused")
            decided = await bus.wait(lambda: [p for p in bus.notifications(tag) if "approved by carol" in p["message"]])
            await bus.wait(lambda: len(bus.notifications(tag)) >= 7)  # the push, 5 refusals, the decision
        unlocks, lock_state = bus.calls("lock", "unlock"), state_of(ha_url, people.argobox.token, LOCK)
    events = argobox_audit(config, request_id)

    assert locked_while_refused == "locked"
    assert lock_state == "unlocked" and unlocks == 1
    assert push["title"] == "ArgoBox: approval needed" and list(keys) == ["Approve", "Deny"]
    assert keys["Approve"].startswith(f"ARGOBOX_APPROVE_{request_id}_")
    assert keys["Deny"].startswith(f"ARGOBOX_DENY_{request_id}_")
    assert buttons(decided[0]) == {}  # the decision replaced the push with the buttons (same tag)
    presses = [f.user_id for f in bus.fired if f.event_type == EVENT]
    assert presses == [
        people.argobox.id,
        people.stranger.id,
        people.phone.id,
        people.phone.id,
        people.phone.id,
        people.phone.id,
    ]
    shown = [(e["event"], e["detail"].get("refusal")) for e in events if not e["event"].startswith("notif")]
    assert shown == [
        ("received", None),
        ("decision", None),
        ("queued", None),
        ("phone_action_refused", "argobox_user"),
        ("phone_action_refused", "unmapped_user"),
        ("phone_action_refused", "wrong_code"),
        ("phone_action_refused", "wrong_decision"),
        ("phone_code_used", None),
        ("approved", None),
        ("executing", None),
        ("succeeded", None),
        ("phone_action_refused", "reused"),
    ]
    approved = next(e for e in events if e["event"] == "approved")
    assert approved["actor"] == "operator:carol"
    assert approved["detail"] == {
        "note": "approved from the phone",
        "channel": "home-assistant",
        "ha_user_id": people.phone.id,
    }
    stranger = next(e for e in events if e["detail"].get("refusal") == "unmapped_user")
    assert stranger["actor"] == f"homeassistant:{people.stranger.id}"
    everything = json.dumps(events) + daemon.log
    assert keys["Approve"] not in everything and people.argobox.token not in everything


async def test_the_listener_survives_a_home_assistant_restart_and_decides_the_next_press(
    write_config: WriteConfig, ha_url: str, ha_token: str, people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    script_url = f"http://127.0.0.1:{os.environ.get('ARGOBOX_HA_PORT', '18123')}"
    if ha_url != script_url:
        pytest.skip(f"!!! the Home Assistant under test ({ha_url}) is not the one scripts/homeassistant.sh runs !!!")
    monkeypatch.setenv(TOKEN_ENV, people.argobox.token)
    config = phone_config(write_config, ha_url, people.phone)
    with anyio.fail_after(180):
        async with listener(config) as log:
            await log.wait(r"Home Assistant listener: connected")
            await restart_home_assistant()
            await log.wait(r"Home Assistant listener: not connected: .*closed the WebSocket connection")
            await log.wait(r"(?s)not connected.*Home Assistant listener: connected")
            with recorded(ha_url, people.argobox.token) as bus:
                async with http_daemon(config) as daemon:  # the agent's door; it listens too
                    await daemon.wait_for_log(r"Home Assistant listener: connected")
                    request_id = await queue_from_agent(daemon.url, "unlock")
                    (push,) = await bus.wait(lambda: bus.notifications(f"argobox-{request_id}"))
                    press(ha_url, people.phone, buttons(push)["Deny"])
                    await bus.wait(lambda: any(e["event"] == "denied" for e in trail(config, request_id)))
                    await bus.wait(
                        lambda: [
                            p for p in bus.notifications(f"argobox-{request_id}") if "denied by carol" in p["message"]
                        ]
                    )
                unlocks = bus.calls("lock", "unlock")
    events = argobox_audit(config, request_id)
    listener_events = [e["detail"]["state"] for e in trail(config) if e["event"] == "ha_listener"]

    assert unlocks == 0 and state_of(ha_url, ha_token, LOCK) == "locked"
    denied = next(e for e in events if e["event"] == "denied")
    assert denied["detail"] == {
        "reason": "denied from the phone",
        "channel": "home-assistant",
        "ha_user_id": people.phone.id,
    }
    assert [e["event"] for e in events].count("phone_code_used") == 1  # two listeners heard it; one decided
    assert listener_events[:3] == ["connected", "disconnected", "connected"]


@dataclass
class Log:
    path: Path
    process: Process

    @property
    def text(self) -> str:
        return self.path.read_text(errors="replace")

    async def wait(self, pattern: str) -> None:
        with anyio.fail_after(WAIT_S):
            while not re.search(pattern, self.text):
                assert self.process.returncode is None, f"argobox listen exited:\n{self.text}"
                await anyio.sleep(0.05)


@asynccontextmanager
async def listener(config: Path) -> AsyncGenerator[Log]:
    """`argobox listen` for `config`, stopped with SIGTERM whatever happens."""
    path = config.parent / f"listen-{time.monotonic_ns()}.log"
    with path.open("wb") as out:
        process = await anyio.open_process(
            [str(ARGOBOX), "--config", str(config), "listen"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    log = Log(path, process)
    try:
        yield log
    finally:
        process.terminate()
        with anyio.fail_after(30):
            await process.wait()
        await process.aclose()
    assert process.returncode == 0, log.text
    assert "Traceback" not in log.text


async def restart_home_assistant() -> None:
    """Stop and start the Home Assistant under test with its own script (same port, state and token)."""
    script = str(REPO_ROOT / "scripts" / "homeassistant.sh")
    for action in ("stop", "start"):
        done = await anyio.run_process(["bash", script, action], check=False)
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
