"""The operator path over real stdio: an agent server and an operator server as two processes on one store."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from tests.conftest import WriteConfig, first_text

pytestmark = pytest.mark.anyio

ARGOBOX = str(Path(sys.executable).with_name("argobox"))
README = Path(__file__).resolve().parents[2] / "README.md"


def server(config: Path, *args: str, env: dict[str, str] | None = None) -> StdioServerParameters:
    return StdioServerParameters(command=ARGOBOX, args=["--config", str(config), *args], env=env)


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float) -> None:
    """Wait until `check()` holds, looking again every 50 ms; fail after `within` seconds."""
    with anyio.fail_after(within):
        while not await check():  # noqa: ASYNC110 - the condition lives in another process: no event to wait on
            await anyio.sleep(0.05)


def audit(config: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [ARGOBOX, "--config", str(config), "audit", "--json"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    return json.loads(out)


async def test_operator_server_lists_explains_and_approves_what_the_agent_asked(write_config: WriteConfig) -> None:
    config = write_config()
    with anyio.fail_after(90):
        async with (
            Client(server(config, "serve", "--agent", "openclaw")) as agent,
            Client(server(config, "operator", "--as", "alice")) as operator,
        ):
            queued = (await agent.call_tool("docker_restart_container", {"container": "jellyfin"})).structured_content
            request_id = queued["request_id"]
            listed = (await operator.call_tool("list_requests", {})).structured_content
            explained = (await operator.call_tool("explain_request", {"request_id": request_id})).structured_content
            resource = await operator.read_resource("argobox://requests/pending")
            approved = await operator.call_tool("approve_request", {"request_id": request_id, "note": "ok"})
            again = await operator.call_tool("approve_request", {"request_id": request_id})
            status = (await agent.call_tool("argobox_request_status", {"request_id": request_id})).structured_content
            overview = (await operator.call_tool("agent_overview", {"agent": "openclaw"})).structured_content
            trail = (await operator.call_tool("query_audit", {"request_id": request_id})).structured_content

    assert [r["id"] for r in listed["requests"]] == [request_id]
    x = explained["explanation"]
    assert explained["rule"] == "agents.openclaw.rules[1]"
    assert 'args = { container = ["jellyfin", "web-*"] }' in x["rule_text"]
    assert x["what"] == "restart container 'jellyfin'" and x["classification"] == "mutate"
    assert x["preview"]["available"] is True and x["preview"]["state"] == "running"
    assert request_id in resource.contents[0].text  # type: ignore[union-attr]
    assert approved.is_error is False and approved.structured_content["request"]["status"] == "succeeded"
    assert again.is_error is True and "only a pending request can be approved" in first_text(again)
    assert status["status"] == "succeeded" and status["result"]["restart_count"] == 1
    assert overview["agents"][0]["budget"]["mutations_last_hour"] == 1
    events = [e["event"] for e in trail["events"]]
    assert events == ["received", "decision", "queued", "approved", "executing", "succeeded"]
    assert trail["events"][3]["actor"] == "operator:alice"


async def test_agents_can_never_open_the_operator_server_or_call_its_tools(write_config: WriteConfig) -> None:
    agent_token, operator_token = "agent-token-0123456789abcdef", "operator-token-0123456789abcdef"
    config = write_config(token_sha256=hashlib.sha256(agent_token.encode()).hexdigest())
    config.write_text(
        config.read_text().replace(
            '[[operators]]\nname = "alice"',
            f'[[operators]]\nname = "alice"\ntoken_sha256 = "{hashlib.sha256(operator_token.encode()).hexdigest()}"',
        )
    )
    base = {"PATH": os.environ.get("PATH", ""), "HOME": str(config.parent)}

    def operator(name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ARGOBOX, "--config", str(config), "operator", "--as", name],
            input="",
            capture_output=True,
            text=True,
            timeout=60,
            env={**base, **env},
            check=False,
        )

    as_agent = operator("openclaw", {"ARGOBOX_OPERATOR_TOKEN": agent_token})
    agent_token_for_alice = operator("alice", {"ARGOBOX_OPERATOR_TOKEN": agent_token})
    agent_env_for_alice = operator("alice", {"ARGOBOX_AGENT_TOKEN": agent_token})
    with anyio.fail_after(60):
        async with Client(
            server(config, "serve", "--agent", "openclaw", env={"ARGOBOX_AGENT_TOKEN": agent_token})
        ) as a:
            with pytest.raises(MCPError) as hidden:
                await a.call_tool("approve_request", {"request_id": "aaaaaaaaaaaaaaaa"})
    trail = audit(config)

    assert as_agent.returncode == 1 and "agents can never act as operators" in as_agent.stderr
    assert agent_token_for_alice.returncode == 1 and "does not match operator 'alice'" in agent_token_for_alice.stderr
    assert agent_env_for_alice.returncode == 1 and "requires a token" in agent_env_for_alice.stderr
    assert hidden.value.message == "Unknown tool: approve_request"
    assert [e["event"] for e in trail].count("operator_refused") == 3
    assert any(e["event"] == "refused" and e["tool"] == "approve_request" for e in trail)
    assert agent_token not in json.dumps(trail) and operator_token not in json.dumps(trail)


async def test_readme_claude_desktop_config_launches_the_operator_server(write_config: WriteConfig) -> None:
    match = re.search(r"<!-- claude-desktop-snippet -->\s*```json\n(.*?)```", README.read_text(), re.S)
    assert match, "the README lost its Claude Desktop snippet"
    entry = json.loads(match.group(1))["mcpServers"]["argobox-operator"]
    config = write_config()
    args = [str(config) if a == "/etc/argobox/argobox.toml" else a for a in entry["args"]]
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}

    with anyio.fail_after(60):
        async with Client(StdioServerParameters(command=entry["command"], args=args, env=env)) as client:
            tools = sorted(t.name for t in (await client.list_tools()).tools)

    assert entry["command"] == "argobox"
    assert tools == [
        "agent_overview",
        "approve_request",
        "deny_request",
        "explain_request",
        "list_requests",
        "query_audit",
    ]


def watch(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [ARGOBOX, "--config", str(config), "watch"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


async def test_watch_follows_new_requests_and_decisions(write_config: WriteConfig) -> None:
    config = write_config()
    with watch(config) as watcher:  # the context closes its pipes
        try:
            assert watcher.stderr is not None and "watching" in watcher.stderr.readline()
            with anyio.fail_after(60):
                async with Client(server(config, "serve", "--agent", "openclaw")) as agent:
                    queued = (
                        await agent.call_tool("docker_stop_container", {"container": "web-api"})
                    ).structured_content
            request_id = queued["request_id"]
            with anyio.fail_after(60):
                await anyio.run_process(
                    [ARGOBOX, "--config", str(config), "deny", request_id, "--as", "bob", "--reason", "no"]
                )
            lines: list[str] = []
            assert watcher.stdout is not None
            with anyio.fail_after(30):
                while not any(" denied " in line for line in lines):
                    lines.append(await anyio.to_thread.run_sync(watcher.stdout.readline))
        finally:
            watcher.terminate()
            watcher.wait(timeout=30)

    text = "".join(lines)
    assert f"{request_id} queued" in text and f"{request_id} denied by operator:bob" in text


async def test_operator_server_follows_grant_changes_before_approving(write_config: WriteConfig) -> None:
    config = write_config()
    with anyio.fail_after(90):
        async with Client(server(config, "operator", "--as", "alice")) as operator:
            async with Client(server(config, "serve", "--agent", "openclaw")) as agent:
                queued = (
                    await agent.call_tool("docker_restart_container", {"container": "jellyfin"})
                ).structured_content
            config.write_text(config.read_text().replace('"jellyfin", "web-*"', '"web-*"'))

            async def reloaded() -> bool:
                trail = (await operator.call_tool("query_audit", {})).structured_content
                return any(
                    e["event"] == "config_reloaded" and "operator" in json.dumps(e["detail"]) for e in trail["events"]
                )

            await eventually(reloaded, within=30)  # the operator server checks its file about once a second
            refused = await operator.call_tool("approve_request", {"request_id": queued["request_id"]})

    assert refused is not None and refused.is_error
    assert "no longer covered by the grant" in first_text(refused)
