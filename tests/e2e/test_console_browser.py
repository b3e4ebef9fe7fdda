"""The web console in a real browser: Debian's Chromium driven by Playwright, against the real daemon (`argobox serve
--http` serving agents and, on its own listener, the console), with requests made by an agent through the official
MCP client, and what happened read from the Docker engine itself and from the audit trail.

One browser and one daemon for the module; each test has its own browser contexts (its own sessions).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import docker
import pytest
from docker.models.containers import Container
from mcp.shared.exceptions import MCPError
from playwright.async_api import Browser, BrowserContext, Dialog, Page, async_playwright, expect

from tests.console_support import (
    ALICE_TOKEN,
    BOB_TOKEN,
    VERA_TOKEN,
    Process,
    argobox_process,
    engine_events,
    write_console_config,
)
from tests.http_daemon import ARGOBOX, OPENCLAW_TOKEN, connect

pytestmark = [pytest.mark.anyio, pytest.mark.docker, pytest.mark.homeassistant]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
LIVE_DEADLINE_MS = 10_000
"""How long a new request may take to appear on an open Pending page before the test fails. The product promises
2 seconds (the page polls every second: tests/console/test_console_units.py checks the interval in console.js);
the test asserts only that it appears without a reload, with a deadline generous enough for a loaded machine,
because a test must never assert a timing."""
XSS = '<script>alert("xss")</script><img src=x onerror=alert(1)>\x1b[31mred\u202eevil'


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Lab:
    config: Path
    agents: str
    console: str
    daemon: Process


@pytest.fixture(scope="module")
async def lab(
    tmp_path_factory: pytest.TempPathFactory,
    docker_base_url: str,
    ha_url: str,
    ha_token: str,
) -> AsyncIterator[Lab]:
    home = f'url = "{ha_url}"\ntoken_env = "ARGOBOX_HA_TOKEN"'
    config = write_console_config(tmp_path_factory.mktemp("console-browser"), docker_base_url, home=home)
    env = {**os.environ, "ARGOBOX_HA_TOKEN": ha_token}
    async with argobox_process(
        config, "serve", "--http", "127.0.0.1:0", wait_for=("console", "agents"), env=env
    ) as daemon:
        yield Lab(config=config, agents=daemon.urls["agents"], console=daemon.urls["console"], daemon=daemon)


def require_chromium() -> None:
    if not CHROMIUM.exists():
        message = "no /usr/bin/chromium: apt-get install chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    require_chromium()
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


async def ask(lab: Lab, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """One agent call through the real agent endpoint (streamable HTTP, the agent's bearer token)."""
    with anyio.fail_after(60):
        async with connect(lab.agents, OPENCLAW_TOKEN) as agent:
            result = await agent.call_tool(tool, arguments)
    assert result.structured_content is not None, result
    return dict(result.structured_content)


async def queue(lab: Lab, tool: str, container: Container) -> str:
    answer = await ask(lab, tool, {"container": container.name})
    assert answer["status"] == "pending_approval", answer
    return str(answer["request_id"])


@asynccontextmanager
async def operator(browser: Browser, lab: Lab, name: str, token: str, **options: Any) -> AsyncGenerator[Page]:
    """A browser context signed in as `name`; any JavaScript dialog fails the test."""
    context: BrowserContext = await browser.new_context(**options)
    dialogs: list[str] = []

    async def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    page = await context.new_page()
    page.on("dialog", on_dialog)
    try:
        await page.goto(lab.console)
        await page.get_by_label("Operator").fill(name)
        await page.get_by_label("Token").fill(token)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", name="Pending", exact=True)).to_be_visible()
        yield page
    finally:
        await context.close()
    assert dialogs == [], f"a script ran in the console: {dialogs}"


async def as_operator(lab: Lab, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """One call of the operator tools at the console's /mcp, as alice (the official client, her bearer token)."""
    with anyio.fail_after(60):
        async with connect(f"{lab.console}mcp", ALICE_TOKEN) as tools:
            result = await tools.call_tool(tool, arguments)
    assert result.structured_content is not None, result
    return dict(result.structured_content)


async def trail(lab: Lab, request_id: str | None = None) -> list[dict[str, Any]]:
    """The audit trail (the latest 500 events, or one request's), read through the operator tools."""
    wanted: dict[str, Any] = {"limit": 500} | ({"request_id": request_id} if request_id else {})
    return list((await as_operator(lab, "query_audit", wanted))["events"])


async def clean_up(lab: Lab, request_id: str) -> None:
    await as_operator(lab, "deny_request", {"request_id": request_id, "reason": "end of test"})


def cli(lab: Lab, *args: str, token: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ARGOBOX), "--config", str(lab.config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "ARGOBOX_OPERATOR_TOKEN": token},
    )


async def no_horizontal_scroll(page: Page) -> None:
    widths = await page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], f"{page.url} scrolls sideways: {widths}"


