"""The README's quickstart, as written: the commands of its steps run in a fresh home as a user who is not root
(as the quickstart assumes), against the real Docker engine. Only the port, the request's id and the operator's
token are filled in; the agent is the official MCP client configured with the quickstart's OpenClaw snippet.

The test runs as root in CI. `unshare --user` starts the commands in a user namespace of their own, where ArgoBox
sees an ordinary user id (so `argobox init` writes to the user's folders, never to /etc) while files keep their
owner, so the venv and the engine's socket stay reachable.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import docker
import httpx2
import pytest
from anyio.abc import Process
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.console_support import engine_events
from tests.fixtures_docker import MakeContainer

pytestmark = [pytest.mark.anyio, pytest.mark.docker]

README = Path(__file__).resolve().parents[2] / "README.md"
BIN = Path(sys.executable).parent
TIMEOUT_S = 120


def readme_block(marker: str, language: str) -> str:
    match = re.search(rf"<!-- {marker} -->\s*```{language}\n(.*?)```", README.read_text(), re.DOTALL)
    assert match, f"the README lost its {marker} block"
    return match.group(1)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def as_a_user(argv: list[str]) -> list[str]:
    """`argv`, run as an ordinary user: as it is when we are not root, else in a user namespace of its own."""
    if os.geteuid() != 0:
        return argv
    unshare = shutil.which("unshare")
    assert unshare, "unshare (util-linux) is needed to run the quickstart as a user who is not root"
    return [unshare, "--user", "--", *argv]


def user_env(home: Path, docker_base_url: str) -> dict[str, str]:
    """A fresh user's environment: their home, `argobox` on the PATH, their Docker engine; nothing of ArgoBox's."""
    return {
        "HOME": str(home),
        "USER": "alice",
        "PATH": f"{BIN}{os.pathsep}/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "DOCKER_HOST": docker_base_url,
    }


def run_block(script: str, env: dict[str, str], home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        as_a_user(["bash", "-euo", "pipefail", "-c", script]),
        capture_output=True, text=True, timeout=TIMEOUT_S, check=False, env=env, cwd=home,
    )  # fmt: skip


@asynccontextmanager
async def daemon(command: str, env: dict[str, str], home: Path) -> AsyncGenerator[str]:
    """The quickstart's `argobox serve --http ...` line, running, and the URL it says it serves."""
    argv = command.split("#", maxsplit=1)[0].split()
    process: Process = await anyio.open_process(as_a_user(argv), env=env, cwd=home, stdout=subprocess.DEVNULL)
    seen = ""
    try:
        assert process.stderr is not None
        async for chunk in process.stderr:  # bounded by the caller's deadline
            seen += chunk.decode(errors="replace")
            found = re.search(r"(http://127\.0\.0\.1:\d+/mcp)", seen)
            if found:
                yield found[1]
                break
        else:
            raise AssertionError(f"argobox serve --http exited:\n{seen}")
    finally:
        process.terminate()
        with anyio.move_on_after(30):
            await process.wait()
        if process.returncode is None:
            process.kill()
        await process.aclose()


async def test_the_quickstart_as_written_takes_a_new_user_to_a_first_approval(
    tmp_path: Path, docker_base_url: str, docker_client: docker.DockerClient, make_container: MakeContainer
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = user_env(home, docker_base_url)
    port = free_port()
    web = make_container("quickstart")
    snippet = json.loads(readme_block("openclaw-http-snippet", "json"))["mcp"]["servers"]["argobox"]
    serve = readme_block("quickstart-daemon", "sh").strip()
    assert serve.startswith("argobox serve --http "), serve

    setup = run_block(readme_block("quickstart-setup", "sh"), env, home)
    tokens = dict(re.findall(r"^(operator|agent) token \(\S+\): (\S+)$", setup.stdout, re.MULTILINE))
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert set(tokens) == {"operator", "agent"}, setup.stdout
    config = home / ".config" / "argobox" / "argobox.toml"
    assert config.is_file() and tokens["agent"] not in config.read_text()
    assert re.search(r"^ok +docker: Docker Engine", setup.stdout, re.MULTILINE), setup.stdout
    assert not re.search(r"^FAIL", setup.stdout, re.MULTILINE), setup.stdout

    started = time.time()
    with anyio.fail_after(TIMEOUT_S):
        async with daemon(serve.replace("--http", f"--http 127.0.0.1:{port}", 1), env, home) as url:
            headers = {k: v.replace("<the token>", tokens["agent"]) for k, v in snippet["headers"].items()}
            agent_url = snippet["url"].replace("127.0.0.1:8765", f"127.0.0.1:{port}")
            async with (
                httpx2.AsyncClient(headers=headers, timeout=30) as http,
                Client(streamable_http_client(agent_url, http_client=http)) as agent,
            ):
                queued = await agent.call_tool("docker_restart_container", {"container": web.name})
                assert queued.structured_content is not None, queued
                request_id = str(queued.structured_content["request_id"])
                approve = readme_block("quickstart-approve", "sh")
                approve = approve.replace("<operator token>", tokens["operator"]).replace("<id>", request_id)
                approved = run_block(approve, env, home)
                status = await agent.call_tool("argobox_request_status", {"request_id": request_id})

    assert url == f"http://127.0.0.1:{port}/mcp"
    assert queued.structured_content["status"] == "pending_approval", queued.structured_content
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert request_id in approved.stdout and "succeeded" in approved.stdout, approved.stdout
    assert status.structured_content is not None and status.structured_content["status"] == "succeeded"
    assert len(engine_events(docker_client, str(web.id), started, "restart")) == 1
    assert tokens["operator"] not in approved.stdout + approved.stderr
