"""`argobox demo`: the first proof, live, against the simulated lab; then the same with Home Assistant.

Nothing here is staged: a scripted agent talks to a real `argobox serve` process over MCP stdio with the
official client, and the operator approves with the real `argobox approve` command in another process.
The lab (containers and a small Home Assistant) is simulated so the demo never touches a Docker engine or a home.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import anyio

from argobox.server.cli.common import AddParser, Cli

DEMO_CONFIG = textwrap.dedent("""\
    # The demo's configuration: a simulated lab, one operator and one agent.
    [storage]
    path = "argobox.db"

    [docker]
    simulated_lab = "lab.json"

    [homeassistant]
    simulated_home = "home.json"

    [approvals]
    ttl_seconds = 600

    [[operators]]
    name = "alice"

    [[agents.openclaw.rules]]
    tools = ["docker_list_containers", "docker_inspect_container", "docker_container_logs"]
    effect = "allow"

    [[agents.openclaw.rules]]
    tools = ["docker_restart_container", "docker_start_container", "docker_stop_container"]
    args = { container = ["jellyfin", "web-*"] }
    effect = "approve"

    [[agents.openclaw.rules]]
    tools = ["ha_list_entities", "ha_get_state"]
    args = { entity_id = ["light.*", "lock.front_door", "cover.garage_door", "sensor.*"] }
    effect = "allow"

    [[agents.openclaw.rules]]
    tools = ["ha_list_services"]
    effect = "allow"

    [[agents.openclaw.rules]]
    tools = ["ha_call_service"]
    args = { domain = ["light"], service = ["turn_on", "turn_off"], entity_id = ["light.living_room_*"] }
    effect = "allow"        # pre-approved: a constrained mutation runs without approval

    [[agents.openclaw.rules]]
    tools = ["ha_call_service"]
    args = { domain = ["lock", "cover"] }
    effect = "approve"      # doors need a human
