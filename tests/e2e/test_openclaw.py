"""OpenClaw, ArgoBox's main client, as a real client: real `openclaw agent --local` turns against a real ArgoBox.

The README's OpenClaw snippets, as written (only the config path, the port and the token filled in), configure a
real OpenClaw that reaches the real `argobox serve` over stdio and over the HTTP daemon, with a real Docker engine.
A scripted model on loopback (tests/scripted_model.py) stands in for the LLM: it makes the tool calls a test plans
and records what OpenClaw sent it, so the assertions are on what the model was shown as well as on ArgoBox and on
the engine's own reports. OpenClaw runs with a private HOME and TMPDIR, Node's proxy support on
(`NODE_USE_ENV_PROXY=1`) and every proxy variable pointing at a trap on loopback that refuses and records any
attempt to reach another host.

Needs the pinned OpenClaw: `eval "$(bash scripts/openclaw.sh install)"` (scripts/test.sh and .ci/run do it).
Without it these tests are skipped loudly, or fail when CI is "true".
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import docker
import pytest
from docker.models.containers import Container

from tests.e2e.test_first_proof import engine_events
from tests.fixtures_docker import IDLE_COMMAND, SESSION_LABEL, TEST_IMAGE, TEST_LABEL
from tests.http_daemon import http_daemon, sha
from tests.scripted_model import MODEL, ScriptedModel, content_text

pytestmark = [pytest.mark.docker, pytest.mark.anyio]

REPO = Path(__file__).resolve().parents[2]
ARGOBOX = Path(sys.executable).with_name("argobox")
TOKEN = "openclaw-e2e-token-0123456789abcdef"
TURN_TIMEOUT_S = 300
SERVER = "argobox"
OFFERED = [
    f"{SERVER}__{tool}"
    for tool in (
        "argobox_request_status",
        "docker_inspect_container",
        "docker_list_containers",
        "docker_restart_container",
    )
]
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
STRUCTURED = "structuredContent:\n"
"""How OpenClaw starts a tool result it shows the model: the structured content as JSON, then the result's text."""

ARGOBOX_CONFIG = f"""\
[storage]
path = "argobox.db"

[docker]
base_url = "{{docker}}"

[[operators]]
name = "alice"

[agents.openclaw]
token_sha256 = "{sha(TOKEN)}"

[[agents.openclaw.rules]]
tools = ["docker_list_containers", "docker_inspect_container"]
effect = "allow"

[[agents.openclaw.rules]]
tools = ["docker_restart_container"]
args = {{{{ container = ["argobox-openclaw-*"] }}}}
effect = "approve"
"""


def _no_openclaw(reason: str) -> None:
    message = f'no OpenClaw: run  eval "$(bash scripts/openclaw.sh install)"  ({reason})'
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@dataclass(frozen=True)
class OpenClaw:
    """The pinned OpenClaw that scripts/openclaw.sh installs, and the Node it runs on."""

    node: Path
    entry: Path


@pytest.fixture(scope="session")
def openclaw() -> OpenClaw:
    found = os.environ.get("ARGOBOX_OPENCLAW")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    directory = Path(found) if found else cache / "argobox/openclaw"
    installed = OpenClaw(directory / "node_modules/node/bin/node", directory / "node_modules/openclaw/openclaw.mjs")
    for path in (installed.node, installed.entry):
        if not path.exists():
            _no_openclaw(f"{path} is missing")
    return installed


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"  # module scope: the HTTP daemon is shared by the module's tests


def readme_snippet(name: str) -> str:
    """The README's JSON snippet marked `<!-- openclaw-NAME-snippet -->`, as written."""
    match = re.search(
        rf"<!-- openclaw-{name}-snippet -->\s*```json\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL
    )
    assert match, f"the README lost its OpenClaw {name} snippet"
    return match.group(1)


class ProxyTrap(socketserver.ThreadingTCPServer):
    """A proxy on loopback that answers every request 403 (so clients give up at once) and records its first line."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.attempts: list[str] = []
        trap = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                trap.attempts.append(self.rfile.readline(2048).decode(errors="replace").strip())
                self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture(scope="module")
def trap() -> Iterator[ProxyTrap]:
    server = ProxyTrap()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def model() -> Iterator[ScriptedModel]:
    with ScriptedModel() as scripted:
        yield scripted


@dataclass(frozen=True)
class Result:
    """One tool result as the model received it: the tool it called, the structured content, the text."""

    tool: str
    structured: dict[str, Any]
    text: str


@dataclass
class Turn:
    """What one OpenClaw turn showed its model, and OpenClaw's own `--json` report of it."""

    requests: list[dict[str, Any]]
    report: dict[str, Any]

    @property
    def offered(self) -> list[list[str]]:
        """ArgoBox's tools among the tools offered to the model, per request (OpenClaw offers its own too)."""
        offered: list[list[str]] = []
        for request in self.requests:
            tools: list[dict[str, Any]] = request.get("tools") or []
            names = (tool["function"]["name"] for tool in tools)
            offered.append(sorted(name for name in names if name.startswith(f"{SERVER}__")))
        return offered

    @property
    def results(self) -> list[Result]:
        """The tool results this turn added to the conversation (the session keeps the earlier turns' too)."""
        earlier = sum(m.get("role") == "tool" for m in self.requests[0]["messages"])
        return _results(self.requests[-1]["messages"])[earlier:]

    @property
    def tool_summary(self) -> dict[str, Any]:
        return self.report["meta"]["toolSummary"]


