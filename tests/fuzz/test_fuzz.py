"""A property-based fuzzer: every agent tool, every operator tool and both wire paths (stdio, HTTP) get generated
arguments and raw JSON-RPC, about 10,000 inputs a run, against a real Docker engine and a real Home Assistant.

For every answer: it came (no crash, no hang), it carries no traceback or source path, and no seeded secret (the Home
Assistant token and the agent's and operator's tokens in the environment, a container's environment values, secrets
under secret-looking argument keys). After each surface: the store's files (database and WAL) and
`argobox audit export` hold no seeded secret, the engine reports no event for the lab's containers, Home Assistant's
states did not change, no request for a change was approved, and a normal call still succeeds.

Runs are repeatable (derandomized, no example database) and bounded: the in-memory `Client(server)` carries the
bulk; the wire paths get a smaller share. With ARGOBOX_FIGURES set, the run's figures go there as one JSON object.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import docker
import httpx2
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from mcp import Client, types
from mcp.shared.exceptions import MCPError

from argobox.server.app import App, open_app
from argobox.server.config.model import load_config
from argobox.server.mediation.operators import OperatorClaim
from argobox.server.mediation.tools import TOOLS
from argobox.server.redact import RedactingFormatter, Redactor
from argobox.server.transport.agent import build_agent_server
from argobox.server.transport.operator import PENDING_URI, build_operator_server
from tests.fuzz.frames import frame_shapes, render
from tests.fuzz.hostile import OPERATOR_TOOLS, Lab, Pools, agent_calls, operator_calls, resolve
from tests.fuzz.lab import FuzzLab, make_containers, pem_key, read_states, wait_for_logs, write_config
from tests.fuzz.oracle import Oracle, describe, failures
from tests.fuzz.wire import HttpWire, stdio_wire
from tests.http_daemon import connect, http_daemon

pytestmark = [pytest.mark.docker, pytest.mark.homeassistant]

AGENT_INPUTS = 3000
OPERATOR_INPUTS = 50
STDIO_INPUTS = 20
HTTP_INPUTS = 20
CALL_TIMEOUT_S = 20
CLIENT_DEPTH = 240
"""The deepest arguments the SDK's own client can send (it refuses to serialise 255 levels)."""
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    phases=(Phase.explicit, Phase.generate),  # no shrinking: findings are collected with their input, not raised
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)


@pytest.fixture(scope="module")
def oracle() -> Iterator[Oracle]:
    found = Oracle()
    yield found
    if path := os.environ.get("ARGOBOX_FIGURES"):
        Path(path).write_text(json.dumps(found.figures(), indent=2, sort_keys=True) + "\n")


@pytest.fixture(scope="module")
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal(backend="asyncio") as running:
        yield running


@pytest.fixture(scope="module")
def lab(
    tmp_path_factory: pytest.TempPathFactory,
    docker_base_url: str,
    docker_client: docker.DockerClient,
    docker_session_id: str,
    ha_url: str,
    ha_token: str,
    oracle: Oracle,
    portal: BlockingPortal,
) -> Iterator[FuzzLab]:
    """The lab's containers and configuration; the seeded secrets in the environment and in the oracle."""
    seeded = {
        "DB_PASSWORD": secrets.token_hex(16),
        "TLS_KEY": pem_key(),
        "SERVICE_URL_PASSWORD": secrets.token_urlsafe(18),
        "backup.password": secrets.token_hex(16),
    }
    seeded["SERVICE_URL"] = f"postgres://app:{seeded['SERVICE_URL_PASSWORD']}@127.0.0.1:5432/app"
    agent_token, operator_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    containers = make_containers(docker_client, docker_session_id, seeded)
    web, vault, idle = sorted(containers, key=lambda n: ("-web-" not in n, "-vault-" not in n))
    portal.call(wait_for_logs, docker_client, vault, b"backup marker done")
    config = write_config(
        tmp_path_factory.mktemp("fuzz"),
        docker_url=docker_base_url,
        home_url=ha_url,
        vault=vault,
        agent=agent_token,
        operator=operator_token,
    )
    env = {"ARGOBOX_HA_TOKEN": ha_token, "ARGOBOX_AGENT_TOKEN": agent_token, "ARGOBOX_OPERATOR_TOKEN": operator_token}
    for where, value in (*env.items(), *((f"the container's {k}", v) for k, v in seeded.items() if k != "SERVICE_URL")):
        oracle.seed(where, value)
    entities = (*sorted(read_states(ha_url, ha_token)), "light.nowhere", "lock.back_door")
    names = Lab(containers=(web, vault, idle, "argobox-fuzz-missing", "jellyfin"), entities=entities)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        shared = FuzzLab(
            config=config,
            names=names,
            pools=Pools(request_ids=[], configured_secret=ha_token),
            oracle=oracle,
            env=env,
            agent_token=agent_token,
            operator_token=operator_token,
            containers=containers,
            docker_url=docker_base_url,
            home=(ha_url, ha_token),
        )
        shared.states = read_states(ha_url, ha_token)
        yield shared


