"""Regenerate the console screenshots in docs/ (the Pending page and a request page, at phone size).

    .venv/bin/python scripts/console_screenshots.py [--out docs]

Runs the real daemon (`argobox serve --http` with a [console] section) against the simulated lab in a temporary
directory, has an agent ask for two restarts over MCP, signs in as an operator in Debian's Chromium (Playwright,
390 px wide) and saves docs/console-pending.png and docs/console-request.png. Needs /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from playwright.async_api import async_playwright

ARGOBOX = Path(sys.executable).with_name("argobox")
AGENT_TOKEN = "screenshot-agent-token-0123456789"
OPERATOR_TOKEN = "screenshot-operator-token-0123456789"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


CONFIG = textwrap.dedent(f"""\
    [storage]
    path = "argobox.db"

    [docker]
    simulated_lab = "lab.json"

    [console]
    listen = "127.0.0.1:0"

    [[operators]]
    name = "alice"
    token_sha256 = "{sha(OPERATOR_TOKEN)}"

    [agents.openclaw]
    token_sha256 = "{sha(AGENT_TOKEN)}"

    [[agents.openclaw.rules]]
    tools = ["docker_list_containers", "docker_inspect_container"]
    effect = "allow"

    [[agents.openclaw.rules]]
    tools = ["docker_restart_container", "docker_stop_container"]
    args = {{ container = ["jellyfin", "web-*"] }}
    effect = "approve"
""")


def wait_for(log: Path, pattern: str, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if found := re.search(pattern, log.read_text(errors="replace")):
            return found[1]
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise SystemExit(f"the daemon did not start:\n{log.read_text(errors='replace')}")


async def ask(agents: str, container: str) -> str:
    headers = {"Authorization": f"Bearer {AGENT_TOKEN}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(agents, http_client=http)) as agent,
    ):
        result = await agent.call_tool("docker_restart_container", {"container": container})
    if result.structured_content is None:
        raise SystemExit(f"the agent's call failed: {result.content}")
    return str(result.structured_content["request_id"])


async def shoot(console: str, agents: str, out: Path) -> None:
    await ask(agents, "web-frontend")
    request_id = await ask(agents, "jellyfin")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        context = await browser.new_context(
            viewport={"width": 390, "height": 844},
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
            color_scheme="light",
        )
        page = await context.new_page()
        await page.goto(console)
        await page.get_by_label("Operator").fill("alice")
        await page.get_by_label("Token").fill(OPERATOR_TOKEN)
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("heading", name="Pending", exact=True).wait_for()
        await page.screenshot(path=out / "console-pending.png")
        await page.goto(f"{console}requests/{request_id}")
        await page.get_by_role("button", name="Approve", exact=True).wait_for()
        await page.set_viewport_size({"width": 390, "height": 1800})
        await page.screenshot(path=out / "console-request.png")
        await browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "argobox.toml"
        config.write_text(CONFIG)
        log = Path(tmp) / "daemon.log"
        with log.open("wb") as sink:
            daemon = subprocess.Popen(
                [str(ARGOBOX), "--config", str(config), "serve", "--http", "127.0.0.1:0"],
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        try:
            console = wait_for(log, r"serving the operator console at (http://\S+/) ", daemon)
            agents = wait_for(log, r"serving MCP over streamable HTTP at (http://\S+/mcp)", daemon)
            anyio.run(shoot, console, agents, args.out)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)
    print(f"wrote {args.out / 'console-pending.png'} and {args.out / 'console-request.png'}")


if __name__ == "__main__":
    main()