async def test_on_a_phone_a_new_request_appears_live_shows_its_rule_and_target_and_approving_it_restarts_it_once(
    lab: Lab,
    browser: Browser,
    make_container: Callable[..., Container],
    docker_client: docker.DockerClient,
) -> None:
    """The issue's "done when": from a phone's browser, see the pending restart with its rule and the container's
    current state, approve it, and see it succeed."""
    web = make_container("console")
    t0 = time.time()
    async with operator(browser, lab, "alice", ALICE_TOKEN, **PHONE) as page:
        await page.evaluate("window.__sameDocument = 42")
        request_id = await queue(lab, "docker_restart_container", web)
        link = page.get_by_role("link", name=re.compile(re.escape(str(web.name))))
        await expect(link).to_be_visible(timeout=LIVE_DEADLINE_MS)
        assert await page.evaluate("window.__sameDocument") == 42  # no reload happened
        await link.click()
        # Before approving: the container's current state, as the engine reports it, and the rule that asks.
        await expect(page.get_by_role("heading", name="The target now")).to_be_visible()
        target = page.locator("section", has=page.get_by_role("heading", name="The target now"))
        await expect(target.locator("dt:text-is('Container') + dd")).to_have_text(str(web.name))
        await expect(target.locator("dt:text-is('State') + dd")).to_have_text("running")
        why = page.locator("section", has=page.get_by_role("heading", name="Why it needs approval"))
        await expect(why.locator("pre.rule")).to_contain_text('container = ["argobox-console-*"]')
        await expect(why.locator("pre.rule")).to_contain_text('effect = "approve"')
        await no_horizontal_scroll(page)
        await page.get_by_label("Note").fill("planned restart")
        await page.get_by_role("button", name="Approve", exact=True).click()
        await expect(page.get_by_role("status").filter(has_text="Approved by you")).to_be_visible()
        await expect(page.locator("#status")).to_have_text("ran and succeeded")
        await page.get_by_role("link", name="Pending", exact=True).click()
        await expect(page.get_by_role("link", name=re.compile(re.escape(str(web.name))))).to_have_count(0)

    assert len(engine_events(docker_client, str(web.id), t0, "restart")) == 1
    events = await trail(lab, request_id)
    assert [e["event"] for e in events] == ["received", "decision", "queued", "approved", "executing", "succeeded"]
    assert events[3]["actor"] == "operator:alice" and events[3]["detail"]["note"] == "planned restart"


async def test_denying_needs_a_reason_which_reaches_the_agent_and_nothing_runs(
    lab: Lab,
    browser: Browser,
    make_container: Callable[..., Container],
    docker_client: docker.DockerClient,
) -> None:
    web = make_container("console")
    t0 = time.time()
    request_id = await queue(lab, "docker_stop_container", web)
    async with operator(browser, lab, "alice", ALICE_TOKEN) as page:
        await page.goto(f"{lab.console}requests/{request_id}")
        await page.get_by_role("button", name="Deny", exact=True).click()
        assert await page.get_by_label("Reason").evaluate("el => el.validity.valueMissing") is True
        await expect(page.locator("#status")).to_have_text("waiting for a decision")
        await page.get_by_label("Reason").fill("not during the film")
        await page.get_by_role("button", name="Deny", exact=True).click()
        await expect(page.get_by_role("status").filter(has_text="Denied by you")).to_be_visible()
        await expect(page.locator("#decide")).to_contain_text("not during the film")
    status = await ask(lab, "argobox_request_status", {"request_id": request_id})
    web.reload()

    assert status["status"] == "denied" and status["reason"] == "not during the film"
    assert web.attrs["State"]["Running"] is True
    assert engine_events(docker_client, str(web.id), t0, "stop") == []


async def test_a_page_left_open_while_someone_else_decided_says_so_and_nothing_runs(
    lab: Lab,
    browser: Browser,
    make_container: Callable[..., Container],
    docker_client: docker.DockerClient,
) -> None:
    web = make_container("console")
    t0 = time.time()
    request_id = await queue(lab, "docker_restart_container", web)
    async with operator(browser, lab, "alice", ALICE_TOKEN, java_script_enabled=False) as page:
        await page.goto(f"{lab.console}requests/{request_id}")
        denied = cli(lab, "deny", request_id, "--as", "bob", "--reason", "decided on the CLI", token=BOB_TOKEN)
        assert denied.returncode == 0, denied.stderr
        response_status: list[int] = []
        page.on("response", lambda r: response_status.append(r.status) if r.request.is_navigation_request() else None)
        await page.get_by_role("button", name="Approve", exact=True).click()
        message = page.get_by_role("alert").filter(has_text="Already decided meanwhile")
        await expect(message).to_contain_text("denied by bob")
        await expect(page.locator("#status")).to_have_text("denied")

    assert 500 not in response_status and response_status[-1] == 200
    assert engine_events(docker_client, str(web.id), t0, "restart") == []