""")


def _say(title: str, body: str = "") -> None:
    print(f"\n== {title}")
    if body:
        print(textwrap.indent(body.rstrip(), "   "))


def _argobox(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real `argobox` command in its own process, as an operator would."""
    return subprocess.run(  # noqa: S603 - this same program, with arguments the demo chose
        [sys.executable, "-m", "argobox", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _structured(result: Any) -> dict[str, Any]:
    return dict(result.structured_content or {})


async def _agent_session(config: Path, calls: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    from mcp import Client, StdioServerParameters  # the MCP client is slow to import; only the demo needs it

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "argobox", "--config", str(config), "serve", "--agent", "openclaw"]
    )
    outcomes: list[dict[str, Any]] = []
    async with Client(params) as client:
        for tool, arguments in calls:
            result = await client.call_tool(tool, arguments)
            outcomes.append(_structured(result))
    return outcomes


def add_parser(add: AddParser, common: argparse.ArgumentParser) -> None:
    """`argobox demo [--dir DIR]` (it writes its own configuration, so it takes no --config)."""
    demo = add(
        "demo",
        help="run the first proof live against the simulated lab",
        description="Run the first proof live: a scripted agent asks a real ArgoBox over MCP, and the operator "
        "approves with the real CLI, against a simulated lab and home (no Docker engine or Home Assistant needed).",
    )
    demo.add_argument("--dir", metavar="DIR", help="keep the demo's config, store and lab here (default: a temp dir)")
    demo.set_defaults(run=_run_command)


def _run_command(args: argparse.Namespace, cli: Cli) -> int:
    return run_demo(Path(args.dir) if args.dir else None)


def run_demo(directory: Path | None) -> int:
    """Run the first proof; returns the process exit status."""
    if directory is None:
        with tempfile.TemporaryDirectory(prefix="argobox-demo-") as tmp:
            return _run(Path(tmp))
    directory.mkdir(parents=True, exist_ok=True)
    return _run(directory)


def _run(directory: Path) -> int:
    config = directory / "argobox.toml"
    config.write_text(DEMO_CONFIG)
    _say("ArgoBox demo: the first proof, against a simulated lab", f"config: {config}\n\n{DEMO_CONFIG}")

    listing, pending, denied = anyio.run(
        _agent_session,
        config,
        [
            ("docker_list_containers", {"all": True}),
            ("docker_restart_container", {"container": "jellyfin"}),
            ("docker_restart_container", {"container": "postgres"}),
        ],
    )
    names = ", ".join(f"{c['name']} ({c['state']})" for c in listing["result"]["containers"])
    _say("1. The agent lists containers (read-only: allowed at once)", names)
    _say("2. The agent asks to restart jellyfin: classified mutate, queued for approval", json.dumps(pending, indent=2))
    _say("   ...and asks to restart postgres, which its grant does not cover", denied["message"])
    request_id = pending["request_id"]

    queue = _argobox(config, "requests", "--status", "pending_approval")
    _say("3. The operator looks at the queue: argobox requests --status pending_approval", queue.stdout)
    approved = _argobox(config, "approve", request_id, "--as", "alice", "--note", "demo")
    _say(
        f"4. The operator approves: argobox approve {request_id} --as alice (exit {approved.returncode})",
        approved.stdout + approved.stderr,
    )
    again = _argobox(config, "approve", request_id, "--as", "alice")
    _say(f"   A second approval is refused (exit {again.returncode}): the action runs once", again.stderr)

    (status,) = anyio.run(_agent_session, config, [("argobox_request_status", {"request_id": request_id})])
    _say("5. The agent checks back: argobox_request_status", status["message"])
    audit = _argobox(config, "audit", "--request", request_id)
    _say(f"6. The audit trail: argobox audit --request {request_id}", audit.stdout)
    ok = pending["status"] == "pending_approval" and approved.returncode == 0 and status["status"] == "succeeded"
    _say("Result", "the first proof held" if ok else "the first proof did NOT hold; see above")
    home_ok = _home_assistant(config)
    _say("Result", "the Home Assistant gate held" if home_ok else "the Home Assistant gate did NOT hold; see above")
    return 0 if ok and home_ok else 1


def _home_assistant(config: Path) -> bool:
    """The same gate in front of (simulated) Home Assistant: a pre-approved light, a door that needs a human."""
    calls: list[tuple[str, dict[str, Any]]] = [
        ("ha_list_entities", {}),
        ("ha_call_service", {"domain": "light", "service": "turn_on", "entity_id": "light.living_room_lamp"}),
        ("ha_call_service", {"domain": "light", "service": "turn_off", "entity_id": "light.kitchen"}),
        ("ha_call_service", {"domain": "lock", "service": "unlock", "entity_id": "lock.front_door"}),
    ]
    entities, lamp, kitchen, door = anyio.run(_agent_session, config, calls)
    shown = ", ".join(f"{e['entity_id']} ({e['state']})" for e in entities["result"]["entities"])
    _say("7. Home Assistant: the agent lists the entities its grant shows (the porch camera is not among them)", shown)
    _say(
        "8. It turns on the living room lamp: pre-approved by a rule naming domain, service and entities",
        lamp["message"] + "\n" + json.dumps({k: lamp["result"][k] for k in ("before", "after")}),
    )
    _say("   ...and to turn off the kitchen light, which no rule covers", kitchen["message"])
    _say("9. It asks to unlock the front door: a lock always needs a human", door["message"])
    request_id = door["request_id"]
    shown_request = _argobox(config, "show", request_id)
    _say(f"10. The operator sees what it would change: argobox show {request_id}", shown_request.stdout)
    approved = _argobox(config, "approve", request_id, "--as", "alice", "--note", "letting the plumber in")
    _say(f"11. The operator approves (exit {approved.returncode})", approved.stdout + approved.stderr)
    audit = _argobox(config, "audit", "--request", request_id)
    _say(f"12. The audit trail records the states before and after: argobox audit --request {request_id}", audit.stdout)
    return (
        lamp["status"] == "succeeded"
        and kitchen["status"] == "denied"
        and door["status"] == "pending_approval"
        and "locked → unlock" in shown_request.stdout
        and approved.returncode == 0
    )
