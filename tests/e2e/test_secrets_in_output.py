"""Secrets a container prints never reach the agent, the store or the operator's screen: a multi-line value (a PEM
key), a value that straddles the cut of a long log line, and credentials spelled as parameters and headers.

The real `argobox serve` over stdio, a real Docker engine, and the bytes of the database and its WAL."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from docker.models.containers import Container
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.conftest import WriteConfig

pytestmark = [pytest.mark.docker]

ARGOBOX = str(Path(sys.executable).with_name("argobox"))
LINE_CUT = 4096  # where ArgoBox cuts a long log line


def pem_key() -> str:
    body = base64.b64encode(secrets.token_bytes(300)).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END PRIVATE KEY-----"


def argobox(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # check: a command that failed prints nothing, and would make the absence of secrets vacuous.
    return subprocess.run(
        [ARGOBOX, "--config", str(config), *args], capture_output=True, text=True, timeout=120, check=True
    )


async def printed(container: Container, marker: bytes) -> None:
    """Return once `container` has printed `marker` (bounded by the caller).

    The log is read whole, again and again: the SDK's followed stream, once closed, leaves its socket's file object
    open for the garbage collector, whose ResourceWarning then fails whichever later test it lands in."""
    while marker not in await anyio.to_thread.run_sync(container.logs):  # noqa: ASYNC110 - the engine has no event
        await anyio.sleep(0.05)


async def test_multi_line_cut_and_differently_spelled_secrets_appear_nowhere(
    write_config: WriteConfig, docker_base_url: str, make_container: Callable[..., Container], tmp_path: Path
) -> None:
    key = pem_key()
    straddling = secrets.token_hex(20)
    spelled = {name: secrets.token_hex(10) for name in ("client_secret", "apikey", "appid", "authSig", "xapikey")}
    printer = (
        'echo "$TLS_KEY"; '
        f'printf "%0{LINE_CUT - 10}d%s%0100d\\n" 0 "$LONG_SECRET" 0; '
        f'echo "GET /weather?appid={spelled["appid"]}&q=oslo&apikey={spelled["apikey"]}"; '
        f'echo "token exchange: client_secret={spelled["client_secret"]} authSig={spelled["authSig"]}"; '
        f'echo "X-Api-Key: {spelled["xapikey"]}"; '
        'trap "exit 0" TERM; while :; do sleep 1; done'
    )
    web = make_container("keys", env={"TLS_KEY": key, "LONG_SECRET": straddling}, command=["sh", "-c", printer])
    with anyio.fail_after(10):  # the container has printed everything once its last line shows
        await printed(web, b"X-Api-Key")
    config = write_config(
        docker=f'base_url = "{docker_base_url}"', read_args=f'args = {{ container = ["{web.name}"] }}'
    )
    params = StdioServerParameters(
        command=ARGOBOX,
        args=["--config", str(config), "serve", "--agent", "openclaw"],
        env={"PATH": os.environ["PATH"]},
    )
    with anyio.fail_after(60), (tmp_path / "server.log").open("a") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            result = await client.call_tool("docker_container_logs", {"container": web.name, "tail": 100})
    assert result.structured_content is not None and result.structured_content["status"] == "succeeded"
    request_id = result.structured_content["request_id"]
    lines: list[str] = result.structured_content["result"]["lines"]
    answer = json.dumps(result.structured_content) + "".join(c.model_dump_json() for c in result.content)
    shown = argobox(config, "show", request_id).stdout + argobox(config, "show", request_id, "--json").stdout
    listed = argobox(config, "requests", "--json").stdout
    stored = b"".join(p.read_bytes() for p in config.parent.glob("argobox.db*"))

    key_lines = [line for line in key.splitlines()[1:-1] if len(line) >= 6]
    forbidden = [*key_lines, straddling[:8], *spelled.values()]
    for text in (answer, shown, listed, stored.decode("utf-8", errors="replace")):
        assert [f for f in forbidden if f in text] == []
    assert lines[0] == "-----BEGIN PRIVATE KEY-----" or lines[0] == "<redacted>"
    assert "<redacted>" in lines[1] and lines[1].strip() == "<redacted>"
    cut = next(line for line in lines if line.startswith("0000"))
    assert len(cut) == LINE_CUT and cut.endswith("<redacted>") and result.structured_content["result"]["truncated"]
    assert any(line.startswith("GET /weather?appid=<redacted>&q=oslo&apikey=<redacted>") for line in lines)
    assert "X-Api-Key: <redacted>" in lines
