"""Hermes Agent (Nous Research), the canonical stack's other agent, as a real client of ArgoBox.

Real `hermes chat -q MESSAGE -Q -t argobox` turns, configured with the README's snippets, against the real
`argobox serve` over stdio and over the HTTP daemon, with a real Docker engine. A scripted model on loopback
(tests/scripted_model.py) stands in for the LLM: it makes the tool calls a test plans and records what Hermes sent
it, so the assertions are on what the model was shown as well as on ArgoBox and on the engine's own reports.
Hermes runs with a private HOME and HERMES_HOME, the three settings that keep it offline, and every proxy variable
pointing at a trap on loopback that records any attempt to reach another host.

Needs the pinned Hermes: `eval "$(bash scripts/hermes.sh install)"` (scripts/test.sh and .ci/run do it). Without it
these tests are skipped loudly, or fail when CI is "true".
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
from collections.abc import AsyncIterator, Callable, Iterator
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
from tests.scripted_model import MODEL, QUOTE, ScriptedModel

pytestmark = [pytest.mark.docker, pytest.mark.anyio]

REPO = Path(__file__).resolve().parents[2]
ARGOBOX = Path(sys.executable).with_name("argobox")
TOKEN = "hermes-e2e-token-0123456789abcdef"
TURN_TIMEOUT_S = 180
SERVER = "argobox"
OFFERED = [
    f"mcp__{SERVER}__{tool}"
    for tool in (
        "argobox_request_status",
        "docker_inspect_container",
        "docker_list_containers",
        "docker_restart_container",
    )
]

ARGOBOX_CONFIG = f"""\
[storage]
path = "argobox.db"

[docker]
base_url = "{{docker}}"

[[operators]]
name = "alice"

[agents.hermes]
token_sha256 = "{sha(TOKEN)}"

[[agents.hermes.rules]]
tools = ["docker_list_containers", "docker_inspect_container"]
effect = "allow"

[[agents.hermes.rules]]
tools = ["docker_restart_container"]
args = {{{{ container = ["argobox-hermes-*"] }}}}
effect = "approve"
"""


def _no_hermes(reason: str) -> None:
    message = f'no Hermes Agent: run  eval "$(bash scripts/hermes.sh install)"  ({reason})'
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def hermes() -> Path:
    """The pinned `hermes` command that scripts/hermes.sh installs."""
    found = os.environ.get("ARGOBOX_HERMES")
    directory = (
        Path(found) if found else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "argobox/hermes"
    )
    if not (directory / "bin/hermes").exists():
        _no_hermes(f"{directory / 'bin/hermes'} is missing")
    return directory / "bin/hermes"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"  # module scope: the HTTP daemon is shared by the module's tests


def readme_snippet(name: str) -> str:
    """The README's YAML snippet marked `<!-- hermes-NAME-snippet -->`, as written."""
    match = re.search(
        rf"<!-- hermes-{name}-snippet -->\s*```yaml\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL
    )
    assert match, f"the README lost its Hermes {name} snippet"
    return match.group(1)


def hermes_version() -> str:
    match = re.search(r'^HERMES_VERSION="([^"]+)"', (REPO / "scripts/hermes.sh").read_text(), re.MULTILINE)
    assert match, "scripts/hermes.sh lost its HERMES_VERSION pin"
    return match.group(1)


class Trap(socketserver.ThreadingTCPServer):
    """A proxy on loopback that refuses everything and records the first line of each attempt."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.attempts: list[str] = []
        trap = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                trap.attempts.append(self.rfile.readline(2048).decode(errors="replace").strip())

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture(scope="module")
def trap() -> Iterator[Trap]:
    server = Trap()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def model() -> Iterator[ScriptedModel]:
    with ScriptedModel() as scripted:
        yield scripted


@dataclass
class Turn:
    """What one Hermes turn showed its model, and what it printed."""

    requests: list[dict[str, Any]]
    stdout: str

    @property
    def offered(self) -> list[list[str]]:
        """The tool names offered to the model, per request."""
        offered: list[list[str]] = []
        for request in self.requests:
            tools: list[dict[str, Any]] = request.get("tools") or []
            offered.append(sorted(tool["function"]["name"] for tool in tools))
        return offered

    @property
    def tool_results(self) -> list[tuple[str, dict[str, Any]]]:
        """(tool name, the JSON Hermes put in the tool message) for each tool result the model received."""
        final = self.requests[-1]["messages"]
        return [(m.get("name", ""), _payload(m["content"])) for m in final if m.get("role") == "tool"]


def _payload(content: str) -> dict[str, Any]:
    """The JSON object inside Hermes's "untrusted tool result" wrapper (loop warnings may follow it)."""
    value, _ = json.JSONDecoder().raw_decode(content, content.index("\n{") + 1)
    assert isinstance(value, dict), content
    return value  # pyright: ignore[reportUnknownVariableType]


