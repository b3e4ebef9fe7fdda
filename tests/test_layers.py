"""The dependency direction holds, between the three layers and between the rooms of `argobox.server`.

Layers: server -> policy, server -> adapters; policy is pure (no I/O, no clock); adapters stand alone.
Rooms of the server, each importing only the rooms below it:

    cli -> console -> transport -> mediation -> app -> config, store -> audit -> times, redact, text, files

The web console is a surface of its own, like the transports: only the command line starts it, and it reaches the
rest of ArgoBox through one module (`console/ops.py`), which may also use the transports (the operator MCP server it
serves at `/mcp`, the listen-address rules, the configuration watcher).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "argobox"
FORBIDDEN = {
    "policy": (
        "argobox.server",
        "argobox.adapters",
        "aiosqlite",
        "sqlite3",
        "docker",
        "homeassistant_api",
        "anyio",
        "mcp",
        "time",
        "os",
        "socket",
        "urllib",
    ),
    "adapters": ("argobox.server", "argobox.policy", "aiosqlite", "mcp"),
}

LEAVES = frozenset({"times", "redact", "text", "files"})
ROOMS: dict[str, frozenset[str]] = {
    "times": frozenset(),
    "redact": frozenset(),
    "text": frozenset(),
    "files": frozenset(),
    "audit": LEAVES,
    "config": LEAVES | {"audit"},
    "store": LEAVES | {"audit"},
    "app": LEAVES | {"audit", "config", "store"},
    "mediation": LEAVES | {"audit", "config", "store", "app"},
    "transport": LEAVES | {"audit", "config", "store", "app", "mediation"},
    "console": LEAVES | {"audit", "config", "store", "app", "mediation", "transport"},
    "cli": LEAVES | {"audit", "config", "store", "app", "mediation", "transport", "console"},
}
"""Each room of `argobox.server` and the rooms it may import (a room may always import itself)."""


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def room_offenders(server: Path) -> set[str]:
    """Every import in the package at `server` that goes from a room to a room it may not import."""
    offenders: set[str] = set()
    for path in server.rglob("*.py"):
        room = path.relative_to(server).parts[0].removesuffix(".py")
        if room == "__init__":
            continue
        if room not in ROOMS:
            offenders.add(f"{path.relative_to(server)} is in no known room")
            continue
        for name in imports(path):
            parts = name.split(".")
            if parts[:2] != ["argobox", "server"] or len(parts) < 3:
                continue
            target = parts[2]
            if target != room and target in ROOMS and target not in ROOMS[room]:
                offenders.add(f"{path.relative_to(server)} ({room}) imports {name} ({target})")
    return offenders


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_nothing_it_must_not(layer: str) -> None:
    offenders = {
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in (PACKAGE / layer).rglob("*.py")
        for name in imports(path)
        if any(name == banned or name.startswith(banned + ".") for banned in FORBIDDEN[layer])
    }

    assert offenders == set()


def test_rooms_of_the_server_import_only_the_rooms_below_them() -> None:
    assert room_offenders(PACKAGE / "server") == set()


def test_the_room_check_finds_an_upward_import_and_an_unknown_room(tmp_path: Path) -> None:
    (tmp_path / "mediation").mkdir()
    (tmp_path / "mediation" / "calls.py").write_text("from argobox.server.transport import agent\n")
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "core.py").write_text("from argobox.server.audit.chain import GENESIS\n")
    (tmp_path / "attic.py").write_text("")

    assert room_offenders(tmp_path) == {
        "mediation/calls.py (mediation) imports argobox.server.transport (transport)",
        "mediation/calls.py (mediation) imports argobox.server.transport.agent (transport)",
        "attic.py is in no known room",
    }


def test_only_the_consoles_ops_module_reaches_outside_the_console() -> None:
    console = PACKAGE / "server" / "console"
    outside = {
        f"{path.relative_to(console)} imports {name}"
        for path in console.rglob("*.py")
        if path.name != "ops.py"
        for name in imports(path)
        if name.startswith("argobox") and not name.startswith("argobox.server.console")
    }

    assert outside == set()
    assert any(name.startswith("argobox.server.") for name in imports(console / "ops.py"))
