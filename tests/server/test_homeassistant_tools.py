"""The Home Assistant tools through the agent MCP server in memory (official `Client`), over the simulated home.

The simulated home is the demo's; the same tools against the real Home Assistant are in tests/e2e.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from argobox.server.app import App, open_app
from argobox.server.cli.tables import requests_table
from argobox.server.config.model import load_config
from argobox.server.mediation import operator_actions
from argobox.server.mediation.explain import explain, explain_text
from argobox.server.mediation.operators import OperatorClaim
from argobox.server.mediation.views import request_json
from argobox.server.store import Refused
from argobox.server.transport.agent import build_agent_server
from tests.conftest import HOME_RULES, WriteConfig, first_text

pytestmark = pytest.mark.anyio

SIMULATED = 'simulated_home = "home.json"'
CAMERA_SECRETS = ("sim-camera-token-5f2b9c", "porch-cam-pw")


@pytest.fixture
async def app(write_config: WriteConfig) -> AsyncIterator[App]:
    async with open_app(load_config(write_config(homeassistant=SIMULATED, extra=HOME_RULES))) as app:
        yield app


@pytest.fixture
async def client(app: App) -> AsyncIterator[Client]:
    async with Client(build_agent_server(app, "openclaw")) as client:
        yield client


async def state(app: App, entity_id: str) -> str:
    assert app.homeassistant is not None
    return (await app.homeassistant.get_state(entity_id)).state


def call(domain: str, service: str, entity_id: str | list[str], data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "domain": domain,
        "service": service,
        "entity_id": entity_id,
        **({"data": data} if data is not None else {}),
    }


def structured(result: Any) -> dict[str, Any]:
    assert result.structured_content is not None
    return dict(result.structured_content)


async def test_tools_list_shows_the_home_assistant_tools_the_grant_names(client: Client, app: App) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    async with Client(build_agent_server(app, "reader")) as reader:
        reader_tools = [t.name for t in (await reader.list_tools()).tools]

    assert {"ha_list_entities", "ha_get_state", "ha_list_services", "ha_call_service"} <= set(tools)
    assert not any(name.startswith("ha_") for name in reader_tools)
    service_call = tools["ha_call_service"]
    assert service_call.annotations is not None and service_call.annotations.read_only_hint is False
    assert service_call.annotations.destructive_hint is True and service_call.annotations.idempotent_hint is False
    assert service_call.input_schema["required"] == ["domain", "service", "entity_id"]
    assert tools["ha_list_entities"].annotations.read_only_hint is True  # type: ignore[union-attr]


async def test_listed_entities_are_filtered_by_the_grant(client: Client) -> None:
    everything = structured(await client.call_tool("ha_list_entities", {}))
    lights = structured(await client.call_tool("ha_list_entities", {"domain": "light"}))

    assert [e["entity_id"] for e in everything["result"]["entities"]] == [
        "camera.porch",
        "light.kitchen",
        "light.living_room_lamp",
        "lock.front_door",
    ]
    assert {"entity_id", "name", "state", "domain", "last_changed"} == set(everything["result"]["entities"][0])
    assert [e["entity_id"] for e in lights["result"]["entities"]] == ["light.kitchen", "light.living_room_lamp"]


async def test_entity_state_has_attributes_with_secrets_redacted(client: Client, app: App) -> None:
    result = await client.call_tool("ha_get_state", {"entity_id": "camera.porch"})
    content = structured(result)
    attributes = content["result"]["attributes"]
    stored = json.dumps([r.result for r in await app.store.list_requests()])
    audited = json.dumps([e.detail for e in await app.store.audit_trail()])

    assert content["status"] == "succeeded" and content["result"]["state"] == "idle"
    assert attributes["friendly_name"] == "Porch camera"
    assert attributes["access_token"] == "<redacted>"
    assert attributes["entity_picture"] == "/api/camera_proxy/camera.porch?token=<redacted>"
    assert attributes["stream_source"] == "rtsp://admin:<redacted>@192.0.2.20:554/live"
    for text in (json.dumps(content), first_text(result), stored, audited):
        assert not any(secret in text for secret in CAMERA_SECRETS)


async def test_entity_outside_the_grant_is_denied(client: Client) -> None:
    result = await client.call_tool("ha_get_state", {"entity_id": "cover.garage_door"})

    assert result.is_error is False
    assert structured(result)["status"] == "denied"
    assert "entity_id 'cover.garage_door' is outside the grant" in structured(result)["reason"]


async def test_listed_services_are_those_the_grant_could_let_the_agent_call(client: Client) -> None:
    result = structured(await client.call_tool("ha_list_services", {}))
    locks = structured(await client.call_tool("ha_list_services", {"domain": "lock"}))

    names = [f"{s['domain']}.{s['service']}" for s in result["result"]["services"]]
    assert names == [
        "cover.close_cover",
        "cover.open_cover",
        "cover.stop_cover",
        "light.turn_off",
        "light.turn_on",
        "lock.lock",
        "lock.open",
        "lock.unlock",
    ]
    assert [s["service"] for s in locks["result"]["services"]] == ["lock", "open", "unlock"]
    assert locks["result"]["services"][0]["fields"] == ["code"]


async def test_pre_approved_light_call_runs_at_once_and_audits_the_states_around_it(client: Client, app: App) -> None:
    result = await client.call_tool("ha_call_service", call("light", "turn_on", "light.living_room_lamp"))
    content = structured(result)
    (record,) = await app.store.list_requests()
    events = await app.store.audit_trail(request_id=record.id)

    assert result.is_error is False and content["status"] == "succeeded"
    assert content["message"] == "succeeded: call Home Assistant service light.turn_on on 'light.living_room_lamp'"
    assert await state(app, "light.living_room_lamp") == "on"
    assert [e.event for e in events] == ["received", "decision", "executing", "succeeded"]
    assert events[-1].detail["summary"] == {
        "service": "light.turn_on",
        "before": {"light.living_room_lamp": "off"},
        "after": {"light.living_room_lamp": "on"},
    }


async def test_lock_call_is_queued_with_a_preview_and_runs_once_after_approval(client: Client, app: App) -> None:
    queued = structured(await client.call_tool("ha_call_service", call("lock", "unlock", "lock.front_door")))
    request_id = queued["request_id"]
    while_pending = await state(app, "lock.front_door")
    record = await app.store.get(request_id)
    assert record is not None
    screen = explain_text(await explain(app, record))

    done = await operator_actions.approve(app, request_id, operator=OperatorClaim("alice"), note="plumber")
    with pytest.raises(Refused):
        await operator_actions.approve(app, request_id, operator=OperatorClaim("bob"), note="again")
    events = await app.store.audit_trail(request_id=request_id)

    assert queued["status"] == "pending_approval"
    assert while_pending == "locked"
    assert "preview at" in screen and "lock.front_door: locked → unlock" in screen
    queued_event = next(e for e in events if e.event == "queued")
    assert queued_event.detail["preview"] == {
        "states": {"lock.front_door": "locked"},
        "changes": ["lock.front_door: locked → unlock"],
        "identity": {"lock.front_door": "locked"},
    }
    assert record.target == {"lock.front_door": "locked"}
    assert done.status.value == "succeeded"
    assert await state(app, "lock.front_door") == "unlocked"
    assert [e.event for e in events] == ["received", "decision", "queued", "approved", "executing", "succeeded"]
    assert events[-1].detail["summary"]["before"] == {"lock.front_door": "locked"}
    assert events[-1].detail["summary"]["after"] == {"lock.front_door": "unlocked"}


async def test_call_outside_the_grant_is_denied_audited_and_changes_nothing(client: Client, app: App) -> None:
    result = await client.call_tool("ha_call_service", call("light", "turn_on", "light.kitchen"))
    before_kitchen = await state(app, "light.kitchen")
    several = await client.call_tool(
        "ha_call_service", call("light", "turn_off", ["light.living_room_lamp", "light.kitchen"])
    )

    assert result.is_error is False and structured(result)["status"] == "denied"
    assert "entity_id 'light.kitchen' is outside the grant" in structured(result)["reason"]
    assert structured(several)["status"] == "denied"
    assert await state(app, "light.kitchen") == before_kitchen == "on"
    decisions = [e for e in await app.store.audit_trail() if e.event == "decision"]
    assert [d.detail["effect"] for d in decisions] == ["deny", "deny"]


async def test_entity_gone_before_approval_fails_the_request_and_nothing_runs(client: Client, app: App) -> None:
    queued = structured(await client.call_tool("ha_call_service", call("lock", "unlock", ["lock.front_door"])))
    assert app.config.homeassistant is not None and app.config.homeassistant.simulated_home is not None
    home_file = app.config.homeassistant.simulated_home
    home = json.loads(home_file.read_text())
    del home["lock.front_door"]
    home_file.write_text(json.dumps(home))

    record = await operator_actions.approve(app, queued["request_id"], operator=OperatorClaim("alice"), note="")
    status = structured(await client.call_tool("argobox_request_status", {"request_id": queued["request_id"]}))

    assert record.status.value == "failed"
    assert record.error is not None and record.error.startswith("the target changed since the request was queued")
    assert "lock.front_door: 'locked' when it was queued, None now" in record.error
    assert status["status"] == "failed" and status["error"] == record.error


async def test_a_sensitive_entity_found_in_another_state_at_approval_fails_and_nothing_runs(
    client: Client, app: App
) -> None:
    queued = structured(await client.call_tool("ha_call_service", call("lock", "unlock", "lock.front_door")))
    await app.homeassistant.call_service("lock", "unlock", ["lock.front_door"], {})  # type: ignore[union-attr]
    await app.homeassistant.call_service("lock", "lock", ["lock.front_door"], {})  # type: ignore[union-attr]
    jammed = await app.homeassistant.call_service("lock", "unlock", ["lock.front_door"], {})  # type: ignore[union-attr]

    record = await operator_actions.approve(app, queued["request_id"], operator=OperatorClaim("alice"), note="")
    events = await app.store.audit_trail(request_id=record.id)

    assert jammed.after[0].state == "unlocked"
    assert record.status.value == "failed"
    assert "lock.front_door: 'locked' when it was queued, 'unlocked' now" in (record.error or "")
    assert events[-1].detail["target_when_queued"] == {"lock.front_door": "locked"}
    assert [e.event for e in events][-3:] == ["approved", "executing", "failed"]


async def test_rejected_service_data_fails_the_request_and_audits_the_state_before(client: Client, app: App) -> None:
    queued = structured(
        await client.call_tool("ha_call_service", call("cover", "open_cover", "cover.garage_door", {"speed": 3}))
    )

    record = await operator_actions.approve(app, queued["request_id"], operator=OperatorClaim("alice"), note="")
    failed = (await app.store.audit_trail(request_id=record.id))[-1]

    assert record.status.value == "failed" and "it takes no data field 'speed'" in (record.error or "")
    assert failed.event == "failed" and failed.detail["before"] == {"cover.garage_door": "closed"}
    assert await state(app, "cover.garage_door") == "closed"


async def test_secret_service_data_is_masked_wherever_it_is_shown(client: Client, app: App) -> None:
    queued = structured(
        await client.call_tool("ha_call_service", call("lock", "unlock", "lock.front_door", {"code": "4711"}))
    )
    record = await app.store.get(queued["request_id"])
    assert record is not None
    events = await app.store.audit_trail(request_id=record.id)
    shown = [
        json.dumps(queued),
        requests_table([record], app.redactor),
        json.dumps(request_json(record, app.redactor)),
        explain_text(await explain(app, record)),
        json.dumps([e.detail for e in events]),
    ]

    assert "lock.front_door: locked → unlock (code=<redacted>)" in shown[3]
    assert not any("4711" in text for text in shown)
    assert record.arguments["data"] == {"code": "4711"}  # bound to the approval as sent


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        pytest.param(call("light", "turn_on", "Light.Kitchen"), "entity_id: must be an entity id", id="bad-entity-id"),
        pytest.param(
            call("light", "turn_on", "light.kitchen; rm -rf /"),
            "entity_id: must be an entity id",
            id="shell-characters",
        ),
        pytest.param(
            call("light", "turn_on", "light." + "x" * 1_000_000), "entity_id: must be an entity id", id="huge-entity-id"
        ),
        pytest.param(call("light", "turn_on", []), "entity_id: must be an entity id", id="empty-list"),
        pytest.param(call("light", "turn_on", [f"light.l{i}" for i in range(21)]), "a list of 1-20", id="too-many"),
        pytest.param(call("light", "turn_on", ["light.a", "light.a"]), "lists an entity id twice", id="duplicate"),
        pytest.param(call("Light", "turn_on", "light.kitchen"), "domain: must be a domain", id="bad-domain"),
        pytest.param(call("light", "turn on", "light.kitchen"), "service: must be a service", id="bad-service"),
        pytest.param(
            call("light", "turn_on", "light.living_room_lamp", {"entity_id": "lock.front_door"}),
            "'entity_id' is not allowed in data; name the targets in entity_id",
            id="target-smuggled-in-data",
        ),
        pytest.param(
            call("light", "turn_on", "light.living_room_lamp", {"area_id": "house"}),
            "'area_id' is not allowed",
            id="area-in-data",
        ),
        pytest.param(
            call("light", "turn_on", "light.living_room_lamp", {"blob": "x" * 5000}),
            "data: at most 4096 characters of JSON",
            id="huge-data",
        ),
        pytest.param(
            call("light", "turn_on", "light.living_room_lamp", {"a": {"b": {"c": {"d": {"e": 1}}}}}),
            "nested deeper than 4 levels",
            id="deep-data",
        ),
        pytest.param(
            {**call("light", "turn_on", "light.living_room_lamp"), "data": [1, 2]},
            "data: Input should be a valid dictionary",
            id="data-not-an-object",
        ),
        pytest.param(
            {**call("light", "turn_on", "light.living_room_lamp"), "force": True},
            "force: not an argument",
            id="extra-argument",
        ),
        pytest.param({"domain": "light", "service": "turn_on"}, "entity_id: required", id="missing-entity"),
    ],
)
async def test_bad_input_gets_a_clear_error_and_changes_nothing(
    client: Client, app: App, arguments: dict[str, Any], expected: str
) -> None:
    result = await client.call_tool("ha_call_service", arguments)

    text = first_text(result)
    assert result.is_error is True and structured(result)["status"] == "invalid_arguments"
    assert expected in text, text
    assert "Traceback" not in text and len(text) < 1000
    assert await app.store.list_requests() == []
    assert await state(app, "light.living_room_lamp") == "off"


async def test_without_a_homeassistant_section_the_tools_do_not_exist(write_config: WriteConfig) -> None:
    everything = '[[agents.ops.rules]]\ntools = ["*"]\neffect = "approve"\n'
    async with open_app(load_config(write_config(extra=everything))) as app:
        assert app.homeassistant is None
        async with Client(build_agent_server(app, "ops")) as ops:
            names = [t.name for t in (await ops.list_tools()).tools]
            with pytest.raises(MCPError, match="Unknown tool: ha_list_entities"):
                await ops.call_tool("ha_list_entities", {})
            docker = await ops.call_tool("docker_list_containers", {})

    assert not any(name.startswith("ha_") for name in names)
    assert "docker_restart_container" in names
    assert structured(docker)["status"] == "pending_approval"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_unreachable_home_assistant_fails_clearly_and_never_shows_the_token(
    write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "secret-ha-token-9f8e7d6c5b4a"
    monkeypatch.setenv("MY_HA_TOKEN", token)
    home = f'url = "http://127.0.0.1:{free_port()}"\ntoken_env = "MY_HA_TOKEN"\ntimeout_seconds = 2\n'
    async with open_app(load_config(write_config(homeassistant=home, extra=HOME_RULES))) as app:
        async with Client(build_agent_server(app, "openclaw")) as client:
            listing = structured(await client.call_tool("ha_list_entities", {}))
            light = structured(
                await client.call_tool("ha_call_service", call("light", "turn_on", "light.living_room_lamp"))
            )
            queued = structured(await client.call_tool("ha_call_service", call("lock", "unlock", "lock.front_door")))
        record = await app.store.get(queued["request_id"])
        assert record is not None
        events = await app.store.audit_trail()
        screen = explain_text(await explain(app, record))
        approved = await operator_actions.approve(app, record.id, operator=OperatorClaim("alice"), note="")

    assert listing["status"] == "failed"
    assert "did not answer: connection refused; check that it is running" in listing["error"]
    assert light["status"] == "failed" and "connection refused" in light["error"]
    assert queued["status"] == "pending_approval"
    assert "preview:        not available: Home Assistant at http://127.0.0.1:" in screen
    assert approved.status.value == "failed"
    everything_shown = json.dumps([listing, light, queued, [e.detail for e in events]]) + screen + str(approved)
    assert token not in everything_shown