@dataclass
class Lab:
    """One ArgoBox (config, store), one Hermes home wired to it, and the container the agent may restart."""

    directory: Path
    config: Path
    hermes_home: Path
    web: Container
    hermes: Path
    model: ScriptedModel
    trap: Trap

    def env(self) -> dict[str, str]:
        trap = self.trap.url
        return {
            "PATH": f"{ARGOBOX.parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.directory / "home"),
            "HERMES_HOME": str(self.hermes_home),
            "LANG": "C.UTF-8",
            "NO_COLOR": "1",
            "NO_PROXY": "127.0.0.1,::1",
            "no_proxy": "127.0.0.1,::1",
            **dict.fromkeys(("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"), trap),
        }

    async def turn(self, message: str, *calls: tuple[str, dict[str, Any]]) -> Turn:
        """One `hermes chat -q` turn in which the model makes `calls` (bare ArgoBox tool names), in order."""
        seen = len(self.model.requests)
        self.model.forget_plans()  # a turn that failed before must not leave its calls to this one
        for tool, arguments in calls:
            self.model.plan(f"mcp__{SERVER}__{tool}", arguments)
        done = await anyio.to_thread.run_sync(
            lambda: subprocess.run(
                [str(self.hermes), "chat", "-q", message, "-Q", "-t", SERVER],
                capture_output=True,
                text=True,
                timeout=TURN_TIMEOUT_S,
                env=self.env(),
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert self.model.planned == 0, f"Hermes did not make every planned call:\n{done.stdout}{done.stderr}"
        return Turn(self.model.requests[seen:], done.stdout)

    def argobox(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ARGOBOX), "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def configure(self, snippet: str) -> None:
        """Hermes's config.yaml: the scripted model, the offline settings, then `snippet` with the config path."""
        settings = (
            "model:\n  provider: custom\n"
            f"  base_url: {json.dumps(self.model.base_url)}\n  api_key: scripted\n  default: {MODEL}\n"
            "  context_length: 128000\nsecurity:\n  tirith_enabled: false\n"
        )
        config_yaml = settings + snippet.replace("/etc/argobox/argobox.toml", str(self.config))
        (self.hermes_home / "config.yaml").write_text(config_yaml)
        (self.hermes_home / ".env").write_text(f"ARGOBOX_AGENT_TOKEN={TOKEN}\n")
        update_check = {"ts": time.time(), "rev": None, "ver": hermes_version(), "behind": 0}
        (self.hermes_home / ".update_check").write_text(json.dumps(update_check))


@pytest.fixture(scope="module")
def make_lab(
    tmp_path_factory: pytest.TempPathFactory,
    hermes: Path,
    model: ScriptedModel,
    trap: Trap,
    docker_client: docker.DockerClient,
    docker_base_url: str,
    docker_session_id: str,
) -> Callable[[str], Lab]:
    """A factory of labs: an ArgoBox config and store, an empty Hermes home and a running container."""

    def make(name: str) -> Lab:
        directory = tmp_path_factory.mktemp(f"hermes-{name}")
        (directory / "home").mkdir()
        (directory / "hermes").mkdir()
        config = directory / "argobox.toml"
        config.write_text(ARGOBOX_CONFIG.format(docker=docker_base_url))
        web = docker_client.containers.run(
            TEST_IMAGE,
            IDLE_COMMAND,
            name=f"argobox-hermes-{secrets.token_hex(4)}",
            network_mode="none",
            detach=True,
            labels={TEST_LABEL: "1", SESSION_LABEL: docker_session_id},
        )
        web.reload()
        return Lab(directory, config, directory / "hermes", web, hermes, model, trap)

    return make


@pytest.fixture(scope="module", params=["stdio", "http"])
async def lab(request: pytest.FixtureRequest, make_lab: Callable[[str], Lab]) -> AsyncIterator[Lab]:
    """The README's stdio snippet as written, or its HTTP snippet pointed at a real daemon on a free port."""
    lab = make_lab(request.param)
    if request.param == "stdio":
        lab.configure(readme_snippet("stdio"))
        yield lab
        return
    async with http_daemon(lab.config) as daemon:
        lab.configure(readme_snippet("http").replace("http://127.0.0.1:8765/mcp", daemon.url))
        yield lab


def audit(lab: Lab, *args: str) -> list[dict[str, Any]]:
    done = lab.argobox("audit", *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def test_hermes_lists_requests_a_restart_and_sees_it_succeed_after_the_operator_approves(
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
    (listed_as, listed), (queued_as, queued), (_, spare_queued) = first.tool_results
    found = re.search(r"as request ([a-z0-9]+);", queued["result"])
    assert found, queued
    request_id = found[1]  # the id as the model read it
    spare_id = spare_queued["structuredContent"]["request_id"]
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
    (_, status), (_, spare_status), (_, denied) = second.tool_results
    trail = audit(lab, "--request", request_id)

    assert first.offered == [OFFERED] * len(first.requests) and second.offered == [OFFERED] * len(second.requests)
    assert (
        listed_as == f"mcp__{SERVER}__docker_list_containers"
        and queued_as == f"mcp__{SERVER}__docker_restart_container"
    )
    assert listed["result"].startswith("succeeded: list containers")
    assert web.name in [c["name"] for c in listed["structuredContent"]["result"]["containers"]]
    assert queued["result"].startswith("waiting for operator approval: restart container")
    assert f"argobox_request_status(request_id='{request_id}')" in queued["result"]
    assert queued["structuredContent"]["status"] == "pending_approval"
    assert queued["structuredContent"]["request_id"] == request_id
    assert QUOTE in first.stdout and spare_id in first.stdout  # the model's last answer quoted the last result
    assert started_while_pending == before
    assert approved.returncode == 0 and "succeeded: restart container" in approved.stdout, approved.stderr
    assert refused.returncode == 0, refused.stderr
    assert web.attrs["State"]["StartedAt"] != before and web.attrs["State"]["Running"] is True
    assert len(engine_events(docker_client, web, t0, "restart")) == 1
    assert status["result"].startswith(f"succeeded: restart container '{web.name}'")
    assert status["structuredContent"]["status"] == "succeeded"
    assert status["structuredContent"]["result"]["state"] == "running"
    # A denial is an answer, not an error result: Hermes's model gets the text and the structured fields.
    assert spare_status["result"].startswith("denied: restart container")
    assert "not during the film; the decision is final" in spare_status["result"]
    assert spare_status["structuredContent"]["status"] == "denied"
    assert denied["result"].startswith("denied: container 'postgres' is outside the grant")
    assert "agents.hermes.rules[1]" in denied["result"] and "Do not retry" in denied["result"]
    assert denied["structuredContent"]["reason"].startswith("container 'postgres' is outside the grant")
    assert "postgres" in second.stdout
    assert [e["event"] for e in trail] == ["received", "decision", "queued", "approved", "executing", "succeeded"]
    assert {e["actor"] for e in trail} >= {"agent:hermes", "operator:alice"}
    assert lab.trap.attempts == []


async def test_three_denials_in_a_row_do_not_lock_hermes_out_of_the_tools_it_is_allowed(
    make_lab: Callable[[str], Lab],
) -> None:
    """Three error results in a row make Hermes 0.19.0 answer every tool of the server itself for 60 s. ArgoBox
    answers a denial as a result whose text says "denied: ...", so the allowed listing still reaches ArgoBox."""
    lab = make_lab("lockout")
    lab.configure(readme_snippet("stdio"))
    postgres = ("docker_restart_container", {"container": "postgres"})

    turn = await lab.turn(
        "Restart postgres, then list the containers.", postgres, postgres, postgres, ("docker_list_containers", {})
    )
    results = [payload for _, payload in turn.tool_results]
    received = [e["tool"] for e in audit(lab) if e["event"] == "received"]

    assert all(r["result"].startswith("denied: container 'postgres'") for r in results[:3])
    assert results[3]["result"].startswith("succeeded: list containers")
    assert received == ["docker_restart_container"] * 3 + ["docker_list_containers"]
    assert lab.trap.attempts == []
