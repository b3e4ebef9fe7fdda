"""The container image, end to end, with no registry: a Debian 12 base made here with debootstrap, the image built
from the Dockerfile on the private engine (scripts/container-image.sh), then run there with compose.yaml's settings
and the first proof driven over HTTP into it with the official MCP client. compose.yaml's console service, a second
container on the same store, shows the pending request to a signed-in operator. The approval comes from `argobox
approve` run inside the daemon's container (`docker exec`), and the engine itself reports the restart, once.

The engine runs without a bridge, so the container shares the host's network and the daemon listens on
127.0.0.1 at a free port; everything else (volumes, read-only root, dropped capabilities, no-new-privileges, the
socket's group) is taken from compose.yaml.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shlex
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import anyio
import docker
import docker.errors
import httpx2
import pytest
import yaml
from docker.models.containers import Container
from docker.models.volumes import Volume
from mcp import types

from tests.fixtures_docker import SESSION_LABEL, TEST_LABEL, MakeContainer, closing_stream
from tests.http_daemon import connect

pytestmark = [pytest.mark.docker, pytest.mark.container]

REPO = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = cast(dict[str, Any], yaml.safe_load((REPO / "compose.yaml").read_text()))
SERVICE: dict[str, Any] = COMPOSE["services"]["argobox"]
CONSOLE: dict[str, Any] = COMPOSE["services"]["console"]
BUILD_TIMEOUT_S = 900
TEST_TIMEOUT_S = 180
CONFIG_TARGET = "/etc/argobox"
STORE_TARGET = "/var/lib/argobox"
SOCKET_TARGET = "/var/run/docker.sock"

CONFIG = """\
[storage]
path = "/var/lib/argobox/argobox.db"

[docker]
base_url = "unix:///var/run/docker.sock"

[[operators]]
name = "alice"

[[operators]]
name = "olga"
token_sha256 = "{olga_digest}"

[agents.openclaw]
token_sha256 = "{digest}"

[[agents.openclaw.rules]]
tools = ["docker_list_containers", "docker_inspect_container"]
effect = "allow"

