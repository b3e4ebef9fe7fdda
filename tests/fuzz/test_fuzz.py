"""A property-based fuzzer: every agent tool (the runbooks and the Docker host argument included), every operator
tool (in memory and over the console's `/mcp`) and both wire paths (stdio, HTTP) get generated arguments and raw
JSON-RPC, over 10,000 inputs a run, against a real Docker engine and a real Home Assistant.

For every answer: it came (no crash, no hang), it carries no traceback or source path, and no seeded secret (the Home
Assistant token and the agent's and operator's tokens in the environment, a container's environment values, the
secrets in a runbook's report, secrets under secret-looking argument keys). After each surface: the store's files
(database and WAL) and `argobox audit export` hold no seeded secret, the engine reports no event for the lab's
containers, Home Assistant's states did not change, no runbook left a mark, no request for a change was approved, and
a normal call still succeeds.

Runs are repeatable (derandomized, no example database) and bounded: the in-memory `Client(server)` carries the
bulk; the HTTP paths get a smaller share. Inputs that once failed run first, as seeds (`tests.fuzz.seeds`). With
ARGOBOX_FIGURES set, the run's figures are added there (`tests.figures.write_figures`): {"inputs": N, "leaks": 0,
"crashes": 0, "changes": 0, "surfaces": {...}}.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import docker
import httpx2
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import assume
from hypothesis import strategies as st
from mcp import Client, types

from argobox.server.app import open_app
from argobox.server.config.hosts import tool_name
from argobox.server.config.model import load_config
from argobox.server.mediation.agent_calls import call_tool as mediate
from argobox.server.mediation.operators import OperatorClaim
from argobox.server.mediation.tools import TOOLS
from argobox.server.transport.agent import build_agent_server
from argobox.server.transport.operator import PENDING_URI, build_operator_server
from tests.figures import write_figures
from tests.fuzz.calls import (
    CapturedLogs,
    InMemory,
    assert_clean,
    call,
    check_process_log,
    check_wire_answer,
    over_http,
    run_examples,
    sendable,
    sendable_as_header,
)
from tests.fuzz.console import serving_console
from tests.fuzz.frames import frame_shapes, render
from tests.fuzz.hostile import OPERATOR_TOOLS, Lab, Pools, agent_calls, operator_calls, resolve
from tests.fuzz.lab import FuzzLab, make_containers, pem_key, read_states, wait_for_logs, write_config
from tests.fuzz.oracle import Oracle
from tests.fuzz.runbooks import DOCKER_HOSTS, write_runbook_files
from tests.fuzz.seeds import CONSOLE_SEEDS, LOCK, OPERATOR_SEEDS, agent_seeds, wire_seeds
from tests.fuzz.wire import HttpWire, stdio_wire
from tests.http_daemon import connect, http_daemon

pytestmark = [pytest.mark.docker, pytest.mark.homeassistant]

AGENT_INPUTS = 6_200
OPERATOR_INPUTS = 2_800
CONSOLE_INPUTS = 400
STDIO_INPUTS = 300
HTTP_INPUTS = 300
PROMISED_INPUTS = 10_000
"""Inputs a full run tries at least (the README and docs/security.md say so); each surface's count is a floor (the
seeds come on top). The in-memory paths carry the bulk: an input there costs a few milliseconds, one over a wire
path about three times as much."""
CLIENT_DEPTH = 240
"""The deepest arguments the SDK's own client can send (it refuses to serialise 255 levels)."""
HTTP_VARIANTS = (
    ["modern"] * 12
    + ["legacy"] * 3
    + ["no-token", "bad-token", "no-accept", "text-plain"]
    + [
        "wrong-version",
        "mismatch",
    ]
)


