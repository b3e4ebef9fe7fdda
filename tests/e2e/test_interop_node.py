"""Clients nobody here wrote, from npm: MCP Inspector's CLI (HTTP with the bearer header, and stdio) and the official
conformance suite's generic server scenarios against the HTTP daemon.

Needs the pinned Node tools: `eval "$(bash scripts/node-tools.sh install)"` (scripts/test.sh and .ci/run do it).
Without them these tests are skipped loudly, or fail when CI is "true".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.http_daemon import ARGOBOX, OPENCLAW_TOKEN, READER_TOKEN, http_daemon, write_http_config

REPO = Path(__file__).resolve().parents[2]
INSPECTOR_TIMEOUT_S = 60


def _no_node(reason: str) -> None:
    message = f'no Node tools: run  eval "$(bash scripts/node-tools.sh install)"  ({reason})'
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def node_tools() -> Path:
    found = os.environ.get("ARGOBOX_NODE_TOOLS")
    directory = (
        Path(found) if found else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "argobox/node"
    )
    for needed in (
        "node_modules/.bin/mcp-inspector",
        "node_modules/node/bin/node",
        "node_modules/@modelcontextprotocol/conformance/dist/index.js",
    ):
        if not (directory / needed).exists():
            _no_node(f"{directory / needed} is missing")
    return directory


def node_env(tools: Path, home: Path) -> dict[str, str]:
    home.mkdir(exist_ok=True)
    return {
        "PATH": f"{tools / 'node_modules/node/bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(home),
        "NO_COLOR": "1",
    }


def inspector(tools: Path, home: Path, *args: str) -> Any:
    done = subprocess.run(
        [str(tools / "node_modules/.bin/mcp-inspector"), "--cli", *args],
        capture_output=True,
        text=True,
        timeout=INSPECTOR_TIMEOUT_S,
        env=node_env(tools, home),
        stdin=subprocess.DEVNULL,
        check=False,  # asserted below, with the output
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


@pytest.mark.anyio
async def test_inspector_lists_and_calls_tools_over_http_with_the_bearer_header(
    tmp_path: Path, node_tools: Path
) -> None:
    config = write_http_config(tmp_path)
    home = tmp_path / "home"
    with anyio.fail_after(4 * INSPECTOR_TIMEOUT_S):
        async with http_daemon(config) as daemon:
            base = [daemon.url, "--transport", "http"]

            def as_agent(token: str, *args: str) -> Any:
                return inspector(node_tools, home, *base, "--header", f"Authorization: Bearer {token}", *args)

            reader_tools = await anyio.to_thread.run_sync(as_agent, READER_TOKEN, "--method", "tools/list")
            listed = await anyio.to_thread.run_sync(
                as_agent, READER_TOKEN, "--method", "tools/call", "--tool-name", "docker_list_containers"
            )
            queued = await anyio.to_thread.run_sync(
                as_agent,
                OPENCLAW_TOKEN,
                "--method",
                "tools/call",
                "--tool-name",
                "docker_restart_container",
                "--tool-arg",
                "container=jellyfin",
            )

    assert [t["name"] for t in reader_tools["tools"]] == ["argobox_request_status", "docker_list_containers"]
    assert listed["structuredContent"]["status"] == "succeeded" and listed.get("isError") is False
    assert queued["structuredContent"]["status"] == "pending_approval"
    assert queued["content"][0]["text"].startswith("waiting for operator approval")


def test_inspector_lists_and_calls_tools_over_stdio(write_config: Any, tmp_path: Path, node_tools: Path) -> None:
    import hashlib

    token = "inspector-stdio-token-0123456789"
    config = write_config(token_sha256=hashlib.sha256(token.encode()).hexdigest())
    home = tmp_path / "home"
    server = ["--", str(ARGOBOX), "--config", str(config), "serve", "--agent", "openclaw"]

    tools = inspector(node_tools, home, "-e", f"ARGOBOX_AGENT_TOKEN={token}", "--method", "tools/list", *server)
    called = inspector(
        node_tools,
        home,
        "-e",
        f"ARGOBOX_AGENT_TOKEN={token}",
        "--method",
        "tools/call",
        "--tool-name",
        "docker_inspect_container",
        "--tool-arg",
        "container=jellyfin",
        *server,
    )

    assert "docker_restart_container" in [t["name"] for t in tools["tools"]]
    assert called["structuredContent"]["status"] == "succeeded"
    assert called["structuredContent"]["result"]["name"] == "jellyfin"


def test_conformance_suite_generic_server_scenarios_pass(tmp_path: Path, node_tools: Path) -> None:
    results_path = tmp_path / "conformance.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts/conformance.py"), "--json", str(results_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "ARGOBOX_NODE_TOOLS": str(node_tools)},
        stdin=subprocess.DEVNULL,
        check=False,  # asserted below, with the output
    )
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import conformance  # the scenario lists the doc is generated from
    finally:
        sys.path.remove(str(REPO / "scripts"))

    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(results_path.read_text())
    assert set(results) == set(conformance.APPLIES)
    for name, result in results.items():
        assert result["passed"] and not result["failed"], (name, result)
    documented = (REPO / "docs/conformance.md").read_text()
    assert all(f"`{name}`" in documented for name in [*conformance.APPLIES, *conformance.DOES_NOT_APPLY])