[[agents.openclaw.rules]]
tools = ["docker_restart_container"]
args = {{ container = ["argobox-web-*"] }}
effect = "approve"
"""


@pytest.fixture(scope="module")
def image(docker_base_url: str) -> str:
    """The ArgoBox image, built (or found up to date) on the test engine."""
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "container-image.sh"), "build"],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False,
        env={**os.environ, "ARGOBOX_TEST_DOCKER_HOST": docker_base_url},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-6000:]
    (assignment,) = [w for w in shlex.split(done.stdout) if w.startswith("ARGOBOX_TEST_IMAGE=")]
    return assignment.partition("=")[2]


@pytest.fixture
def store_volume(docker_client: docker.DockerClient, docker_session_id: str) -> Iterator[Volume]:
    volume = docker_client.volumes.create(  # pyright: ignore[reportUnknownMemberType]
        name=f"argobox-test-store-{secrets.token_hex(4)}", labels={TEST_LABEL: "1", SESSION_LABEL: docker_session_id}
    )
    yield volume
    for user in docker_client.containers.list(all=True, filters={"volume": volume.name}):
        user.remove(force=True)
    with contextlib.suppress(docker.errors.NotFound):
        volume.remove(force=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def compose_volumes(config_dir: Path, store: Volume, engine_socket: Path) -> dict[str, dict[str, str]]:
    """compose.yaml's volumes, each source replaced by this test's own (config dir, volume, the engine's socket)."""
    mounts: dict[str, dict[str, str]] = {}
    for entry in SERVICE["volumes"]:
        source, target, *mode = str(entry).split(":")
        if target == CONFIG_TARGET:
            local = str(config_dir)
        elif target == STORE_TARGET and source in COMPOSE["volumes"]:
            local = store.name
        elif target == SOCKET_TARGET:
            local = str(engine_socket)
        else:
            raise AssertionError(f"compose.yaml mounts {entry!r}, which this test does not know how to provide")
        mounts[local] = {"bind": target, "mode": mode[0] if mode else "rw"}
    return mounts


def compose_command(port: int) -> list[str]:
    """compose.yaml's command, listening on 127.0.0.1:PORT (the host's network here) instead of every address."""
    command = [str(arg) for arg in SERVICE["command"] if arg != "--allow-non-loopback"]
    command[command.index("--http") + 1] = f"127.0.0.1:{port}"
    return command


def compose_console_command(port: int) -> list[str]:
    """compose.yaml's console command, listening on 127.0.0.1:PORT (the host's network here)."""
    command = [str(arg) for arg in CONSOLE["command"] if arg != "--allow-non-loopback"]
    command[command.index("--listen") + 1] = f"127.0.0.1:{port}"
    return command


async def pending_page(base: str, operator: str, token: str) -> str:
    """The console's Pending page as `operator` sees it once signed in (the console may still be starting)."""
    async with httpx2.AsyncClient(timeout=10, follow_redirects=True) as http:
        while True:  # bounded by the caller's deadline
            try:
                form = await http.get(f"{base}signin")
                break
            except httpx2.TransportError:
                await anyio.sleep(0.2)
        nonce = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert nonce is not None, form.text
        headers = {"Origin": base.rstrip("/"), "Sec-Fetch-Site": "same-origin"}
        signed_in = await http.post(
            f"{base}signin", data={"operator": operator, "token": token, "csrf": nonce[1]}, headers=headers
        )
        assert signed_in.status_code == 200, signed_in.text
        return (await http.get(base)).text


def wait_healthy(
    client: docker.DockerClient, container: Container, since: float, timeout: float = 90
) -> dict[str, Any]:
    """Docker's health state of `container` once the engine reports it healthy (its check runs every 0.5 s here)."""
    stream = client.events(  # pyright: ignore[reportUnknownMemberType]
        since=int(since) - 1, until=int(time.time() + timeout), decode=True, filters={"container": container.id}
    )
    with closing_stream(stream):
        for event in stream:
            if event.get("Action") == "die":
                raise AssertionError(f"the container exited:\n{container.logs().decode(errors='replace')}")
            if event.get("Action") == "health_status: healthy":
                container.reload()
                return container.attrs["State"]["Health"]
    container.reload()
    raise AssertionError(f"not healthy within {timeout} s: {container.attrs['State'].get('Health')}")


def engine_events(client: docker.DockerClient, container: Container, since: float, action: str) -> list[dict[str, Any]]:
    stream = client.events(  # pyright: ignore[reportUnknownMemberType]
        since=int(since) - 1, until=int(time.time()) + 1, decode=True,
        filters={"container": container.id, "event": action},
    )  # fmt: skip
    with closing_stream(stream):
        return [e for e in stream if e.get("Action") == action]


def content(result: types.CallToolResult) -> dict[str, Any]:
    assert result.structured_content is not None, result
    return result.structured_content


@dataclass(frozen=True)
class Exec:
    """`docker exec` with the docker CLI against the test engine, as an operator would run it."""

    host: str
    client_config: Path

    async def __call__(self, container: Container, *argv: str) -> tuple[int, str, str]:
        done = await anyio.run_process(
            ["docker", "-H", self.host, "exec", str(container.id), *argv],
            check=False, env={**os.environ, "DOCKER_CONFIG": str(self.client_config)},
        )  # fmt: skip
        return done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")


def test_compose_publishes_on_loopback_and_the_image_runs_unprivileged(
    image: str, docker_client: docker.DockerClient
) -> None:
    config = docker_client.images.get(image).attrs["Config"]

    assert all(str(p).startswith("127.0.0.1:") for p in SERVICE["ports"]), SERVICE["ports"]
    assert any(str(v).endswith(f":{STORE_TARGET}") for v in SERVICE["volumes"]) and "argobox-data" in COMPOSE["volumes"]
    assert any(str(v).startswith(f"/var/run/docker.sock:{SOCKET_TARGET}") for v in SERVICE["volumes"])
    assert "DOCKER_GID" in str(SERVICE["group_add"]) and SERVICE["env_file"][0]["path"] == "./argobox.env"
    assert SERVICE["read_only"] is True and SERVICE["cap_drop"] == ["ALL"]
    assert config["User"] == "argobox:argobox" and STORE_TARGET in config["Volumes"]
    assert config["Entrypoint"] == ["argobox"] and config["Cmd"] == SERVICE["command"]
    assert config["Healthcheck"]["Test"][0] == "CMD"
    for key in ("volumes", "group_add", "env_file", "read_only", "cap_drop", "security_opt", "tmpfs"):
        assert CONSOLE[key] == SERVICE[key], key  # the console runs as confined as the daemon, on the same store
    assert all(str(p).startswith("127.0.0.1:") for p in CONSOLE["ports"]), CONSOLE["ports"]


@pytest.mark.anyio
async def test_first_proof_over_http_into_the_container_approved_inside_it_runs_once(
    image: str, docker_client: docker.DockerClient, docker_base_url: str, docker_session_id: str,
    make_container: MakeContainer, store_volume: Volume, tmp_path: Path,
) -> None:  # fmt: skip
    token, olga_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    digests = {"digest": hashlib.sha256(token.encode()).hexdigest()}
    digests["olga_digest"] = hashlib.sha256(olga_token.encode()).hexdigest()
    config_dir = tmp_path / "config"
    config_dir.mkdir(mode=0o755)
    config_dir.chmod(0o755)  # the container's argobox user reads it through the bind mount
    (config_dir / "argobox.toml").write_text(CONFIG.format(**digests))
    (config_dir / "argobox.toml").chmod(0o644)
    engine_socket = Path(docker_base_url.removeprefix("unix://"))
    (tmp_path / "docker-client").mkdir()
    docker_exec = Exec(docker_base_url, tmp_path / "docker-client")
    web = make_container("web")
    port, console_port = free_port(), free_port()
    started = time.time()
    confined: dict[str, Any] = {
        "network_mode": "host", "group_add": [str((await anyio.Path(engine_socket).stat()).st_gid)],
        "volumes": compose_volumes(config_dir, store_volume, engine_socket),
        "read_only": SERVICE["read_only"], "tmpfs": dict.fromkeys(SERVICE["tmpfs"], ""),
        "cap_drop": SERVICE["cap_drop"], "security_opt": SERVICE["security_opt"],
        "labels": {TEST_LABEL: "1", SESSION_LABEL: docker_session_id},
    }  # fmt: skip
    daemon: Container = docker_client.containers.run(
        image, compose_command(port), detach=True, name=f"argobox-daemon-{secrets.token_hex(4)}",
        healthcheck={"interval": 500_000_000, "timeout": 5_000_000_000, "retries": 3}, **confined,
    )  # fmt: skip
    with anyio.fail_after(TEST_TIMEOUT_S):
        health = await anyio.to_thread.run_sync(wait_healthy, docker_client, daemon, started)
        console: Container = docker_client.containers.run(  # after the daemon made the store
            image, compose_console_command(console_port), detach=True, name=f"argobox-console-{secrets.token_hex(4)}",
            **confined,
        )  # fmt: skip
        before = web.attrs["State"]["StartedAt"]
        t0 = time.time()
        async with connect(f"http://127.0.0.1:{port}/mcp", token) as agent:
            listing = await agent.call_tool("docker_list_containers", {})
            queued = await agent.call_tool("docker_restart_container", {"container": web.name})
            request_id = content(queued)["request_id"]
            web.reload()
            started_while_pending = web.attrs["State"]["StartedAt"]
            shown = await pending_page(f"http://127.0.0.1:{console_port}/", "olga", olga_token)
            approved = await docker_exec(daemon, "argobox", "approve", request_id, "--as", "alice")
            again = await docker_exec(daemon, "argobox", "approve", request_id, "--as", "alice")
            status = await agent.call_tool("argobox_request_status", {"request_id": request_id})
        trail = await docker_exec(daemon, "argobox", "audit", "--request", request_id, "--json")
        web.reload()
        restarts = engine_events(docker_client, web, t0, "restart")
        verified = await docker_exec(daemon, "argobox", "audit", "verify")
        store_mode = await docker_exec(daemon, "stat", "-c", "%a %U", f"{STORE_TARGET}/argobox.db")
        whoami = await docker_exec(daemon, "id", "-u")
        await anyio.to_thread.run_sync(lambda: console.stop(timeout=30))
        await anyio.to_thread.run_sync(lambda: daemon.stop(timeout=30))
        exit_status = await anyio.to_thread.run_sync(lambda: daemon.wait(timeout=60))
    logs = daemon.logs().decode(errors="replace")

    assert f"http://127.0.0.1:{port}/healthz: ok" in health["Log"][-1]["Output"]
    listed = content(listing)["result"]["containers"]
    assert web.name in [c["name"] for c in listed]
    assert content(queued)["status"] == "pending_approval"
    assert started_while_pending == before
    assert str(request_id) in shown and str(web.name) in shown, shown[-3000:]
    assert approved[0] == 0 and "succeeded" in approved[1], approved
    assert again[0] != 0, again
    events = [(e["event"], e["actor"]) for e in json.loads(trail[1])]
    assert ("approved", "operator:alice") in events and [e for e, _ in events][-1] == "succeeded", events
    assert content(status)["status"] == "succeeded"
    assert len(restarts) == 1, restarts
    assert web.attrs["State"]["StartedAt"] != before
    assert verified[0] == 0, verified
    assert store_mode[:2] == (0, "600 argobox\n") and whoami[:2] == (0, "10001\n")
    assert exit_status["StatusCode"] == 0, logs[-3000:]
    assert "serving MCP over streamable HTTP" in logs and token not in logs
