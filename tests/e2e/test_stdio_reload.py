"""A running `argobox serve --agent` (stdio) notices grant changes in its config file, in both protocol eras."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from tests.conftest import ListChangedInbox, WriteConfig
from tests.http_daemon import ARGOBOX

pytestmark = pytest.mark.anyio


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_stdio_server_tells_its_agent_when_the_grant_changes(write_config: WriteConfig, mode: str) -> None:
    config = write_config()
    params = StdioServerParameters(command=str(ARGOBOX), args=["--config", str(config), "serve", "--agent", "reader"])
    inbox = ListChangedInbox()
    with anyio.fail_after(60):
        async with Client(params, mode=mode, message_handler=inbox) as reader:
            before = [t.name for t in (await reader.list_tools()).tools]
            grant = 'tools = ["docker_list_containers"]\neffect = "allow"'
            wider = 'tools = ["docker_list_containers", "docker_container_logs"]\neffect = "allow"'
            if mode == "auto":
                async with reader.listen(tools_list_changed=True) as events:
                    edit(config, grant, wider)
                    await events.__anext__()
            else:
                edit(config, grant, wider)
                await inbox.event.wait()
            after = [t.name for t in (await reader.list_tools()).tools]
            logs = await reader.call_tool("docker_container_logs", {"container": "jellyfin", "tail": 3})
            version = reader.protocol_version

    assert version == ("2026-07-28" if mode == "auto" else "2025-11-25")
    assert before == ["argobox_request_status", "docker_list_containers"]
    assert after == ["argobox_request_status", "docker_container_logs", "docker_list_containers"]
    assert logs.structured_content is not None and logs.structured_content["status"] == "succeeded"


async def test_a_stdio_server_whose_token_is_revoked_serves_nothing(write_config: WriteConfig) -> None:
    token = "stdio-revoked-token-0123456789"
    config = write_config(token_sha256=hashlib.sha256(token.encode()).hexdigest())
    params = StdioServerParameters(
        command=str(ARGOBOX),
        args=["--config", str(config), "serve", "--agent", "openclaw"],
        env={"ARGOBOX_AGENT_TOKEN": token},
    )
    inbox = ListChangedInbox()
    with anyio.fail_after(60):
        async with Client(params, mode="legacy", message_handler=inbox) as client:
            before = [t.name for t in (await client.list_tools()).tools]
            edit(config, hashlib.sha256(token.encode()).hexdigest(), "0" * 64)
            await inbox.event.wait()
            after = [t.name for t in (await client.list_tools()).tools]
            for _ in range(3):
                with pytest.raises(MCPError, match="Unknown tool"):
                    await client.call_tool("docker_list_containers", {})
    with anyio.fail_after(60):
        done = await anyio.run_process([str(ARGOBOX), "--config", str(config), "audit", "--json"])
    refused = [e for e in json.loads(done.stdout) if e["event"] == "agent_refused"]

    assert "docker_list_containers" in before
    assert after == []
    # Audited, and coalesced: the first refusal at once, the two after it counted when the server stopped.
    assert [e["actor"] for e in refused] == ["agent:openclaw", "agent:openclaw"]
    assert "no longer matches agent 'openclaw'" in refused[0]["detail"]["reason"]
    assert refused[0]["detail"]["transport"] == "stdio"
    assert refused[1]["detail"]["refusals_counted_not_recorded_singly"] == 2