CLIENT_LOGGERS = ("client", "mcp.client")


class _Captured(logging.Handler):
    """Every log record of the in-process servers, formatted as ArgoBox formats its own (redacted)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(RedactingFormatter(redactor, "%(name)s %(levelname)s %(message)s"))
        self.lines: list[tuple[str, bool]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(CLIENT_LOGGERS):  # the servers' records, not the test's own clients'
            self.lines.append((self.format(record), record.exc_info is not None))


@dataclass
class InMemory:
    portal: BlockingPortal
    app: App
    logs: _Captured

    @contextmanager
    def client(self, server: Any, mode: str = "auto") -> Iterator[Client]:
        with self.portal.wrap_async_context_manager(Client(server, mode=mode)) as opened:  # type: ignore[arg-type]
            self.portal.call(opened.list_tools)  # so that the client checks each answer against the tool's schema
            yield opened

    def check_logs(self, oracle: Oracle, surface: str) -> None:
        for line, traced in self.logs.lines:
            oracle.check(f"{surface} log", line, "", shown=False)
            if traced:
                last = line.strip().splitlines()[-1]
                oracle.report("crash", surface, f"a log record with a traceback: {describe(line[:200])}: {last}", "")
        self.logs.lines.clear()


@pytest.fixture(scope="module")
def in_memory(lab: FuzzLab, portal: BlockingPortal) -> Iterator[InMemory]:
    """The lab's App, opened once in the portal's event loop, with the server's log records captured."""
    argobox_logger = logging.getLogger("argobox")
    level = argobox_logger.level
    with portal.wrap_async_context_manager(open_app(load_config(lab.config))) as app:
        logs = _Captured(app.redactor)
        logging.getLogger().addHandler(logs)
        argobox_logger.setLevel(logging.INFO)
        try:
            yield InMemory(portal, app, logs)
        finally:
            logging.getLogger().removeHandler(logs)
            argobox_logger.setLevel(level)


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    structured: dict[str, Any] | None
    crashed: str | None


async def _call(client: Client, tool: str, arguments: dict[str, Any]) -> Answer:
    """One tools/call (or a resource read, for the pseudo-tool `@read`), as the text a client would see."""
    with anyio.fail_after(CALL_TIMEOUT_S):
        try:
            if tool == "@read":
                read = await client.read_resource(str(arguments.get("uri")))
                return Answer(repr(read.model_dump()), None, None)
            result = await client.call_tool(tool, arguments)
        except MCPError as exc:
            crashed = "an internal error" if exc.code == types.INTERNAL_ERROR else None
            return Answer(f"{exc.code} {exc.message} {exc.data!r}", None, crashed)
    text = "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))
    crashed = text if result.is_error and text.startswith("Error executing tool") and ":" not in text else None
    return Answer(f"{text}\n{result.structured_content!r}", result.structured_content, crashed)


