"""The HTTP daemon against slow and greedy clients, over raw sockets: connections that never finish their headers or
their body, too many connections from one address or in total, and a process short of file descriptors.

Every address is loopback (127.0.0.x); each test drives a real `argobox serve --http` process.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import httpx2
import pytest
from anyio.abc import SocketStream, TaskStatus
from mcp import Client, types
from mcp.client.streamable_http import streamable_http_client

from tests.http_daemon import OPENCLAW_TOKEN, READER_TOKEN, Daemon, connect, http_daemon, write_http_config

pytestmark = pytest.mark.anyio

TEST_TIMEOUT_S = 90
STALLED_IN_HEADERS = 200
STALLED_IN_BODY = 20
HALF_HEADERS = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


def port_of(daemon: Daemon) -> int:
    port = urlsplit(daemon.url).port
    assert port is not None
    return port


def half_body(port: int) -> bytes:
    """A complete, authenticated request head that announces 100 bytes of body, and the first few of them."""
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {OPENCLAW_TOKEN}\r\n"
        "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 100\r\n\r\n"
    )
    return head.encode() + b'{"jsonrpc": "2.0", '


async def read_to_end(stream: SocketStream) -> bytes:
    """Everything the daemon sends until it closes the connection."""
    received = bytearray()
    while True:
        try:
            received += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):  # a close, or a reset after the answer
            return bytes(received)


async def stalled(port: int, first: bytes, source: str = "127.0.0.1") -> SocketStream:
    """A connection from `source` that sends `first` and then nothing more."""
    stream = await anyio.connect_tcp("127.0.0.1", port, local_host=source)
    await stream.send(first)
    return stream


async def exchange(port: int, data: bytes, source: str) -> bytes:
    async with await stalled(port, data, source) as stream:
        return await read_to_end(stream)


async def stall_and_keep(
    port: int, first: bytes, answers: list[bytes], *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    async with await stalled(port, first) as stream:
        task_status.started()
        answers.append(await read_to_end(stream))


async def until_admitted(port: int, source: str) -> None:
    """Until a connection from `source` is admitted: the daemon has seen connections closed by the client (the
    caller's deadline bounds the wait)."""
    probe = f"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
    while True:
        answer = await exchange(port, probe, source)
        if not answer.startswith((b"HTTP/1.1 503", b"HTTP/1.1 429")):
            return
        await anyio.sleep(0.05)


@asynccontextmanager
async def agent_from(url: str, token: str, source: str) -> AsyncGenerator[Client]:
    """The official client, connecting from the loopback address `source`."""
    transport = httpx2.AsyncHTTPTransport(local_address=source)
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(transport=transport, headers=headers, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


async def test_connections_stalled_in_headers_or_body_are_dropped_and_agents_are_served(tmp_path: Path) -> None:
    extra = "\n[http]\nheader_timeout_seconds = 2\nbody_timeout_seconds = 2\nmax_connections_per_address = 400\n"
    config = write_http_config(tmp_path, extra=extra)
    in_headers: list[bytes] = []
    in_body: list[bytes] = []
    during: types.CallToolResult | None = None
    with anyio.fail_after(TEST_TIMEOUT_S):  # on a daemon without deadlines, the stalled connections never end
        async with http_daemon(config) as daemon:
            port = port_of(daemon)
            async with anyio.create_task_group() as tg:
                for _ in range(STALLED_IN_HEADERS):
                    await tg.start(stall_and_keep, port, HALF_HEADERS, in_headers)
                for _ in range(STALLED_IN_BODY):
                    await tg.start(stall_and_keep, port, half_body(port), in_body)
                async with connect(daemon.url, OPENCLAW_TOKEN) as agent:  # while they stall
                    during = await agent.call_tool("docker_list_containers", {})
            async with connect(daemon.url, OPENCLAW_TOKEN) as agent:
                after = await agent.call_tool("docker_list_containers", {})
        log = daemon.log

    assert len(in_headers) == STALLED_IN_HEADERS and len(in_body) == STALLED_IN_BODY
    assert all(answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n") for answer in in_headers)
    assert b"the request headers did not arrive within 2 s" in in_headers[0]
    assert all(answer == b"" for answer in in_body)  # closed: the request only sees a disconnect
    for result in (during, after):
        assert result is not None and result.structured_content is not None
        assert result.structured_content["status"] == "succeeded"
    assert "Traceback" not in log
    dropped = [line for line in log.splitlines() if "dropped a connection" in line or "more like it" in line]
    assert 2 <= len(dropped) <= 8, dropped  # each kind once, then counted: not a line per connection
    assert "headers timeout" in log and "body timeout" in log


async def test_one_address_cannot_take_every_connection_and_the_total_is_capped(tmp_path: Path) -> None:
    extra = "\n[http]\nmax_connections_per_address = 4\nmax_connections = 8\nheader_timeout_seconds = 300\n"
    config = write_http_config(tmp_path, extra=extra)
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with http_daemon(config) as daemon:
            port = port_of(daemon)
            greedy = [await stalled(port, HALF_HEADERS) for _ in range(4)]  # 127.0.0.1 at its cap
            over_address = await exchange(port, HALF_HEADERS, "127.0.0.1")
            others = [await stalled(port, HALF_HEADERS, "127.0.0.3") for _ in range(4)]  # 8 open: the total
            over_total = await exchange(port, HALF_HEADERS, "127.0.0.4")
            for stream in others:
                await stream.aclose()
            await until_admitted(port, "127.0.0.2")
            async with agent_from(daemon.url, READER_TOKEN, "127.0.0.2") as reader:
                served = await reader.call_tool("docker_list_containers", {})
            still_over = await exchange(port, HALF_HEADERS, "127.0.0.1")
            for stream in greedy:
                await stream.aclose()
        log = daemon.log

    for answer in (over_address, still_over):
        assert answer.startswith(b"HTTP/1.1 429 Too Many Requests\r\n")
        assert b"too many connections from 127.0.0.1 (4 open" in answer and b"max_connections_per_address" in answer
    assert over_total.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"too many connections (8 open, the most [http] max_connections allows)" in over_total
    assert served.structured_content is not None and served.structured_content["status"] == "succeeded"
    assert "Traceback" not in log


FEW_DESCRIPTORS = 200
LIMIT_DESCRIPTORS = (
    "import os, resource, sys; "
    f"resource.setrlimit(resource.RLIMIT_NOFILE, ({FEW_DESCRIPTORS}, {FEW_DESCRIPTORS})); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


async def test_short_of_file_descriptors_the_daemon_refuses_briefly_instead_of_flooding_its_log(
    tmp_path: Path,
) -> None:
    extra = "\n[http]\nmax_connections_per_address = 1000\nheader_timeout_seconds = 300\n"
    config = write_http_config(tmp_path, extra=extra)
    attempts = FEW_DESCRIPTORS + 50
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with http_daemon(config, prefix=[sys.executable, "-c", LIMIT_DESCRIPTORS]) as daemon:
            lowered = await daemon.wait_for_log(r"max_connections = 512 is lowered to (\d+)")
            room = int(lowered[1])
            port = port_of(daemon)
            held = [await stalled(port, HALF_HEADERS) for _ in range(room)]
            refused = [await exchange(port, HALF_HEADERS, "127.0.0.1") for _ in range(attempts - room)]
            for stream in held:
                await stream.aclose()
            await until_admitted(port, "127.0.0.1")
            async with connect(daemon.url, OPENCLAW_TOKEN) as agent:
                after = await agent.call_tool("docker_list_containers", {})
        log = daemon.log

    assert 0 < room < FEW_DESCRIPTORS
    assert all(answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n") for answer in refused)
    assert after.structured_content is not None and after.structured_content["status"] == "succeeded"
    assert "Traceback" not in log and "Too many open files" not in log
    assert len(log.splitlines()) < 30, log
