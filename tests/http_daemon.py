"""Helpers for tests against a real `argobox serve --http` process on 127.0.0.1 (a free port chosen by the OS)."""

from __future__ import annotations

import hashlib
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, Generator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from signal import Signals
from typing import Any

import anyio
import httpx2
from anyio.abc import Process
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

ARGOBOX = Path(sys.executable).parent / "argobox"
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 30
LOG_TIMEOUT_S = 15

OPENCLAW_TOKEN = "openclaw-http-token-0123456789abcdef"
READER_TOKEN = "reader-http-token-0123456789abcdef"


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


HTTP_CONFIG = f"""\
[storage]
path = "argobox.db"

[docker]
{{docker}}

[[operators]]
name = "alice"

[agents.openclaw]
token_sha256 = "{sha(OPENCLAW_TOKEN)}"

[[agents.openclaw.rules]]
tools = ["docker_list_containers", "docker_inspect_container"]
effect = "allow"

[[agents.openclaw.rules]]
tools = ["docker_restart_container"]
args = {{{{ container = ["jellyfin"] }}}}
effect = "approve"

[agents.reader]
token_sha256 = "{sha(READER_TOKEN)}"

[[agents.reader.rules]]
tools = ["docker_list_containers"]
effect = "allow"
"""


def write_http_config(directory: Path, *, docker: str = 'simulated_lab = "lab.json"', extra: str = "") -> Path:
    path = directory / "argobox.toml"
    path.write_text(HTTP_CONFIG.format(docker=docker) + extra)
    return path


@dataclass
class Daemon:
    url: str
    process: Process
    log_path: Path

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_for_log(self, pattern: str) -> re.Match[str]:
        """The first match of `pattern` in the daemon's log, within LOG_TIMEOUT_S."""
        with anyio.fail_after(LOG_TIMEOUT_S):
            return await self.logged(pattern)

    async def logged(self, pattern: str) -> re.Match[str]:
        """The first match of `pattern` in the daemon's log, within the caller's deadline."""
        # The daemon writes its log file from another process: there is no event to wait on, so it is read again
        # until the pattern shows (the callers' deadline bounds the loop).
        while not (match := re.search(pattern, self.log)):
            if self.process.returncode is not None:
                raise AssertionError(f"the daemon exited ({self.process.returncode}):\n{self.log}")
            await anyio.sleep(0.05)
        return match

    def signal(self, signum: Signals) -> None:
        self.process.send_signal(signum)

    async def wait_exit(self) -> int:
        """The daemon's exit status, once it has exited (within STOP_TIMEOUT_S)."""
        with anyio.fail_after(STOP_TIMEOUT_S):
            return await self.process.wait()


@asynccontextmanager
async def http_daemon(
    config: Path, *args: str, listen: str = "127.0.0.1:0", prefix: Sequence[str] = ()
) -> AsyncGenerator[Daemon]:
    """Start `argobox serve --http` for `config` (run through `prefix`, if given, e.g. a command that lowers a
    limit and then execs it); stop it with SIGTERM (then SIGKILL) whatever happens."""
    log_path = config.parent / f"daemon-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        process = await anyio.open_process(
            [*prefix, str(ARGOBOX), "--config", str(config), "serve", "--http", listen, *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    async with process:
        daemon = Daemon(url="", process=process, log_path=log_path)
        try:
            with anyio.fail_after(START_TIMEOUT_S):
                match = await daemon.logged(r"serving MCP over streamable HTTP at (http://\S+/mcp)")
            daemon.url = match[1]
            yield daemon
        finally:
            with anyio.CancelScope(shield=True):
                await _stop(process)


async def _stop(process: Process) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within STOP_TIMEOUT_S."""
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    with anyio.move_on_after(STOP_TIMEOUT_S):
        await process.wait()
        return
    process.kill()
    await process.wait()


@asynccontextmanager
async def connect(url: str, token: str | None, mode: str = "auto", **kwargs: Any) -> AsyncGenerator[Client]:
    """The official client over streamable HTTP, sending `Authorization: Bearer <token>` on every request."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode, **kwargs) as client,
    ):
        yield client


@contextmanager
def unchanged_mtime(path: Path) -> Generator[None]:
    """Edit a file in place (same inode) and put its modification time back, so only SIGHUP can reveal the edit."""
    st = path.stat()
    try:
        yield
    finally:
        import os

        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def rewrite_in_place(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path}"
    with path.open("r+") as handle:
        handle.write(text.replace(old, new, 1))
        handle.truncate()


MODERN_META: dict[str, Any] = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}


def modern_headers(token: str | None, method: str, name: str | None = None) -> dict[str, str]:
    """Headers of a raw 2026-07-28 request (the routing headers must agree with the body)."""
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": method,
    }
    if name is not None:
        headers["Mcp-Name"] = name
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers
