"""`argobox serve --http` as a real process on 127.0.0.1, driven by the official client in both protocol eras."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, types
from mcp.shared.exceptions import MCPError

from tests.conftest import ListChangedInbox
from tests.http_daemon import (
    ARGOBOX,
    MODERN_META,
    OPENCLAW_TOKEN,
    READER_TOKEN,
    connect,
    http_daemon,
    modern_headers,
    rewrite_in_place,
    sha,
    unchanged_mtime,
    write_http_config,
)

pytestmark = pytest.mark.anyio

TEST_TIMEOUT_S = 60
OPENCLAW_TOOLS = [
    "argobox_request_status",
    "docker_inspect_container",
    "docker_list_containers",
    "docker_restart_container",
]
READER_TOOLS = ["argobox_request_status", "docker_list_containers"]


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


def expected_version(mode: str) -> str:
    return "2026-07-28" if mode == "auto" else "2025-11-25"


def audit(config: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(ARGOBOX), "--config", str(config), "audit", "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return json.loads(done.stdout)


async def wait_for_event(db_path: Path, event: str) -> None:
    """Until the store's audit trail holds `event` (read-only; bounded by the caller's deadline)."""
    while True:
        with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
            if db.execute("SELECT 1 FROM audit WHERE event = ?", (event,)).fetchone():
                return
        await anyio.sleep(0.02)


def names(result: types.ListToolsResult) -> list[str]:
    return [t.name for t in result.tools]


async def test_each_token_sees_and_calls_only_its_own_grant(tmp_path: Path, mode: str) -> None:
    config = write_http_config(tmp_path)
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with (
            http_daemon(config) as daemon,
            connect(daemon.url, OPENCLAW_TOKEN, mode) as openclaw,
            connect(daemon.url, READER_TOKEN, mode) as reader,
        ):
            openclaw_tools = names(await openclaw.list_tools())
            reader_tools = names(await reader.list_tools())
            listed = await reader.call_tool("docker_list_containers", {})
            queued = await openclaw.call_tool("docker_restart_container", {"container": "jellyfin"})
            with pytest.raises(MCPError) as hidden:
                await reader.call_tool("docker_restart_container", {"container": "jellyfin"})
            versions = {openclaw.protocol_version, reader.protocol_version}
            capability = reader.server_capabilities.tools if reader.server_capabilities else None

    assert versions == {expected_version(mode)}
    assert openclaw_tools == OPENCLAW_TOOLS and reader_tools == READER_TOOLS
    assert listed.structured_content is not None and listed.structured_content["status"] == "succeeded"
    assert queued.structured_content is not None and queued.structured_content["status"] == "pending_approval"
    assert (
        hidden.value.code == types.INVALID_PARAMS and hidden.value.message == "Unknown tool: docker_restart_container"
    )
    assert capability is not None and capability.list_changed is True
    with anyio.fail_after(30):
        listing = await anyio.run_process([str(ARGOBOX), "--config", str(config), "requests", "--json"])
    requests = {(r["agent"], r["tool"]) for r in json.loads(listing.stdout)}
    assert requests == {("reader", "docker_list_containers"), ("openclaw", "docker_restart_container")}


async def test_missing_or_unknown_token_gets_401_and_is_audited_without_the_token(tmp_path: Path) -> None:
    config = write_http_config(tmp_path)
    wrong = "not-a-configured-token-5f2c9a"
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": MODERN_META}}
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with http_daemon(config) as daemon, httpx2.AsyncClient(timeout=10) as http:
            # A client on this host cannot choose the address the trail records for it. First, so that its refusal
            # is the one recorded (the ones like it that follow are counted into a later record).
            forged = {"X-Forwarded-For": "203.0.113.7", "Forwarded": "for=203.0.113.7"}
            spoofed = await http.post(
                daemon.url, json=body, headers={**modern_headers(wrong, "server/discover"), **forged}
            )
            none = await http.post(daemon.url, json=body, headers=modern_headers(None, "server/discover"))
            unknown = await http.post(daemon.url, json=body, headers=modern_headers(wrong, "server/discover"))
            basic = await http.post(
                daemon.url,
                json=body,
                headers={**modern_headers(None, "server/discover"), "Authorization": "Basic eDp5"},
            )
            get = await http.get(daemon.url, headers={"Authorization": f"Bearer {wrong}"})
            # The official client cannot get past the 401 either (its task groups raise its error in groups).
            with pytest.RaisesGroup(MCPError, flatten_subgroups=True):
                async with connect(daemon.url, wrong, "legacy") as client:
                    await client.list_tools()
            log = daemon.log
        trail = audit(config)

    for response in (none, unknown, basic, get, spoofed):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "resource_metadata" not in response.headers["www-authenticate"]  # no pretend OAuth server
    assert unknown.headers["www-authenticate"] == 'Bearer realm="argobox", error="invalid_token"'
    refused = [e for e in trail if e["event"] == "agent_refused"]
    assert {e["detail"]["reason"] for e in refused} == {"no bearer token", "unknown bearer token"}
    assert all(e["actor"] == "http:127.0.0.1" for e in refused)
    assert "203.0.113.7" not in json.dumps(trail)
    assert wrong not in json.dumps(trail) and wrong not in log
    assert not [e for e in trail if e["event"] in ("received", "decision")]


async def test_nothing_in_the_request_body_changes_who_the_agent_is(tmp_path: Path, mode: str) -> None:
    config = write_http_config(tmp_path)
    impostor = types.Implementation(name="openclaw", version="1")
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with http_daemon(config) as daemon:
            async with connect(daemon.url, READER_TOKEN, mode, client_info=impostor) as reader:
                tools = names(await reader.list_tools())
                with pytest.raises(MCPError):
                    await reader.call_tool(
                        "docker_restart_container",
                        {"container": "jellyfin"},
                        meta={"agent": "openclaw", "token": OPENCLAW_TOKEN},
                    )
            async with httpx2.AsyncClient(timeout=10) as http:  # a raw request stuffed with other identities
                meta = {
                    **MODERN_META,
                    "io.modelcontextprotocol/clientInfo": {"name": "openclaw", "version": "1"},
                    "agent": "openclaw",
                }
                raw = await http.post(
                    daemon.url,
                    headers=modern_headers(READER_TOKEN, "tools/list"),
                    json={
                        "jsonrpc": "2.0",
                        "id": 7,
                        "method": "tools/list",
                        "params": {"_meta": meta, "agent": "openclaw", "token": OPENCLAW_TOKEN},
                    },
                )

    assert tools == READER_TOOLS
    assert raw.status_code == 200
    assert [t["name"] for t in raw.json()["result"]["tools"]] == READER_TOOLS


async def test_a_handshake_session_belongs_to_the_token_that_opened_it(tmp_path: Path) -> None:
    config = write_http_config(tmp_path)
    legacy = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    init: dict[str, Any] = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    listing: dict[str, Any] = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with http_daemon(config) as daemon, httpx2.AsyncClient(timeout=10) as http:
            opened = await http.post(
                daemon.url, json=init, headers={**legacy, "Authorization": f"Bearer {READER_TOKEN}"}
            )
            session = {
                **legacy,
                "Mcp-Session-Id": opened.headers["mcp-session-id"],
                "MCP-Protocol-Version": "2025-11-25",
            }
            await http.post(
                daemon.url,
                json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                headers={**session, "Authorization": f"Bearer {READER_TOKEN}"},
            )
            stolen = await http.post(
                daemon.url, json=listing, headers={**session, "Authorization": f"Bearer {OPENCLAW_TOKEN}"}
            )
            own = await http.post(
                daemon.url, json=listing, headers={**session, "Authorization": f"Bearer {READER_TOKEN}"}
            )

    assert opened.status_code == 200
    assert stolen.status_code == 404
    assert (
        own.status_code == 200 and "docker_list_containers" in own.text and "docker_restart_container" not in own.text
    )


async def test_tools_list_is_sorted_and_never_cacheable(tmp_path: Path) -> None:
    config = write_http_config(tmp_path)
    request: dict[str, Any] = {"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"_meta": MODERN_META}}
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with http_daemon(config) as daemon, httpx2.AsyncClient(timeout=10) as http:
            first = (
                await http.post(daemon.url, json=request, headers=modern_headers(OPENCLAW_TOKEN, "tools/list"))
            ).json()
            second = (
                await http.post(daemon.url, json=request, headers=modern_headers(OPENCLAW_TOKEN, "tools/list"))
            ).json()

    result = first["result"]
    assert [t["name"] for t in result["tools"]] == OPENCLAW_TOOLS
    assert result["ttlMs"] == 0 and result["cacheScope"] == "private"
    assert first == second


async def test_dns_rebinding_protection_stays_on(tmp_path: Path) -> None:
    config = write_http_config(tmp_path)
    request: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": MODERN_META}}
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with http_daemon(config) as daemon, httpx2.AsyncClient(timeout=10) as http:
            headers = modern_headers(OPENCLAW_TOKEN, "server/discover")
            bad_host = await http.post(daemon.url, json=request, headers={**headers, "Host": "evil.example:8765"})
            bad_origin = await http.post(daemon.url, json=request, headers={**headers, "Origin": "http://evil.example"})
            good = await http.post(daemon.url, json=request, headers={**headers, "Origin": "http://localhost:3000"})

    assert bad_host.status_code == 421
    assert bad_origin.status_code == 403
    assert good.status_code == 200


def test_a_non_loopback_address_needs_the_flag_and_is_warned_about(tmp_path: Path) -> None:
    config = write_http_config(tmp_path)
    refused = subprocess.run(
        [str(ARGOBOX), "--config", str(config), "serve", "--http", "192.0.2.10:8765"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,  # the exit status is asserted below
    )
    # 192.0.2.0/24 is TEST-NET-1: not an address of this machine, so even with the flag nothing is bound.
    flagged = subprocess.run(
        [str(ARGOBOX), "--config", str(config), "serve", "--http", "192.0.2.10:8765", "--allow-non-loopback"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert refused.returncode == 2
    assert "not a loopback address" in refused.stderr and "--allow-non-loopback" in refused.stderr
    assert flagged.returncode == 2
    assert "WITHOUT TLS" in flagged.stderr and "cannot listen on 192.0.2.10:8765" in flagged.stderr


async def _next_event(subscription: Any) -> Any:
    return await subscription.__anext__()


async def test_grant_change_in_the_file_reaches_the_affected_agent_only_in_both_eras(tmp_path: Path) -> None:
    config = write_http_config(tmp_path)
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with http_daemon(config) as daemon:
            openclaw_inbox, reader_inbox = ListChangedInbox(), ListChangedInbox()
            async with (
                connect(daemon.url, OPENCLAW_TOKEN, "auto") as openclaw,
                connect(daemon.url, READER_TOKEN, "auto") as reader,
                connect(daemon.url, OPENCLAW_TOKEN, "legacy", message_handler=openclaw_inbox) as openclaw_legacy,
                connect(daemon.url, READER_TOKEN, "legacy", message_handler=reader_inbox) as reader_legacy,
                openclaw.listen(tools_list_changed=True) as openclaw_events,
                reader.listen(tools_list_changed=True) as reader_events,
            ):
                before = names(await openclaw_legacy.list_tools())
                await reader_legacy.list_tools()
                rewrite_in_place(
                    config, '"docker_inspect_container"]', '"docker_inspect_container", "docker_container_logs"]'
                )

                event = await _next_event(openclaw_events)
                await openclaw_inbox.event.wait()
                after_modern = names(await openclaw.list_tools())
                after_legacy = names(await openclaw_legacy.list_tools())
                logs = await openclaw.call_tool("docker_container_logs", {"container": "jellyfin", "tail": 5})
                reader_event = None
                with anyio.move_on_after(1.0):  # anything for the reader would have come with openclaw's
                    reader_event = await _next_event(reader_events)
                reader_after = names(await reader.list_tools())
            await daemon.wait_for_log(r"configuration reloaded \(the file changed\): tools changed for openclaw")

    assert "docker_container_logs" not in before
    assert type(event).__name__ == "ToolsListChanged"
    assert "docker_container_logs" in after_modern and after_modern == after_legacy == sorted(after_modern)
    assert logs.structured_content is not None and logs.structured_content["status"] == "succeeded"
    assert reader_event is None and reader_inbox.changed == 0 and openclaw_inbox.changed == 1
    assert reader_after == READER_TOOLS


async def test_sighup_reloads_and_calls_follow_the_grant_in_force(tmp_path: Path, mode: str) -> None:
    config = write_http_config(tmp_path)
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with http_daemon(config) as daemon, connect(daemon.url, READER_TOKEN, mode) as reader:
            before = await reader.call_tool("docker_list_containers", {})
            # A same-size edit with the modification time put back: the file watcher cannot see it, SIGHUP must.
            with unchanged_mtime(config):
                rewrite_in_place(
                    config,
                    'tools = ["docker_list_containers"]\neffect = "allow"',
                    'tools = ["docker_list_containers"]\neffect = "deny" ',
                )
            daemon.signal(signal.SIGHUP)
            # "tools changed for reader" under the SIGHUP trigger: the signal, not the file watcher, applied it.
            await daemon.wait_for_log(r"configuration reloaded \(SIGHUP\): tools changed for reader")
            after = names(await reader.list_tools())
            with pytest.raises(MCPError) as refused:
                await reader.call_tool("docker_list_containers", {})

    assert before.structured_content is not None and before.structured_content["status"] == "succeeded"
    assert after == ["argobox_request_status"]
    assert refused.value.message == "Unknown tool: docker_list_containers"


async def test_an_invalid_new_config_is_rejected_and_the_old_one_stays_in_force(tmp_path: Path) -> None:
    config = write_http_config(tmp_path)
    good = config.read_text()
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with http_daemon(config) as daemon, connect(daemon.url, READER_TOKEN) as reader:
            config.write_text(good.replace('effect = "allow"', 'effect = "sometimes"', 1))
            await daemon.wait_for_log(
                r"configuration reload \(the file changed\) rejected; the configuration in force "
                r"stays in force: [\s\S]*agents\.openclaw\.rules\[0\]\.effect"
            )
            still = await reader.call_tool("docker_list_containers", {})
            config.write_text(good + "\n[agents.reader.limits]\nrequests_per_minute = 100\n")
            await daemon.wait_for_log(r"configuration reloaded \(the file changed\): tools changed for no agent")
            again = await reader.call_tool("docker_list_containers", {})
        trail = audit(config)

    assert still.structured_content is not None and still.structured_content["status"] == "succeeded"
    assert again.structured_content is not None and again.structured_content["status"] == "succeeded"
    events = [e["event"] for e in trail if e["event"].startswith("config_")]
    assert events == ["config_rejected", "config_reloaded"]


async def test_a_changed_token_is_refused_at_once_and_its_open_stream_ends(tmp_path: Path) -> None:
    config = write_http_config(tmp_path)
    new_token = "reader-rotated-token-0123456789"
    legacy = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "Authorization": f"Bearer {READER_TOKEN}",
    }
    init: dict[str, Any] = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with http_daemon(config) as daemon, httpx2.AsyncClient(timeout=httpx2.Timeout(10, read=None)) as http:
            opened = await http.post(daemon.url, json=init, headers=legacy)
            session = {
                **legacy,
                "Mcp-Session-Id": opened.headers["mcp-session-id"],
                "MCP-Protocol-Version": "2025-11-25",
            }
            await http.post(daemon.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
            async with (
                connect(daemon.url, READER_TOKEN) as reader,
                http.stream("GET", daemon.url, headers={**session, "Accept": "text/event-stream"}) as stream,
            ):
                await reader.list_tools()
                rewrite_in_place(config, sha(READER_TOKEN), sha(new_token))
                await daemon.wait_for_log(r"credentials revoked for reader")
                with anyio.fail_after(10):  # the standalone stream of the revoked token ends
                    async for _ in stream.aiter_raw():
                        pass
                with pytest.raises(MCPError):
                    await reader.list_tools()
            async with connect(daemon.url, new_token) as rotated:
                tools = names(await rotated.list_tools())

    assert stream.status_code == 200
    assert tools == READER_TOOLS


async def test_restart_required_sections_keep_their_running_value(tmp_path: Path) -> None:
    config = write_http_config(tmp_path)
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with http_daemon(config) as daemon, connect(daemon.url, READER_TOKEN) as reader:
            rewrite_in_place(config, 'path = "argobox.db"', 'path = "other.db"')
            await daemon.wait_for_log(r"\[storage\] changed, restart required")
            result = await reader.call_tool("docker_list_containers", {})

    assert result.structured_content is not None and result.structured_content["status"] == "succeeded"
    assert not (tmp_path / "other.db").exists()


SLOW_STOP = ["sh", "-c", 'trap "sleep 2; exit 0" TERM; while :; do sleep 1; done']


@pytest.mark.docker
async def test_sigterm_lets_the_call_in_flight_finish_and_record_its_outcome(
    tmp_path: Path, docker_base_url: str, make_container: Any
) -> None:
    container = make_container(name_prefix="slow", command=SLOW_STOP)
    config = write_http_config(
        tmp_path,
        docker=f'base_url = "{docker_base_url}"',
        extra=f"""
