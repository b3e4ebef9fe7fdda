"""Home Assistant end to end: the real `argobox` command over MCP stdio with the official client, approvals from the
CLI in another process, and the real Home Assistant (scripts/homeassistant.sh) through the real client.

What is asserted is what Home Assistant itself reports: entity states read over its REST API (`ha_client`), and the
service calls it announced on its own event bus (a websocket subscription), not what ArgoBox says it did.
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Generator
from contextlib import contextmanager
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.conftest import HOME_RULES, WriteConfig
from tests.fixtures_homeassistant import LIGHTS, LOCK

pytestmark = [pytest.mark.homeassistant, pytest.mark.anyio]

ARGOBOX = str(Path(sys.executable).with_name("argobox"))
LAMP, KITCHEN = LIGHTS
VISIBLE_GLOBS = ("light.*", "lock.front_door", "camera.porch")  # HOME_RULES' entity_id globs for the read tools
TOKEN_ENV = "ARGOBOX_HA_TOKEN"


def argobox(config: Path, *args: str, token: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ARGOBOX, "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": str(Path(sys.executable).parent), "HOME": str(config.parent), TOKEN_ENV: token},
    )


async def agent_calls(
    config: Path, calls: list[tuple[str, dict[str, Any]]], *, token: str, errlog: Path | None = None
) -> list[Any]:
    """One OpenClaw-like session: launch `argobox serve` with the token in its environment, make the calls."""
    params = StdioServerParameters(
        command=ARGOBOX, args=["--config", str(config), "serve", "--agent", "openclaw"], env={TOKEN_ENV: token}
    )
    results: list[Any] = []
    # stdio_client copies the server's stderr into a plain file object; opening one is not worth a thread.
    with open(errlog or config.parent / "serve.err", "a") as err, anyio.fail_after(60):  # noqa: ASYNC230
        async with Client(stdio_client(params, errlog=err)) as client:
            for tool, arguments in calls:
                results.append(await client.call_tool(tool, arguments))
    return results


def state_of(ha_client: Any, entity_id: str) -> str:
    return ha_client.get_state(entity_id=entity_id).state


@contextmanager
def ha_service_calls(ha_url: str, ha_token: str) -> Generator[list[tuple[str, str, list[str]]]]:
    """Record (domain, service, entity ids) of every service call Home Assistant announces on its event bus while
    the block runs. The subscription is in place before the block starts and drained before the list is read."""
    from homeassistant_api import Client as RestClient
    from homeassistant_api import WebsocketClient
    from homeassistant_api.models.websocket import FiredEvent

    calls: list[tuple[str, str, list[str]]] = []
    stop = f"argobox_test_stop_{secrets.token_hex(6)}"
    ready = threading.Event()
    ws_url = ha_url.replace("http://", "ws://", 1) + "/api/websocket"

    def listen() -> None:
        with WebsocketClient(ws_url, ha_token) as ws, ws.listen_events() as events:
            ready.set()
            for event in events:
                if not isinstance(event, FiredEvent):
                    continue
                if event.event_type == stop:
                    return
                if event.event_type == "call_service":
                    data: dict[str, Any] = event.data.get("service_data") or {}
                    targets: str | list[str] = data.get("entity_id") or []
                    calls.append(
                        (
                            event.data["domain"],
                            event.data["service"],
                            [targets] if isinstance(targets, str) else list(targets),
                        )
                    )

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert ready.wait(10), "could not subscribe to Home Assistant's events"
    try:
        yield calls
    finally:
        with RestClient(f"{ha_url}/api", ha_token, global_request_kwargs={"timeout": 10}) as rest:
            rest.fire_event(stop)
        thread.join(10)
        assert not thread.is_alive(), "the event subscription did not drain"


def calls_to(calls: list[tuple[str, str, list[str]]], domain: str, service: str, entity_id: str) -> int:
    return sum(1 for d, s, targets in calls if (d, s) == (domain, service) and entity_id in targets)


@pytest.fixture
def ha_config(write_config: WriteConfig, ha_url: str) -> Callable[..., Path]:
    def make(url: str | None = None) -> Path:
        home = f'url = "{url or ha_url}"\ntoken_env = "{TOKEN_ENV}"\ntimeout_seconds = 10\n'
        return write_config(homeassistant=home, extra=HOME_RULES)

    return make


class Hidden(str):
    """A secret that pytest's failure reports show as '***' (they print the arguments of a failing test)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'"


