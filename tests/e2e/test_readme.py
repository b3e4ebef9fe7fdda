"""The README's OpenClaw stdio snippet, launched exactly as written (only the config path and token filled in)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import WriteConfig

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
