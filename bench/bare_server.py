"""Baseline for the benchmarks: a bare `mcp` server whose tool does the same adapter work as ArgoBox, with no
policy, no queue and no audit. Usage: python bare_server.py (docker BASE_URL | lab PATH) [--http PORT]
(stdio by default; with --http, streamable HTTP at http://127.0.0.1:PORT/mcp with the SDK's defaults)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
from mcp.server import MCPServer

from argobox.adapters.base import ContainerDetail, ContainerRuntime
from argobox.adapters.docker_engine import DockerEngine
from argobox.adapters.simulated import SimulatedLab


def build(runtime: ContainerRuntime) -> MCPServer[Any]:
    server = MCPServer("bare")

    @server.tool()
    async def docker_inspect_container(container: str) -> ContainerDetail:
        """Inspect one container."""
        return await runtime.inspect_container(container)

    return server


def main() -> None:
    kind, target = sys.argv[1], sys.argv[2]
    runtime: ContainerRuntime = DockerEngine(target) if kind == "docker" else SimulatedLab(Path(target))
    server = build(runtime)
    if sys.argv[3:4] == ["--http"]:
        port = int(sys.argv[4])
        anyio.run(lambda: server.run_streamable_http_async(host="127.0.0.1", port=port))
    else:
        anyio.run(server.run_stdio_async)


if __name__ == "__main__":
    main()
