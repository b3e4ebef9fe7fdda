"""The agent MCP server in memory (official `Client`, both protocol eras) over the shipped simulated lab."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from mcp import Client, types
from mcp.shared.exceptions import MCPError

from argobox.server.app import App, open_app
from argobox.server.config.model import load_config
from argobox.server.mediation import agent_calls, operator_actions
from argobox.server.mediation.operators import OperatorClaim
from argobox.server.store import Refused
from argobox.server.transport.agent import build_agent_server
from tests.conftest import WriteConfig, first_text

pytestmark = pytest.mark.anyio

PRE_APPROVED = """
[[agents.openclaw.rules]]
tools = ["docker_start_container"]
args = { container = ["backup"] }
effect = "allow"
"""


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def app(write_config: WriteConfig) -> AsyncIterator[App]:
    async with open_app(load_config(write_config(extra=PRE_APPROVED))) as app:
        yield app


@pytest.fixture
async def client(app: App, mode: str) -> AsyncIterator[Client]:
    async with Client(build_agent_server(app, "openclaw"), mode=mode) as client:
        yield client


async def restart_count(app: App, container: str) -> int:
    return (await app.docker.inspect_container(container)).restart_count


async def test_tools_list_shows_exactly_the_grant_with_schemas(client: Client, app: App, mode: str) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    async with Client(build_agent_server(app, "reader"), mode=mode) as reader:
        reader_tools = [t.name for t in (await reader.list_tools()).tools]

    assert sorted(tools) == [
        "argobox_request_status",
        "docker_container_logs",
        "docker_inspect_container",
        "docker_list_containers",
        "docker_restart_container",
        "docker_start_container",
        "docker_stop_container",
    ]
    assert reader_tools == ["argobox_request_status", "docker_list_containers"]
    restart = tools["docker_restart_container"]
    assert restart.annotations is not None and restart.annotations.read_only_hint is False
    assert restart.annotations.destructive_hint is True
    assert tools["docker_list_containers"].annotations.read_only_hint is True  # type: ignore[union-attr]
    assert restart.input_schema["required"] == ["container"]
    assert restart.output_schema is not None and "status" in restart.output_schema["properties"]
    assert all(t.description and len(t.description) < 1200 for t in tools.values())


async def test_tool_outside_the_grant_answers_exactly_like_an_unknown_tool(app: App, mode: str) -> None:
    async with Client(build_agent_server(app, "reader"), mode=mode) as reader:
        with pytest.raises(MCPError) as hidden:
            await reader.call_tool("docker_restart_container", {"container": "jellyfin"})
        with pytest.raises(MCPError) as unknown:
            await reader.call_tool("docker_nonexistent", {"container": "jellyfin"})
    refusals = [e for e in await app.store.audit_trail() if e.event == "refused"]

    assert hidden.value.code == unknown.value.code == types.INVALID_PARAMS
    assert hidden.value.message == "Unknown tool: docker_restart_container"
    assert unknown.value.message == "Unknown tool: docker_nonexistent"
    assert [(e.agent, e.tool) for e in refusals] == [
        ("reader", "docker_restart_container"),
        ("reader", "docker_nonexistent"),
    ]
    assert await restart_count(app, "jellyfin") == 0


async def test_allowed_read_returns_the_backend_answer(client: Client) -> None:
    result = await client.call_tool("docker_list_containers", {"all": True})

    assert result.is_error is False
    assert result.structured_content is not None
    assert result.structured_content["status"] == "succeeded"
    assert "error" not in result.structured_content  # null fields are left out: Hermes reads "error" as a failure
    names = [c["name"] for c in result.structured_content["result"]["containers"]]
    assert names == ["backup", "jellyfin", "postgres", "web-api", "web-frontend"]


async def test_mutation_is_queued_then_runs_once_after_operator_approval(client: Client, app: App) -> None:
    queued = await client.call_tool("docker_restart_container", {"container": "jellyfin"})
    assert queued.structured_content is not None
    request_id = queued.structured_content["request_id"]
    waiting = await client.call_tool("argobox_request_status", {"request_id": request_id})
    count_while_pending = await restart_count(app, "jellyfin")

    await operator_actions.approve(app, request_id, operator=OperatorClaim("alice"), note="ok")
    with pytest.raises(Refused):
        await operator_actions.approve(app, request_id, operator=OperatorClaim("bob"), note="again")
    done = await client.call_tool("argobox_request_status", {"request_id": request_id})

    assert queued.is_error is False
    assert queued.structured_content["status"] == "pending_approval"
    assert queued.structured_content["expires_at"].endswith("Z")
    assert "argobox_request_status" in first_text(queued)
    assert first_text(queued).startswith("waiting for operator approval")
    assert waiting.structured_content is not None and waiting.structured_content["status"] == "pending_approval"
    assert count_while_pending == 0
    assert done.structured_content is not None and done.structured_content["status"] == "succeeded"
    assert done.structured_content["result"]["restart_count"] == 1
    assert await restart_count(app, "jellyfin") == 1
    events = [e.event for e in await app.store.audit_trail(request_id=request_id)]
    assert events == ["received", "decision", "queued", "approved", "executing", "succeeded"]


async def test_constrained_pre_approved_mutation_runs_at_once(client: Client, app: App) -> None:
    result = await client.call_tool("docker_start_container", {"container": "backup"})

    assert result.structured_content is not None and result.structured_content["status"] == "succeeded"
    assert (await app.docker.inspect_container("backup")).state == "running"


async def test_denied_call_says_so_in_its_text_naming_the_rule_and_is_audited(client: Client, app: App) -> None:
    result = await client.call_tool("docker_stop_container", {"container": "postgres"})

    assert result.is_error is False  # an answer, not an error: clients lock a server out after three errors
    assert first_text(result).startswith("denied: ")
    assert result.structured_content is not None and result.structured_content["status"] == "denied"
    assert "agents.openclaw.rules[1]" in result.structured_content["reason"]
    decision = [e for e in await app.store.audit_trail() if e.event == "decision"][-1]
    assert decision.detail["effect"] == "deny" and decision.agent == "openclaw"
    assert (await app.docker.inspect_container("postgres")).state == "running"


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        pytest.param(
            "docker_restart_container", {"container": 123}, "container: Input should be a valid string", id="wrong-type"
        ),
        pytest.param("docker_restart_container", {}, "container: required", id="missing"),
        pytest.param(
            "docker_restart_container",
            {"container": "../../etc/passwd"},
            "must be a container name",
            id="path-characters",
        ),
        pytest.param(
            "docker_restart_container",
            {"container": "jellyfin; rm -rf /"},
            "must be a container name",
            id="shell-characters",
        ),
        pytest.param(
            "docker_restart_container", {"container": "j" * 1_000_000}, "must be a container name", id="huge-string"
        ),
        pytest.param(
            "docker_restart_container",
            {"container": "jellyfin", "force": True},
            "force: not an argument",
            id="extra-argument",
        ),
        pytest.param(
            "docker_list_containers", {"all": "yes"}, "all: Input should be a valid boolean", id="string-for-bool"
        ),
        pytest.param(
            "docker_container_logs",
            {"container": "jellyfin", "tail": 10**9},
            "tail: Input should be less than or equal to 1000",
            id="tail-too-large",
        ),
        pytest.param("argobox_request_status", {"request_id": "x" * 5000}, "request_id", id="huge-request-id"),
    ],
)
async def test_bad_input_gets_a_clear_error_and_changes_nothing(
    client: Client, app: App, tool: str, arguments: dict[str, Any], expected: str
) -> None:
    result = await client.call_tool(tool, arguments)

    assert result.is_error is True
    assert result.structured_content is not None and result.structured_content["status"] == "invalid_arguments"
    text = first_text(result)
    assert expected in text and "Traceback" not in text and len(text) < 1000
    assert await app.store.list_requests() == []
    assert await restart_count(app, "jellyfin") == 0


async def test_another_agents_request_id_answers_like_an_unknown_id(client: Client, app: App) -> None:
    async with Client(build_agent_server(app, "reader")) as reader:
        await reader.call_tool("docker_list_containers", {})
    (theirs,) = await app.store.list_requests(agent="reader")

    foreign = await client.call_tool("argobox_request_status", {"request_id": theirs.id})
    unknown = await client.call_tool("argobox_request_status", {"request_id": "aaaaaaaaaaaaaaaa"})

    assert foreign.structured_content is not None and unknown.structured_content is not None
    assert foreign.structured_content["message"].replace(theirs.id, "ID") == unknown.structured_content[
        "message"
    ].replace("aaaaaaaaaaaaaaaa", "ID")
    assert foreign.is_error and "result" not in foreign.structured_content


async def test_client_info_cannot_change_who_the_agent_is(app: App, mode: str) -> None:
    impostor = types.Implementation(name="openclaw", version="1")
    async with Client(build_agent_server(app, "reader"), mode=mode, client_info=impostor) as client:
        names = [t.name for t in (await client.list_tools()).tools]
        with pytest.raises(MCPError):
            await client.call_tool("docker_restart_container", {"container": "jellyfin"})

    assert names == ["argobox_request_status", "docker_list_containers"]


async def test_container_environment_values_never_reach_the_agent_or_the_store(client: Client, app: App) -> None:
    result = await client.call_tool("docker_inspect_container", {"container": "postgres"})
    stored = json.dumps([r.result for r in await app.store.list_requests()])
    audited = json.dumps([e.detail for e in await app.store.audit_trail()])

    assert result.structured_content is not None
    assert result.structured_content["result"]["env"] == {"POSTGRES_PASSWORD": "<redacted>"}
    for text in (json.dumps(result.structured_content), first_text(result), stored, audited):
        assert "lab-only" not in text


async def test_backend_error_fails_the_request_with_a_clear_message(client: Client, app: App) -> None:
    result = await client.call_tool("docker_inspect_container", {"container": "ghost"})

    assert result.is_error is True
    assert result.structured_content is not None and result.structured_content["status"] == "failed"
    assert result.structured_content["error"] == "No container named 'ghost'."
    (record,) = await app.store.list_requests()
    assert record.status.value == "failed"


async def test_unwritable_audit_refuses_the_call_and_nothing_executes(write_config: WriteConfig, mode: str) -> None:
    config = load_config(write_config(extra=PRE_APPROVED))
    async with open_app(config) as app:
        app.store._connection._busy_timeout_ms = 100  # pyright: ignore[reportPrivateUsage]  # the bounded wait, short
        blocker = sqlite3.connect(config.storage.path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            async with Client(build_agent_server(app, "openclaw"), mode=mode) as client:
                result = await client.call_tool("docker_start_container", {"container": "backup"})
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        state = (await app.docker.inspect_container("backup")).state

    assert result.is_error is True
    assert result.structured_content is not None and result.structured_content["status"] == "refused"
    assert "nothing was executed" in first_text(result)
    assert state == "exited"


async def test_unknown_agent_cannot_get_a_server(app: App) -> None:
    with pytest.raises(ValueError, match="not a configured agent"):
        build_agent_server(app, "mallory")


def test_store_path_is_next_to_the_config(write_config: WriteConfig) -> None:
    path = write_config()
    assert load_config(path).storage.path == path.parent.resolve() / "argobox.db"


async def test_request_the_grant_no_longer_covers_is_denied_instead_of_run(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    path = write_config()
    async with open_app(load_config(path)) as app:
        outcome = await agent_calls.call_tool(app, "openclaw", "docker_restart_container", {"container": "jellyfin"})
    path.write_text(path.read_text().replace('"jellyfin", "web-*"', '"web-*"'))

    async with open_app(load_config(path)) as app:
        with pytest.raises(Refused) as info:
            await operator_actions.approve(app, outcome.request_id or "", operator=OperatorClaim("alice"), note="")
        record = await app.store.get(outcome.request_id or "")
        count = await restart_count(app, "jellyfin")

    assert info.value.code == "not_granted"
    assert record is not None and record.status.value == "denied" and record.decided_by == "policy"
    assert "grant changed" in (record.note or "")
    assert count == 0


async def test_rejected_hostile_arguments_leave_only_a_small_audit_record(client: Client, app: App) -> None:
    nested = {f"k{i}": {f"j{j}": {f"l{m}": "x" * 5000 for m in range(20)} for j in range(20)} for i in range(20)}

    result = await client.call_tool("docker_restart_container", {"container": "jellyfin", **nested})
    (received,) = [e for e in await app.store.audit_trail() if e.event == "received"]

    assert result.structured_content is not None and result.structured_content["status"] == "invalid_arguments"
    assert len(json.dumps(received.detail)) < 5000


async def test_status_of_a_pending_request_past_its_ttl_reads_expired(write_config: WriteConfig) -> None:
    now = [1_900_000_000.0]
    async with open_app(load_config(write_config(ttl=60)), clock=lambda: now[0]) as app:
        queued = await agent_calls.call_tool(app, "openclaw", "docker_restart_container", {"container": "jellyfin"})
        now[0] += 61
        status = await agent_calls.call_tool(
            app, "openclaw", "argobox_request_status", {"request_id": queued.request_id}
        )
        with pytest.raises(Refused) as info:
            await operator_actions.approve(app, queued.request_id or "", operator=OperatorClaim("alice"), note="")

    assert status.status == "expired"
    assert info.value.code == "expired"


async def test_an_approval_whose_operator_goes_away_mid_way_still_runs_once_and_is_recorded(app: App) -> None:
    queued = await agent_calls.call_tool(app, "openclaw", "docker_restart_container", {"container": "jellyfin"})
    assert queued.status == "pending_approval" and queued.request_id is not None
    before = await restart_count(app, "jellyfin")
    restart = app.docker.restart_container

    with anyio.CancelScope() as scope:

        async def restart_while_the_operator_leaves(container: str) -> Any:
            scope.cancel()  # e.g. the operator's MCP client disconnects during the restart
            await anyio.lowlevel.checkpoint()  # where the cancellation would be delivered, were it not shielded
            return await restart(container)

        app.docker.restart_container = restart_while_the_operator_leaves
        await operator_actions.approve(app, queued.request_id, operator=OperatorClaim("alice"), note="go")
    record = await app.store.get(queued.request_id)

    assert record is not None and record.status.value == "succeeded"
    assert await restart_count(app, "jellyfin") == before + 1
    events = [e.event for e in await app.store.audit_trail(request_id=queued.request_id)]
    assert events[-3:] == ["approved", "executing", "succeeded"]


async def test_an_approved_request_whose_stored_arguments_were_changed_is_refused_not_run(app: App) -> None:
    """Someone with the database file swaps the target of a queued restart; the approval must not run it."""
    queued = await agent_calls.call_tool(app, "openclaw", "docker_restart_container", {"container": "jellyfin"})
    assert queued.status == "pending_approval" and queued.request_id is not None
    before = {name: await restart_count(app, name) for name in ("jellyfin", "web-frontend")}
    db = sqlite3.connect(app.config.storage.path, isolation_level=None)
    try:
        db.execute("DROP TRIGGER requests_binding_is_immutable")
        db.execute(
            "UPDATE requests SET arguments = ? WHERE id = ?",
            (json.dumps({"container": "web-frontend"}), queued.request_id),
        )  # still inside the grant
    finally:
        db.close()

    record = await operator_actions.approve(app, queued.request_id, operator=OperatorClaim("alice"), note="looks fine")

    assert record.status.value == "failed" and record.error is not None
    assert "does not match what was approved" in record.error
    assert {name: await restart_count(app, name) for name in before} == before