@pytest.fixture(scope="module")
def oracle() -> Iterator[Oracle]:
    found = Oracle()
    yield found
    write_figures(found.figures())


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
    tokens = {who: secrets.token_urlsafe(32) for who in ("agent", "operator", "viewer")}
    agent_token, operator_token = tokens["agent"], tokens["operator"]
    containers = make_containers(docker_client, docker_session_id, seeded)
    web, vault, idle = sorted(containers, key=lambda n: ("-web-" not in n, "-vault-" not in n))
    portal.call(wait_for_logs, docker_client, vault, b"backup marker done")
    folder = tmp_path_factory.mktemp("fuzz")
    extra, in_report = write_runbook_files(folder, ha_token)
    config = write_config(folder, docker_url=docker_base_url, home_url=ha_url, vault=vault, tokens=tokens, extra=extra)
    env = {"ARGOBOX_HA_TOKEN": ha_token, "ARGOBOX_AGENT_TOKEN": agent_token, "ARGOBOX_OPERATOR_TOKEN": operator_token}
    in_containers = ((f"the container's {k}", v) for k, v in seeded.items() if k != "SERVICE_URL")
    for where, value in (*env.items(), *in_containers, *in_report.items(), ("the viewer's token", tokens["viewer"])):
        oracle.seed(where, value)
    entities = (*sorted(read_states(ha_url, ha_token)), "light.nowhere", "lock.back_door")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        names = Lab(
            containers=(web, vault, idle, "argobox-fuzz-missing", "jellyfin"),
            entities=entities,
            docker_hosts=DOCKER_HOSTS,
            runbooks=tuple(sorted(load_config(config).runbooks.items())),
        )
        shared = FuzzLab(
            config=config,
            names=names,
            pools=Pools(request_ids=[], configured_secret=ha_token),
            oracle=oracle,
            env=env,
            agent_token=agent_token,
            operator_token=operator_token,
            viewer_token=tokens["viewer"],
            containers=containers,
            docker_url=docker_base_url,
            home=(ha_url, ha_token),
        )
        shared.states = read_states(ha_url, ha_token)
        yield shared


@pytest.fixture(scope="module")
def in_memory(lab: FuzzLab, portal: BlockingPortal) -> Iterator[InMemory]:
    """The lab's App, opened once in the portal's event loop, with the server's log records captured."""
    argobox_logger = logging.getLogger("argobox")
    level = argobox_logger.level
    with portal.wrap_async_context_manager(open_app(load_config(lab.config))) as app:
        logs = CapturedLogs(app.redactor)
        logging.getLogger().addHandler(logs)
        argobox_logger.setLevel(logging.INFO)
        try:
            yield InMemory(portal, app, logs)
        finally:
            logging.getLogger().removeHandler(logs)
            argobox_logger.setLevel(level)


def test_a_full_run_tries_the_promised_number_of_inputs() -> None:
    surfaces = (AGENT_INPUTS, OPERATOR_INPUTS, CONSOLE_INPUTS, STDIO_INPUTS, HTTP_INPUTS)
    assert sum(surfaces) >= PROMISED_INPUTS


def test_the_fuzzer_knows_every_tool(in_memory: InMemory, lab: FuzzLab) -> None:
    operator = build_operator_server(in_memory.app, OperatorClaim("alice", token=lab.operator_token))
    with in_memory.client(build_agent_server(in_memory.app, "openclaw")) as agent, in_memory.client(operator) as op:
        agent_tools = {t.name for t in in_memory.portal.call(agent.list_tools).tools}
        operator_tools = {t.name for t in in_memory.portal.call(op.list_tools).tools}
    assert agent_tools == set(TOOLS) | {tool_name(name) for name, _ in lab.names.runbooks}
    assert operator_tools == set(OPERATOR_TOOLS)


def test_every_agent_tool_survives_hostile_arguments(in_memory: InMemory, lab: FuzzLab, oracle: Oracle) -> None:
    surface, app = "agent_tools", in_memory.app
    reached: dict[str, set[str]] = defaultdict(set)
    every_tool = {*TOOLS, *(tool_name(name) for name, _ in lab.names.runbooks)}
    with ExitStack() as stack:
        clients = {
            name + suffix: stack.enter_context(in_memory.client(build_agent_server(app, name), mode))
            for name in ("openclaw", "reader")
            for suffix, mode in (("", "auto"), ("-legacy", "legacy"))
        }

        def one(drawn: tuple[str, tuple[Any, dict[str, Any]]]) -> None:
            client, (name, raw) = drawn
            tool, arguments = resolve(name, lab.pools), resolve(raw, lab.pools, deepest=CLIENT_DEPTH)
            assume(sendable(tool, arguments))
            if not sendable_as_header(tool):
                client = client.removesuffix("-legacy") + "-legacy"  # a 2026-era client puts the name in a header
            oracle.count(surface)
            answer = in_memory.ask(oracle, surface, clients[client], tool, arguments)
            status = (answer.structured or {}).get("status")
            reached[tool if tool in every_tool else "(not a tool)"].add(str(status))
            if isinstance(request_id := (answer.structured or {}).get("request_id"), str) and client[0] == "o":
                lab.pools.request_ids.append(request_id)

        who = st.sampled_from(["openclaw"] * 5 + ["openclaw-legacy"] * 2 + ["reader"])
        run_examples(st.tuples(who, agent_calls(lab.names)), AGENT_INPUTS, one, agent_seeds(lab.names))
        final = in_memory.portal.call(call, clients["openclaw"], "docker_list_containers", {"all": True})
    assert final.structured is not None and final.structured["status"] == "succeeded", final.text
    assert set(lab.containers) <= {c["name"] for c in final.structured["result"]["containers"]}
    in_memory.check_logs(oracle, surface)
    lab.check_untouched(surface)
    assert oracle.inputs[surface] >= AGENT_INPUTS
    assert_clean(oracle, surface)
    # The fuzzer went past argument checking into every tool, and reached every kind of answer.
    assert not [tool for tool in every_tool if not reached[tool] - {"invalid_arguments", "None"}], dict(reached)
    statuses = {status for seen in reached.values() for status in seen}
    assert {"succeeded", "pending_approval", "denied", "failed", "invalid_arguments", "rate_limited"} <= statuses


