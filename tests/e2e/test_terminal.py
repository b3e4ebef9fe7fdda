"""What reaches the operator's terminal is inert, end to end: an entity state set in a real Home Assistant and shown
by `argobox show`, and a tool name of escape sequences sent by a real MCP client and followed by `argobox watch
--all`, arrive as visible stand-ins (`\\x1b`, `\\r`, `<U+202E>`), while `--json` keeps them exact."""

from __future__ import annotations

import json
import subprocess
import sys
import unicodedata
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from tests.conftest import HOME_RULES, WriteConfig

pytestmark = pytest.mark.anyio

ARGOBOX = str(Path(sys.executable).with_name("argobox"))
HOSTILE_ENTITY = "lock.argobox_hostile"
HOSTILE_STATE = "locked\r\x1b[2Kunlocked \u2066\u202elocked\u2069\x1b]0;all clear\x07\x9b"
"""Overwrites its own line with "unlocked", sets the window title, and reverses text (under HA's 255 characters)."""
HOSTILE_TOOL = "\x1b[2J\x1b[H\x1b]8;;http://127.0.0.1/\x1b\\all clear\x1b]8;;\x1b\\\r\u202ekcol"


def dangerous(text: str) -> list[str]:
    return [f"U+{ord(c):04X}" for c in text if unicodedata.category(c) in ("Cc", "Cf", "Cs") and c != "\n"]


def ha_request(ha_url: str, ha_token: str, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(  # noqa: S310 - the loopback URL of the test's Home Assistant
        f"{ha_url}/api/{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"Bearer {ha_token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310 - the loopback URL of the test's HA
        return json.loads(response.read() or b"null")


@pytest.fixture
def hostile_entity(ha_url: str, ha_token: str) -> Iterator[str]:
    """A lock entity in Home Assistant's own state machine whose state is escape sequences (removed afterwards)."""
    ha_request(ha_url, ha_token, "POST", f"states/{HOSTILE_ENTITY}", {"state": HOSTILE_STATE})
    try:
        yield HOSTILE_ENTITY
    finally:
        ha_request(ha_url, ha_token, "DELETE", f"states/{HOSTILE_ENTITY}")


def run(config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ARGOBOX, "--config", str(config), *args], capture_output=True, text=True, timeout=120, check=False, env=env
    )


def watch_all(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [ARGOBOX, "--config", str(config), "watch", "--all"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.homeassistant
async def test_show_prints_a_real_entity_state_inert(
    write_config: WriteConfig, ha_url: str, ha_token: str, hostile_entity: str
) -> None:
    home = f'url = "{ha_url}"\ntoken_env = "ARGOBOX_HA_TOKEN"\n'
    config = write_config(homeassistant=home, extra=HOME_RULES)
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(config.parent), "ARGOBOX_HA_TOKEN": ha_token}
    agent = StdioServerParameters(
        command=ARGOBOX, args=["--config", str(config), "serve", "--agent", "openclaw"], env=env
    )
    with anyio.fail_after(60):
        async with Client(agent) as client:
            queued = await client.call_tool(
                "ha_call_service", {"domain": "lock", "service": "unlock", "entity_id": hostile_entity}
            )
    assert queued.structured_content is not None, queued
    request_id = str(queued.structured_content["request_id"])

    shown = run(config, "show", request_id, env=env)
    exact = json.loads(run(config, "show", request_id, "--json", env=env).stdout)
    audit = run(config, "audit", "--request", request_id, env=env)
    run(config, "deny", request_id, "--as", "alice", "--reason", "test over", env=env)

    assert shown.returncode == 0, shown.stderr
    assert dangerous(shown.stdout + audit.stdout) == []
    assert (
        f"{hostile_entity}: locked\\r\\x1b[2Kunlocked <U+2066><U+202E>locked<U+2069>\\x1b]0;all clear" in shown.stdout
    )
    reported = ha_request(ha_url, ha_token, "GET", f"states/{hostile_entity}")["state"]
    assert reported == HOSTILE_STATE  # Home Assistant itself holds the hostile state...
    assert exact["explanation"]["preview"]["states"] == {hostile_entity: reported}  # ...and --json shows it exactly


async def test_watch_all_and_audit_print_an_escape_sequence_tool_name_inert(write_config: WriteConfig) -> None:
    config = write_config()
    with watch_all(config) as watcher:  # the context closes its pipes
        lines: list[str] = []
        try:
            assert watcher.stderr is not None and watcher.stdout is not None
            assert "watching" in watcher.stderr.readline()
            agent = StdioServerParameters(
                command=ARGOBOX, args=["--config", str(config), "serve", "--agent", "openclaw"]
            )
            with anyio.fail_after(60):
                async with Client(agent) as client:
                    with pytest.raises(MCPError):
                        await client.call_tool(HOSTILE_TOOL, {})
            with anyio.fail_after(30):
                while not any(" refused " in line for line in lines):
                    lines.append(await anyio.to_thread.run_sync(watcher.stdout.readline))
        finally:
            watcher.terminate()
            watcher.wait(timeout=30)
    audit = run(config, "audit")
    exact = json.loads(run(config, "audit", "--json").stdout)

    watched = "".join(lines)
    assert dangerous(watched + audit.stdout) == []
    stand_ins = "\\x1b[2J\\x1b[H\\x1b]8;;http://127.0.0.1/\\x1b\\all clear\\x1b]8;;\\x1b\\\\r<U+202E>kcol"
    assert stand_ins in watched and stand_ins in audit.stdout
    assert HOSTILE_TOOL in [e["tool"] for e in exact]
