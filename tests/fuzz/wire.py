"""Raw clients for the wire paths: the real `argobox serve` over stdio (one JSON-RPC message a line) and the real
HTTP daemon, each sent frames as bytes and read back as bytes.

Over stdio every frame is followed by a sentinel request; the frame's answers are what arrives before the
sentinel's, and a server that stops answering shows as a sentinel that never comes back (a hang, within a deadline).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import anyio
import httpx2
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from tests.fuzz.frames import Frame
from tests.fuzz.lab import ARGOBOX, FuzzLab

ANSWER_TIMEOUT_S = 20
MAX_ANSWER_BYTES = 64 * 1024 * 1024
LEGACY = "2025-11-25"
MODERN = "2026-07-28"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": "init",
    "method": "initialize",
    "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "1"}},
}


@dataclass
class StdioWire:
    """`argobox serve --agent openclaw` over its stdin and stdout, in the handshake era."""

    process: Process
    lines: BufferedByteReceiveStream
    log: Path
    unanswered: set[str | int] = field(default_factory=set[str | int])
    """Tracked ids sent and not answered yet."""
    _sentinels: int = 0

    async def send(self, body: bytes) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(body + b"\n")

    async def receive(self) -> bytes:
        return await self.lines.receive_until(b"\n", MAX_ANSWER_BYTES)

    async def exchange(self, frame: Frame) -> list[bytes]:
        """Send `frame`, then a sentinel; return every line read until the sentinel's answer (which is left out).
        Raises TimeoutError if the sentinel is not answered in time."""
        if frame.tracked is not None:
            self.unanswered.add(frame.tracked)
        await self.send(frame.body)
        self._sentinels += 1
        sentinel = f"sentinel-{self._sentinels}"
        await self.send(json.dumps({"jsonrpc": "2.0", "id": sentinel, "method": "ping"}).encode())
        answers: list[bytes] = []
        with anyio.fail_after(ANSWER_TIMEOUT_S):
            while True:
                line = await self.receive()
                parsed = _loads(line)
                if isinstance(parsed, dict) and parsed.get("id") == sentinel:  # pyright: ignore[reportUnknownMemberType]
                    return answers
                if isinstance(parsed, dict):
                    self.unanswered.discard(cast("Any", parsed).get("id"))
                answers.append(line)

    async def drain(self) -> list[bytes]:
        """Wait (bounded) until every tracked frame is answered; return the lines read meanwhile."""
        answers: list[bytes] = []
        with anyio.move_on_after(ANSWER_TIMEOUT_S):
            while self.unanswered:
                line = await self.receive()
                parsed = _loads(line)
                if isinstance(parsed, dict):
                    self.unanswered.discard(cast("Any", parsed).get("id"))
                answers.append(line)
        return answers


def _loads(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


@asynccontextmanager
async def stdio_wire(lab: FuzzLab) -> AsyncGenerator[StdioWire]:
    """The stdio server of agent openclaw, initialized; stopped by closing its stdin (then killed if need be)."""
    log = lab.config.parent / "stdio-server.log"
    with log.open("ab") as errors:
        process = await anyio.open_process(
            [str(ARGOBOX), "--config", str(lab.config), "serve", "--agent", "openclaw"],
            env=lab.process_env(),
            stderr=errors,
        )
    assert process.stdout is not None and process.stdin is not None
    wire = StdioWire(process, BufferedByteReceiveStream(process.stdout), log)
    try:
        with anyio.fail_after(ANSWER_TIMEOUT_S):
            await wire.send(json.dumps(INITIALIZE).encode())
            opened = json.loads(await wire.receive())
            assert opened.get("id") == "init" and "result" in opened, opened
            await wire.send(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode())
        yield wire
    finally:
        with anyio.CancelScope(shield=True):
            await process.stdin.aclose()
            with anyio.move_on_after(ANSWER_TIMEOUT_S):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
            await process.aclose()


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    body: bytes
    headers: dict[str, str]


class HttpWire:
    """Raw POSTs to the daemon's endpoint, with the headers a client of either era sends (or gets wrong)."""

    def __init__(self, url: str, token: str, http: httpx2.AsyncClient) -> None:
        self.url = url
        self.token = token
        self.http = http
        self.session: str | None = None

    async def open_session(self) -> None:
        """A handshake-era session, for the frames sent in that era."""
        answer = await self.post(json.dumps(INITIALIZE).encode(), self.headers("legacy", "initialize", None))
        self.session = answer.headers.get("mcp-session-id")
        assert answer.status == 200 and self.session, answer
        initialized = json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode()
        await self.post(initialized, self.headers("legacy", "notifications/initialized", None))

    def headers(self, variant: str, method: str | None, name: str | None) -> dict[str, str]:
        """The headers of one request: `variant` says which era, and what (if anything) is wrong with them."""
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "Authorization": f"Bearer {self.token}",
            "MCP-Protocol-Version": MODERN,
        }
        if method is not None and _header_safe(method):
            headers["Mcp-Method"] = method
        if name is not None and _header_safe(name):
            headers["Mcp-Name"] = name
        if variant == "legacy" and self.session is not None:
            headers = {k: v for k, v in headers.items() if not k.startswith("Mcp-")}
            headers.update({"Mcp-Session-Id": self.session, "MCP-Protocol-Version": LEGACY})
        elif variant == "legacy":
            headers["MCP-Protocol-Version"] = LEGACY
        elif variant == "no-token":
            del headers["Authorization"]
        elif variant == "bad-token":
            headers["Authorization"] = "Bearer " + "0" * 40
        elif variant == "no-accept":
            del headers["Accept"]
        elif variant == "text-plain":
            headers["Content-Type"] = "text/plain"
        elif variant == "wrong-version":
            headers["MCP-Protocol-Version"] = "1999-01-01"
        elif variant == "mismatch":
            headers["Mcp-Method"] = "tools/list"
        return headers

    async def post(self, body: bytes, headers: dict[str, str]) -> HttpAnswer:
        """One POST, its whole answer read within the deadline (TimeoutError otherwise)."""
        with anyio.fail_after(ANSWER_TIMEOUT_S):
            response = await self.http.post(self.url, content=body, headers=headers)
        return HttpAnswer(response.status_code, response.content, dict(response.headers))

    async def close_session(self) -> None:
        if self.session is not None:
            with anyio.fail_after(ANSWER_TIMEOUT_S):
                await self.http.delete(self.url, headers=self.headers("legacy", None, None))


def _header_safe(value: str) -> bool:
    return value.isascii() and value.isprintable() and 0 < len(value) <= 256 and value == value.strip()