def test_every_operator_tool_survives_hostile_arguments(in_memory: InMemory, lab: FuzzLab, oracle: Oracle) -> None:
    surface, app = "operator_tools", in_memory.app
    reads = st.sampled_from([PENDING_URI, PENDING_URI + "/x", "argobox://requests/all", "file:///etc/passwd", "\x1b"])
    calls = st.one_of(operator_calls(), operator_calls(), reads.map(lambda uri: ("@read", {"uri": uri})))
    answered: dict[str, set[bool]] = defaultdict(set)
    for target in ("lock.front_door", "light.kitchen", "input_boolean.guest_mode"):  # requests of its own to decide
        queued = in_memory.portal.call(mediate, app, "openclaw", "ha_call_service", {**LOCK, "entity_id": target})
        assert queued.request_id is not None, queued
        lab.pools.request_ids.append(queued.request_id)
    alice, impostor = OperatorClaim("alice", token=lab.operator_token), OperatorClaim("alice", token="not-it")
    with ExitStack() as stack:
        clients = {
            "alice": stack.enter_context(in_memory.client(build_operator_server(app, alice))),
            "alice-legacy": stack.enter_context(in_memory.client(build_operator_server(app, alice), "legacy")),
            "impostor": stack.enter_context(in_memory.client(build_operator_server(app, impostor), "legacy")),
        }

        def one(drawn: tuple[str, tuple[Any, dict[str, Any]]]) -> None:
            client, (name, raw) = drawn
            tool = resolve(name, lab.pools)
            # An approval only ever names a request that does not exist: the fuzzer must approve nothing.
            arguments = resolve(raw, lab.pools, exact=tool != "approve_request", deepest=CLIENT_DEPTH)
            assume(tool == "@read" or sendable(tool, arguments))
            if client == "alice" and not sendable_as_header(tool):
                client = "alice-legacy"
            oracle.count(surface)
            answer = in_memory.ask(oracle, surface, clients[client], tool, arguments)
            answered[tool].add(answer.is_error)

        who = st.sampled_from(["alice"] * 4 + ["impostor"])
        run_examples(st.tuples(who, calls), OPERATOR_INPUTS, one, OPERATOR_SEEDS)
        final = in_memory.portal.call(call, clients["alice"], "list_requests", {"status": "all", "limit": 3})
    assert final.structured is not None and len(final.structured["requests"]) == 3, final.text
    in_memory.check_logs(oracle, surface)
    lab.check_untouched(surface)
    assert oracle.inputs[surface] >= OPERATOR_INPUTS
    assert_clean(oracle, surface)
    assert answered["approve_request"] == {True}  # refused, every one of them
    assert all(False in answered[tool] for tool in OPERATOR_TOOLS if tool != "approve_request"), dict(answered)


