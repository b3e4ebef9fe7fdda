"""A scripted agent loops on a mutation over MCP stdio and is stopped; the engine and the audit show it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import docker
import pytest
from docker.models.containers import Container

from argobox.policy.limits import Limits
from tests.conftest import WriteConfig, first_text
from tests.e2e.test_first_proof import agent_calls, argobox, engine_events

pytestmark = [pytest.mark.docker, pytest.mark.anyio]

PRE_APPROVED = """
[[agents.openclaw.rules]]
tools = ["docker_restart_container"]
args = {{ container = ["{name}"] }}
effect = "allow"
"""


async def test_looping_agent_is_stopped_across_sessions_and_the_audit_says_why(
    write_config: WriteConfig,
    docker_base_url: str,
    make_container: Callable[..., Container],
    docker_client: docker.DockerClient,
) -> None:
    web = make_container("loop")
    config: Path = write_config(docker=f'base_url = "{docker_base_url}"', extra=PRE_APPROVED.format(name=web.name))
    t0 = time.time()

    first = await agent_calls(config, [("docker_restart_container", {"container": web.name})] * 2)
    second = await agent_calls(config, [("docker_restart_container", {"container": web.name})] * 20)
    audit = json.loads(argobox(config, "audit", "--json").stdout)
    budgets = json.loads(argobox(config, "budgets", "--json").stdout)

    allowed = Limits().identical_calls.count  # the default budget of identical calls, whatever it is
    statuses = [r.structured_content["status"] for r in first + second]
    assert 2 <= allowed < 22
    assert statuses == ["succeeded"] * allowed + ["rate_limited"] * (22 - allowed)
    refused = (first + second)[allowed].structured_content
    assert refused["limit"] == "identical_calls" and refused["retry_after_seconds"] > 0
    assert (first + second)[allowed].is_error is False  # a refusal the agent can read, not an error result
    assert first_text((first + second)[allowed]).startswith("rate_limited: ")
    assert len(engine_events(docker_client, web, t0, "restart")) == allowed
    limited = [e for e in audit if e["event"] == "rate_limited"]
    assert len(limited) == 1 and limited[0]["detail"]["limit"] == "identical_calls"
    assert limited[0]["agent"] == "openclaw"
    mine = next(b for b in budgets if b["agent"] == "openclaw")
    assert mine["mutations_last_hour"] == allowed