[[agents.openclaw.rules]]
tools = ["docker_restart_container"]
args = {{ container = ["{container.name}"] }}
effect = "allow"
""",
    )
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with http_daemon(config) as daemon, connect(daemon.url, OPENCLAW_TOKEN) as openclaw:
            results: list[types.CallToolResult] = []
            await openclaw.list_tools()  # as agents do; the client then checks results against the schemas it has

            async def call() -> None:
                results.append(await openclaw.call_tool("docker_restart_container", {"container": container.name}))

            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                await wait_for_event(config.parent / "argobox.db", "executing")  # the restart is under way
                daemon.signal(signal.SIGTERM)
            status = await daemon.wait_exit()
        trail = audit(config)

    assert status == 0
    (result,) = results
    assert result.structured_content is not None and result.structured_content["status"] == "succeeded"
    assert "waiting for 1 call in flight" in daemon.log
    events = [e["event"] for e in trail]
    assert events.index("succeeded") < events.index("daemon_stopped")
    assert "interrupted" not in events


async def test_sigterm_with_open_streams_stops_promptly(tmp_path: Path) -> None:
    config = write_http_config(tmp_path)
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with (
            http_daemon(config) as daemon,
            connect(daemon.url, OPENCLAW_TOKEN, "legacy") as legacy,
            connect(daemon.url, READER_TOKEN, "auto") as modern,
            modern.listen(tools_list_changed=True),
        ):
            await legacy.list_tools()
            started = anyio.current_time()
            daemon.signal(signal.SIGTERM)
            with anyio.fail_after(15):
                status = await daemon.wait_exit()
            took = anyio.current_time() - started

    assert status == 0
    assert took < 10
    assert "stopped" in daemon.log and "Traceback" not in daemon.log


def test_serve_help_shows_the_http_options() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "argobox", "serve", "--help"], capture_output=True, text=True, timeout=30, check=True
    )
    assert "--http" in done.stdout and "--allow-non-loopback" in done.stdout


async def test_the_official_client_without_a_token_is_refused(tmp_path: Path) -> None:
    config = write_http_config(tmp_path)
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with http_daemon(config) as daemon:
            with pytest.RaisesGroup(MCPError, flatten_subgroups=True):
                async with Client(daemon.url) as client:  # a bare URL: no Authorization header at all
                    await client.list_tools()
