"""Run the official MCP conformance suite's server scenarios against `argobox serve --http`.

    python scripts/conformance.py [--scenario NAME ...] [--json PATH] [--markdown PATH]

Without --scenario it runs every server scenario of the active suite (and the [extension] ones are left out: see
docs/conformance.md). Needs the Node tools: `eval "$(bash scripts/node-tools.sh install)"`.

The suite cannot send an Authorization header, and every ArgoBox request needs one, so the suite talks to a small
header-adding proxy on 127.0.0.1 that forwards each request (Host and Origin untouched, so the daemon's own
DNS-rebinding checks are what the suite sees) with `Authorization: Bearer <the test agent's token>`.
Everything listens on 127.0.0.1 with free ports and stops at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2

REPO = Path(__file__).resolve().parents[1]
TOKEN = "conformance-agent-token-0123456789abcdef"
CONFIG = f"""\
[storage]
path = "argobox.db"
[docker]
simulated_lab = "lab.json"
[[operators]]
name = "alice"
[agents.conformance]
token_sha256 = "{hashlib.sha256(TOKEN.encode()).hexdigest()}"
[[agents.conformance.rules]]
tools = ["docker_list_containers", "docker_inspect_container", "docker_container_logs"]
effect = "allow"
"""
SCENARIO_TIMEOUT_SECONDS = 120
HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"transfer-encoding",
    b"te",
    b"trailer",
    b"upgrade",
    b"content-length",
    b"proxy-authorization",
    b"proxy-authenticate",
    b"authorization",
}

# Why a server scenario does or does not apply to ArgoBox (a server with its own tools and none of the suite's
# fixtures: the "everything server" tools, resources and prompts such as `test_simple_text`).
APPLIES: dict[str, str] = {
    "server-initialize": "the 2025-11-25 initialize handshake",
    "server-session-lifecycle": "handshake-era sessions over streamable HTTP (session ids, DELETE, 404 after)",
    "server-stateless": "the 2026-07-28 stateless era (server/discover, per-request envelope, errors)",
    "ping": "ping in the handshake era",
    "tools-list": "tools/list shape: names, descriptions, schemas",
    "dns-rebinding-protection": "Host/Origin checks on a loopback daemon",
    "caching": "2026 ttlMs/cacheScope on list results",
    "http-header-validation": "2026 routing headers (Mcp-Method, MCP-Protocol-Version) checked against the body",
    "server-sse-multiple-streams": "several concurrent SSE streams on one session",
}
NOT_APPLICABLE_CHECKS: dict[str, str] = {
    "sep-2549-prompts-list-caching-hints": "ArgoBox serves no prompts (prompts/list is Method not found)",
    "sep-2549-resources-list-caching-hints": "ArgoBox serves no resources (resources/list is Method not found)",
    "sep-2549-resources-templates-list-caching-hints": "ArgoBox serves no resources",
    "sep-2549-resources-read-caching-hints": "ArgoBox serves no resources",
    "sep-2575-server-sends-tools-list-changed-on-subscription": "the suite changes the tool list by calling its "
    "fixture tool test_trigger_tool_change; ArgoBox's list changes with the grant (tested in tests/e2e/test_http.py)",
}
DOES_NOT_APPLY: dict[str, str] = {
    "logging-set-level": "ArgoBox serves no logging capability (and logging is deprecated at 2026-07-28)",
    "completion-complete": "ArgoBox serves no completions",
    "json-schema-2020-12": "looks for the suite's fixture tool json_schema_2020_12_tool",
    "tools-call-simple-text": "calls the suite's fixture tool test_simple_text",
    "tools-call-image": "calls the suite's fixture tool test_image_content",
    "tools-call-audio": "calls the suite's fixture tool test_audio_content",
    "tools-call-embedded-resource": "calls the suite's fixture tool test_embedded_resource",
    "tools-call-mixed-content": "calls the suite's fixture tool test_multiple_content_types",
    "tools-call-with-logging": "calls the suite's fixture tool test_tool_with_logging",
    "tools-call-error": "calls the suite's fixture tool test_error_handling",
    "tools-call-with-progress": "calls the suite's fixture tool test_tool_with_progress",
    "tools-call-sampling": "calls the suite's fixture tool test_sampling; ArgoBox never asks the client to sample",
    "tools-call-elicitation": "calls the suite's fixture tool test_elicitation; approval never comes from the client",
    "elicitation-sep1034-defaults": "calls the suite's elicitation fixture tool",
    "elicitation-sep1330-enums": "calls the suite's elicitation fixture tool",
    "server-sse-polling": "calls the suite's fixture tool test_reconnection and needs an event store (resumable "
    "streams), which ArgoBox does not keep",
    "resources-list": "ArgoBox serves no resources",
    "resources-read-text": "ArgoBox serves no resources",
    "resources-read-binary": "ArgoBox serves no resources",
    "resources-templates-read": "ArgoBox serves no resources",
    "resources-subscribe": "ArgoBox serves no resources",
    "resources-unsubscribe": "ArgoBox serves no resources",
    "sep-2164-resource-not-found": "ArgoBox serves no resources",
    "prompts-list": "ArgoBox serves no prompts",
    "prompts-get-simple": "ArgoBox serves no prompts",
    "prompts-get-with-args": "ArgoBox serves no prompts",
    "prompts-get-embedded-resource": "ArgoBox serves no prompts",
    "prompts-get-with-image": "ArgoBox serves no prompts",
    "http-custom-header-server-validation": "needs the suite's fixture tool declaring x-mcp-header parameters; no "
    "ArgoBox tool declares any",
    "input-required-result-*": "the 2026 multi-round-trip fixture tools; ArgoBox never asks the client for input "
    "(approval comes only from an operator)",
    "tasks-* [extension]": "the tasks extension, which ArgoBox does not implement (pending approval is an ordinary "
    "result plus argobox_request_status)",
}


def node_tools() -> Path:
    found = os.environ.get("ARGOBOX_NODE_TOOLS")
    if not found:
        sys.exit('ARGOBOX_NODE_TOOLS is not set: run  eval "$(bash scripts/node-tools.sh install)"  first')
    return Path(found)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def header_proxy(upstream: str, token: str) -> Any:
    """An ASGI app forwarding every request to `upstream` with the bearer token added, streaming the answer."""
    client = httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=None), follow_redirects=False)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await client.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in HOP_BY_HOP]
        headers.append((b"authorization", f"Bearer {token}".encode()))
        query = f"?{scope['query_string'].decode()}" if scope.get("query_string") else ""
        request = client.build_request(
            scope["method"], f"{upstream}{scope['path']}{query}", headers=headers, content=body
        )
        async with anyio.create_task_group() as tg:

            async def disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                tg.cancel_scope.cancel()

            tg.start_soon(disconnect)
            response = await client.send(request, stream=True)
            try:
                out = [
                    (k.encode(), v.encode())
                    for k, v in response.headers.multi_items()
                    if k.lower().encode() not in HOP_BY_HOP
                ]
                await send({"type": "http.response.start", "status": response.status_code, "headers": out})
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            finally:
                await response.aclose()
            tg.cancel_scope.cancel()

    return app


@asynccontextmanager
async def daemon(workdir: Path) -> AsyncGenerator[str]:
    config = workdir / "argobox.toml"
    config.write_text(CONFIG)
    argobox = Path(sys.executable).parent / "argobox"
    log = anyio.Path(workdir / "daemon.log")
    with (workdir / "daemon.log").open("wb") as err:
        process = await anyio.open_process(
            [str(argobox), "--config", str(config), "serve", "--http", "127.0.0.1:0"],
            stdout=subprocess.DEVNULL,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
    async with process:
        try:
            deadline = time.monotonic() + 30
            # The daemon writes its log from another process: read it again until it says where it serves.
            while not (match := re.search(r"at (http://\S+/mcp)", await log.read_text())):
                if process.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError("the daemon did not start:\n" + await log.read_text())
                await anyio.sleep(0.05)
            yield match[1]
        finally:
            with anyio.CancelScope(shield=True):
                process.send_signal(signal.SIGTERM)
                with anyio.move_on_after(30) as waited:
                    await process.wait()
                if waited.cancelled_caught:
                    process.kill()
                    await process.wait()


@asynccontextmanager
async def proxy(upstream_url: str) -> AsyncGenerator[str]:
    import uvicorn

    upstream = upstream_url.removesuffix("/mcp")
    port = free_port()
    started = anyio.Event()

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                started.set()

    server = Server(
        uvicorn.Config(header_proxy(upstream, TOKEN), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(10):
            await started.wait()
        try:
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            server.should_exit = True


async def run_suite(url: str, scenarios: list[str], tools: Path, workdir: Path) -> dict[str, dict[str, Any]]:
    env = {
        **{k: v for k, v in os.environ.items() if k in ("LANG", "TERM")},
        "PATH": f"{tools / 'node_modules/node/bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(workdir / "home"),
        "NO_COLOR": "1",
    }
    (workdir / "home").mkdir(exist_ok=True)
    entry = tools / "node_modules/@modelcontextprotocol/conformance/dist/index.js"
    results: dict[str, dict[str, Any]] = {}
    for scenario in scenarios:
        out = workdir / "results" / scenario
        out.mkdir(parents=True, exist_ok=True)
        with anyio.fail_after(SCENARIO_TIMEOUT_SECONDS):
            done = await anyio.run_process(
                ["node", str(entry), "server", "--url", url, "--scenario", scenario, "-o", str(out)],
                env=env,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        output = (done.stdout + done.stderr).decode(errors="replace")
        results[scenario] = {"exit": done.returncode, **parse_checks(out, output)}
        print(f"ran {scenario}", file=sys.stderr)
    return results


def parse_checks(out: Path, output: str) -> dict[str, Any]:
    """Sort the suite's checks (its checks.json files) into passed, not applicable, warnings and failed."""
    checks: list[dict[str, Any]] = []
    for path in sorted(out.rglob("checks.json")):
        data = json.loads(path.read_text())
        checks += data if isinstance(data, list) else data.get("checks", [])
    result: dict[str, Any] = {"passed": [], "not_applicable": [], "warnings": [], "skipped": [], "failed": []}
    for check in checks:
        status = str(check.get("status", "")).upper()
        ident = str(check.get("id") or check.get("name"))
        message = str(check.get("errorMessage") or "")[:300]
        details: dict[str, Any] = check.get("details") or {}
        if status == "SUCCESS":
            result["passed"].append(ident)
        elif ident in NOT_APPLICABLE_CHECKS:
            result["not_applicable"].append(f"{ident}: {NOT_APPLICABLE_CHECKS[ident]}")
        elif details.get("untestable") or message.startswith("Not testable"):
            result["not_applicable"].append(f"{ident}: {message}")
        elif status == "WARNING":
            result["warnings"].append(f"{ident}: {message}")
        elif status in ("SKIPPED", "INFO"):
            result["skipped"].append(ident)
        else:
            result["failed"].append(f"{ident}: {message}")
    if not checks:
        result["failed"].append(f"the suite reported no checks: {output[-1000:]}")
    return result