def ask(portal: BlockingPortal, oracle: Oracle, surface: str, client: Client, tool: str, arguments: Any) -> Answer:
    """Call, and report what the answer shows: a crash, a hang, a traceback or a secret."""
    shown_input = (tool, arguments)
    try:
        answer = portal.call(_call, client, tool, arguments)
    except TimeoutError:
        oracle.report("hang", surface, f"no answer within {CALL_TIMEOUT_S} s", shown_input)
        return Answer("", None, "hang")
    except Exception as exc:  # noqa: BLE001 - whatever the server raised is the finding
        oracle.report("crash", surface, f"{type(exc).__name__}: {describe(str(exc))}", shown_input)
        return Answer("", None, type(exc).__name__)
    if answer.crashed is not None:
        oracle.report("crash", surface, answer.crashed, shown_input)
    oracle.check(surface, answer.text, shown_input)
    return answer


def sendable(tool: str, arguments: dict[str, Any]) -> bool:
    """Whether the SDK's client can put this call on its wire at all (it cannot serialise a lone surrogate in a
    mapping key); what it cannot send, only the raw frames of the wire tests can."""
    request = types.CallToolRequest(params=types.CallToolRequestParams(name=tool, arguments=arguments))
    try:
        request.model_dump(by_alias=True, mode="json", exclude_none=True)
    except (UnicodeEncodeError, ValueError):
        return False
    return True


def sendable_as_header(name: str) -> bool:
    """Whether the SDK's client can send `name` at all in the 2026 era (it copies the name into a header as UTF-8)."""
    try:
        name.encode()
    except UnicodeEncodeError:
        return False
    return True


def assert_clean(oracle: Oracle, surface: str) -> None:
    found = [f for f in oracle.findings if f.surface.startswith(surface)]
    if os.environ.get("FUZZ_DEV_FINDINGS"):
        with open(os.environ["FUZZ_DEV_FINDINGS"], "a") as dev:
            dev.writelines(f"{f}\n" for f in found)
    assert not found, failures(found)


def run_examples(strategy: st.SearchStrategy[Any], examples: int, one: Callable[[Any], None]) -> None:
    @settings(FUZZ, max_examples=examples)
    @given(strategy)
    def fuzz(drawn: Any) -> None:
        one(drawn)

    fuzz()


def test_the_fuzzer_knows_every_tool(in_memory: InMemory, lab: FuzzLab) -> None:
    operator = build_operator_server(in_memory.app, OperatorClaim("alice", token=lab.operator_token))
    with in_memory.client(build_agent_server(in_memory.app, "openclaw")) as agent, in_memory.client(operator) as op:
        agent_tools = {t.name for t in in_memory.portal.call(agent.list_tools).tools}
        operator_tools = {t.name for t in in_memory.portal.call(op.list_tools).tools}
    assert agent_tools == set(TOOLS)
    assert operator_tools == set(OPERATOR_TOOLS)


def test_every_agent_tool_survives_hostile_arguments(in_memory: InMemory, lab: FuzzLab, oracle: Oracle) -> None:
    surface, app, portal = "agent_tools", in_memory.app, in_memory.portal
    with ExitStack() as stack:
        clients = {
            "openclaw": stack.enter_context(in_memory.client(build_agent_server(app, "openclaw"))),
            "openclaw-legacy": stack.enter_context(in_memory.client(build_agent_server(app, "openclaw"), "legacy")),
            "reader": stack.enter_context(in_memory.client(build_agent_server(app, "reader"))),
            "reader-legacy": stack.enter_context(in_memory.client(build_agent_server(app, "reader"), "legacy")),
        }
        who = st.sampled_from(["openclaw"] * 5 + ["openclaw-legacy"] * 2 + ["reader"])

        def one(drawn: tuple[str, tuple[str, dict[str, Any]]]) -> None:
            client, (name, raw) = drawn
            tool, arguments = resolve(name, lab.pools), resolve(raw, lab.pools, deepest=CLIENT_DEPTH)
            assume(sendable(tool, arguments))
            if not sendable_as_header(tool):
                client = client.removesuffix("-legacy") + "-legacy"  # a 2026-era client puts the name in a header
            oracle.count(surface)
            answer = ask(portal, oracle, surface, clients[client], tool, arguments)
            request_id = (answer.structured or {}).get("request_id")
            if isinstance(request_id, str) and not client.startswith("reader"):
                lab.pools.request_ids.append(request_id)

        run_examples(st.tuples(who, agent_calls(lab.names)), AGENT_INPUTS, one)
        final = portal.call(_call, clients["openclaw"], "docker_list_containers", {"all": True})
    assert final.structured is not None and final.structured["status"] == "succeeded", final.text
    assert set(lab.containers) <= {c["name"] for c in final.structured["result"]["containers"]}
    in_memory.check_logs(oracle, surface)
    lab.check_untouched(surface)
    assert oracle.inputs[surface] >= AGENT_INPUTS
    assert_clean(oracle, surface)


