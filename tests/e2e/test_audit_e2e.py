"""The audit guarantees end to end, with the real `argobox serve` over stdio and a real Docker engine:
fail closed when the audit record cannot be written, and secrets seeded into every path appear nowhere."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import docker
import pytest
from docker.models.containers import Container
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError

from tests.conftest import WriteConfig, first_text
from tests.fixtures_docker import recorded_events

pytestmark = [pytest.mark.docker, pytest.mark.anyio]

ARGOBOX = str(Path(sys.executable).with_name("argobox"))


def argobox(config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ARGOBOX, "--config", str(config), *args], capture_output=True, text=True, timeout=120, check=False, env=env
    )


@asynccontextmanager
async def server(config: Path, log: Path, env: dict[str, str] | None = None) -> AsyncGenerator[Client]:
    """An agent connected to `argobox serve` over stdio, the server's stderr appended to `log` (closed after)."""
    params = StdioServerParameters(
        command=ARGOBOX, args=["--config", str(config), "serve", "--agent", "openclaw"], env=env
    )
    with log.open("a") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            yield client


def engine_actions(client: docker.DockerClient, container: Container, since: float) -> list[str]:
    events = recorded_events(client, container.id, since=int(since) - 1, until=int(time.time()) + 1)
    return [e.get("Action", "") for e in events]


def allow_start(name: str) -> str:
    return f"""
[[agents.openclaw.rules]]
tools = ["docker_start_container"]
args = {{ container = ["{name}"] }}
effect = "allow"
"""


async def test_unwritable_audit_refuses_a_pre_approved_mutation_and_the_container_is_untouched(
    write_config: WriteConfig,
    docker_base_url: str,
    make_container: Callable[..., Container],
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    web = make_container("web", start=False)
    config = write_config(
        docker=f'base_url = "{docker_base_url}"', storage="busy_timeout_ms = 200", extra=allow_start(web.name or "")
    )
    log = tmp_path / "server.log"
    t0 = time.time()
    with anyio.fail_after(60):
        async with server(config, log) as client:
            await client.list_tools()  # the server is up and its store open
            blocker = sqlite3.connect(config.parent / "argobox.db", isolation_level=None)
            blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock past the bounded wait
            try:
                started = time.monotonic()
                result = await client.call_tool("docker_start_container", {"container": web.name})
                waited = time.monotonic() - started
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()
            allowed_later = await client.call_tool("docker_list_containers", {})
    web.reload()
    audit = json.loads(argobox(config, "audit", "--json").stdout)

    assert result.is_error is True and result.structured_content is not None
    assert result.structured_content["status"] == "refused"
    assert "could not write the audit record, so nothing was executed" in first_text(result)
    assert waited < 10
    assert web.attrs["State"]["Status"] == "created" and "start" not in engine_actions(docker_client, web, t0)
    assert "the audit trail could not be written" in log.read_text()
    assert not [e for e in audit if e["tool"] == "docker_start_container"]  # no half-recorded decision
    assert allowed_later.structured_content is not None and allowed_later.structured_content["status"] == "succeeded"
    assert argobox(config, "audit", "verify").returncode == 0


async def test_seeded_secrets_appear_nowhere(
    write_config: WriteConfig,
    docker_base_url: str,
    make_container: Callable[..., Container],
    tmp_path: Path,
) -> None:
    seed = {
        name: f"{name}-{secrets.token_hex(8)}"
        for name in (
            "agenttoken",
            "envsecret",
            "plainenv",
            "labelsecret",
            "urlpass",
            "argpassword",
            "argapikey",
            "argurlpass",
            "notepass",
        )
    }
    token = seed["agenttoken"]
    web = make_container(
        "web",
        env={"DB_PASSWORD": seed["envsecret"], "GREETING": seed["plainenv"]},
        labels={
            "com.example.api_token": seed["labelsecret"],
            "backup.target": f"https://backup:{seed['urlpass']}@nas.local/web",
        },
        command=[
            "sh",
            "-c",
            f'echo "db=$DB_PASSWORD greeting=$GREETING token={token} '
            f'target=https://backup:{seed["urlpass"]}@nas.local"; trap "exit 0" TERM; while :; do sleep 1; done',
        ],
    )
    for _ in range(100):  # bounded: the container has printed its line
        if web.logs():
            break
        await anyio.sleep(0.05)
    config = write_config(
        docker=f'base_url = "{docker_base_url}"',
        mutate_globs='"argobox-web-*"',
        token_sha256=hashlib.sha256(token.encode()).hexdigest(),
    )
    log = tmp_path / "server.log"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "ARGOBOX_AGENT_TOKEN": token}
    answers: list[str] = []
    with anyio.fail_after(60):
        async with server(config, log, env) as client:
            for tool, arguments in [
                ("docker_list_containers", {}),
                ("docker_inspect_container", {"container": web.name}),
                ("docker_container_logs", {"container": web.name}),
                (
                    "docker_restart_container",
                    {
                        "container": web.name,
                        "password": seed["argpassword"],
                        "api_key": seed["argapikey"],
                        "url": f"https://ops:{seed['argurlpass']}@wiki.local/",
                    },
                ),
                ("docker_inspect_container", {"container": web.name, "token": token}),
                ("docker_restart_container", {"container": web.name}),
            ]:
                result = await client.call_tool(tool, arguments)
                answers.append(
                    json.dumps(result.structured_content) + "\n" + json.dumps([c.model_dump() for c in result.content])
                )
            try:
                await client.call_tool(f"x{token}", {})
            except MCPError as exc:
                answers.append(str(exc))
    request_id = json.loads(answers[5].splitlines()[0])["request_id"]
    approved = argobox(
        config,
        "approve",
        request_id,
        "--as",
        "alice",
        "--note",
        f"see https://ops:{seed['notepass']}@wiki.local/runbook",
    )
    outputs = {
        "approve": approved.stdout + approved.stderr,
        **{
            " ".join(args): (r := argobox(config, *args)).stdout + r.stderr
            for args in (
                ("requests",),
                ("requests", "--json"),
                ("show", request_id),
                ("show", request_id, "--json"),
                ("audit",),
                ("audit", "--json"),
                ("audit", "export"),
                ("audit", "verify"),
            )
        },
    }
    db_path = config.parent / "argobox.db"
    with sqlite3.connect(db_path) as db:
        raw_audit = "\n".join(db.iterdump())
    store_files = {p.name: p.read_bytes() for p in config.parent.iterdir() if p.name.startswith("argobox.db")}

    inspected = json.loads(answers[1].splitlines()[0])["result"]
    assert inspected["env"] == {"DB_PASSWORD": "<redacted>", "GREETING": "<redacted>"}
    assert inspected["labels"]["com.example.api_token"] == "<redacted>"
    logged = json.loads(answers[2].splitlines()[0])["result"]["lines"]
    assert any("db=<redacted> greeting=<redacted> token=<redacted>" in line for line in logged), logged
    assert approved.returncode == 0, approved.stderr
    assert outputs["audit verify"].startswith("ok: ")
    places = {
        "agent answers": "\n".join(answers),
        **outputs,
        "audit table": raw_audit,
        "server log": log.read_text(),
        **{name: data.decode("utf-8", "replace") for name, data in store_files.items()},
    }
    leaks = [
        (secret_name, place) for secret_name, value in seed.items() for place, text in places.items() if value in text
    ]
    assert leaks == []
    assert {"argobox.db", "argobox.db.checkpoint"} <= set(store_files)
    assert "Traceback" not in log.read_text()
