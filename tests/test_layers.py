"""The dependency direction holds: server -> policy, server -> adapters; policy is pure; adapters stand alone."""

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


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_nothing_it_must_not(layer: str) -> None:
    offenders = {
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in (PACKAGE / layer).rglob("*.py")
        for name in imports(path)
        if any(name == banned or name.startswith(banned + ".") for banned in FORBIDDEN[layer])
    }

    assert offenders == set()
