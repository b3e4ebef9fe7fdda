"""The first proof, end to end: the real `argobox` command over MCP stdio with the official client, approval
from the CLI in another process, and a real Docker engine whose own reports are what we assert on."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import docker
import pytest
from docker.models.containers import Container
from mcp import Client, StdioServerParameters

from tests.conftest import WriteConfig
from tests.fixtures_docker import recorded_events

pytestmark = [pytest.mark.docker, pytest.mark.anyio]

ARGOBOX = str(Path(sys.executable).with_name("argobox"))


def argobox(config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ARGOBOX, "--config", str(config), *args], capture_output=True, text=True, timeout=120, check=False, env=env
    )


def approve_at_once(config: Path, request_id: str, operators: tuple[str, ...]) -> list[int]:
    """Start one `argobox approve` per operator, all at once; their exit statuses, sorted."""
    racing = [
        subprocess.Popen(
            [ARGOBOX, "--config", str(config), "approve", request_id, "--as", who],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for who in operators
    ]
    return sorted(p.wait(timeout=120) for p in racing)


async def agent_calls(config: Path, calls: list[tuple[str, dict[str, Any]]], mode: str = "auto") -> list[Any]:
    """One OpenClaw-like session: launch `argobox serve`, make the calls, then let the process go away."""
    params = StdioServerParameters(command=ARGOBOX, args=["--config", str(config), "serve", "--agent", "openclaw"])
    results: list[Any] = []
    with anyio.fail_after(60):
        async with Client(params, mode=mode) as client:
            for tool, arguments in calls:
                results.append(await client.call_tool(tool, arguments))
    return results


def engine_events(client: docker.DockerClient, container: Container, since: float, action: str) -> list[dict[str, Any]]:
    """What the engine itself recorded for `container` since `since` (bounded: `until` is now)."""
    events = recorded_events(client, container.id, since=int(since) - 1, until=int(time.time()) + 1, event=action)
    return [e for e in events if e.get("Action") == action]


@pytest.fixture
def docker_config(write_config: WriteConfig, docker_base_url: str) -> Callable[..., Path]:
    def make(**kwargs: Any) -> Path:
        return write_config(docker=f'base_url = "{docker_base_url}"', mutate_globs='"argobox-web-*"', **kwargs)

    return make


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_agent_mutation_is_queued_approved_from_the_cli_and_runs_exactly_once(
    docker_config: Callable[..., Path],
    make_container: Callable[..., Container],
    docker_client: docker.DockerClient,
    mode: str,
) -> None:
    config = docker_config()
    web = make_container("web")
    before = web.attrs["State"]["StartedAt"]
    t0 = time.time()

    listing, queued = await agent_calls(
        config,
        [
            ("docker_list_containers", {}),
            ("docker_restart_container", {"container": web.name}),
        ],
        mode,
    )
    request_id = queued.structured_content["request_id"]
    web.reload()
    started_while_pending = web.attrs["State"]["StartedAt"]

    approved = argobox(config, "approve", request_id, "--as", "alice", "--note", "planned")
    again = argobox(config, "approve", request_id, "--as", "bob")
    web.reload()
    (status,) = await agent_calls(config, [("argobox_request_status", {"request_id": request_id})], mode)
    audit = json.loads(argobox(config, "audit", "--request", request_id, "--json").stdout)
    listed = json.loads(argobox(config, "requests", "--json").stdout)

    assert web.name in [c["name"] for c in listing.structured_content["result"]["containers"]]
    assert queued.is_error is False and queued.structured_content["status"] == "pending_approval"
    assert started_while_pending == before
    assert approved.returncode == 0, approved.stderr
    assert "succeeded: restart container" in approved.stdout
    assert again.returncode == 1 and "only a pending request can be approved" in again.stderr
    assert web.attrs["State"]["StartedAt"] != before and web.attrs["State"]["Running"] is True
    assert len(engine_events(docker_client, web, t0, "restart")) == 1
    assert status.structured_content["status"] == "succeeded"
    assert status.structured_content["result"]["state"] == "running"
    assert [e["event"] for e in audit] == ["received", "decision", "queued", "approved", "executing", "succeeded"]
    assert {e["actor"] for e in audit} >= {"agent:openclaw", "policy", "operator:alice"}
    assert all({"seq", "at", "request_id", "event", "actor", "tool", "detail"} <= set(e) for e in audit)
    mine = next(r for r in listed if r["id"] == request_id)
    assert mine["status"] == "succeeded" and mine["arguments"] == {"container": web.name}
    assert {"id", "agent", "tool", "arguments", "status", "created_at", "expires_at"} <= set(mine)


async def test_two_operators_approving_at_the_same_moment_restart_the_container_once(
    docker_config: Callable[..., Path],
    make_container: Callable[..., Container],
    docker_client: docker.DockerClient,
) -> None:
    config = docker_config()
    web = make_container("web")
    t0 = time.time()
    (queued,) = await agent_calls(config, [("docker_restart_container", {"container": web.name})])
    request_id = queued.structured_content["request_id"]

    codes = await anyio.to_thread.run_sync(approve_at_once, config, request_id, ("alice", "bob"))

    assert codes == [0, 1]
    assert len(engine_events(docker_client, web, t0, "restart")) == 1
    audit = json.loads(argobox(config, "audit", "--request", request_id, "--json").stdout)
    assert [e["event"] for e in audit].count("approved") == 1
    assert [e["event"] for e in audit].count("succeeded") == 1


async def test_operator_denial_reaches_the_agent_and_the_container_is_untouched(
    docker_config: Callable[..., Path],
    make_container: Callable[..., Container],
) -> None:
    config = docker_config()
    web = make_container("web")
    (queued,) = await agent_calls(config, [("docker_stop_container", {"container": web.name})])
    request_id = queued.structured_content["request_id"]

    denied = argobox(config, "deny", request_id, "--as", "bob", "--reason", "not during the film")
    late = argobox(config, "approve", request_id, "--as", "alice")
    (status,) = await agent_calls(config, [("argobox_request_status", {"request_id": request_id})])
    web.reload()

    assert denied.returncode == 0 and late.returncode == 1
    assert status.is_error is False  # the status check worked; the request it reports on was denied
    assert status.structured_content["status"] == "denied"
    assert status.structured_content["reason"] == "not during the film"
    assert web.attrs["State"]["Running"] is True


async def test_stop_and_start_do_what_the_engine_reports(
    docker_config: Callable[..., Path],
    make_container: Callable[..., Container],
) -> None:
    config = docker_config()
    web = make_container("web")
    (stop,) = await agent_calls(config, [("docker_stop_container", {"container": web.name})])
    assert argobox(config, "approve", stop.structured_content["request_id"], "--as", "alice").returncode == 0
    web.reload()
    stopped = web.attrs["State"]["Status"]
    (start,) = await agent_calls(config, [("docker_start_container", {"container": web.name})])
    assert argobox(config, "approve", start.structured_content["request_id"], "--as", "alice").returncode == 0
    web.reload()

    assert stopped == "exited"
    assert web.attrs["State"]["Status"] == "running"


async def test_container_gone_before_approval_fails_the_request_clearly(
    docker_config: Callable[..., Path],
    make_container: Callable[..., Container],
) -> None:
    config = docker_config()
    web = make_container("web")
    (queued,) = await agent_calls(config, [("docker_restart_container", {"container": web.name})])
    web.remove(force=True)

    approved = argobox(config, "approve", queued.structured_content["request_id"], "--as", "alice")
    shown = json.loads(argobox(config, "show", queued.structured_content["request_id"], "--json").stdout)

    assert approved.returncode == 3
    assert f"No container named '{web.name}'" in approved.stdout
    assert "Traceback" not in approved.stdout + approved.stderr
    assert shown["status"] == "failed" and shown["timeline"][-1]["event"] == "failed"


async def test_unreachable_engine_is_a_clear_failure_not_a_crash(write_config: WriteConfig, tmp_path: Path) -> None:
    config = write_config(docker=f'base_url = "unix://{tmp_path}/no-such.sock"')

    (result,) = await agent_calls(config, [("docker_inspect_container", {"container": "jellyfin"})])

    assert result.is_error is True
    assert result.structured_content["status"] == "failed"
    assert "did not answer" in result.structured_content["error"]
