"""The web console as a real `argobox console` process, checked at the HTTP level (sessions, CSRF, origins, hosts,
sign-in, roles) and through the official MCP client at its `/mcp`; the daemon serving agents and the console on
two listeners; `argobox token new --operator`."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import docker
import httpx2
import pytest
from docker.models.containers import Container

from tests.conftest import first_text
from tests.console_support import (
    ALICE_TOKEN,
    BOB_TOKEN,
    VERA_TOKEN,
    Process,
    argobox_process,
    audit_json,
    csrf_of,
    engine_events,
    form_headers,
    run_argobox,
    sign_in,
    write_console_config,
)
from tests.http_daemon import ARGOBOX, OPENCLAW_TOKEN, connect

pytestmark = [pytest.mark.anyio, pytest.mark.docker]

TIMEOUT_S = 60


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory, docker_base_url: str) -> Path:
    olga = '\n[[operators]]\nname = "olga"\n'  # gets a token from `argobox token new --operator` in a test
    return write_console_config(tmp_path_factory.mktemp("console"), docker_base_url, extra=olga)


@pytest.fixture(scope="module")
async def console(config: Path) -> AsyncIterator[Process]:
    async with argobox_process(config, "console") as running:
        yield running


@pytest.fixture
def base(console: Process) -> str:
    return console.urls["console"]


def client(**kwargs: Any) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(timeout=30, follow_redirects=False, **kwargs)


async def queue_restart(config: Path, container: Container) -> str:
    """The agent asks for a restart through the real agent server (stdio here) and gets a pending request."""
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(
        command=str(ARGOBOX),
        args=["--config", str(config), "serve", "--agent", "openclaw"],
        env={"ARGOBOX_AGENT_TOKEN": OPENCLAW_TOKEN},
    )
    async with Client(params) as agent:
        queued = await agent.call_tool("docker_restart_container", {"container": container.name})
    assert queued.structured_content is not None and queued.structured_content["status"] == "pending_approval"
    return str(queued.structured_content["request_id"])


def events(config: Path, name: str) -> list[dict[str, Any]]:
    return [e for e in audit_json(config) if e["event"] == name]


async def test_without_a_session_pages_redirect_to_sign_in_and_endpoints_answer_401(base: str, config: Path) -> None:
    async with client() as http:
        pages = {
            path: await http.get(f"{base}{path}")
            for path in ("", "history", "audit", "budgets", "requests/abc", "audit/export")
        }
        polled = await http.get(f"{base}pending/list")
        status = await http.get(f"{base}requests/abc/status")
        posted = await http.post(f"{base}requests/abc/approve", data={"csrf": "x"}, headers=form_headers(base))
    async with client(cookies={"argobox_session": "not-a-session"}) as http:
        stale_cookie = await http.get(f"{base}history")

    assert {path: r.status_code for path, r in pages.items()} == dict.fromkeys(pages, 303)
    assert all(r.headers["location"] == "/signin" for r in pages.values())
    assert (polled.status_code, status.status_code, posted.status_code) == (401, 401, 401)
    assert stale_cookie.status_code == 303
    refused = [e for e in events(config, "operator_refused") if e["actor"] == "console:127.0.0.1"]
    assert refused and refused[0]["detail"]["reason"].startswith("no live session")  # the rest are counted


async def test_pages_set_strict_headers_and_a_strict_session_cookie(base: str) -> None:
    async with client() as http:
        signed = await sign_in(http, base, "alice", ALICE_TOKEN)
        page = await http.get(base)
        static = await http.get(f"{base}static/console.js")

    cookie = signed.headers["set-cookie"]
    assert signed.status_code == 303 and signed.headers["location"] == "/"
    assert cookie.startswith("argobox_session=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # public_url is not https here (see the unit tests for https)
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["referrer-policy"] == "same-origin"
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    assert static.status_code == 200 and "cache-control" not in static.headers
    assert "<h1>Pending</h1>" in page.text


async def test_state_changes_without_csrf_or_from_elsewhere_are_refused_and_audited(
    base: str,
    config: Path,
    make_container: Callable[..., Container],
) -> None:
    web = make_container("console")
    request_id = await queue_restart(config, web)
    async with client() as http:
        await sign_in(http, base, "alice", ALICE_TOKEN)
        page = await http.get(f"{base}requests/{request_id}")
        token = csrf_of(page.text)
        url = f"{base}requests/{request_id}/approve"
        no_csrf = await http.post(url, data={"note": "x"}, headers=form_headers(base))
        wrong_csrf = await http.post(url, data={"csrf": token + "x"}, headers=form_headers(base))
        cross_origin = await http.post(url, data={"csrf": token}, headers={"Origin": "http://evil.example"})
        cross_site = await http.post(url, data={"csrf": token}, headers={"Sec-Fetch-Site": "cross-site"})
        no_origin = await http.post(url, data={"csrf": token})
        bad_host = await http.get(base, headers={"Host": "evil.example"})
        too_big = await http.post(url, content=b"csrf=" + b"x" * 70_000, headers=form_headers(base))
        after = await http.get(f"{base}requests/{request_id}/status")

    assert [r.status_code for r in (no_csrf, wrong_csrf, cross_origin, cross_site, no_origin)] == [403] * 5
    assert "security token" in no_csrf.text
    assert bad_host.status_code == 421 and too_big.status_code == 413
    assert after.json()["status"] == "pending_approval"
    reasons = [e["detail"]["reason"] for e in events(config, "operator_refused")]
    assert "the CSRF token is missing or wrong" in reasons
    assert any(r.startswith("cross-site: Origin 'http://evil.example'") for r in reasons)
    assert any(r.startswith("cross-site: Sec-Fetch-Site is 'cross-site'") for r in reasons)


async def test_only_operators_sign_in_each_with_its_own_token_and_no_token_is_audited(
    base: str,
    config: Path,
) -> None:
    attempts = [
        ("alice", OPENCLAW_TOKEN),
        ("openclaw", OPENCLAW_TOKEN),
        ("nick", ""),
        ("nick", ALICE_TOKEN),
        ("alice", BOB_TOKEN),
        ("nobody", ALICE_TOKEN),
    ]
    async with client(transport=httpx2.AsyncHTTPTransport(local_address="127.0.0.3")) as http:
        answers = [await sign_in(http, base, name, token) for name, token in attempts[:4]]
    async with client(transport=httpx2.AsyncHTTPTransport(local_address="127.0.0.4")) as http:
        answers += [await sign_in(http, base, name, token) for name, token in attempts[4:]]

    assert [a.status_code for a in answers] == [401] * len(attempts)
    assert all("set-cookie" not in a.headers or "argobox_session" not in a.headers["set-cookie"] for a in answers)
    # Each refused sign-in is recorded by ArgoBox's `authorize`, with the client address; nick's second attempt
    # repeats his first (same address, same reason): counted into a later record, not recorded singly.
    refused = [e for e in events(config, "operator_refused") if e["detail"].get("remote") in ("127.0.0.3", "127.0.0.4")]
    assert [(e["actor"], e["detail"]["remote"]) for e in refused] == [
        ("operator:alice", "127.0.0.3"),
        ("operator:openclaw", "127.0.0.3"),
        ("operator:nick", "127.0.0.3"),
        ("operator:alice", "127.0.0.4"),
        ("operator:nobody", "127.0.0.4"),
    ]
    assert all(e["detail"]["channel"] == "console" and e["detail"]["action"] == "view" for e in refused)
    reasons = " | ".join(e["detail"]["reason"] for e in refused)
    assert "'openclaw' is an agent" in reasons
    assert "operator 'nick' has no token_sha256" in reasons
    assert "the token shown does not match operator 'alice'" in reasons
    assert "'nobody' is not a configured operator" in reasons
    trail = run_argobox(config, "audit", "export").stdout
    for token in (ALICE_TOKEN, BOB_TOKEN, OPENCLAW_TOKEN):
        assert token not in trail


async def test_sign_in_attempts_are_limited_per_client_address(base: str, config: Path) -> None:
    async with client(transport=httpx2.AsyncHTTPTransport(local_address="127.0.0.2")) as http:
        failures = [await sign_in(http, base, "alice", "wrong-token") for _ in range(5)]
        right_but_limited = await sign_in(http, base, "alice", ALICE_TOKEN)
    async with client(transport=httpx2.AsyncHTTPTransport(local_address="127.0.0.5")) as http:
        elsewhere = await sign_in(http, base, "alice", ALICE_TOKEN)

    assert [f.status_code for f in failures] == [401] * 5
    assert right_but_limited.status_code == 429 and int(right_but_limited.headers["retry-after"]) > 0
    assert elsewhere.status_code == 303
    refused = events(config, "operator_refused")
    limited = [
        e for e in refused if e["actor"] == "console:127.0.0.2" and e["detail"]["reason"] == "too many failed sign-ins"
    ]
    assert len(limited) == 1
    # The five wrong tokens reached `authorize`, which recorded the first and counts the other four (recorded with
    # the next refusal like them, or when the console stops); the limited attempt never reached it.
    checked = [e for e in refused if e["detail"].get("remote") == "127.0.0.2"]
    assert [e["actor"] for e in checked] == ["operator:alice"]


async def test_signing_out_ends_the_session_on_the_server(base: str, config: Path) -> None:
    async with client() as http:
        await sign_in(http, base, "alice", ALICE_TOKEN)
        cookie = http.cookies["argobox_session"]
        page = await http.get(base)
        out = await http.post(f"{base}signout", data={"csrf": csrf_of(page.text)}, headers=form_headers(base))
    async with client(cookies={"argobox_session": cookie}) as replay:
        old = await replay.get(base)
        poll = await replay.get(f"{base}pending/list")
        late_form = await replay.post(
            f"{base}requests/abc/approve", data={"csrf": "x"}, headers={**form_headers(base), "Accept": "text/html"}
        )

    assert out.status_code == 303 and out.headers["location"] == "/signin"
    assert "Max-Age=0" in out.headers["set-cookie"]
    assert old.status_code == 303 and old.headers["location"] == "/signin"
    assert poll.status_code == 401
    assert late_form.status_code == 401 and "Your session has ended" in late_form.text
    assert any(e["actor"] == "operator:alice" for e in events(config, "console_signed_out"))


async def test_a_viewer_reads_everything_but_every_decision_is_refused(
    base: str,
    config: Path,
    make_container: Callable[..., Container],
) -> None:
    web = make_container("console")
    request_id = await queue_restart(config, web)
    async with client() as http:
        await sign_in(http, base, "vera", VERA_TOKEN)
        page = await http.get(f"{base}requests/{request_id}")
        token = csrf_of(page.text)
        approve = await http.post(
            f"{base}requests/{request_id}/approve", data={"csrf": token}, headers=form_headers(base)
        )
        deny = await http.post(
            f"{base}requests/{request_id}/deny", data={"csrf": token, "reason": "no"}, headers=form_headers(base)
        )
        reset = await http.post(f"{base}budgets/openclaw/reset", data={"csrf": token}, headers=form_headers(base))
        pages = [await http.get(f"{base}{p}") for p in ("", "history", "audit", "budgets")]
        status = await http.get(f"{base}requests/{request_id}/status")
    cli = run_argobox(
        config, "approve", request_id, "--as", "vera", env={**os.environ, "ARGOBOX_OPERATOR_TOKEN": VERA_TOKEN}
    )

    assert page.status_code == 200 and "restart container" in page.text
    assert ">Approve</button>" not in page.text and ">Deny</button>" not in page.text
    assert [r.status_code for r in (approve, deny, reset)] == [403, 403, 403]
    assert all(p.status_code == 200 for p in pages) and ">Reset</button>" not in pages[3].text
    assert status.json()["status"] == "pending_approval"
    assert cli.returncode == 1 and "is a viewer" in cli.stderr
    refused = [e for e in events(config, "operator_refused") if e["actor"] == "operator:vera"]
    assert refused and all("is a viewer" in e["detail"]["reason"] for e in refused)
    # Recorded by `authorize`, coalesced: the console's approve, then the CLI's (another channel). The console's
    # deny repeats its approve's refusal, so it is counted (into a later record), not recorded singly.
    on_request = [(e["detail"]["channel"], e["detail"]["action"]) for e in refused if e["request_id"] == request_id]
    assert on_request == [("console", "decide"), ("cli", "decide")]


async def test_approving_from_a_page_left_open_until_the_request_expired_says_too_late_and_runs_nothing(
    tmp_path: Path,
    docker_base_url: str,
    make_container: Callable[..., Container],
    docker_client: docker.DockerClient,
) -> None:
    config = write_console_config(tmp_path, docker_base_url)
    config.write_text(config.read_text().replace("ttl_seconds = 600", "ttl_seconds = 10"))  # the least allowed
    web = make_container("console")
    t0 = time.time()
    async with argobox_process(config, "console") as running, client() as http:
        base = running.urls["console"]
        request_id = await queue_restart(config, web)
        await sign_in(http, base, "alice", ALICE_TOKEN)
        page = await http.get(f"{base}requests/{request_id}")  # the page, open while the request is pending
        with anyio.fail_after(TIMEOUT_S):  # until ArgoBox itself says it expired (the CLI records the expiry)
            while True:
                shown = json.loads(run_argobox(config, "show", request_id, "--json").stdout)
                if shown["status"] == "expired":
                    break
                await anyio.sleep(0.5)
        posted = await http.post(
            f"{base}requests/{request_id}/approve",
            data={"csrf": csrf_of(page.text), "note": "too late?"},
            headers=form_headers(base),
        )
        after = await http.get(f"{base}requests/{request_id}")
    trail = [e["event"] for e in audit_json(config) if e["request_id"] == request_id]

    assert ">Approve</button>" in page.text  # it was pending when the page was read
    assert posted.status_code == 303 and posted.headers["location"] == f"/requests/{request_id}"
    assert after.status_code == 200
    assert f"Too late: request {request_id} expired at " in after.text and "Nothing was done." in after.text
    assert ">Approve</button>" not in after.text
    assert "expired" in trail and not {"approved", "executing", "succeeded", "failed"} & set(trail)
    assert engine_events(docker_client, str(web.id), t0, "restart") == []


async def test_operator_tools_over_http_take_the_operator_token_and_apply_roles(
    base: str,
    config: Path,
    make_container: Callable[..., Container],
    docker_client: docker.DockerClient,
) -> None:
    web = make_container("console")
    t0 = time.time()
    request_id = await queue_restart(config, web)
    url = f"{base}mcp"
    with anyio.fail_after(TIMEOUT_S):
        async with connect(url, VERA_TOKEN) as viewer:
            viewer_tools = sorted(t.name for t in (await viewer.list_tools()).tools)
            listed = await viewer.call_tool("list_requests", {})
            refused = await viewer.call_tool("approve_request", {"request_id": request_id})
        async with connect(url, ALICE_TOKEN, "legacy") as alice:
            alice_tools = sorted(t.name for t in (await alice.list_tools()).tools)
            approved = await alice.call_tool("approve_request", {"request_id": request_id, "note": "over http"})
        async with httpx2.AsyncClient(timeout=30) as http:
            as_agent = await http.post(url, headers={"Authorization": f"Bearer {OPENCLAW_TOKEN}"}, json={})
            anonymous = await http.post(url, json={})

    assert "approve_request" in alice_tools and "deny_request" in alice_tools
    assert set(viewer_tools) == set(alice_tools) - {"approve_request", "deny_request"}
    assert listed.structured_content is not None
    assert request_id in [r["id"] for r in listed.structured_content["requests"]]
    assert refused.is_error is True and "is a viewer" in first_text(refused)
    assert approved.is_error is False and approved.structured_content is not None
    assert approved.structured_content["request"]["status"] == "succeeded"
    assert approved.structured_content["request"]["decided_by"] == "alice"
    assert len(engine_events(docker_client, str(web.id), t0, "restart")) == 1
    assert (as_agent.status_code, anonymous.status_code) == (401, 401)
    assert "agent's token" in as_agent.json()["error_description"]
    over_mcp = [e for e in events(config, "operator_refused") if e["detail"]["channel"] == "mcp-http"]
    assert {(e["actor"], e["detail"]["action"]) for e in over_mcp} >= {("operator:vera", "decide")}
    assert any(e["actor"] == "console:127.0.0.1" and "agent's token" in e["detail"]["reason"] for e in over_mcp)
    trail = [e for e in audit_json(config) if e["request_id"] == request_id]
    assert [e["event"] for e in trail][-3:] == ["approved", "executing", "succeeded"]
    assert trail[-3]["detail"]["note"] == "over http"


async def test_the_daemon_serves_agents_and_the_console_on_separate_listeners_and_records_counted_refusals(
    tmp_path: Path,
    docker_base_url: str,
) -> None:
    config = write_console_config(tmp_path, docker_base_url, console='public_url = "https://argobox.example.org"')
    with anyio.fail_after(TIMEOUT_S):
        async with argobox_process(config, "serve", "--http", "127.0.0.1:0", wait_for=("console", "agents")) as d:
            agents, console_url = d.urls["agents"], d.urls["console"]
            async with connect(agents, OPENCLAW_TOKEN) as agent:
                tools = [t.name for t in (await agent.list_tools()).tools]
            async with httpx2.AsyncClient(timeout=30) as http:
                console_on_agent_port = await http.get(agents.removesuffix("mcp"))
                agent_on_console = await http.post(
                    f"{console_url}mcp", json={}, headers={"Authorization": f"Bearer {OPENCLAW_TOKEN}"}
                )
                signin = await http.get(f"{console_url}signin")
                public_host = await http.get(f"{console_url}signin", headers={"Host": "argobox.example.org"})
            async with connect(f"{console_url}mcp", VERA_TOKEN) as viewer:  # a viewer's client that keeps trying
                tries = [await viewer.call_tool("approve_request", {"request_id": "nosuchrequest0001"}) for _ in "123"]
            code = await d.stop()
    refused = [e["detail"] for e in events(config, "operator_refused") if e["actor"] == "operator:vera"]

    assert agents.split("/")[2] != console_url.split("/")[2]
    assert "docker_restart_container" in tools
    assert console_on_agent_port.status_code == 404
    assert agent_on_console.status_code == 401
    assert signin.status_code == 200 and "Secure" in signin.headers["set-cookie"]
    assert public_host.status_code == 200
    assert code == 0, d.log
    assert all(t.is_error for t in tries)
    # Coalesced, and nothing lost: the first refusal is recorded, the others counted into the record written when
    # the daemon stopped.
    recorded_singly = sum(1 for r in refused if r.get("includes_this_refusal", True))
    counted = sum(r.get("refusals_counted_not_recorded_singly", 0) for r in refused)
    assert (recorded_singly + counted, len(refused) < len(tries)) == (len(tries), True), refused


async def test_token_new_for_an_operator_writes_its_hash_and_a_running_console_lets_it_sign_in(
    base: str,
    config: Path,
    console: Process,
) -> None:
    reloads = console.log.count("configuration reloaded")
    unknown = run_argobox(config, "token", "new", "--operator", "mallory")
    both = run_argobox(config, "token", "new", "openclaw", "--operator", "olga")
    written = run_argobox(config, "token", "new", "--operator", "olga", "--write")
    token = re.search(r"^token: (\S+)$", written.stdout, re.M)
    with anyio.fail_after(TIMEOUT_S):
        while True:
            if console.log.count("configuration reloaded") > reloads:
                break
            await anyio.sleep(0.1)
    text = await anyio.Path(config).read_text()
    async with client() as http:
        signed = await sign_in(http, base, "olga", token[1] if token else "")

    assert unknown.returncode == 1 and "unknown operator 'mallory'" in unknown.stderr
    assert both.returncode == 2
    assert written.returncode == 0 and token is not None, written.stderr
    assert re.search(r'name = "olga"\ntoken_sha256 = "[0-9a-f]{64}"|token_sha256 = "[0-9a-f]{64}"\nname = "olga"', text)
    assert signed.status_code == 303 and signed.headers["location"] == "/"


async def test_history_filters_the_audit_export_verifies_offline_and_a_budget_reset_is_audited(
    base: str, config: Path, make_container: Callable[..., Container], tmp_path: Path
) -> None:
    web = make_container("console")
    request_id = await queue_restart(config, web)
    async with client() as http:
        await sign_in(http, base, "alice", ALICE_TOKEN)
        matching = await http.get(
            f"{base}history",
            params={
                "tool": "docker_restart_container",
                "agent": "openclaw",
                "status": "pending_approval",
                "since": "2000-01-01T00:00",
            },
        )
        other_tool = await http.get(f"{base}history", params={"tool": "docker_stop_container", "status": "succeeded"})
        too_early = await http.get(f"{base}history", params={"until": "2000-01-01T00:00"})
        bad_time = await http.get(f"{base}history", params={"since": "yesterday"})
        export = await http.get(f"{base}audit/export")
        audit_page = await http.get(f"{base}audit")
        budgets = await http.get(f"{base}budgets")
        reset = await http.post(
            f"{base}budgets/openclaw/reset", data={"csrf": csrf_of(budgets.text)}, headers=form_headers(base)
        )
        after_reset = await http.get(f"{base}budgets")
    (tmp_path / "export.jsonl").write_bytes(export.content)
    verified = run_argobox(config, "audit", "verify", "--file", str(tmp_path / "export.jsonl"))

    assert f"/requests/{request_id}" in matching.text
    assert f"/requests/{request_id}" not in other_tool.text and f"/requests/{request_id}" not in too_early.text
    assert "showing all times" in bad_time.text and f"/requests/{request_id}" in bad_time.text
    assert export.status_code == 200 and "attachment" in export.headers["content-disposition"]
    assert verified.returncode == 0 and verified.stdout.startswith("ok:"), verified.stdout + verified.stderr
    assert "Intact" in audit_page.text and "Download the export" in audit_page.text
    assert reset.status_code == 303 and "reset the budget of openclaw" in after_reset.text
    events = audit_json(config)
    assert any(e["event"] == "budget_reset" and e["actor"] == "operator:alice" for e in events)
    assert any(e["event"] == "audit_exported" and e["actor"] == "operator:alice" for e in events)
