"""What the fuzzer (tests/fuzz) found, pinned: each input that crashed a server or leaked a secret before its fix.

In memory over the simulated lab and home, with a configured secret (the Home Assistant token) in the environment:
lone surrogates (JSON can spell them, no UTF-8 can carry them), agent text cut or quoted before it was redacted,
operator-tool messages that echoed their input, and secret-looking service data kept in clear in the store.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, types
from mcp.shared.exceptions import MCPError

from argobox.adapters.base import ServiceCallResult
from argobox.adapters.simulated import SimulatedHome
from argobox.server.app import App, open_app
from argobox.server.config.model import load_config
from argobox.server.mediation import operator_actions
from argobox.server.mediation.operators import OperatorClaim
from argobox.server.mediation.tools import TOOLS
from argobox.server.redact import Redactor, valid_text
from argobox.server.store.sealing import SEALED, UNREADABLE, key_path
from argobox.server.transport.agent import build_agent_server
from argobox.server.transport.operator import build_operator_server
from tests.conftest import HOME_RULES, WriteConfig
from tests.fuzz.hostile import Lab, agent_fields
from tests.fuzz.lab import stored_bytes

pytestmark = pytest.mark.anyio

HA_TOKEN = "eyJhbGciOiJIUzI1NiJ9.ZnV6ei1oYS10b2tlbi1wYXlsb2Fk.c2lnbmF0dXJlLW9mLXRoZS1oYS10b2tlbg"
PAYLOAD = HA_TOKEN.split(".")[1]
"""The part of the token that is secret (a JWT's header is the same in every token)."""
LOCK_CODE = "4711-fuzz-lock-code"
SPELLED = "sk-live-0f9e8d7c6b5a"


class RecordingHome(SimulatedHome):
    """The simulated home, remembering the service data each call carried (to see what an approval ran)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.data: list[dict[str, Any]] = []

    async def call_service(
        self, domain: str, service: str, entity_ids: Sequence[str], data: Mapping[str, Any]
    ) -> ServiceCallResult:
        self.data.append(dict(data))
        return await super().call_service(domain, service, entity_ids, data)


@pytest.fixture
def home(write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, RecordingHome]:
    monkeypatch.setenv("ARGOBOX_HA_TOKEN", HA_TOKEN)
    config = write_config(homeassistant='simulated_home = "home.json"', extra=HOME_RULES)
    return config, RecordingHome(config.parent / "home.json")


@pytest.fixture
async def app(home: tuple[Path, RecordingHome]) -> AsyncIterator[App]:
    async with open_app(load_config(home[0]), homeassistant=home[1]) as opened:
        yield opened


def text_of(result: types.CallToolResult) -> str:
    content = result.content[0]
    assert isinstance(content, types.TextContent)
    return content.text


def stored(app: App) -> str:
    """Every byte of the store's files, as text (read by another process: see `stored_bytes`)."""
    files = sorted(app.config.storage.path.parent.glob(app.config.storage.path.name + "*"))
    return "".join(stored_bytes(path).decode("utf-8", "replace") for path in files)


async def test_lone_surrogates_are_answered_recorded_and_read_back_as_valid_text(app: App) -> None:
    async with (
        Client(build_agent_server(app, "openclaw"), mode="legacy") as agent,
        Client(build_operator_server(app, OperatorClaim("alice")), mode="legacy") as operator,
    ):
        with pytest.raises(MCPError, match="Unknown tool: \ufffd"):
            await agent.call_tool("\ud800", {})
        data = {"domain": "light", "service": "turn_on", "entity_id": "light.living_room_lamp", "data": {"x": "\udfff"}}
        unknown_key = await agent.call_tool("docker_list_containers", {"a\ud83d": 1})
        bad_data = await agent.call_tool("ha_call_service", data)
        trail = await operator.call_tool("query_audit", {})
        listed = await operator.call_tool("list_requests", {"status": "all"})
        refused = await operator.call_tool("query_audit", {"agent": "\ud800"})

    unknown_text = text_of(unknown_key)
    assert unknown_key.is_error and "not an argument of docker_list_containers" in unknown_text
    assert valid_text(unknown_text) == unknown_text
    bad_text = text_of(bad_data)
    assert bad_data.is_error and "lone surrogate" in bad_text
    assert not trail.is_error and not listed.is_error
    assert "\ufffd" in json.dumps(trail.structured_content, ensure_ascii=False)
    assert refused.is_error and "argument 'agent' is not valid text" in text_of(refused)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("x" * 20 + HA_TOKEN, id="configured-secret-past-the-cut"),
        pytest.param(f"\nX-Api-Key: {SPELLED}\n", id="header-quoted-with-repr"),
        pytest.param(f" apikey={SPELLED} " + "y" * 300, id="parameter-in-a-long-name"),
    ],
)
async def test_agent_text_is_redacted_before_it_is_cut_or_quoted(app: App, name: str) -> None:
    long_value = "z" * 100 + HA_TOKEN
    async with Client(build_agent_server(app, "openclaw")) as agent:
        with pytest.raises(MCPError) as unknown:
            await agent.call_tool(name, {})
        rejected = await agent.call_tool("docker_list_containers", {name: long_value, "all": long_value})
    events = await app.store.audit_trail(limit=10)
    shown = [str(unknown.value), json.dumps(rejected.model_dump(mode="json")), json.dumps([e.detail for e in events])]

    for text in (*shown, stored(app)):
        assert PAYLOAD[:12] not in text and HA_TOKEN[-20:] not in text and SPELLED not in text


