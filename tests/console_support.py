"""Helpers for the web console's tests: a configuration with operators of each kind, the real `argobox` process
(the console, or the daemon serving agents and the console on two listeners), and signing in over plain HTTP."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import docker
import httpx2

from tests.fixtures_docker import recorded_events
from tests.http_daemon import ARGOBOX, OPENCLAW_TOKEN, sha

START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 30
ALICE_TOKEN = "alice-operator-token-0123456789abcdef"
BOB_TOKEN = "bob-operator-token-0123456789abcdef"
VERA_TOKEN = "vera-viewer-token-0123456789abcdef"
CONTAINER_GLOB = "argobox-console-*"

CONFIG = f"""\
[storage]
path = "argobox.db"

[docker]
{{docker}}

[approvals]
ttl_seconds = 600

[console]
listen = "127.0.0.1:0"
{{console}}

[[operators]]
name = "alice"
token_sha256 = "{sha(ALICE_TOKEN)}"

[[operators]]
name = "bob"
token_sha256 = "{sha(BOB_TOKEN)}"

[[operators]]
name = "vera"
role = "viewer"
token_sha256 = "{sha(VERA_TOKEN)}"

[[operators]]
name = "nick"   # no token: can never sign in to the console

[agents.openclaw]
token_sha256 = "{sha(OPENCLAW_TOKEN)}"

[[agents.openclaw.rules]]
tools = ["docker_list_containers", "docker_inspect_container"]
effect = "allow"

[[agents.openclaw.rules]]
tools = ["docker_restart_container", "docker_stop_container"]
args = {{{{ container = ["{CONTAINER_GLOB}"] }}}}
effect = "approve"
"""

HOME_RULES = """
[[agents.openclaw.rules]]
tools = ["ha_call_service"]
args = { domain = ["lock"] }
effect = "approve"
"""


def write_console_config(
    directory: Path, docker_base_url: str, *, console: str = "", home: str | None = None, extra: str = ""
) -> Path:
    """The console tests' configuration; `home` is the body of a [homeassistant] table (with HOME_RULES)."""
    text = CONFIG.format(docker=f'base_url = "{docker_base_url}"', console=console)
    if home is not None:
        text += f"\n[homeassistant]\n{home}\n" + HOME_RULES
    path = directory / "argobox.toml"
    path.write_text(text + extra)
    return path


@dataclass
class Process:
    """A running `argobox` process and the URLs it announced."""

    process: subprocess.Popen[bytes]
    log_path: Path
    urls: dict[str, str]

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            with anyio.fail_after(STOP_TIMEOUT_S):
                while True:
                    if self.process.poll() is not None:
                        break
                    await anyio.sleep(0.05)
        except TimeoutError:
            self.process.kill()
            self.process.wait()
        return self.process.returncode


ANNOUNCED = {
    "console": r"serving the operator console at (http://\S+/) ",
    "agents": r"serving MCP over streamable HTTP at (http://\S+/mcp)",
}


def _spawn(config: Path, args: tuple[str, ...], env: dict[str, str] | None) -> Process:
    log_path = config.parent / f"argobox-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(ARGOBOX), "--config", str(config), *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    return Process(process=process, log_path=log_path, urls={})


@asynccontextmanager
async def argobox_process(
    config: Path, *args: str, wait_for: tuple[str, ...] = ("console",), env: dict[str, str] | None = None
) -> AsyncGenerator[Process]:
    """Run `argobox --config CONFIG ARGS...` until it announced `wait_for`; stop it with SIGTERM afterwards."""
    running = _spawn(config, args, env)
    try:
        with anyio.fail_after(START_TIMEOUT_S):
            while True:
                for name in wait_for:
                    if match := re.search(ANNOUNCED[name], running.log):
                        running.urls[name] = match[1]
                if not set(wait_for) - set(running.urls):
                    break
                if running.process.poll() is not None:
                    raise AssertionError(f"argobox exited ({running.process.returncode}):\n{running.log}")
                await anyio.sleep(0.05)
        yield running
    finally:
        await running.stop()


def form_headers(base: str) -> dict[str, str]:
    """What a browser sends with a form post from the console's own page."""
    return {"Origin": base.rstrip("/"), "Sec-Fetch-Site": "same-origin"}


async def sign_in(http: httpx2.AsyncClient, base: str, name: str, token: str) -> httpx2.Response:
    """Sign in as a browser would: fetch the form (its CSRF cookie and field), then post it."""
    form = await http.get(f"{base}signin")
    nonce = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert nonce is not None, form.text
    return await http.post(
        f"{base}signin", data={"operator": name, "token": token, "csrf": nonce[1]}, headers=form_headers(base)
    )


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, html
    return found[1]


def engine_events(client: docker.DockerClient, container_id: str, since: float, action: str) -> list[dict[str, Any]]:
    """What the Docker engine itself recorded for the container since `since` (bounded: `until` is now)."""
    events = recorded_events(client, container_id, since=int(since) - 1, until=int(time.time()) + 1, event=action)
    return [e for e in events if e.get("Action") == action]


def run_argobox(config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """One `argobox` command to its end (the CLI in a process of its own, as an operator would run it)."""
    return subprocess.run(
        [str(ARGOBOX), "--config", str(config), *args], capture_output=True, text=True, timeout=60, check=False, env=env
    )


def audit_json(config: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(ARGOBOX), "--config", str(config), "audit", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)
