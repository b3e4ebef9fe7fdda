"""Live configuration in memory: what a reload changes, the watcher, and tools-changed events per agent and era."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from argobox.server.app import App, open_app
from argobox.server.config.model import load_config
from argobox.server.config.reload import Reload, plan_reload
from argobox.server.mediation import agent_calls
from argobox.server.transport.agent import build_agent_server, fixed_identity
from argobox.server.transport.live import LiveState
from argobox.server.transport.watch import ConfigWatcher
from tests.conftest import ListChangedInbox, WriteConfig

pytestmark = pytest.mark.anyio


@pytest.fixture
async def app(write_config: WriteConfig) -> AsyncIterator[App]:
    async with open_app(load_config(write_config())) as app:
        yield app


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_plan_reload_names_changed_and_revoked_agents_and_keeps_restart_sections(write_config: WriteConfig) -> None:
    path = write_config(token_sha256="a" * 64)
    old = load_config(path)
    edit(path, 'token_sha256 = "' + "a" * 64, 'token_sha256 = "' + "b" * 64)
    edit(
        path,
        'tools = ["docker_list_containers"]\neffect = "allow"',
        'tools = ["docker_list_containers"]\neffect = "deny"',
    )
    edit(path, 'path = "argobox.db"', 'path = "elsewhere.db"')
    edit(path, "ttl_seconds = 1800", "ttl_seconds = 60")
    change = plan_reload(old, load_config(path))

    assert change.changed == {"reader"}
    assert change.revoked == {"openclaw"}
    assert change.restart_required == ("storage",)
    assert change.config.storage == old.storage
    assert change.config.approvals.ttl_seconds == 60
    assert change.config.agents["openclaw"].token_sha256 == "b" * 64


def test_plan_reload_of_a_removed_agent_changes_and_revokes_it(write_config: WriteConfig) -> None:
    path = write_config()
    old = load_config(path)
    edit(path, '[[agents.reader.rules]]\ntools = ["docker_list_containers"]\neffect = "allow"\n', "")
    change = plan_reload(old, load_config(path))

    assert change.changed == {"reader"} and change.revoked == {"reader"}
    assert "reader" not in change.config.agents


async def test_watcher_applies_a_valid_file_and_keeps_the_old_one_when_invalid(app: App) -> None:
    path = app.config.source
    assert path is not None
    seen: list[Reload] = []

    async def on_reload(change: Reload) -> None:
        seen.append(change)

    watcher = ConfigWatcher(app, on_reload, process="test")
    first = app.config
    path.write_text(path.read_text() + "\n[agents.openclaw.limits]\nrequests_per_minute = 7\n")
    await watcher.check()
    second = app.config
    path.write_text("this is [not toml")
    await watcher.check()
    await watcher.check()  # the same bad content is not reported again
    events = [e.event for e in await app.store.audit_trail()]

    assert first is not second and second.limits_for("openclaw").requests_per_minute == 7
    assert app.config is second
    assert [change.changed for change in seen] == [frozenset()]
    assert events.count("config_reloaded") == 1 and events.count("config_rejected") == 1


async def test_a_call_keeps_the_configuration_it_started_with(app: App) -> None:
    path = app.config.source
    assert path is not None
    with app.settings.pinned() as pinned:
        app.settings.replace(load_config(path))  # a reload lands while the call runs
        during = app.config
    after = app.config

    assert during is pinned and after is not pinned


async def test_calls_are_checked_against_the_grant_in_force_at_call_time(app: App) -> None:
    async with Client(build_agent_server(app, "reader")) as reader:
        allowed = await reader.call_tool("docker_list_containers", {})
        path = app.config.source
        assert path is not None
        edit(
            path,
            'tools = ["docker_list_containers"]\neffect = "allow"',
            'tools = ["docker_list_containers"]\neffect = "deny"',
        )
        app.settings.replace(load_config(path))
        with pytest.raises(MCPError) as refused:
            await reader.call_tool("docker_list_containers", {})
        tools = [t.name for t in (await reader.list_tools()).tools]

    assert allowed.structured_content is not None and allowed.structured_content["status"] == "succeeded"
    assert refused.value.message == "Unknown tool: docker_list_containers"
    assert tools == ["argobox_request_status"]


async def test_a_stdio_identity_whose_token_changed_sees_nothing(write_config: WriteConfig) -> None:
    import hashlib

    token = "stdio-token-0123456789"
    path = write_config(token_sha256=hashlib.sha256(token.encode()).hexdigest())
    async with open_app(load_config(path)) as app:
        identity = fixed_identity(app, "openclaw", token)
        before = identity()
        edit(path, hashlib.sha256(token.encode()).hexdigest(), "c" * 64)
        app.settings.replace(load_config(path))
        after = identity()

    assert before == "openclaw" and after is None


async def test_tools_changed_reaches_only_the_affected_agent_in_both_eras(app: App) -> None:
    live = LiveState()
    openclaw_inbox, reader_inbox = ListChangedInbox(), ListChangedInbox()
    with anyio.fail_after(20):
        async with (
            Client(build_agent_server(app, "openclaw", live=live)) as openclaw,
            Client(build_agent_server(app, "reader", live=live)) as reader,
            Client(
                build_agent_server(app, "openclaw", live=live), mode="legacy", message_handler=openclaw_inbox
            ) as openclaw_legacy,
            Client(
                build_agent_server(app, "reader", live=live), mode="legacy", message_handler=reader_inbox
            ) as reader_legacy,
            openclaw.listen(tools_list_changed=True) as openclaw_events,
            reader.listen(tools_list_changed=True) as reader_events,
        ):
            await openclaw_legacy.list_tools()
            await reader_legacy.list_tools()
            await live.tools_changed(["openclaw"])
            event = await openclaw_events.__anext__()
            await openclaw_inbox.event.wait()
            missed = None
            with anyio.move_on_after(0.5):
                missed = await reader_events.__anext__()
            capabilities = openclaw_legacy.server_capabilities

    assert type(event).__name__ == "ToolsListChanged"
    assert openclaw_inbox.changed == 1 and reader_inbox.changed == 0 and missed is None
    assert capabilities is not None and capabilities.tools is not None and capabilities.tools.list_changed is True


async def test_a_legacy_connection_is_forgotten_when_it_closes(app: App) -> None:
    live = LiveState()
    async with Client(build_agent_server(app, "reader", live=live), mode="legacy") as reader:
        await reader.list_tools()
        open_count = live.connections("reader")
    closed_count = live.connections("reader")

    assert open_count == 1 and closed_count == 0


async def test_an_in_flight_call_is_counted(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    live = LiveState()
    seen: list[int] = []
    original = agent_calls.call_tool

    async def spy(*args: Any) -> Any:
        seen.append(live.calls.count)
        return await original(*args)

    monkeypatch.setattr(agent_calls, "call_tool", spy)
    async with Client(build_agent_server(app, "reader", live=live)) as reader:
        await reader.call_tool("docker_list_containers", {})

    assert seen == [1] and live.calls.count == 0


def test_a_backend_added_by_a_reload_waits_for_a_restart_and_so_do_its_tools(write_config: WriteConfig) -> None:
    from tests.conftest import HOME_RULES

    path = write_config()
    old = load_config(path)
    write_config(homeassistant='simulated_home = "home.json"', extra=HOME_RULES)  # the same file: HA and its rules
    loaded = load_config(path)
    change = plan_reload(old, loaded)

    assert "ha_get_state" in loaded.grant("openclaw").visible  # what a restart would bring
    assert change.restart_required == ("homeassistant",)
    assert change.config.homeassistant is None
    assert "ha_get_state" not in change.config.grant("openclaw").visible
    assert change.config.grant("openclaw").visible == old.grant("openclaw").visible
    assert change.changed == frozenset()
