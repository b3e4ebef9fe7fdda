"""Deciding from the phone, in process: the push's data and every kind of press.

The presses are `BusEvent`s as the listener hands them on; the store, the mediation and the simulated lab and home
are the real ones. The same presses against the real Home Assistant are in tests/e2e/test_phone.py.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from argobox.adapters.ha_events import BusEvent
from argobox.server.app import App, open_app
from argobox.server.config.model import load_config
from argobox.server.mediation import agent_calls, notify, operator_actions
from argobox.server.mediation.operators import OperatorClaim
from argobox.server.mediation.phone.press import REFUSAL_WINDOW_SECONDS, PressHandler
from argobox.server.mediation.phone.push import console_url, home_push_data
from argobox.server.store import RequestStatus
from tests.conftest import WriteConfig

pytestmark = pytest.mark.anyio

PHONE = "a" * 32
"""carol's Home Assistant user."""
ARGOBOX = "b" * 32
"""ArgoBox's own Home Assistant user."""
STRANGER = "c" * 32
EVENT = "mobile_app_notification_action"


def phone_extra(actions: bool = True) -> str:
    return f"""
[notifications.homeassistant]
service = "notify.mobile_app_phone"
actions = {"true" if actions else "false"}

[[operators]]
name = "carol"
ha_user_id = "{PHONE}"
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def phone_app(write_config: WriteConfig, clock: Clock) -> Callable[..., Any]:
    @asynccontextmanager
    async def make(*, actions: bool = True) -> AsyncGenerator[App]:
        path = write_config(homeassistant='simulated_home = "home.json"', extra=phone_extra(actions))
        async with open_app(load_config(path), clock=clock) as app:
            yield app

    return make


def pushes(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "home.json.notifications.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def keys_of(push: dict[str, Any]) -> dict[str, str]:
    return {a["title"]: a["action"] for a in push.get("data", {}).get("actions", [])}


def event(action: str, user: str | None = PHONE, **data: Any) -> BusEvent:
    return BusEvent(
        event_type=EVENT,
        data={"action": action, **data},
        user_id=user,
        context_id=secrets.token_hex(13),
        origin="REMOTE",
    )


def handler(app: App, now: list[float] | None = None) -> PressHandler:
    ticks = now if now is not None else [0.0]
    return PressHandler(app, own_user=lambda: ARGOBOX, clock=lambda: ticks[0])


async def queue(app: App, container: str = "jellyfin") -> tuple[str, dict[str, str]]:
    queued = await agent_calls.call_tool(app, "openclaw", "docker_restart_container", {"container": container})
    assert queued.request_id is not None
    await notify.flush(app)
    assert app.config.homeassistant is not None and app.config.homeassistant.simulated_home is not None
    sent = pushes(app.config.homeassistant.simulated_home.parent)
    return queued.request_id, keys_of(next(p for p in sent if p["data"]["tag"] == f"argobox-{queued.request_id}"))


async def trail(app: App, request_id: str | None = None) -> list[tuple[str, str | None]]:
    return [
        (e.event, e.detail.get("refusal"))
        for e in await app.store.audit_trail(request_id=request_id)
        if not e.event.startswith("notif")
    ]


def restarts(tmp_path: Path, container: str = "jellyfin") -> int:
    """How often the simulated lab restarted `container` (its file is made when the lab is first used)."""
    lab = tmp_path / "lab.json"
    containers: dict[str, Any] = json.loads(lab.read_text()) if lab.exists() else {}
    return int(containers[container]["restart_count"]) if container in containers else 0


# The push ---------------------------------------------------------------------------------------------------------


async def test_the_push_has_the_buttons_while_pending_and_the_decision_replaces_it(
    phone_app: Callable[..., Any], tmp_path: Path
) -> None:
    async with phone_app() as app:
        request_id, keys = await queue(app)
        await operator_actions.approve(app, request_id, operator=OperatorClaim("alice"), note="from the CLI")
        await notify.flush(app)
    queued, decided = pushes(tmp_path)

    assert queued["service"] == "notify.mobile_app_phone" and queued["title"] == "ArgoBox: approval needed"
    assert queued["data"]["tag"] == decided["data"]["tag"] == f"argobox-{request_id}"
    assert list(keys) == ["Approve", "Deny"]
    assert "actions" not in decided["data"] and "was approved by alice" in decided["message"]
    assert stat.S_IMODE(os.stat(tmp_path / "argobox.db.action-key").st_mode) == 0o600


async def test_without_actions_the_push_has_a_tag_and_no_buttons(phone_app: Callable[..., Any], tmp_path: Path) -> None:
    async with phone_app(actions=False) as app:
        request_id, keys = await queue(app)

    assert keys == {} and pushes(tmp_path)[0]["data"] == {"tag": f"argobox-{request_id}"}
    assert not (tmp_path / "argobox.db.action-key").exists()


async def test_a_console_public_url_adds_a_button_to_the_request_page(phone_app: Callable[..., Any]) -> None:
    async with phone_app() as app:
        request_id, _ = await queue(app)
        plain = await home_push_data(app, {"request": {"id": request_id}})
        console = SimpleNamespace(public_url="https://argobox.example.org/")
        app.settings.replace(app.config.model_copy(update={"console": console}))
        with_console = await home_push_data(app, {"request": {"id": request_id}})

    assert plain is not None and [a["title"] for a in plain["actions"]] == ["Approve", "Deny"]
    assert with_console is not None and with_console["actions"][2] == {
        "action": "URI",
        "title": "Open",
        "uri": f"https://argobox.example.org/requests/{request_id}",
    }
    assert console_url(app, "x") == "https://argobox.example.org/requests/x"


# Presses ----------------------------------------------------------------------------------------------------------


async def test_the_operators_press_approves_and_executes_once_with_the_channel_audited(
    phone_app: Callable[..., Any], tmp_path: Path
) -> None:
    async with phone_app() as app:
        request_id, keys = await queue(app)
        await handler(app).handle(event(keys["Approve"]))
        record = await app.store.get(request_id)
        approved = next(e for e in await app.store.audit_trail(request_id=request_id) if e.event == "approved")
        events = await trail(app, request_id)

    assert record is not None and record.status is RequestStatus.SUCCEEDED and record.decided_by == "carol"
    assert restarts(tmp_path) == 1
    assert approved.actor == "operator:carol"
    assert approved.detail == {"note": "approved from the phone", "channel": "home-assistant", "ha_user_id": PHONE}
    assert events[-4:] == [("phone_code_used", None), ("approved", None), ("executing", None), ("succeeded", None)]


@pytest.mark.parametrize(
    ("who", "change", "kind"),
    [
        (ARGOBOX, None, "argobox_user"),
        (STRANGER, None, "unmapped_user"),
        (None, None, "no_user"),
        (PHONE, "tamper", "wrong_code"),
        (PHONE, "approve_as_deny", "wrong_decision"),
        (PHONE, "deny_as_approve", "wrong_decision"),
        (PHONE, "other_request", "wrong_code"),
        (PHONE, "malformed", "malformed"),
    ],
    ids=[
        "argobox-user",
        "unmapped-user",
        "no-user",
        "tampered",
        "approve-as-deny",
        "deny-as-approve",
        "other-request",
        "malformed",
    ],
)
async def test_every_other_press_is_refused_audited_and_told_and_nothing_runs(
    phone_app: Callable[..., Any], tmp_path: Path, who: str | None, change: str | None, kind: str
) -> None:
    async with phone_app() as app:
        request_id, keys = await queue(app)
        _, others = await queue(app, "web-1")
        action = {
            None: keys["Approve"],
            "tamper": keys["Approve"][:-1] + ("b" if keys["Approve"][-1] == "a" else "a"),
            "approve_as_deny": keys["Approve"].replace("_APPROVE_", "_DENY_"),
            "deny_as_approve": keys["Deny"].replace("_DENY_", "_APPROVE_"),
            "other_request": others["Approve"].replace(others["Approve"].split("_")[2], request_id),
            "malformed": f"ARGOBOX_APPROVE_{request_id}",
        }[change]
        await handler(app).handle(event(action, who))
        await notify.flush(app)
        record = await app.store.get(request_id)
        refused = [e for e in await app.store.audit_trail() if e.event == "phone_action_refused"]

    assert record is not None and record.status is RequestStatus.PENDING and restarts(tmp_path) == 0
    assert [e.detail["refusal"] for e in refused] == [kind]
    assert refused[0].detail["channel"] == "home-assistant" and refused[0].detail["ha_user_id"] == (who or "unknown")
    told = [p for p in pushes(tmp_path) if p["title"] == "ArgoBox: button refused"]
    if kind == "malformed":
        assert told == [] and refused[0].request_id is None  # no request to speak of
    else:
        assert refused[0].request_id == request_id
        assert len(told) == 1 and told[0]["data"]["tag"] == f"argobox-{request_id}"
        assert list(keys_of(told[0])) == ["Approve", "Deny"]  # still pending: the buttons come back
    assert action not in json.dumps([e.detail for e in refused])


async def test_a_used_button_is_refused_even_after_a_restart(phone_app: Callable[..., Any], tmp_path: Path) -> None:
    async with phone_app() as app:
        request_id, keys = await queue(app)
        await handler(app).handle(event(keys["Approve"]))
    async with phone_app() as app:
        await handler(app).handle(event(keys["Approve"]))
        await handler(app).handle(event(keys["Deny"]))
        events = await trail(app, request_id)

    assert restarts(tmp_path) == 1
    assert events[-2:] == [("phone_action_refused", "reused"), ("phone_action_refused", "decided")]


async def test_a_request_decided_elsewhere_or_expired_is_refused(
    phone_app: Callable[..., Any], clock: Clock, tmp_path: Path
) -> None:
    async with phone_app() as app:
        denied_id, denied_keys = await queue(app)
        await operator_actions.deny(app, denied_id, operator=OperatorClaim("alice"), reason="not now")
        expiring_id, expiring_keys = await queue(app, "web-1")
        clock.now += 3600
        await handler(app).handle(event(denied_keys["Approve"]))
        await handler(app).handle(event(expiring_keys["Approve"]))
        await notify.flush(app)
        kinds = [
            (e.request_id, e.detail["refusal"])
            for e in await app.store.audit_trail()
            if e.event == "phone_action_refused"
        ]

    assert kinds == [(denied_id, "decided"), (expiring_id, "expired")]
    assert restarts(tmp_path) == restarts(tmp_path, "web-1") == 0
    told = [p["message"] for p in pushes(tmp_path) if p["title"] == "ArgoBox: button refused"]
    assert any("the request is denied by alice" in m for m in told)


@pytest.mark.parametrize(
    ("reply", "reason"), [(None, "denied from the phone"), ("not while I'm away", "not while I'm away")]
)
async def test_a_deny_records_the_reply_text_or_says_it_came_from_the_phone(
    phone_app: Callable[..., Any], reply: str | None, reason: str
) -> None:
    async with phone_app() as app:
        request_id, keys = await queue(app)
        extra = {"reply_text": reply} if reply else {}
        await handler(app).handle(event(keys["Deny"], **extra))
        record = await app.store.get(request_id)
        denied = next(e for e in await app.store.audit_trail(request_id=request_id) if e.event == "denied")

    assert record is not None and record.status is RequestStatus.DENIED and record.note == reason
    assert denied.detail == {"reason": reason, "channel": "home-assistant", "ha_user_id": PHONE}


async def test_one_event_heard_by_two_processes_is_decided_once_and_not_refused(
    phone_app: Callable[..., Any], tmp_path: Path
) -> None:
    async with phone_app() as first, phone_app() as second:
        request_id, keys = await queue(first)
        press = event(keys["Approve"])
        await handler(first).handle(press)
        await handler(second).handle(press)
        events = await trail(first, request_id)

    assert restarts(tmp_path) == 1
    assert [name for name, _ in events].count("phone_code_used") == 1
    assert not any(name == "phone_action_refused" for name, _ in events)


async def test_refusals_are_coalesced_per_kind_and_user(phone_app: Callable[..., Any], tmp_path: Path) -> None:
    now = [0.0]
    async with phone_app() as app:
        _, keys = await queue(app)
        presses = handler(app, now)
        for _ in range(5):
            await presses.handle(event(keys["Approve"], STRANGER))
        await presses.handle(event(keys["Approve"], ARGOBOX))
        now[0] += REFUSAL_WINDOW_SECONDS + 1
        for _ in range(3):
            await presses.handle(event(keys["Approve"], STRANGER))
        await presses.flush()  # the listener stops
        await notify.flush(app)
        refused = [e.detail for e in await app.store.audit_trail() if e.event == "phone_action_refused"]

    assert [(d["refusal"], d.get("earlier_refusals_counted_not_recorded_singly")) for d in refused[:3]] == [
        ("unmapped_user", None),
        ("argobox_user", None),
        ("unmapped_user", 4),
    ]
    assert refused[3] == {
        "channel": "home-assistant",
        "ha_user_id": STRANGER,
        "refusal": "unmapped_user",
        "refusals_counted": 2,
    }
    assert len([p for p in pushes(tmp_path) if p["title"] == "ArgoBox: button refused"]) == 3


async def test_a_viewers_press_is_refused_by_the_operator_check_recorded_once_and_leaves_the_button_usable(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    extra = phone_extra().replace('name = "carol"', 'name = "carol"\nrole = "viewer"')
    path = write_config(homeassistant='simulated_home = "home.json"', extra=extra)
    async with open_app(load_config(path)) as app:
        request_id, keys = await queue(app)
        await handler(app).handle(event(keys["Approve"]))
        still = await app.store.get(request_id)
        refused = [(e.event, e.detail.get("refusal"), e.detail.get("reason")) for e in await app.store.audit_trail()]
        operators = [op.model_copy(update={"role": "approver"}) for op in app.config.operators]
        app.settings.replace(app.config.replacing(operators=operators))  # carol is made an approver
        await handler(app).handle(event(keys["Approve"]))
        done = await app.store.get(request_id)

    assert still is not None and still.status is RequestStatus.PENDING
    # One record of the one refusal: the phone's own (with the Home Assistant user), not also `authorize`'s.
    assert [r for r in refused if r[0] in ("operator_refused", "phone_action_refused")] == [
        ("phone_action_refused", "viewer", "operator 'carol' is a viewer and cannot decide")
    ]
    assert done is not None and done.status is RequestStatus.SUCCEEDED and restarts(tmp_path) == 1


async def test_other_integrations_buttons_are_ignored(phone_app: Callable[..., Any]) -> None:
    async with phone_app() as app:
        before = len(await app.store.audit_trail())
        await handler(app).handle(event("OPEN_GARAGE", STRANGER))
        await handler(app).handle(BusEvent(event_type=EVENT, data={}, user_id=PHONE, context_id="x", origin="LOCAL"))

        assert len(await app.store.audit_trail()) == before
