"""Shared fixtures: the asyncio backend (aiosqlite needs it), configs on disk, and the real backends."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import types

pytest_plugins = ["tests.fixtures_docker", "tests.fixtures_homeassistant", "tests.fixtures_sshd"]

BASE_CONFIG = """\
[storage]
path = "argobox.db"
{storage}

[docker]
{docker}
{homeassistant}
[approvals]
ttl_seconds = {ttl}

[[operators]]
name = "alice"

[[operators]]
name = "bob"

[agents.openclaw]
{token}

[[agents.openclaw.rules]]
tools = ["docker_list_containers", "docker_inspect_container", "docker_container_logs"]
{read_args}
effect = "allow"

[[agents.openclaw.rules]]
tools = ["docker_restart_container", "docker_start_container", "docker_stop_container"]
args = {{ container = [{mutate_globs}] }}
effect = "approve"

[[agents.reader.rules]]
tools = ["docker_list_containers"]
effect = "allow"
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


WriteConfig = Callable[..., Path]


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    """Write a config into a temp dir; `docker` is the body of the [docker] table, `storage` goes in [storage],
    `homeassistant` the body of a [homeassistant] table (none when None), `extra` is appended (more rules)."""

    def write(
        *,
        docker: str = 'simulated_lab = "lab.json"',
        homeassistant: str | None = None,
        ttl: int = 1800,
        token_sha256: str | None = None,
        mutate_globs: str = '"jellyfin", "web-*"',
        read_args: str = "",
        extra: str = "",
        storage: str = "",
    ) -> Path:
        token = f'token_sha256 = "{token_sha256}"' if token_sha256 else ""
        home = f"\n[homeassistant]\n{textwrap.dedent(homeassistant)}\n" if homeassistant is not None else ""
        body = BASE_CONFIG.format(
            docker=docker,
            homeassistant=home,
            ttl=ttl,
            token=token,
            mutate_globs=mutate_globs,
            read_args=read_args,
            storage=storage,
        )
        path = tmp_path / "argobox.toml"
        path.write_text(body + textwrap.dedent(extra))
        return path

    return write


HOME_RULES = """
[[agents.openclaw.rules]]
tools = ["ha_list_entities", "ha_get_state"]
args = { entity_id = ["light.*", "lock.front_door", "camera.porch"] }
effect = "allow"

[[agents.openclaw.rules]]
tools = ["ha_list_services"]
effect = "allow"

[[agents.openclaw.rules]]
tools = ["ha_call_service"]
args = { domain = ["light"], service = ["turn_on", "turn_off"], entity_id = ["light.living_room_*"] }
effect = "allow"

[[agents.openclaw.rules]]
tools = ["ha_call_service"]
args = { domain = ["lock", "alarm_control_panel", "cover"] }
effect = "approve"
"""
"""The issue's example grant for Home Assistant (openclaw's rules[2] to rules[5] after the Docker ones)."""


class ListChangedInbox:
    """A client `message_handler` that counts tools/list_changed notifications (handshake-era sessions)."""

    def __init__(self) -> None:
        self.changed = 0
        self.event = anyio.Event()

    async def __call__(self, message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self.changed += 1
            self.event.set()


def first_text(result: types.CallToolResult) -> str:
    """The text of a tool result's first content block (ArgoBox answers every call with a text block first)."""
    block = result.content[0]
    assert isinstance(block, types.TextContent), block
    return block.text