def test_every_operator_tool_survives_hostile_arguments(in_memory: InMemory, lab: FuzzLab, oracle: Oracle) -> None:
    surface, app, portal = "operator_tools", in_memory.app, in_memory.portal
    reads = st.sampled_from([PENDING_URI, PENDING_URI + "/x", "argobox://requests/all", "file:///etc/passwd", "\x1b"])
    calls = st.one_of(operator_calls(), operator_calls(), reads.map(lambda uri: ("@read", {"uri": uri})))
    with ExitStack() as stack:
        clients = {
            "alice": stack.enter_context(
                in_memory.client(build_operator_server(app, OperatorClaim("alice", token=lab.operator_token)))
            ),
            "alice-legacy": stack.enter_context(
                in_memory.client(build_operator_server(app, OperatorClaim("alice", token=lab.operator_token)), "legacy")
            ),
            "impostor": stack.enter_context(
                in_memory.client(build_operator_server(app, OperatorClaim("alice", token="not-the-token")), "legacy")
            ),
        }

        def one(drawn: tuple[str, tuple[str, dict[str, Any]]]) -> None:
            client, (name, raw) = drawn
            tool = resolve(name, lab.pools)
            # An approval only ever names a request that does not exist: the fuzzer must approve nothing.
            arguments = resolve(raw, lab.pools, exact=tool != "approve_request", deepest=CLIENT_DEPTH)
            assume(tool == "@read" or sendable(tool, arguments))
            if client == "alice" and not sendable_as_header(tool):
                client = "alice-legacy"  # (the impostor's client is of the handshake era)
            oracle.count(surface)
            ask(portal, oracle, surface, clients[client], tool, arguments)

        run_examples(st.tuples(st.sampled_from(["alice"] * 4 + ["impostor"]), calls), OPERATOR_INPUTS, one)
        final = portal.call(_call, clients["alice"], "list_requests", {"status": "all", "limit": 5})
    assert final.structured is not None and len(final.structured["requests"]) <= 5, final.text
    in_memory.check_logs(oracle, surface)
    lab.check_untouched(surface)
    assert oracle.inputs[surface] >= OPERATOR_INPUTS
    assert_clean(oracle, surface)


def check_wire_answer(oracle: Oracle, surface: str, body: bytes, shown_input: Any) -> None:
    """A raw answer: checked as text, and as JSON-RPC when it is one (an internal error is a crash)."""
    text = body.decode("utf-8", "replace")
    oracle.check(surface, text, shown_input)
    for line in text.splitlines():
        message = _json_object(line.removeprefix("data: "))
        error = message.get("error") if message is not None else None
        if isinstance(error, dict) and error.get("code") == types.INTERNAL_ERROR:  # pyright: ignore[reportUnknownMemberType]
            oracle.report("crash", surface, f"an internal error: {describe(line)}", shown_input)


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None  # pyright: ignore[reportUnknownVariableType]


