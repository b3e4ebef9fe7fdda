"""`argobox check` decides a call as the server would, and changes nothing: no request, no audit event, no budget."""

from __future__ import annotations

import pytest

from argobox.server.app import App, open_app
from argobox.server.config.model import load_config
from argobox.server.mediation import agent_calls
from argobox.server.mediation.agent_calls import UnknownTool
from argobox.server.mediation.dry_run import dry_run, dry_run_text
from argobox.server.store import Refused
from tests.conftest import WriteConfig


async def snapshot(app: App) -> tuple[int, int, int]:
    usage, _ = await app.store.budget("openclaw", app.config.limits_for("openclaw"))
    return len(await app.store.audit_trail()), len(await app.store.list_requests()), usage.requests.count


async def test_a_dry_run_decides_like_the_server_and_records_nothing(write_config: WriteConfig) -> None:
    async with open_app(load_config(write_config())) as app:
        before = await snapshot(app)
        read = await dry_run(app, "openclaw", "docker_list_containers", {})
        queued = await dry_run(app, "openclaw", "docker_restart_container", {"container": "jellyfin"})
        denied = await dry_run(app, "openclaw", "docker_restart_container", {"container": "postgres"})
        after = await snapshot(app)
        real = await agent_calls.call_tool(app, "openclaw", "docker_restart_container", {"container": "jellyfin"})

    assert after == before
    assert (read["effect"], read["rule"], read["rate_limited"]) == ("allow", "agents.openclaw.rules[0]", None)
    assert (queued["effect"], queued["rule"]) == ("approve", "agents.openclaw.rules[1]")
    assert queued["rule_text"].startswith("[[agents.openclaw.rules]]") and 'effect = "approve"' in queued["rule_text"]
    assert queued["reason"] == real.reason
    assert denied["effect"] == "deny" and "container 'postgres' is outside the grant" in denied["reason"]
    text = dry_run_text(queued)
    assert "effect:  approve - it is queued for an operator's approval" in text
    assert "nothing was run, queued or counted" in text


async def test_a_dry_run_refuses_what_the_server_refuses_with_the_same_words(write_config: WriteConfig) -> None:
    async with open_app(load_config(write_config())) as app:
        with pytest.raises(Refused, match="unknown agent 'mallory'"):
            await dry_run(app, "mallory", "docker_list_containers", {})
        with pytest.raises(UnknownTool) as unknown:
            await dry_run(app, "reader", "docker_restart_container", {"container": "jellyfin"})
        with pytest.raises(Refused) as invalid:
            await dry_run(app, "openclaw", "docker_restart_container", {"container": "a;b"})
        served = await agent_calls.call_tool(app, "openclaw", "docker_restart_container", {"container": "a;b"})

    assert str(unknown.value) == "Unknown tool: docker_restart_container"
    assert str(invalid.value) == served.message


async def test_a_dry_run_shows_the_budget_that_would_refuse_the_call(write_config: WriteConfig) -> None:
    config = write_config(extra="[agents.openclaw.limits]\nmax_pending = 1\n")
    async with open_app(load_config(config)) as app:
        await agent_calls.call_tool(app, "openclaw", "docker_restart_container", {"container": "jellyfin"})
        twin = await dry_run(app, "openclaw", "docker_restart_container", {"container": "jellyfin"})
        other = await dry_run(app, "openclaw", "docker_stop_container", {"container": "jellyfin"})

    assert twin["duplicate_of"] is not None and twin["rate_limited"] is None
    assert other["rate_limited"] is not None and other["rate_limited"]["limit"] == "max_pending"
    assert "refused now:" in dry_run_text(other)
