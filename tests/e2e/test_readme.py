"""The README's OpenClaw snippets, used exactly as written (only the config path, port and token filled in)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from argobox.server.transport.http import DEFAULT_LISTEN, MCP_PATH
from tests.conftest import WriteConfig
from tests.http_daemon import OPENCLAW_TOKEN, http_daemon, write_http_config

README = Path(__file__).resolve().parents[2] / "README.md"


def openclaw_snippet() -> dict[str, object]:
    text = README.read_text()
    match = re.search(r"<!-- openclaw-stdio-snippet -->\s*```json\n(.*?)```", text, re.S)
    assert match, "the README lost its OpenClaw stdio snippet"
    return json.loads(match.group(1))["mcp"]["servers"]["argobox"]


@pytest.mark.anyio
async def test_readme_openclaw_stdio_snippet_connects_and_is_gated(write_config: WriteConfig) -> None:
    token = "readme-token-0123456789abcdef"
    config = write_config(token_sha256=hashlib.sha256(token.encode()).hexdigest())
    entry = openclaw_snippet()
    args = [str(config) if a == "/etc/argobox/argobox.toml" else a for a in entry["args"]]  # type: ignore[union-attr]
    env = {k: token if v == "<the token>" else v for k, v in entry["env"].items()}  # type: ignore[union-attr]
    # OpenClaw passes PATH through; the venv's bin directory is where `argobox` lives here.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    params = StdioServerParameters(command=entry["command"], args=args, env=env)  # type: ignore[arg-type]

    with anyio.fail_after(60):
        async with Client(params) as client:
            tools = [t.name for t in (await client.list_tools()).tools]
            queued = await client.call_tool("docker_restart_container", {"container": "jellyfin"})

    assert entry["command"] == "argobox"
    assert "docker_restart_container" in tools and all(re.fullmatch(r"[a-zA-Z0-9_-]+", t) for t in tools)
    assert queued.structured_content is not None
    assert queued.structured_content["status"] == "pending_approval"


def openclaw_http_snippet() -> dict[str, Any]:
    text = README.read_text()
    match = re.search(r"<!-- openclaw-http-snippet -->\s*```json\n(.*?)```", text, re.S)
    assert match, "the README lost its OpenClaw HTTP snippet"
    return json.loads(match.group(1))["mcp"]["servers"]["argobox"]


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_readme_openclaw_http_snippet_drives_the_daemon(tmp_path: Path, mode: str) -> None:
    entry = openclaw_http_snippet()
    config = write_http_config(tmp_path)
    with anyio.fail_after(60):
        async with http_daemon(config) as daemon:
            # The daemon here listens on a free port instead of 8765; everything else is the snippet's.
            url = str(entry["url"]).replace("127.0.0.1:8765", daemon.url.split("/")[2])
            snippet_headers: dict[str, str] = entry["headers"]
            headers = {k: v.replace("<the token>", OPENCLAW_TOKEN) for k, v in snippet_headers.items()}
            async with (
                httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http,
                Client(streamable_http_client(url, http_client=http), mode=mode) as client,
            ):
                tools = [t.name for t in (await client.list_tools()).tools]
                queued = await client.call_tool("docker_restart_container", {"container": "jellyfin"})

    assert entry["transport"] == "streamable-http"
    assert entry["url"] == f"http://{DEFAULT_LISTEN}{MCP_PATH}"
    assert set(entry["headers"]) == {"Authorization"}
    assert "docker_restart_container" in tools and all(re.fullmatch(r"[a-zA-Z0-9_-]+", t) for t in tools)
    assert queued.structured_content is not None
    assert queued.structured_content["status"] == "pending_approval"