def _results(messages: list[dict[str, Any]]) -> list[Result]:
    """Each tool message with the name of the call it answers (call ids may repeat across turns: latest wins)."""
    called: dict[str, str] = {}
    results: list[Result] = []
    for message in messages:
        calls: list[dict[str, Any]] = message.get("tool_calls") or []
        for call in calls:
            called[call["id"]] = call["function"]["name"]
        if message.get("role") == "tool":
            content = content_text(message.get("content"))
            assert content.startswith(STRUCTURED), content
            value, end = json.JSONDecoder().raw_decode(content, len(STRUCTURED))
            assert isinstance(value, dict), content
            structured: dict[str, Any] = value  # pyright: ignore[reportUnknownVariableType]
            text = content[end:].removeprefix("\n")
            results.append(Result(called.get(str(message.get("tool_call_id")), ""), structured, text))
    return results


@dataclass
class Lab:
    """One ArgoBox (config, store), one private OpenClaw home wired to it, and the container the agent may restart."""

    directory: Path
    config: Path
    web: Container
    openclaw: OpenClaw
    model: ScriptedModel
    trap: ProxyTrap

    @property
    def home(self) -> Path:
        return self.directory / "home"

    def env(self) -> dict[str, str]:
        path = os.pathsep.join([str(self.openclaw.node.parent), str(ARGOBOX.parent), os.environ.get("PATH", "")])
        return {
            "PATH": path,
            "HOME": str(self.home),
            "TMPDIR": str(self.directory / "tmp"),
            "LANG": "C.UTF-8",
            "NO_COLOR": "1",
            "NODE_USE_ENV_PROXY": "1",
            "NO_PROXY": "127.0.0.1,::1",
            "no_proxy": "127.0.0.1,::1",
            **dict.fromkeys(PROXY_VARIABLES, self.trap.url),
        }

    async def turn(self, message: str, *calls: tuple[str, dict[str, Any]]) -> Turn:
        """One `openclaw agent --local` turn in which the model makes `calls` (bare ArgoBox tool names), in order."""
        seen = len(self.model.requests)
        self.model.forget_plans()  # a turn that failed before must not leave its calls to this one
        for tool, arguments in calls:
            self.model.plan(f"{SERVER}__{tool}", arguments)
        command = [str(self.openclaw.node), str(self.openclaw.entry), "agent", "--local", "--agent", "main"]
        done = await anyio.to_thread.run_sync(
            lambda: subprocess.run(
                [*command, "-m", message, "--json"],
                capture_output=True,
                text=True,
                timeout=TURN_TIMEOUT_S,
                env=self.env(),
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        )
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
        assert self.model.planned == 0, f"OpenClaw did not make every planned call:\n{done.stderr[-4000:]}"
        return Turn(self.model.requests[seen:], json.loads(done.stdout))

    def argobox(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ARGOBOX), "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def configure(self, snippet: str) -> None:
        """`~/.openclaw/openclaw.json`: the scripted model, direct tool schemas, a private log, then `snippet`."""
        filled = snippet.replace("/etc/argobox/argobox.toml", str(self.config)).replace("<the token>", TOKEN)
        servers = json.loads(filled)
        model = {"id": MODEL, "name": MODEL, "reasoning": False, "input": ["text"], "contextWindow": 128000}
        provider = {"baseUrl": self.model.base_url, "apiKey": "x", "api": "openai-completions", "models": [model]}
        settings: dict[str, Any] = {
            "models": {"mode": "replace", "providers": {"scripted": provider}},
            "agents": {"defaults": {"model": {"primary": f"scripted/{MODEL}"}}},
            "tools": {"toolSearch": False},  # otherwise MCP tools sit behind OpenClaw's own tool search
            "logging": {"file": str(self.directory / "openclaw.log")},
        }
        assert not settings.keys() & servers.keys(), servers
        (self.home / ".openclaw").mkdir(parents=True, exist_ok=True)
        (self.home / ".openclaw/openclaw.json").write_text(json.dumps({**settings, **servers}, indent=2))


@pytest.fixture(scope="module", params=["stdio", "http"])
async def lab(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    *,
    openclaw: OpenClaw,
    model: ScriptedModel,
    trap: ProxyTrap,
    docker_client: docker.DockerClient,
    docker_base_url: str,
    docker_session_id: str,
) -> AsyncIterator[Lab]:
    """An ArgoBox and a running container, and OpenClaw configured with the README's stdio or HTTP snippet."""
    directory = tmp_path_factory.mktemp(f"openclaw-{request.param}")
    (directory / "tmp").mkdir()
    config = directory / "argobox.toml"
    config.write_text(ARGOBOX_CONFIG.format(docker=docker_base_url))
    web = docker_client.containers.run(
        TEST_IMAGE,
        IDLE_COMMAND,
        name=f"argobox-openclaw-{secrets.token_hex(4)}",
        network_mode="none",
        detach=True,
        labels={TEST_LABEL: "1", SESSION_LABEL: docker_session_id},
    )
    web.reload()
    lab = Lab(directory, config, web, openclaw, model, trap)
    if request.param == "stdio":
        lab.configure(readme_snippet("stdio"))
        yield lab
        return
    async with http_daemon(config) as daemon:
        lab.configure(readme_snippet("http").replace("http://127.0.0.1:8765/mcp", daemon.url))
        yield lab


def audit(lab: Lab, *args: str) -> list[dict[str, Any]]:
    done = lab.argobox("audit", *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def test_openclaw_lists_requests_a_restart_and_sees_it_succeed_after_the_operator_approves(
    lab: Lab,
    docker_client: docker.DockerClient,
) -> None:
    web = lab.web
    spare = f"{web.name}-spare"  # in the grant, but the operator will deny it
    before = web.attrs["State"]["StartedAt"]
    t0 = time.time()

    first = await lab.turn(
        "List the containers, then restart the web container and its spare.",
        ("docker_list_containers", {}),
        ("docker_restart_container", {"container": web.name}),
        ("docker_restart_container", {"container": spare}),
    )
    listed, queued, spare_queued = first.results
    found = re.search(r"as request ([a-z0-9]+);", queued.text)
    assert found, queued
    request_id = found[1]  # the id as the model read it
    spare_id = spare_queued.structured["request_id"]
    web.reload()
    started_while_pending = web.attrs["State"]["StartedAt"]

    approved = lab.argobox("approve", request_id, "--as", "alice", "--note", "planned")
    refused = lab.argobox("deny", spare_id, "--as", "alice", "--reason", "not during the film")
    web.reload()
    second = await lab.turn(
        "Did the restarts happen? Then restart postgres.",
        ("argobox_request_status", {"request_id": request_id}),
        ("argobox_request_status", {"request_id": spare_id}),
        ("docker_restart_container", {"container": "postgres"}),
    )
    status, spare_status, denied = second.results
    trail = audit(lab, "--request", request_id)

    assert first.offered == [OFFERED] * len(first.requests) and second.offered == [OFFERED] * len(second.requests)
    assert [r.tool for r in first.results] == [f"{SERVER}__docker_list_containers"] + [
        f"{SERVER}__docker_restart_container"
    ] * 2
    assert [r.tool for r in second.results] == [f"{SERVER}__argobox_request_status"] * 2 + [
        f"{SERVER}__docker_restart_container"
    ]
    assert listed.text.startswith("succeeded: list containers")
    assert web.name in [c["name"] for c in listed.structured["result"]["containers"]]
    assert queued.text.startswith("waiting for operator approval: restart container")
    assert f"argobox_request_status(request_id='{request_id}')" in queued.text
    assert queued.structured["status"] == "pending_approval" and queued.structured["request_id"] == request_id
    assert started_while_pending == before
    assert approved.returncode == 0 and "succeeded: restart container" in approved.stdout, approved.stderr
    assert refused.returncode == 0, refused.stderr
    assert web.attrs["State"]["StartedAt"] != before and web.attrs["State"]["Running"] is True
    assert len(engine_events(docker_client, web, t0, "restart")) == 1
    assert status.text.startswith(f"succeeded: restart container '{web.name}'")
    assert status.structured["status"] == "succeeded" and status.structured["result"]["state"] == "running"
    # Denials are answers, not error results: the reason reaches the model, and OpenClaw counts no failure.
    assert spare_status.text.startswith("denied: restart container")
    assert "not during the film; the decision is final" in spare_status.text
    assert spare_status.structured["status"] == "denied"
    assert denied.text.startswith("denied: container 'postgres' is outside the grant")
    assert "agents.openclaw.rules[1]" in denied.text and "Do not retry" in denied.text
    assert denied.structured["reason"].startswith("container 'postgres' is outside the grant")
    assert first.tool_summary["calls"] == 3 and second.tool_summary["calls"] == 3
    assert first.tool_summary["failures"] == 0 and second.tool_summary["failures"] == 0
    assert [e["event"] for e in trail] == ["received", "decision", "queued", "approved", "executing", "succeeded"]
    assert {e["actor"] for e in trail} >= {"agent:openclaw", "operator:alice"}
    assert lab.trap.attempts == []