async def test_operator_tool_messages_never_echo_a_secret(app: App) -> None:
    async with Client(build_operator_server(app, OperatorClaim("alice"))) as operator:
        answers = [
            await operator.call_tool("x" * 50 + HA_TOKEN, {}),
            await operator.call_tool("list_requests", {"status": f" token={SPELLED} "}),
            await operator.call_tool("query_audit", {"since": f"\nX-Api-Key: {SPELLED}\n"}),
            await operator.call_tool("agent_overview", {"agent": HA_TOKEN}),
        ]

    texts = [text_of(answer) for answer in answers]
    assert all(answer.is_error for answer in answers), texts
    assert not [text for text in texts if HA_TOKEN[-20:] in text or SPELLED in text]


async def test_secret_service_data_is_sealed_in_the_store_and_runs_as_sent(
    app: App, home: tuple[Path, RecordingHome]
) -> None:
    data = {"code": LOCK_CODE}
    arguments = {"domain": "lock", "service": "unlock", "entity_id": "lock.front_door", "data": data}
    spelled = {"message": f"open up apikey={SPELLED}", "nested": {"items": [{"pin": "90210-pin"}]}}
    waiting = {"domain": "lock", "service": "lock", "entity_id": "lock.front_door", "data": spelled}
    async with Client(build_agent_server(app, "openclaw")) as agent:
        queued = (await agent.call_tool("ha_call_service", arguments)).structured_content
        other = (await agent.call_tool("ha_call_service", waiting)).structured_content
    assert queued is not None and queued["status"] == "pending_approval", queued
    assert other is not None and other["status"] == "pending_approval", other
    events = await app.store.audit_trail(request_id=other["request_id"])
    kept = await app.store.get(other["request_id"])
    at_rest = stored(app)

    approved = await operator_actions.approve(app, queued["request_id"], operator=OperatorClaim("alice"), note="")

    assert LOCK_CODE not in at_rest and SPELLED not in at_rest and "90210-pin" not in at_rest and SEALED in at_rest
    assert "90210-pin" not in json.dumps([e.detail for e in events])  # the preview masks nested keys too
    assert kept is not None and kept.arguments["data"] == spelled  # opened as it is read
    assert approved.status.value == "succeeded", approved.error
    assert home[1].data == [data]  # exactly what the agent sent reached the backend
    assert os.stat(key_path(app.config.storage.path)).st_mode & 0o777 == 0o600


async def test_a_request_whose_sealing_key_is_lost_never_runs(home: tuple[Path, RecordingHome]) -> None:
    arguments = {"domain": "lock", "service": "unlock", "entity_id": "lock.front_door", "data": {"code": LOCK_CODE}}
    async with open_app(load_config(home[0]), homeassistant=home[1]) as app:
        async with Client(build_agent_server(app, "openclaw")) as agent:
            queued = (await agent.call_tool("ha_call_service", arguments)).structured_content
        assert queued is not None
        key_path(app.config.storage.path).unlink()  # lost with a restore of the database alone
    async with open_app(load_config(home[0]), homeassistant=home[1]) as app:
        record = await app.store.get(queued["request_id"])
        assert record is not None and record.arguments["data"] == {"code": UNREADABLE}
        approved = await operator_actions.approve(app, record.id, operator=OperatorClaim("alice"), note="")

    assert approved.status.value == "failed" and "does not match what was approved" in (approved.error or "")
    assert home[1].data == []


def test_the_redactor_makes_text_valid_and_reads_escaped_line_breaks() -> None:
    redact = Redactor()

    assert valid_text("a\ud800b\udfff") == "a\ufffdb\ufffd" and valid_text("plain") == "plain"
    assert redact({"k\ud83d": "v\udc00"}) == {"k\ufffd": "v\ufffd"}
    assert redact.text(repr(f"\nX-Api-Key: {SPELLED}\n") + " is not a date") == (
        "'\\nX-Api-Key: <redacted>\\n' is not a date"
    )


def test_the_fuzzer_draws_every_argument_of_every_agent_tool() -> None:
    fields = agent_fields(Lab(containers=("web",), entities=("light.kitchen",)))

    assert {name for spec in TOOLS.values() for name in spec.args.model_fields} <= set(fields)
