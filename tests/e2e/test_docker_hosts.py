"""More than one Docker host, end to end: the private engine is also reached as host "nas" through `ssh://` over the
test sshd (which runs `docker system dial-stdio` against it), beside the same engine as the default host.

What is asserted is what the engine itself reports (its own events), and what the agent sees per host.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import anyio
import docker
import pytest
from docker.models.containers import Container
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.e2e.test_first_proof import engine_events
from tests.fixtures_docker import MakeContainer
from tests.fixtures_sshd import SshServer

pytestmark = [pytest.mark.docker, pytest.mark.sshd, pytest.mark.anyio]

ARGOBOX = str(Path(sys.executable).with_name("argobox"))


def argobox(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ARGOBOX, "--config", str(config), *args], capture_output=True, text=True, timeout=120, check=False
    )


async def agent_calls(
    config: Path, calls: list[tuple[str, dict[str, Any]]], agent: str = "openclaw", env: dict[str, str] | None = None
) -> list[Any]:
    params = StdioServerParameters(command=ARGOBOX, args=["--config", str(config), "serve", "--agent", agent], env=env)
    results: list[Any] = []
    with open(config.parent / "serve.err", "a") as err, anyio.fail_after(90):  # noqa: ASYNC230 - stderr needs a file
        async with Client(stdio_client(params, errlog=err)) as client:
            for tool, arguments in calls:
                results.append(await client.call_tool(tool, arguments))
    return results


@pytest.fixture(scope="module")
def hosts_config(ssh_server: SshServer, docker_base_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("docker-hosts")
    empty = base / "empty_known_hosts"
    empty.write_text("")
    url = f"ssh://{ssh_server.user}@{ssh_server.address}:{ssh_server.port}"
    closed = f"ssh://{ssh_server.user}@127.0.0.1:1"
    config = base / "argobox.toml"
    config.write_text(
        textwrap.dedent(f"""\
        [storage]
        path = "argobox.db"

        [docker]
        base_url = "{docker_base_url}"

        [docker.hosts.nas]
        base_url = "{url}"
        known_hosts = "{ssh_server.known_hosts}"
        key_file = "{ssh_server.key_file}"
        timeout_seconds = 20

        [docker.hosts.down]
        base_url = "{closed}"
        known_hosts = "{ssh_server.known_hosts}"
        key_file = "{ssh_server.key_file}"
        timeout_seconds = 5

        [docker.hosts.stranger]
        base_url = "{url}"
        known_hosts = "{empty}"
        key_file = "{ssh_server.key_file}"
        timeout_seconds = 5

        [[operators]]
        name = "alice"

        [[agents.openclaw.rules]]
        tools = ["docker_list_containers", "docker_inspect_container"]
        effect = "allow"

        [[agents.openclaw.rules]]
        tools = ["docker_restart_container"]
        args = {{ host = ["nas"], container = ["argobox-web-*"] }}
        effect = "approve"

        [[agents.nasonly.rules]]
        tools = ["docker_restart_container"]
        args = {{ host = ["nas"] }}
        effect = "approve"

        [[agents.nasonly.rules]]
        tools = ["docker_list_containers", "docker_inspect_container"]
        args = {{ host = ["nas"] }}
        effect = "allow"
        """)
    )
    return config


async def test_the_listing_says_which_host_each_container_is_on_and_reports_hosts_that_do_not_answer(
    hosts_config: Path, make_container: MakeContainer
) -> None:
    web: Container = make_container("web")

    (listing,) = await agent_calls(hosts_config, [("docker_list_containers", {})])
    result = listing.structured_content["result"]

    on = {(c["host"], c["name"]) for c in result["containers"]}
    assert ("default", web.name) in on and ("nas", web.name) in on  # one engine, reached two ways
    reports = {h["name"]: h for h in result["hosts"]}
    assert set(reports) == {"default", "nas", "down", "stranger"}
    assert reports["default"]["answered"] is True and reports["nas"]["answered"] is True
    assert reports["down"]["answered"] is False and "could not be reached" in reports["down"]["error"]
    assert reports["stranger"]["answered"] is False
    assert "never trusts a key on first use" in reports["stranger"]["error"]


@pytest.fixture(scope="module")
def nas_only_config(hosts_config: Path, docker_base_url: str) -> Path:
    """The same hosts with a store of their own, but the default engine's socket does not exist: the engine can then
    only be reached as host "nas", through the sshd, so a call sent to the default engine instead would fail."""
    config = hosts_config.with_name("nas-only.toml")
    absent = hosts_config.parent / "no-engine-here.sock"
    text = hosts_config.read_text().replace('path = "argobox.db"', 'path = "nas-only.db"', 1)
    config.write_text(text.replace(f'base_url = "{docker_base_url}"', f'base_url = "unix://{absent}"', 1))
    return config


async def test_a_restart_on_the_ssh_host_is_approved_and_the_engine_reports_it_once(
    nas_only_config: Path, make_container: MakeContainer, docker_client: docker.DockerClient
) -> None:
    web = make_container("web")
    t0 = time.time()

    outside, queued, listing = await agent_calls(
        nas_only_config,
        [
            ("docker_restart_container", {"container": web.name}),
            ("docker_restart_container", {"container": web.name, "host": "nas"}),
            ("docker_list_containers", {}),
        ],
    )
    request_id = queued.structured_content["request_id"]
    approved = argobox(nas_only_config, "approve", request_id, "--as", "alice")
    audit = json.loads(argobox(nas_only_config, "audit", "--request", request_id, "--json").stdout)

    reports = {h["name"]: h for h in listing.structured_content["result"]["hosts"]}
    assert reports["default"]["answered"] is False and reports["nas"]["answered"] is True
    assert outside.structured_content["status"] == "denied"  # the rule covers host nas only
    assert queued.structured_content["status"] == "pending_approval"
    assert f"restart container '{web.name}' on host 'nas'" in queued.structured_content["message"]
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert len(engine_events(docker_client, web, t0, "restart")) == 1
    assert audit[0]["detail"]["arguments"] == {"container": web.name, "host": "nas"}
    assert audit[-1]["event"] == "succeeded"


async def test_a_grant_that_allows_one_host_hides_the_others(hosts_config: Path, make_container: MakeContainer) -> None:
    web = make_container("web")

    listing, on_default, on_nas = await agent_calls(
        hosts_config,
        [
            ("docker_list_containers", {}),
            ("docker_inspect_container", {"container": web.name}),
            ("docker_inspect_container", {"container": web.name, "host": "nas"}),
        ],
        agent="nasonly",
    )
    result = listing.structured_content["result"]

    assert {c["host"] for c in result["containers"]} == {"nas"}
    assert [h["name"] for h in result["hosts"]] == ["nas"]
    assert on_default.structured_content["status"] == "denied"
    assert "host 'default' is outside the grant" in on_default.structured_content["reason"]
    assert on_nas.structured_content["status"] == "succeeded"
    assert on_nas.structured_content["result"]["name"] == web.name


@pytest.fixture(scope="module")
def known_hosts_lab(ssh_server: SshServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Host "nas" without a `known_hosts` key (so the ArgoBox user's ~/.ssh/known_hosts is used), and host "impostor"
    whose explicit known_hosts holds another key for the same address; homes with an empty, a wrong and the right
    ~/.ssh/known_hosts."""
    base = tmp_path_factory.mktemp("docker-known-hosts")
    impostor = base / "impostor_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(impostor)], check=True, timeout=30)
    kind, data = impostor.with_suffix(".pub").read_text().split()[:2]
    wrong = f"[{ssh_server.address}]:{ssh_server.port} {kind} {data}\n"
    (base / "changed_known_hosts").write_text(wrong)
    for home, lines in (("empty", ""), ("wrong", wrong), ("right", ssh_server.known_hosts.read_text())):
        (base / home / ".ssh").mkdir(parents=True)
        (base / home / ".ssh" / "known_hosts").write_text(lines)
    url = f"ssh://{ssh_server.user}@{ssh_server.address}:{ssh_server.port}"
    config = base / "argobox.toml"
    config.write_text(
        textwrap.dedent(f"""\
        [storage]
        path = "argobox.db"

        [docker]
        simulated_lab = "lab.json"

        [docker.hosts.nas]
        base_url = "{url}"
        key_file = "{ssh_server.key_file}"
        timeout_seconds = 10

        [docker.hosts.impostor]
        base_url = "{url}"
        known_hosts = "{base / "changed_known_hosts"}"
        key_file = "{ssh_server.key_file}"
        timeout_seconds = 10

        [[agents.openclaw.rules]]
        tools = ["docker_list_containers"]
        effect = "allow"
        """)
    )
    return config