def ok(result: dict[str, Any]) -> bool:
    return bool(result["passed"]) and not result["failed"]


def markdown(results: dict[str, dict[str, Any]]) -> str:
    from importlib.metadata import version

    lines = [
        "# MCP conformance suite against `argobox serve --http`",
        "",
        f"ArgoBox {version('argobox')} on the `mcp` Python SDK {version('mcp')}.",
        "",
        "Generated by `python scripts/conformance.py --all --markdown docs/conformance.md` from a real run of "
        "`@modelcontextprotocol/conformance@0.2.0-alpha.11` (Node 22) against the daemon, through a local proxy that "
        "adds the bearer token the suite cannot send (Host and Origin are passed through untouched). "
        "`tests/e2e/test_interop_node.py` runs the applicable scenarios and requires each of them to pass.",
        "",
        "A check counts as not applicable when the suite itself reports it untestable (it needs one of the suite's "
        "fixture tools, such as `test_missing_capability`) or when it exercises prompts or resources, which ArgoBox "
        "does not serve.",
        "",
        "## Scenarios that apply: all pass",
        "",
        "| scenario | what it checks here | checks passed | not applicable | warnings |",
        "|---|---|---|---|---|",
    ]
    notes: list[str] = []
    for name, why in APPLIES.items():
        r = results.get(name)
        if r is None:
            lines.append(f"| `{name}` | {why} | not run | | |")
            continue
        verdict = "" if ok(r) else " **FAILED**"
        lines.append(
            f"| `{name}` | {why} | {len(r['passed'])}{verdict} | {len(r['not_applicable'])} | {len(r['warnings'])} |"
        )
        notes += [f"- `{name}`, not applicable: {item}" for item in r["not_applicable"]]
        notes += [f"- `{name}`, warning: {item}" for item in r["warnings"]]
        notes += [f"- `{name}`, FAILED: {item}" for item in r["failed"]]
    if notes:
        lines += ["", "Checks within those scenarios that were not counted as passed:", "", *notes]
    lines += [
        "",
        "## Scenarios that do not apply",
        "",
        'They test the suite\'s own fixture server (the "everything server" tools, resources and prompts), or '
        "capabilities ArgoBox deliberately does not offer. Those that were run anyway show what happened, for the "
        "record.",
        "",
        "| scenario | why it does not apply | when run: passed / not applicable / failed |",
        "|---|---|---|",
    ]
    for name, why in DOES_NOT_APPLY.items():
        r = results.get(name)
        shown = f"{len(r['passed'])} / {len(r['not_applicable'])} / {len(r['failed'])}" if r else "not run"
        lines.append(f"| `{name}` | {why} | {shown} |")
    applicable = [results[n] for n in APPLIES if n in results]
    lines += [
        "",
        f"Applicable scenarios: {sum(ok(r) for r in applicable)} passed, {sum(not ok(r) for r in applicable)} failed.",
    ]
    return "\n".join(lines) + "\n"