@pytest.fixture
def token(ha_token: str) -> Hidden:
    return Hidden(ha_token)


def call(domain: str, service: str, entity_id: str | list[str], data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"domain": domain, "service": service, "entity_id": entity_id, **({"data": data} if data else {})}


async def test_listed_entities_follow_the_grant_and_a_pre_approved_light_runs_at_once(
    ha_config: Callable[..., Path], ha_client: Any, ha_reset: Any, ha_url: str, token: Hidden
) -> None:
    config = ha_config()
    states = {s.entity_id: s.state for s in ha_client.get_states()}
    expected = sorted(e for e in states if any(fnmatchcase(e, g) for g in VISIBLE_GLOBS))

    with ha_service_calls(ha_url, token) as calls:
        listing, lamp = await agent_calls(
            config,
            [
                ("ha_list_entities", {}),
                ("ha_call_service", call("light", "turn_on", LAMP)),
            ],
            token=token,
        )
        lamp_state, kitchen_state = state_of(ha_client, LAMP), state_of(ha_client, KITCHEN)
    audit = json.loads(
        argobox(config, "audit", "--request", lamp.structured_content["request_id"], "--json", token=token).stdout
    )

    listed = listing.structured_content["result"]["entities"]
    assert [e["entity_id"] for e in listed] == expected == ["light.kitchen", "light.living_room_lamp", LOCK]
    assert {e["entity_id"]: e["state"] for e in listed} == {e: states[e] for e in expected}
    assert lamp.is_error is False and lamp.structured_content["status"] == "succeeded"
    assert lamp_state == "on" and kitchen_state == "off"
    assert calls_to(calls, "light", "turn_on", LAMP) == 1
    assert [e["event"] for e in audit] == ["received", "decision", "executing", "succeeded"]
    assert audit[-1]["detail"]["summary"] == {
        "service": "light.turn_on",
        "before": {LAMP: "off"},
        "after": {LAMP: "on"},
    }


async def test_lock_call_is_queued_previewed_approved_from_the_cli_and_runs_exactly_once(
    ha_config: Callable[..., Path], ha_client: Any, ha_reset: Any, ha_url: str, token: Hidden
) -> None:
    config = ha_config()

    with ha_service_calls(ha_url, token) as calls:
        (queued,) = await agent_calls(config, [("ha_call_service", call("lock", "unlock", LOCK))], token=token)
        request_id = queued.structured_content["request_id"]
        while_pending = state_of(ha_client, LOCK)
        calls_while_pending = calls_to(calls, "lock", "unlock", LOCK)
        shown = argobox(config, "show", request_id, token=token)
        approved = argobox(config, "approve", request_id, "--as", "alice", "--note", "plumber", token=token)
        again = argobox(config, "approve", request_id, "--as", "bob", token=token)
        after = state_of(ha_client, LOCK)
    (status,) = await agent_calls(config, [("argobox_request_status", {"request_id": request_id})], token=token)
    audit = json.loads(argobox(config, "audit", "--request", request_id, "--json", token=token).stdout)

    assert queued.is_error is False and queued.structured_content["status"] == "pending_approval"
    assert while_pending == "locked" and calls_while_pending == 0
    assert shown.returncode == 0 and "lock.front_door: locked → unlock" in shown.stdout
    assert approved.returncode == 0, approved.stderr
    assert "succeeded: call Home Assistant service lock.unlock on 'lock.front_door'" in approved.stdout
    assert again.returncode == 1 and "only a pending request can be approved" in again.stderr
    assert after == "unlocked"
    assert calls_to(calls, "lock", "unlock", LOCK) == 1
    assert status.structured_content["status"] == "succeeded"
    assert [e["event"] for e in audit] == ["received", "decision", "queued", "approved", "executing", "succeeded"]
    assert audit[2]["detail"]["preview"]["states"] == {LOCK: "locked"}
    assert audit[-1]["detail"]["summary"]["before"] == {LOCK: "locked"}
    assert audit[-1]["detail"]["summary"]["after"] == {LOCK: "unlocked"}