def check_process_log(oracle: Oracle, surface: str, log: Path) -> None:
    """A server's own log: no seeded secret, and no traceback (an exception nothing handled)."""
    text = log.read_text(errors="replace")
    oracle.check(f"{surface} log", text, "", shown=False)
    if "Traceback" in text:
        at = text.find("Traceback")
        oracle.report("crash", surface, f"a traceback in the server log: {describe(text[at : at + 3000])}", "")


def test_the_stdio_wire_survives_raw_frames(lab: FuzzLab, oracle: Oracle, portal: BlockingPortal) -> None:
    surface = "stdio"
    with portal.wrap_async_context_manager(stdio_wire(lab)) as wire:

        def one(shape: dict[str, Any]) -> None:
            frame = render(shape, lab.pools)
            oracle.count(surface)
            try:
                answers = portal.call(wire.exchange, frame)
            except TimeoutError:
                oracle.report("hang", surface, "no answer to the next request", frame.body[:300])
                raise
            for answer in answers:
                check_wire_answer(oracle, surface, answer, frame.body[:300])

        run_examples(frame_shapes(lab.names), STDIO_INPUTS, one)
        for late in portal.call(wire.drain):
            check_wire_answer(oracle, surface, late, "a late answer")
        for request_id in sorted(map(str, wire.unanswered)):
            oracle.report("hang", surface, f"request {request_id} was never answered", "")
        normal = {"name": "docker_list_containers", "arguments": {}}
        portal.call(
            wire.send, json.dumps({"jsonrpc": "2.0", "id": "last", "method": "tools/call", "params": normal}).encode()
        )
        final = json.loads(portal.call(wire.receive))
    assert final.get("id") == "last" and final["result"]["structuredContent"]["status"] == "succeeded", final
    check_process_log(oracle, surface, wire.log)
    lab.check_untouched(surface)
    assert oracle.inputs[surface] >= STDIO_INPUTS
    assert_clean(oracle, surface)


HTTP_VARIANTS = ["modern"] * 12 + ["legacy"] * 3 + ["no-token", "bad-token", "no-accept", "text-plain"]
HTTP_VARIANTS += ["wrong-version", "mismatch"]


def test_the_http_daemon_survives_raw_frames(lab: FuzzLab, oracle: Oracle, portal: BlockingPortal) -> None:
    surface = "http"
    daemon_cm = http_daemon(lab.config, listen="127.0.0.1:0")
    with portal.wrap_async_context_manager(daemon_cm) as daemon:
        http = portal.wrap_async_context_manager(httpx2.AsyncClient(timeout=httpx2.Timeout(30)))
        with http as client:
            wire = HttpWire(daemon.url, lab.agent_token, client)
            portal.call(wire.open_session)

            def one(drawn: tuple[str, dict[str, Any]]) -> None:
                variant, shape = drawn
                frame = render(shape, lab.pools)
                oracle.count(surface)
                try:
                    answer = portal.call(wire.post, frame.body, wire.headers(variant, frame.method, frame.name))
                except TimeoutError:
                    oracle.report("hang", surface, "no answer", (variant, frame.body[:300]))
                    return
                if answer.status >= 500:
                    oracle.report("crash", surface, f"HTTP {answer.status}", (variant, frame.body[:300]))
                check_wire_answer(oracle, surface, answer.body, (variant, frame.body[:300]))

            run_examples(st.tuples(st.sampled_from(HTTP_VARIANTS), frame_shapes(lab.names)), HTTP_INPUTS, one)
            portal.call(wire.close_session)
        assert daemon.process.poll() is None, "the daemon stopped"

        async def normal_call() -> types.CallToolResult:
            async with connect(daemon.url, lab.agent_token) as agent:
                return await agent.call_tool("docker_list_containers", {})

        final = portal.call(normal_call)
        log = daemon.log_path
    assert final.structured_content is not None and final.structured_content["status"] == "succeeded"
    check_process_log(oracle, surface, log)
    lab.check_untouched(surface)
    assert oracle.inputs[surface] >= HTTP_INPUTS
    assert_clean(oracle, surface)
