"""The baseline of `bench_mediation.py`: a bare high-level `MCPServer` whose two read tools do the same backend work
as ArgoBox's `docker_list_containers` and `ha_get_state` (the same adapters, so the same client libraries and the
same requests), with no grant, policy, queue, audit or redaction.

    python bench/bare_reads.py --docker unix:///path/docker.sock [--ha http://127.0.0.1:8123] [--http PORT]

The Home Assistant token is read from ARGOBOX_HA_TOKEN. Stdio by default; with `--http PORT`, streamable HTTP at
http://127.0.0.1:PORT/mcp with the SDK's defaults.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import anyio
from mcp.server import MCPServer
from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from argobox.adapters.base import ContainerSummary, EntityDetail


class ContainerList(BaseModel):
    containers: list[ContainerSummary]


def build(docker_url: str, ha_url: str | None) -> MCPServer[Any]:
    from argobox.adapters.docker_engine import DockerEngine

    server = MCPServer("bare")
    engine = DockerEngine(docker_url)

    @server.tool()
    async def docker_list_containers(all: bool = False) -> ContainerList:
        """List the Docker containers."""
        return ContainerList(containers=await engine.list_containers(all=all))

    if ha_url is not None:
        from argobox.adapters.home_assistant import HomeAssistant

        home = HomeAssistant(ha_url, os.environ.get("ARGOBOX_HA_TOKEN"), token_env="ARGOBOX_HA_TOKEN")

        @server.tool()
        async def ha_get_state(entity_id: str) -> EntityDetail:
            """The state and attributes of one Home Assistant entity."""
            return await home.get_state(entity_id)

    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--docker", required=True)
    parser.add_argument("--ha")
    parser.add_argument("--http", type=int, metavar="PORT")
    args = parser.parse_args()
    server = build(args.docker, args.ha)
    if args.http is not None:
        anyio.run(lambda: server.run_streamable_http_async(host="127.0.0.1", port=args.http))
    else:
        anyio.run(server.run_stdio_async)


if __name__ == "__main__":
    main()