async def test_two_operators_pressing_approve_together_run_it_exactly_once(
    lab: Lab,
    browser: Browser,
    make_container: Callable[..., Container],
    docker_client: docker.DockerClient,
) -> None:
    web = make_container("console")
    t0 = time.time()
    request_id = await queue(lab, "docker_restart_container", web)
    async with operator(browser, lab, "alice", ALICE_TOKEN) as alice, operator(browser, lab, "bob", BOB_TOKEN) as bob:
        for page in (alice, bob):
            await page.goto(f"{lab.console}requests/{request_id}")
        await asyncio.gather(*(p.get_by_role("button", name="Approve", exact=True).click() for p in (alice, bob)))
        outcome = "p.flash:not(#stale-note)"  # the message after the post, not the live notice
        for page in (alice, bob):
            await expect(page.locator(outcome)).to_have_count(1)
        messages = sorted([await p.locator(outcome).inner_text() for p in (alice, bob)])

    assert messages[0].startswith("Already decided meanwhile") and "Nothing more was done" in messages[0]
    assert messages[1].startswith("Approved by you. Outcome: succeeded")
    assert len(engine_events(docker_client, str(web.id), t0, "restart")) == 1
    events = [e["event"] for e in await trail(lab, request_id)]
    assert events.count("approved") == 1 and events.count("succeeded") == 1


async def test_a_viewer_sees_the_request_but_has_no_buttons_and_its_post_is_refused(
    lab: Lab,
    browser: Browser,
    make_container: Callable[..., Container],
) -> None:
    web = make_container("console")
    request_id = await queue(lab, "docker_restart_container", web)
    async with operator(browser, lab, "vera", VERA_TOKEN) as page:
        await expect(page.get_by_role("link", name=re.compile(re.escape(str(web.name))))).to_be_visible()
        await page.goto(f"{lab.console}requests/{request_id}")
        await expect(page.locator("#decide")).to_contain_text("signed in as a viewer")
        await expect(page.get_by_role("button", name="Approve")).to_have_count(0)
        await expect(page.get_by_role("button", name="Deny")).to_have_count(0)
        # What a hand-made form would do: post to the endpoint with the session's own CSRF token.
        await page.evaluate(
            """id => {
            const form = document.createElement("form");
            form.method = "post"; form.action = "/requests/" + id + "/approve";
            const csrf = document.querySelector("form.signout input[name=csrf]").cloneNode();
            form.append(csrf); document.body.append(form); form.submit();
        }""",
            request_id,
        )
        await expect(page.get_by_role("alert")).to_contain_text("signed in as a viewer")
    after = await ask(lab, "argobox_request_status", {"request_id": request_id})

    assert after["status"] == "pending_approval"
    refusals = [e for e in await trail(lab) if e["event"] == "operator_refused" and e["actor"] == "operator:vera"]
    assert refusals and "is a viewer" in refusals[-1]["detail"]["reason"]
    await clean_up(lab, request_id)


async def test_html_script_and_escape_sequences_from_an_agent_are_shown_as_inert_text(
    lab: Lab,
    browser: Browser,
    ha_reset: dict[str, str],
) -> None:
    del ha_reset  # the lock at its baseline: the request is only queued and denied, never run
    queued = await ask(
        lab,
        "ha_call_service",
        {"domain": "lock", "service": "unlock", "entity_id": "lock.front_door", "data": {"message": XSS}},
    )
    request_id = queued["request_id"]
    with anyio.fail_after(60):
        async with connect(lab.agents, OPENCLAW_TOKEN) as agent:
            with contextlib.suppress(MCPError):  # unknown tools answer like tools that do not exist
                await agent.call_tool("<img src=x onerror=alert(2)>", {})
            await agent.call_tool("docker_restart_container", {"container": "<script>alert(3)</script>"})
    async with operator(browser, lab, "alice", ALICE_TOKEN, **PHONE) as page:
        await page.goto(f"{lab.console}requests/{request_id}")
        arguments = page.locator("section.agent-box")
        await expect(arguments).to_contain_text('<script>alert(\\"xss\\")</script><img src=x onerror=alert(1)>')
        await expect(arguments).to_contain_text("\\u001b[31mred<U+202E>evil")  # JSON's escape, then ArgoBox's
        await expect(arguments.locator(".agent-mark")).to_have_text("agent")
        await expect(page.locator("main img")).to_have_count(0)
        await expect(page.locator("script")).to_have_count(1)  # the console's own
        await no_horizontal_scroll(page)
        await page.goto(f"{lab.console}audit")
        await expect(page.get_by_text("<img src=x onerror=alert(2)>").first).to_be_visible()
        await expect(page.get_by_text("<script>alert(3)</script>").first).to_be_visible()
        await expect(page.locator("main img")).to_have_count(0)
        await expect(page.locator("code.agent").filter(has_text="<img src=x")).not_to_have_count(0)
        await page.goto(f"{lab.console}requests/{request_id}")
        await page.get_by_label("Reason").fill("not from a chat message")
        await page.get_by_role("button", name="Deny", exact=True).click()
        await expect(page.get_by_role("status").filter(has_text="Denied by you")).to_be_visible()