async def test_calls_outside_the_grant_are_denied_audited_and_never_reach_home_assistant(
    ha_config: Callable[..., Path], ha_client: Any, ha_reset: Any, ha_url: str, token: Hidden
) -> None:
    config = ha_config()

    with ha_service_calls(ha_url, token) as calls:
        kitchen, generic, state = await agent_calls(
            config,
            [
                ("ha_call_service", call("light", "turn_on", KITCHEN)),
                ("ha_call_service", call("homeassistant", "turn_on", LAMP)),
                ("ha_get_state", {"entity_id": "input_boolean.guest_mode"}),
            ],
            token=token,
        )
    audit = json.loads(argobox(config, "audit", "--json", token=token).stdout)

    for result in (kitchen, generic, state):
        assert result.is_error is False and result.structured_content["status"] == "denied"
    assert "entity_id 'light.kitchen' is outside the grant" in kitchen.structured_content["reason"]
    assert state_of(ha_client, KITCHEN) == "off" and state_of(ha_client, LAMP) == "off"
    assert calls_to(calls, "light", "turn_on", KITCHEN) == calls_to(calls, "homeassistant", "turn_on", LAMP) == 0
    decisions = [e for e in audit if e["event"] == "decision"]
    assert [(e["tool"], e["detail"]["effect"]) for e in decisions] == [
        ("ha_call_service", "deny"),
        ("ha_call_service", "deny"),
        ("ha_get_state", "deny"),
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_home_assistant_errors_fail_requests_clearly_and_the_token_never_shows(
    ha_config: Callable[..., Path], ha_client: Any, ha_reset: Any, token: Hidden, tmp_path: Path
) -> None:
    config = ha_config()
    wrong = "wrong-token-" + secrets.token_hex(16)
    errlog = tmp_path / "serve.err"

    (unauthorized,) = await agent_calls(config, [("ha_list_entities", {})], token=wrong, errlog=errlog)
    bad_data, ghost, queued = await agent_calls(
        config,
        [
            ("ha_call_service", call("light", "turn_on", LAMP, {"brightness": "very"})),
            ("ha_call_service", call("light", "turn_on", "light.living_room_ghost")),
            ("ha_call_service", call("lock", "unlock", LOCK)),
        ],
        token=token,
        errlog=errlog,
    )
    ha_config(url=f"http://127.0.0.1:{free_port()}")  # Home Assistant is gone when the operator approves
    approved = argobox(config, "approve", queued.structured_content["request_id"], "--as", "alice", token=token)
    shown = [argobox(config, *args, token=token) for args in (("audit", "--json"), ("requests", "--json"))]

    assert unauthorized.structured_content["status"] == "failed"
    assert "refused the token in ARGOBOX_HA_TOKEN (HTTP 401)" in unauthorized.structured_content["error"]
    assert bad_data.structured_content["status"] == "failed"
    assert "rejected light.turn_on (HTTP 400 Bad Request)" in bad_data.structured_content["error"]
    assert ghost.structured_content["status"] == "failed"
    assert ghost.structured_content["error"] == (
        "No Home Assistant entity 'light.living_room_ghost'; check the entity id with ha_list_entities."
    )
    assert approved.returncode == 3 and "did not answer: connection refused" in approved.stdout
    assert state_of(ha_client, LAMP) == "off" and state_of(ha_client, LOCK) == "locked"
    failed = [e for e in json.loads(shown[0].stdout) if e["event"] == "failed"]
    assert len(failed) == 4 and all("error" in e["detail"] for e in failed)
    everything = "".join(
        [
            json.dumps([r.structured_content for r in (unauthorized, bad_data, ghost, queued)]),
            approved.stdout,
            approved.stderr,
            *(r.stdout + r.stderr for r in shown),
            errlog.read_text(),
        ]
    )
    assert "Traceback" not in everything
    assert token not in everything and wrong not in everything
