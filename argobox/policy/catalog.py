"""The one reviewed table of what every agent tool is: its classification and the arguments that name its target.

A tool that is not in this table does not exist for policy: it can never be granted, and a call to it is denied.
Adding a row here is a security decision; review it as one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Classification(StrEnum):
    READ = "read"
    """Observes the backend; changes nothing."""
    MUTATE = "mutate"
    """Changes the state of the backend or of the world."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolClass:
    name: str
    classification: Classification
    target_args: tuple[str, ...]
    """Arguments that name what the call acts on. A rule that lets a `mutate` tool run without approval must
    constrain every one of them."""
    filter_args: tuple[str, ...] = ()
    """Rule arguments the tool does not take but applies as a filter on what it returns (list tools)."""
    description: str
    """How the operator reads a call, with `{arg}` placeholders, e.g. "restart container {container}"."""

    @property
    def constrainable_args(self) -> tuple[str, ...]:
        return self.target_args + self.filter_args


def _read(name: str, description: str, *, target: tuple[str, ...] = (), filters: tuple[str, ...] = ()) -> ToolClass:
    return ToolClass(
        name=name,
        classification=Classification.READ,
        target_args=target,
        filter_args=filters,
        description=description,
    )


def _mutate(name: str, description: str, *, target: tuple[str, ...]) -> ToolClass:
    return ToolClass(name=name, classification=Classification.MUTATE, target_args=target, description=description)


CATALOG: dict[str, ToolClass] = {
    tool.name: tool
    for tool in (
        _read("docker_list_containers", "list containers", filters=("container",)),
        _read("docker_inspect_container", "inspect container {container}", target=("container",)),
        _read("docker_container_logs", "read the logs of container {container}", target=("container",)),
        _mutate("docker_start_container", "start container {container}", target=("container",)),
        _mutate("docker_stop_container", "stop container {container}", target=("container",)),
        _mutate("docker_restart_container", "restart container {container}", target=("container",)),
    )
}

BUILTIN_TOOLS = frozenset({"argobox_request_status"})
"""Tools every configured agent has without a rule: they only read the agent's own requests."""


def describe_call(tool: str, args: dict[str, object]) -> str:
    """The call in words, e.g. "restart container 'jellyfin'"; unknown tools are shown by name."""
    known = CATALOG.get(tool)
    if known is None:
        return tool
    shown = {name: repr(value) for name, value in args.items()}
    try:
        return known.description.format_map(shown)
    except KeyError:
        return known.description


def classify(tool: str) -> ToolClass | None:
    """The classification of `tool`, or None when the tool is unknown (and therefore denied)."""
    return CATALOG.get(tool)
