"""Baselines for the benchmarks: bare `mcp` servers whose one tool does the same adapter work as ArgoBox, with no
policy, no queue and no audit.

    python bare_server.py (lowlevel | mcpserver | recorded) (docker BASE_URL | lab PATH) [--http PORT]

`lowlevel` is the SDK tier ArgoBox itself is built on, so it isolates ArgoBox's own cost; `mcpserver` is the
high-level `MCPServer` most servers are written with; `recorded` is `lowlevel` plus the least any gate that records
a call before acting on it must pay: one row committed to SQLite (WAL, synchronous=NORMAL, through aiosqlite, as
ArgoBox's store) before the adapter call. It shows how much of ArgoBox's cost is that floor. Stdio by default; with
`--http PORT`, streamable HTTP at http://127.0.0.1:PORT/mcp with the SDK's defaults.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import types
from mcp.server import MCPServer, Server, ServerRequestContext
from mcp.server.stdio import stdio_server

from argobox.adapters.base import ContainerDetail, ContainerRuntime
from argobox.adapters.docker_engine import DockerEngine
from argobox.adapters.simulated import SimulatedLab

TOOL = types.Tool(
    name="docker_inspect_container",
    description="Inspect one container.",
    input_schema={"type": "object", "properties": {"container": {"type": "string"}}, "required": ["container"]},
    output_schema=ContainerDetail.model_json_schema(),
)


def build_mcpserver(runtime: ContainerRuntime) -> MCPServer[Any]:
    server = MCPServer("bare")

    @server.tool()
    async def docker_inspect_container(container: str) -> ContainerDetail:
        """Inspect one container."""
        return await runtime.inspect_container(container)

    return server


def build_lowlevel(runtime: ContainerRuntime) -> Server[Any]:
    async def list_tools(ctx: ServerRequestContext[Any], params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[TOOL])

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        detail = await runtime.inspect_container(str((params.arguments or {})["container"]))
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=detail.model_dump_json())],
            structured_content=detail.model_dump(mode="json"),
        )

    return Server("bare", on_list_tools=list_tools, on_call_tool=call_tool)


def build_recorded(runtime: ContainerRuntime, db: Any) -> Server[Any]:
    async def list_tools(ctx: ServerRequestContext[Any], params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[TOOL])

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        container = str((params.arguments or {})["container"])
        await db.execute(
            "INSERT INTO calls (at, tool, container) VALUES (?, ?, ?)",  # autocommit: one hand-off
            (time.time(), params.name, container),
        )
        detail = await runtime.inspect_container(container)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=detail.model_dump_json())],
            structured_content=detail.model_dump(mode="json"),
        )

    return Server("recorded", on_list_tools=list_tools, on_call_tool=call_tool)


async def run_lowlevel(runtime: ContainerRuntime, tier: str = "lowlevel") -> None:
    if tier == "recorded":
        import tempfile

        import aiosqlite

        with tempfile.TemporaryDirectory(prefix="bare-recorded-") as tmp:
            async with aiosqlite.connect(Path(tmp) / "calls.db", isolation_level=None) as db:
                for pragma in ("journal_mode = WAL", "synchronous = NORMAL"):
                    await db.execute(f"PRAGMA {pragma}")
                await db.execute("CREATE TABLE calls (id INTEGER PRIMARY KEY, at REAL, tool TEXT, container TEXT)")
                await _serve_stdio(build_recorded(runtime, db))
        return
    await _serve_stdio(build_lowlevel(runtime))


async def _serve_stdio(server: Server[Any]) -> None:
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


async def run_http(tier: str, runtime: ContainerRuntime, port: int) -> None:
    if tier == "mcpserver":
        await build_mcpserver(runtime).run_streamable_http_async(host="127.0.0.1", port=port)
        return
    import uvicorn

    app = build_lowlevel(runtime).streamable_http_app(host="127.0.0.1")
    await uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="info")).serve()


def main() -> None:
    tier, kind, target = sys.argv[1], sys.argv[2], sys.argv[3]
    runtime: ContainerRuntime = DockerEngine(target) if kind == "docker" else SimulatedLab(Path(target))
    if sys.argv[4:5] == ["--http"]:
        anyio.run(run_http, tier, runtime, int(sys.argv[5]))
    elif tier == "mcpserver":
        anyio.run(build_mcpserver(runtime).run_stdio_async)
    else:
        anyio.run(run_lowlevel, runtime, tier)


if __name__ == "__main__":
    main()
