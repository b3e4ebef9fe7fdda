"""The HTTP daemon under a hostile agent: handshake sessions opened until the server is full, and malformed JSON-RPC.

Each test drives a real `argobox serve --http` process on 127.0.0.1 with raw HTTP (and the official client where an
agent behaves).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import types

from tests.http_daemon import (
    ARGOBOX,
    OPENCLAW_TOKEN,
    READER_TOKEN,
    connect,
    http_daemon,
    modern_headers,
    rewrite_in_place,
    sha,
    write_http_config,
)

pytestmark = pytest.mark.anyio

TEST_TIMEOUT_S = 60
DEFAULT_SESSIONS_PER_AGENT = 16
LEGACY = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


def audit(config: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(ARGOBOX), "--config", str(config), "audit", "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return json.loads(done.stdout)


def legacy_headers(token: str, session: str | None = None) -> dict[str, str]:
    headers = {**LEGACY, "Authorization": f"Bearer {token}"}
    if session is not None:
        headers |= {"Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"}
    return headers


async def handshake(http: httpx2.AsyncClient, url: str, token: str) -> httpx2.Response:
    """A raw 2025-11-25 `initialize`, which opens a session; the session is left open."""
    return await http.post(url, json=INITIALIZE, headers=legacy_headers(token))


def assert_session_cap_refusal(response: httpx2.Response, cap: int) -> None:
    assert response.status_code == 429
    body = response.json()
    assert body["id"] == 1 and body["error"]["code"] == types.INVALID_REQUEST
    assert body["error"]["message"].startswith(f"Too many open sessions: agent 'openclaw' already holds {cap}")
    assert body["error"]["data"] == {"limit": "max_sessions_per_agent", "max_sessions_per_agent": cap}


async def test_one_agent_cannot_fill_the_session_table_and_other_agents_are_still_served(tmp_path: Path) -> None:
    config = write_http_config(tmp_path)
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with http_daemon(config) as daemon, httpx2.AsyncClient(timeout=10) as http:
            opened = [await handshake(http, daemon.url, OPENCLAW_TOKEN) for _ in range(DEFAULT_SESSIONS_PER_AGENT)]
            over = [await handshake(http, daemon.url, OPENCLAW_TOKEN) for _ in range(3)]
            other = await handshake(http, daemon.url, READER_TOKEN)
            async with connect(daemon.url, READER_TOKEN, "legacy") as reader:  # the official client, handshake era
                listed = await reader.call_tool("docker_list_containers", {})
            first = opened[0].headers["mcp-session-id"]
            ended = await http.delete(daemon.url, headers=legacy_headers(OPENCLAW_TOKEN, first))
            gone = await http.post(
                daemon.url,
                json={"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}},
                headers=legacy_headers(OPENCLAW_TOKEN, first),
            )
            again = await handshake(http, daemon.url, OPENCLAW_TOKEN)
            log = daemon.log
        trail = audit(config)

    assert [r.status_code for r in opened] == [200] * DEFAULT_SESSIONS_PER_AGENT
    for response in over:
        assert_session_cap_refusal(response, DEFAULT_SESSIONS_PER_AGENT)
    assert other.status_code == 200 and "mcp-session-id" in other.headers
    assert listed.structured_content is not None and listed.structured_content["status"] == "succeeded"
    assert ended.status_code == 200 and gone.status_code == 404  # ended by the client: its slot is free again
    assert again.status_code == 200
    assert "Traceback" not in log
    refused = [e for e in trail if e["event"] == "agent_refused"]
    assert [(e["actor"], e["agent"]) for e in refused] == [("agent:openclaw", "openclaw")] * 2
    assert "refusals_counted_not_recorded_singly" not in refused[0]["detail"]  # the first at once, the rest counted
    assert refused[1]["detail"]["refusals_counted_not_recorded_singly"] == 2
    assert (
        refused[0]["detail"]["reason"]
        == f"agent 'openclaw': session cap: already {DEFAULT_SESSIONS_PER_AGENT} open sessions"
    )
    handshakes = [(e["agent"], e["actor"]) for e in trail if e["event"] == "handshake"]
    assert handshakes.count(("openclaw", "agent:openclaw")) == DEFAULT_SESSIONS_PER_AGENT + 1
    assert handshakes.count(("reader", "agent:reader")) == 2


async def test_every_handshake_counts_against_the_agent_request_budget(tmp_path: Path) -> None:
    config = write_http_config(tmp_path, extra="\n[agents.openclaw.limits]\nrequests_per_minute = 3\n")
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with http_daemon(config) as daemon, httpx2.AsyncClient(timeout=10) as http:
            admitted = [await handshake(http, daemon.url, OPENCLAW_TOKEN) for _ in range(3)]
            over = await handshake(http, daemon.url, OPENCLAW_TOKEN)
            other = await handshake(http, daemon.url, READER_TOKEN)
            async with connect(daemon.url, OPENCLAW_TOKEN) as openclaw:  # the 2026 era: the same budget
                call = await openclaw.call_tool("docker_list_containers", {})
        trail = audit(config)

    assert [r.status_code for r in admitted] == [200, 200, 200]
    assert over.status_code == 429 and int(over.headers["retry-after"]) >= 1
    error = over.json()["error"]
    assert error["code"] == types.INVALID_REQUEST and error["data"]["limit"] == "requests_per_minute"
    assert error["message"].startswith("rate_limited: more than 3 calls in a minute")
    assert other.status_code == 200
    assert call.structured_content is not None and call.structured_content["status"] == "rate_limited"
    limited = [e for e in trail if e["event"] == "rate_limited" and e["agent"] == "openclaw"]
    assert limited and limited[0]["detail"]["limit"] == "requests_per_minute"
    assert len([e for e in trail if e["event"] == "handshake" and e["agent"] == "openclaw"]) == 3


async def test_an_idle_session_frees_its_slot(tmp_path: Path) -> None:
    config = write_http_config(tmp_path, extra="\n[http]\nmax_sessions_per_agent = 2\nsession_idle_seconds = 1\n")
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with http_daemon(config) as daemon, httpx2.AsyncClient(timeout=10) as http:
            opened = [await handshake(http, daemon.url, OPENCLAW_TOKEN) for _ in range(2)]
            over = await handshake(http, daemon.url, OPENCLAW_TOKEN)
            while True:  # until the idle sessions expire (bounded by the deadline above)
                again = await handshake(http, daemon.url, OPENCLAW_TOKEN)
                if again.status_code != 429:
                    break
                await anyio.sleep(0.2)
            expired = await http.post(
                daemon.url,
                json={"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}},
                headers=legacy_headers(OPENCLAW_TOKEN, opened[0].headers["mcp-session-id"]),
            )

    assert [r.status_code for r in opened] == [200, 200]
    assert_session_cap_refusal(over, 2)
    assert again.status_code == 200
    assert expired.status_code == 404


async def test_a_revoked_token_frees_the_sessions_it_held_at_once(tmp_path: Path) -> None:
    config = write_http_config(tmp_path, extra="\n[http]\nmax_sessions_per_agent = 2\n")
    rotated = "openclaw-rotated-token-0123456789"
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with http_daemon(config) as daemon, httpx2.AsyncClient(timeout=10) as http:
            opened = [await handshake(http, daemon.url, OPENCLAW_TOKEN) for _ in range(2)]
            over = await handshake(http, daemon.url, OPENCLAW_TOKEN)
            rewrite_in_place(config, sha(OPENCLAW_TOKEN), sha(rotated))
            await daemon.wait_for_log(r"credentials revoked for openclaw")
            fresh = await handshake(http, daemon.url, rotated)

    assert [r.status_code for r in opened] == [200, 200]
    assert_session_cap_refusal(over, 2)
    assert fresh.status_code == 200


MODERN_META: dict[str, Any] = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}
META = json.dumps(MODERN_META).encode()
DEEP = b"[" * 3000 + b"]" * 3000
MALFORMED: list[tuple[str, bytes, int, int | None]] = [
    # (what, the POST body, the JSON-RPC error code answered, the id answered)
    ("not JSON", b'{"jsonrpc": "2.0", "id": 1, "method": ', types.PARSE_ERROR, None),
    ("3,000 levels deep", DEEP, types.PARSE_ERROR, None),
    (
        "params 3,000 levels deep",
        b'{"jsonrpc": "2.0", "id": 4, "method": "tools/list", "params": {"a": %s}}' % DEEP,
        types.PARSE_ERROR,
        None,
    ),
    (
        "params an array",
        b'{"jsonrpc": "2.0", "id": 5, "method": "tools/list", "params": [1, 2]}',
        types.INVALID_PARAMS,
        5,
    ),
    (
        "a lone surrogate",
        b'{"jsonrpc": "2.0", "id": 6, "method": "tools/list", "params": {"_meta": %s, "x": "\\ud800"}}' % META,
        types.PARSE_ERROR,
        None,
    ),
    (
        "a JSON array",
        b'[{"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {}}]',
        types.INVALID_REQUEST,
        None,
    ),
    ("a broken notification", b'{"jsonrpc": "2.0", "method": 8}', types.INVALID_REQUEST, None),
    (
        "an id that is an object",
        b'{"jsonrpc": "2.0", "id": {"a": 1}, "method": "tools/list"}',
        types.INVALID_REQUEST,
        None,
    ),
    ("an id that is a boolean", b'{"jsonrpc": "2.0", "id": true, "method": "tools/list"}', types.INVALID_REQUEST, None),
    ("an id that is 1.5", b'{"jsonrpc": "2.0", "id": 1.5, "method": "tools/list"}', types.INVALID_REQUEST, None),
    ("a null id", b'{"jsonrpc": "2.0", "id": null, "method": "tools/list"}', types.INVALID_REQUEST, None),
]


@pytest.fixture(scope="module")
def malformed_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_http_config(tmp_path_factory.mktemp("malformed"))


async def test_malformed_json_rpc_gets_the_named_error_in_both_eras_and_the_daemon_keeps_serving(
    malformed_config: Path,
) -> None:
    answers: dict[tuple[str, str], httpx2.Response] = {}
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with http_daemon(malformed_config) as daemon, httpx2.AsyncClient(timeout=10) as http:
            opened = await handshake(http, daemon.url, OPENCLAW_TOKEN)
            session = legacy_headers(OPENCLAW_TOKEN, opened.headers["mcp-session-id"])
            initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            await http.post(daemon.url, json=initialized, headers=session)
            eras = {
                "2026-07-28": modern_headers(OPENCLAW_TOKEN, "tools/list"),
                "2025-11-25 session": session,
                "2025-11-25 opening": legacy_headers(OPENCLAW_TOKEN),
            }
            for name, body, _, _ in MALFORMED:
                for era, headers in eras.items():
                    answers[name, era] = await http.post(daemon.url, content=body, headers=headers)
            listing: dict[str, Any] = {"jsonrpc": "2.0", "id": 9, "method": "tools/list", "params": {}}
            legacy_after = await http.post(daemon.url, json=listing, headers=session)
            async with connect(daemon.url, OPENCLAW_TOKEN) as modern:
                modern_after = await modern.call_tool("docker_list_containers", {})
            log = daemon.log

    for name, _, code, request_id in MALFORMED:
        for era in eras:
            answer = answers[name, era]
            assert answer.status_code == 400, (name, era, answer.text)
            body = answer.json()
            assert body["jsonrpc"] == "2.0" and body["id"] == request_id, (name, era, body)
            assert body["error"]["code"] == code, (name, era, body)
            text = answer.text.lower()
            assert "pydantic" not in text and "validation error" not in text and "input_value" not in text
    assert legacy_after.status_code == 200 and "docker_list_containers" in legacy_after.text
    assert modern_after.structured_content is not None and modern_after.structured_content["status"] == "succeeded"
    assert "Traceback" not in log
