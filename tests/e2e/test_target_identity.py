"""An approval runs only on the target the operator was shown: a container replaced under the same name between
queueing and approval is not restarted. The real `argobox serve` over stdio, the CLI, and a real Docker engine."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import docker
import pytest
from docker.models.containers import Container

from tests.conftest import WriteConfig
from tests.e2e.test_first_proof import agent_calls, argobox, docker_config, engine_events

pytestmark = [pytest.mark.docker]
__all__ = ["docker_config"]  # the fixture, shared with the first proof


async def test_a_container_swapped_before_approval_is_not_restarted_and_a_fresh_request_is(
    docker_config: Callable[..., Path], make_container: Callable[..., Container], docker_client: docker.DockerClient
) -> None:
    config = docker_config()
    original = make_container("web")
    name = original.name
    (queued,) = await agent_calls(config, [("docker_restart_container", {"container": name})])
    request_id = queued.structured_content["request_id"]
    shown = argobox(config, "show", request_id)

    original.remove(force=True)
    replacement = make_container("web", name=name)  # another container under the same name
    t0 = time.time()
    approved = argobox(config, "approve", request_id, "--as", "alice")
    record = json.loads(argobox(config, "show", request_id, "--json").stdout)
    (fresh,) = await agent_calls(config, [("docker_restart_container", {"container": name})])
    again = argobox(config, "approve", fresh.structured_content["request_id"], "--as", "alice")

    assert f"target queued:  container {name}, id {original.short_id}, image" in shown.stdout
    assert approved.returncode == 3, approved.stdout + approved.stderr
    assert record["status"] == "failed" and record["target"]["id"] == original.short_id
    assert f"id: '{original.short_id}' when it was queued, '{replacement.short_id}' now" in record["error"]
    assert "nothing was run" in record["error"]
    assert again.returncode == 0, again.stderr
    assert len(engine_events(docker_client, replacement, t0, "restart")) == 1  # the fresh request only


async def test_a_container_missing_when_queued_is_not_restarted_once_it_exists(
    docker_config: Callable[..., Path], make_container: Callable[..., Container], docker_client: docker.DockerClient
) -> None:
    config = docker_config()
    name = f"argobox-web-new-{secrets.token_hex(4)}"
    (queued,) = await agent_calls(config, [("docker_restart_container", {"container": name})])
    request_id = queued.structured_content["request_id"]
    shown = argobox(config, "show", request_id)

    created = make_container("web", name=name)  # created after the request was queued
    t0 = time.time()
    approved = argobox(config, "approve", request_id, "--as", "alice")
    record = json.loads(argobox(config, "show", request_id, "--json").stdout)

    assert queued.structured_content["status"] == "pending_approval"
    assert "could not be identified" in shown.stdout and f"No container named '{name}'" in shown.stdout
    assert approved.returncode == 3, approved.stdout + approved.stderr
    assert record["status"] == "failed" and record["target"]["unidentified"].startswith("No container named")
    assert "could not be identified when the request was queued; ask again" in record["error"]
    assert record["timeline"][-1]["event"] == "failed"
    assert engine_events(docker_client, created, t0, "restart") == []


async def test_a_request_queued_while_the_engine_was_unreachable_is_not_run_once_it_answers(
    write_config: WriteConfig,
    docker_config: Callable[..., Path],
    make_container: Callable[..., Container],
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    web = make_container("web")
    unreachable = write_config(docker=f'base_url = "unix://{tmp_path}/no-such.sock"', mutate_globs='"argobox-web-*"')
    (queued,) = await agent_calls(unreachable, [("docker_restart_container", {"container": web.name})])
    request_id = queued.structured_content["request_id"]

    config = docker_config()  # the same file and store, now with the engine that answers
    t0 = time.time()
    approved = argobox(config, "approve", request_id, "--as", "alice")
    record = json.loads(argobox(config, "show", request_id, "--json").stdout)

    assert queued.structured_content["status"] == "pending_approval"
    assert approved.returncode == 3, approved.stdout + approved.stderr
    assert record["status"] == "failed" and "did not answer" in record["target"]["unidentified"]
    assert "could not be identified when the request was queued; ask again" in record["error"]
    assert engine_events(docker_client, web, t0, "restart") == []
