"""Approving from the phone, end to end: the real `argobox serve --http` daemon (and `argobox listen`, and
`argobox console` on its own), the real Home Assistant (scripts/homeassistant.sh) and real Home Assistant users.

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
import sqlite3
import subprocess
import time
from collections.abc import AsyncGenerator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process

from tests.conftest import HOME_RULES, WriteConfig
from tests.console_support import Process as ArgoboxProcess
from tests.console_support import argobox_process, run_argobox
from tests.fixtures_homeassistant import LOCK, REPO_ROOT
from tests.ha_phone import (
    EVENT,
    PHONE_SERVICE,
    WAIT_S,
    HaUser,
    Hidden,
    People,
    ha_http,
    make_user,
    press,
    recorded,
    ws_call,
)
from tests.http_daemon import ARGOBOX, OPENCLAW_TOKEN, connect, http_daemon, sha

pytestmark = [pytest.mark.homeassistant, pytest.mark.anyio]

TOKEN_ENV = "ARGOBOX_HA_TOKEN"


@pytest.fixture(scope="module")
def people(ha_url: str, ha_token: str) -> Iterator[People]:
    owner = HaUser(id=ws_call(ha_url, ha_token, "auth/current_user")["id"], token=Hidden(ha_token))
    phone, stranger = make_user(ha_url, ha_token, "phone"), make_user(ha_url, ha_token, "stranger")
    try:
        yield People(argobox=owner, phone=phone, stranger=stranger)
    finally:
        for user in (phone, stranger):
            ws_call(ha_url, ha_token, "config/auth/delete", user_id=user.id)


# ArgoBox --------------------------------------------------------------------------------------------------------------


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
    status, body = ha_http("GET", f"{ha_url}/api/states/{entity_id}", token=token)
    assert status == 200, body
    return body["state"]


# The tests ------------------------------------------------------------------------------------------------------------


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


async def test_the_console_alone_hears_the_phone_and_refuses_a_press_on_a_decided_request_or_with_another_code(
    write_config: WriteConfig, ha_url: str, people: People, ha_reset: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only `argobox console` listens here (the agent is served over stdio, the CLI denies; neither listens)."""
    monkeypatch.setenv(TOKEN_ENV, people.argobox.token)
    config = phone_config(write_config, ha_url, people.phone)
    with recorded(ha_url, people.argobox.token) as bus, anyio.fail_after(120):
        async with argobox_process(config, "console", "--listen", "127.0.0.1:0") as console:
            await wait_for_log(console, rf"Home Assistant listener: connected to \S+ as user {people.argobox.id}")
            decided, pending = await queue_over_stdio(config, "lock", "unlock")
            keys: dict[str, dict[str, str]] = {}
            for request_id in (decided, pending):
                (push,) = await bus.wait(lambda r=request_id: bus.notifications(f"argobox-{r}"))
                keys[request_id] = buttons(push)
            denied = run_argobox(config, "deny", decided, "--as", "alice", "--reason", "decided on the CLI")
            assert denied.returncode == 0, denied.stderr

            async def refused(action: str, kind: str) -> None:
                press(ha_url, people.phone, action)
                await bus.wait(lambda: (kind, people.phone.id) in refusals(config))

            await refused(keys[decided]["Approve"], "decided")
            await refused(keys[decided]["Approve"].replace(decided, pending), "wrong_code")  # the other's code
            press(ha_url, people.phone, keys[pending]["Approve"])
            await bus.wait(lambda: any(e["event"] == "succeeded" for e in trail(config, pending)))
            await bus.wait(
                lambda: [p for p in bus.notifications(f"argobox-{pending}") if "approved by carol" in p["message"]]
            )
            told = await bus.wait(
                lambda: [p for p in bus.notifications(f"argobox-{decided}") if "refused" in p["title"]]
            )
        locks, unlocks = bus.calls("lock", "lock"), bus.calls("lock", "unlock")
    on_decided, on_pending = argobox_audit(config, decided), argobox_audit(config, pending)

    assert (locks, unlocks) == (0, 1) and state_of(ha_url, people.argobox.token, LOCK) == "unlocked"
    after_queued = ("denied", "approved", "executing", "phone_code_used", "phone_action_refused")
    decisions = [(e["event"], e["detail"].get("refusal")) for e in on_decided if e["event"] in after_queued]
    assert decisions == [("denied", None), ("phone_action_refused", "decided")]
    assert "already denied by alice" in told[0]["message"]
    shown = [(e["event"], e["detail"].get("refusal")) for e in on_pending if not e["event"].startswith("notif")]
    assert shown[-5:] == [
        ("phone_action_refused", "wrong_code"),
        ("phone_code_used", None),
        ("approved", None),
        ("executing", None),
        ("succeeded", None),
    ]
    approved = next(e for e in on_pending if e["event"] == "approved")
    assert approved["actor"] == "operator:carol" and approved["detail"]["channel"] == "home-assistant"


async def wait_for_log(running: ArgoboxProcess, pattern: str) -> None:
    try:
        with anyio.fail_after(WAIT_S):
            while not re.search(pattern, running.log):
                assert running.process.poll() is None, f"argobox exited:\n{running.log}"
                await anyio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"argobox did not log {pattern!r} within {WAIT_S} s:\n{running.log}") from None


async def queue_over_stdio(config: Path, *services: str) -> list[str]:
    """The agent asks over stdio (`argobox serve --agent`, which does not listen for the phone) for `lock.SERVICE`
    of the test lock, once per service; the ids of the pending requests."""
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(
        command=str(ARGOBOX),
        args=["--config", str(config), "serve", "--agent", "openclaw"],
        env={"ARGOBOX_AGENT_TOKEN": OPENCLAW_TOKEN, TOKEN_ENV: os.environ[TOKEN_ENV]},
    )
    ids: list[str] = []
    async with Client(params) as agent:
        for service in services:
            queued = await agent.call_tool("ha_call_service", lock_call(service))
            assert queued.structured_content is not None, queued
            assert queued.structured_content["status"] == "pending_approval", queued.structured_content
            ids.append(queued.structured_content["request_id"])
    return ids


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
