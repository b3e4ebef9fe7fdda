"""The configuration `argobox init` writes: minimal, commented, for what the user has.

Docker only unless Home Assistant is named; one operator and one agent, each with a token of which only the hash is
written; a starter grant that lets the agent read at once and puts every change behind an operator's approval.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from argobox.policy.catalog import CATALOG, Backend, Classification

SYSTEM_CONFIG_DIR = Path("/etc/argobox")
SYSTEM_DATA_DIR = Path("/var/lib/argobox")
CONFIG_NAME = "argobox.toml"
NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")
"""A configured name (operator, agent), as `argobox.server.config.model.Name` checks it."""
NAME_RULE = "a lowercase letter, then up to 63 lowercase letters, digits, '-' or '_'"
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class Starter:
    """What the starter configuration is made of."""

    store: Path
    docker_url: str
    homeassistant_url: str | None
    operator: str
    operator_sha256: str
    agent: str
    agent_sha256: str


def default_dirs(*, root: bool, env: dict[str, str] | None = None) -> tuple[Path, Path]:
    """Where the configuration and the store go: system folders for root, the user's XDG folders otherwise."""
    if root:
        return SYSTEM_CONFIG_DIR, SYSTEM_DATA_DIR
    env = dict(os.environ) if env is None else env
    home = Path(env.get("HOME") or Path.home())
    config_home = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else home / ".config"
    data_home = Path(env["XDG_DATA_HOME"]) if env.get("XDG_DATA_HOME") else home / ".local" / "share"
    return config_home / "argobox", data_home / "argobox"


def operator_name(user: str | None) -> str:
    """A configured-name form of the local user's name (`[a-z][a-z0-9_-]*`), or "admin"."""
    name = re.sub(r"[^a-z0-9_-]", "", (user or "").lower())
    return name[:64] if name and name[0].isalpha() else "admin"


def toml_string(value: str) -> str:
    """`value` as a TOML basic string: quoted, every quote, backslash and control character escaped (JSON's escapes
    are TOML's; a lone surrogate, which is not text, yields an escape TOML refuses)."""
    return json.dumps(value)


def toml_key(value: str) -> str:
    """`value` as a TOML key: bare when it is a bare key, else quoted, so that it can never open a table."""
    return value if _BARE_KEY.fullmatch(value) else toml_string(value)


def _tools(backend: Backend, classification: Classification) -> list[str]:
    return sorted(n for n, t in CATALOG.items() if t.backend is backend and t.classification is classification)


def _rules(agent: str, backend: Backend) -> str:
    agent = toml_key(agent)
    reads = json.dumps(_tools(backend, Classification.READ))
    changes = json.dumps(_tools(backend, Classification.MUTATE))
    return (
        f'[[agents.{agent}.rules]]\ntools = {reads}\neffect = "allow"      # reads answer at once\n\n'
        f'[[agents.{agent}.rules]]\ntools = {changes}\neffect = "approve"    # every change waits for an operator\n'
    )


def starter_toml(starter: Starter) -> str:
    """The text of the starter configuration (valid TOML that `load_config` accepts)."""
    home = starter.homeassistant_url
    sections = [
        "# ArgoBox configuration, written by `argobox init`. Every key: config.example.toml.",
        "# Check it with `argobox doctor`; try a call without making it with `argobox check AGENT TOOL`.",
        "",
        "[storage]",
        f"path = {toml_string(str(starter.store))}   # the queue, the budgets and the audit trail",
        "",
        "[docker]",
        f"base_url = {toml_string(starter.docker_url)}",
        "",
    ]
    if home is not None:
        sections += [
            "[homeassistant]",
            f"url = {toml_string(home)}",
            'token_env = "ARGOBOX_HA_TOKEN"   # the long-lived access token is read from this variable, never here',
            "",
        ]
    sections += [
        "[approvals]",
        "ttl_seconds = 1800   # a request nobody decides expires after 30 minutes",
        "",
        "# The operator: approves and denies. Show the token (ARGOBOX_OPERATOR_TOKEN) with every action.",
        "[[operators]]",
        f"name = {toml_string(starter.operator)}",
        f"token_sha256 = {toml_string(starter.operator_sha256)}",
        "",
        "# The agent: its MCP client sends the token (stdio: ARGOBOX_AGENT_TOKEN; HTTP: Authorization: Bearer).",
        f"[agents.{toml_key(starter.agent)}]",
        f"token_sha256 = {toml_string(starter.agent_sha256)}",
        "",
        _rules(starter.agent, Backend.DOCKER),
    ]
    if home is not None:
        sections.append(_rules(starter.agent, Backend.HOMEASSISTANT))
    return "\n".join(sections).rstrip() + "\n"