async def test_without_known_hosts_an_ssh_engine_trusts_only_the_users_own_known_hosts(known_hosts_lab: Path) -> None:
    sessions = {
        home: await agent_calls(
            known_hosts_lab, [("docker_list_containers", {})], env={"HOME": str(known_hosts_lab.parent / home)}
        )
        for home in ("empty", "wrong", "right")
    }
    reports = {
        home: {h["name"]: h for h in listing.structured_content["result"]["hosts"]}
        for home, (listing,) in sessions.items()
    }

    assert reports["empty"]["nas"]["answered"] is False
    assert "not in its known_hosts, and ArgoBox never trusts a key on first use" in reports["empty"]["nas"]["error"]
    assert reports["wrong"]["nas"]["answered"] is False
    assert "presented an SSH host key that differs from the one in its known_hosts" in reports["wrong"]["nas"]["error"]
    assert reports["right"]["nas"]["answered"] is True  # the same setup with the key there: ~/.ssh/known_hosts is read


async def test_a_changed_host_key_of_an_ssh_engine_is_refused(known_hosts_lab: Path) -> None:
    (listing,) = await agent_calls(
        known_hosts_lab, [("docker_list_containers", {})], env={"HOME": str(known_hosts_lab.parent / "right")}
    )
    reports = {h["name"]: h for h in listing.structured_content["result"]["hosts"]}

    assert reports["nas"]["answered"] is True  # the same address and key, checked against the right file
    assert reports["impostor"]["answered"] is False
    assert "differs from the one in its known_hosts: the key changed" in reports["impostor"]["error"]