async def main_async(args: argparse.Namespace) -> int:
    tools = node_tools()
    scenarios = args.scenario or (
        list(APPLIES) + [s for s in DOES_NOT_APPLY if not s.endswith(("*", "]"))] if args.all else list(APPLIES)
    )
    with tempfile.TemporaryDirectory(prefix="argobox-conformance-") as tmp:
        workdir = Path(tmp)
        async with daemon(workdir) as url, proxy(url) as proxied:
            results = await run_suite(proxied, scenarios, tools, workdir)
    for name, r in results.items():
        print(
            f"{name:40s} passed {len(r['passed']):3d}  not applicable {len(r['not_applicable']):2d}  "
            f"warnings {len(r['warnings']):2d}  failed {len(r['failed']):2d}  {'ok' if ok(r) else 'FAILED'}"
        )
        for failure in r["failed"]:
            print(f"    - {failure}")
    if args.json:
        await anyio.Path(args.json).write_text(json.dumps(results, indent=2, sort_keys=True))
    if args.markdown:
        await anyio.Path(args.markdown).write_text(markdown(results))
    applicable = [r for n, r in results.items() if n in APPLIES]
    print(f"applicable scenarios: {sum(ok(r) for r in applicable)} passed, {sum(not ok(r) for r in applicable)} failed")
    return 0 if all(ok(r) for r in applicable) else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--scenario", action="append", help="run only this scenario (repeatable)")
    parser.add_argument("--all", action="store_true", help="also run the scenarios that do not apply, for the record")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--markdown", help="write docs/conformance.md here")
    sys.exit(anyio.run(main_async, parser.parse_args()))


if __name__ == "__main__":
    main()
