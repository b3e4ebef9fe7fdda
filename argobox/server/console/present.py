"""How a request is put into words on a page, keeping ArgoBox's words apart from the agent's values.

ArgoBox's summary of an action comes from the tool catalog ("restart container {container}"); the values filled in
come from the agent. `summary_parts` returns the pieces so that the page can show the catalog's words as ArgoBox's
and each value as the agent's.

The data a page shows is split as the operator MCP tools split it (`ops.mark_request`, `mark_event`,
`mark_explained`): everything an agent wrote (a request's arguments, a preview's changes, the name of a tool that does
not exist and what was recorded of that call) is under `agent_supplied`, and the templates show that part in a box
marked "agent"; ArgoBox's own account stays outside it.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from argobox.server.console import ops


@dataclass(frozen=True, slots=True)
class Part:
    text: str
    agent: bool
    """Whether this piece is a value the agent supplied (shown marked as such)."""


def _value(value: Any, spec: str) -> str:
    if spec == "bare" and isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return ", ".join(repr(v) for v in cast(list[Any], value))
    return repr(value)


def summary_parts(tool: str, arguments: dict[str, Any], catalog: Mapping[str, ops.ToolClass]) -> list[Part]:
    """ArgoBox's description of the call in the words of `catalog` (the table in force, which knows the configured
    runbooks), split into its own words and the agent's values."""
    known = catalog.get(tool)
    if known is None:
        return [Part("a tool ArgoBox does not know: ", agent=False), Part(tool, agent=True)]
    parts: list[Part] = []
    for literal, field, spec, _ in string.Formatter().parse(known.description):
        if literal:
            parts.append(Part(literal, agent=False))
        if field is not None:
            if field in arguments:
                parts.append(Part(_value(arguments[field], spec or ""), agent=True))
            else:
                parts.append(Part(f"<{field}>", agent=False))
    if known.command:  # a runbook: its argv, each word quoted as a whole, with the values marked
        parts.append(Part(" ", agent=False))
        parts += [Part(text, agent=value) for text, value in ops.command_parts(known.command, arguments)]
    return parts


def supplied(view: dict[str, Any]) -> dict[str, Any]:
    """What an agent wrote, from a view split by `ops.mark_*`, without the note addressed to MCP clients (the page
    marks it as the agent's instead)."""
    values = cast(dict[str, Any], view.get(ops.AGENT_SUPPLIED) or {})
    return {key: value for key, value in values.items() if key != "untrusted"}


def event_view(event: dict[str, Any]) -> dict[str, Any]:
    """An audit event split by `ops.mark_event`, for `_event.html`: `supplied_tool` (the name of a tool that does not
    exist, as the agent wrote it) and `supplied` (the rest of what the agent wrote) beside ArgoBox's own `detail`,
    and `backend` (what the backend answered: the detail of an outcome)."""
    values = supplied(event)
    tool = values.pop("tool", None)
    backend = cast(dict[str, Any], event.get(ops.BACKEND_OUTPUT) or {}).get("detail")
    return {**event, "supplied_tool": tool, "supplied": values, "backend": backend}


def supplied_arguments(view: dict[str, Any]) -> dict[str, Any]:
    """The arguments the agent sent, from a request view split by `ops.mark_request`."""
    arguments = supplied(view).get("arguments")
    return cast(dict[str, Any], arguments) if isinstance(arguments, dict) else {}


def targets(tool: str, arguments: dict[str, Any], catalog: Mapping[str, ops.ToolClass]) -> list[tuple[str, Any]]:
    """The arguments that name what the call acts on, as the catalog defines them."""
    known = catalog.get(tool)
    return [(name, arguments[name]) for name in (known.target_args if known else ()) if name in arguments]


STATUS_WORDS = {
    "pending_approval": "waiting for a decision",
    "approved": "approved, about to run",
    "executing": "running now",
    "succeeded": "ran and succeeded",
    "failed": "ran and failed",
    "denied": "denied",
    "expired": "expired before anyone decided",
    "unknown": "interrupted: check the target before retrying",
}


def status_words(status: str) -> str:
    return STATUS_WORDS.get(status, status)