async def test_every_page_fits_a_phone_screen(
    lab: Lab,
    browser: Browser,
    make_container: Callable[..., Container],
) -> None:
    web = make_container("console")
    request_id = await queue(lab, "docker_restart_container", web)
    async with operator(browser, lab, "alice", ALICE_TOKEN, **PHONE) as page:
        await no_horizontal_scroll(page)
        for path, heading in (
            (f"requests/{request_id}", f"Request {request_id}"),
            ("history", "History"),
            ("audit", "Audit"),
            ("budgets", "Budgets"),
        ):
            await page.goto(f"{lab.console}{path}")
            await expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
            await no_horizontal_scroll(page)
        await page.goto(f"{lab.console}history?agent=openclaw&status=pending_approval")
        await expect(page.get_by_role("link", name=re.compile(re.escape(str(web.name))))).to_be_visible()
    await clean_up(lab, request_id)


async def test_with_javascript_off_approve_and_deny_work(
    lab: Lab,
    browser: Browser,
    make_container: Callable[..., Container],
    docker_client: docker.DockerClient,
) -> None:
    restart, stop = make_container("console"), make_container("console")
    t0 = time.time()
    restart_id = await queue(lab, "docker_restart_container", restart)
    stop_id = await queue(lab, "docker_stop_container", stop)
    async with operator(browser, lab, "alice", ALICE_TOKEN, java_script_enabled=False, **PHONE) as page:
        await page.get_by_role("link", name=re.compile(re.escape(str(restart.name)))).click()
        await page.get_by_role("button", name="Approve", exact=True).click()
        await expect(page.get_by_role("status").filter(has_text="Approved by you")).to_be_visible()
        await page.goto(f"{lab.console}requests/{stop_id}")
        await page.get_by_label("Reason").fill("keep it running")
        await page.get_by_role("button", name="Deny", exact=True).click()
        await expect(page.get_by_role("status").filter(has_text="Denied by you")).to_be_visible()

    assert len(engine_events(docker_client, str(restart.id), t0, "restart")) == 1
    assert engine_events(docker_client, str(stop.id), t0, "stop") == []
    assert [e["event"] for e in await trail(lab, restart_id)][-1] == "succeeded"
    assert [e["event"] for e in await trail(lab, stop_id)][-1] == "denied"


async def test_a_form_with_a_forged_csrf_token_is_refused_and_audited(
    lab: Lab,
    browser: Browser,
    make_container: Callable[..., Container],
) -> None:
    web = make_container("console")
    request_id = await queue(lab, "docker_restart_container", web)
    async with operator(browser, lab, "alice", ALICE_TOKEN) as page:
        await page.goto(f"{lab.console}requests/{request_id}")
        await page.locator("form[action$='/approve'] input[name=csrf]").evaluate("el => { el.value = 'forged'; }")
        await page.get_by_role("button", name="Approve", exact=True).click()
        await expect(page.get_by_role("alert")).to_contain_text("security token is missing or out of date")
    after = await ask(lab, "argobox_request_status", {"request_id": request_id})

    assert after["status"] == "pending_approval"
    refusals = [e for e in await trail(lab) if e["event"] == "operator_refused" and e["actor"] == "operator:alice"]
    assert any(e["detail"]["reason"] == "the CSRF token is missing or wrong" for e in refusals)
    await clean_up(lab, request_id)


async def test_signing_out_ends_the_session_so_the_old_cookie_no_longer_works(lab: Lab, browser: Browser) -> None:
    async with operator(browser, lab, "alice", ALICE_TOKEN) as page:
        cookies = await page.context.cookies()
        session = [c for c in cookies if c.get("name") == "argobox_session"]
        assert session and session[0].get("httpOnly") is True and session[0].get("sameSite") == "Strict"
        await page.get_by_role("button", name="Sign out").click()
        await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    replay = await browser.new_context()
    try:
        await replay.add_cookies(cookies)  # type: ignore[arg-type]
        page = await replay.new_page()
        await page.goto(lab.console)
        await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        assert page.url.endswith("/signin")
    finally:
        await replay.close()