def test_the_console_operator_endpoint_survives_hostile_calls(
    in_memory: InMemory, lab: FuzzLab, oracle: Oracle
) -> None:
    """The operator tools over the console's `/mcp`, as an approver (both protocol eras) and as a viewer; and the
    endpoint refuses an agent's token, no token and another scheme."""
    surface, portal = "console_mcp", in_memory.portal
    answered: dict[tuple[str, str], set[bool]] = defaultdict(set)
    with ExitStack() as stack:
        url = stack.enter_context(portal.wrap_async_context_manager(serving_console(in_memory.app))) + "mcp"

        def opened(token: str, mode: str) -> Client:
            client = stack.enter_context(portal.wrap_async_context_manager(connect(url, token, mode)))
            portal.call(client.list_tools)  # so that the client checks each answer against the tool's schema
            return client

        clients = {
            "alice": opened(lab.operator_token, "auto"),
            "alice-legacy": opened(lab.operator_token, "legacy"),
            "vera": opened(lab.viewer_token, "legacy"),
        }

        def one(drawn: tuple[str, tuple[Any, dict[str, Any]]]) -> None:
            client, (name, raw) = drawn
            tool = over_http(resolve(name, lab.pools))
            arguments = over_http(resolve(raw, lab.pools, exact=tool != "approve_request", deepest=CLIENT_DEPTH))
            assume(sendable(tool, arguments))
            if client == "alice" and not sendable_as_header(tool):
                client = "alice-legacy"
            oracle.count(surface)
            answer = in_memory.ask(oracle, surface, clients[client], tool, arguments)
            answered[client.removesuffix("-legacy"), tool].add(answer.is_error)

        who = st.sampled_from(["alice", "alice", "alice-legacy", "vera"])
        run_examples(st.tuples(who, operator_calls()), CONSOLE_INPUTS, one, CONSOLE_SEEDS)
        final = portal.call(call, clients["alice"], "list_requests", {"status": "all", "limit": 3})
        refusals = [portal.call(post_unauthorized, url, header) for header in unauthorized_headers(lab)]
    oracle.count(surface, len(refusals))
    for _, body in refusals:
        oracle.check(surface, body, "a request without an operator's token")
    assert [status for status, _ in refusals] == [401] * len(refusals), refusals
    assert final.structured is not None and len(final.structured["requests"]) == 3, final.text
    in_memory.check_logs(oracle, surface)
    lab.check_untouched(surface)
    assert oracle.inputs[surface] >= CONSOLE_INPUTS
    assert_clean(oracle, surface)
    assert answered["alice", "approve_request"] == {True} and answered["vera", "approve_request"] == {True}
    assert answered["vera", "deny_request"] == {True}  # a viewer decides nothing, over HTTP too
    assert False in answered["vera", "list_requests"] and False in answered["alice", "explain_request"], answered


def unauthorized_headers(lab: FuzzLab) -> list[dict[str, str]]:
    """Requests the console's `/mcp` must refuse: no token, an agent's token, another scheme, a near miss."""
    return [
        {},
        {"Authorization": f"Bearer {lab.agent_token}"},
        {"Authorization": f"Basic {lab.operator_token}"},
        {"Authorization": f"Bearer {lab.operator_token[:-1]}"},
    ]


async def post_unauthorized(url: str, headers: dict[str, str]) -> tuple[int, str]:
    """One `initialize` POST with `headers`: the status and the body."""
    initialize: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(30)) as http:
        answer = await http.post(url, json=initialize, headers={"Accept": "application/json", **headers})
    return answer.status_code, answer.text


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

        run_examples(frame_shapes(lab.names), STDIO_INPUTS, one, wire_seeds())
        for late in portal.call(wire.drain):
            check_wire_answer(oracle, surface, late, "a late answer")
        for request_id in sorted(map(str, wire.unanswered)):
            oracle.report("hang", surface, f"request {request_id} was never answered", "")
        normal: dict[str, Any] = {"name": "docker_list_containers", "arguments": {}}
        portal.call(
            wire.send, json.dumps({"jsonrpc": "2.0", "id": "last", "method": "tools/call", "params": normal}).encode()
        )
        final = json.loads(portal.call(wire.receive))
    assert final.get("id") == "last" and final["result"]["structuredContent"]["status"] == "succeeded", final
    check_process_log(oracle, surface, wire.log)
    lab.check_untouched(surface)
    assert oracle.inputs[surface] >= STDIO_INPUTS
    assert_clean(oracle, surface)


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

            seeds = [("modern", shape) for shape in wire_seeds()]
            run_examples(st.tuples(st.sampled_from(HTTP_VARIANTS), frame_shapes(lab.names)), HTTP_INPUTS, one, seeds)
            portal.call(wire.close_session)
        assert daemon.process.returncode is None, "the daemon stopped"

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
