"""The one reviewed table of what every agent tool is: its classification and the arguments that name its target.

A tool that is not in this table does not exist for policy: it can never be granted, and a call to it is denied.
Adding a row here is a security decision; review it as one. The runbooks a configuration declares join the table
for that configuration only (`with_tools`), each classified by its own `kind`.
"""

from __future__ import annotations

import shlex
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import cast


class Backend(StrEnum):
    """The backend a tool needs; a tool whose backend is not configured does not exist for the agent."""

    DOCKER = "docker"
    HOMEASSISTANT = "homeassistant"
    RUNBOOKS = "runbooks"
    """Tools made from the configured `[runbooks.NAME]` (see `with_tools`)."""


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
    """How the operator reads a call, with `{arg}` placeholders, e.g. "restart container {container}". A value is
    shown quoted (`'jellyfin'`); `{arg:bare}` shows it as is, for values validated to plain identifiers."""
    backend: Backend = Backend.DOCKER
    defaulted_args: tuple[tuple[str, str], ...] = ()
    """Arguments a call may leave out, with the value it then stands for (the Docker `host`: "default"). Rules may
    constrain them, and a call is decided as if it carried that value."""
    command: tuple[str, ...] = ()
    """A runbook's argv, one template per word (`{param}` placeholders, other braces doubled). A call reads as
    `description`, then this argv filled in, each word quoted as a whole for a POSIX shell (`command_parts`)."""

    @property
    def constrainable_args(self) -> tuple[str, ...]:
        return self.target_args + self.filter_args + tuple(name for name, _ in self.defaulted_args)

    def with_defaults(self, args: Mapping[str, object]) -> dict[str, object]:
        """`args` with every defaulted argument the call left out (or passed as null) set to its value."""
        filled = dict(args)
        for name, value in self.defaulted_args:
            if filled.get(name) is None:
                filled[name] = value
        return filled


def _read(
    name: str,
    description: str,
    *,
    target: tuple[str, ...] = (),
    filters: tuple[str, ...] = (),
    backend: Backend = Backend.DOCKER,
) -> ToolClass:
    return ToolClass(
        name=name,
        classification=Classification.READ,
        target_args=target,
        filter_args=filters,
        description=description,
        backend=backend,
        defaulted_args=ON_DOCKER_HOST if backend is Backend.DOCKER and target else (),
    )


def _mutate(name: str, description: str, *, target: tuple[str, ...], backend: Backend = Backend.DOCKER) -> ToolClass:
    return ToolClass(
        name=name,
        classification=Classification.MUTATE,
        target_args=target,
        description=description,
        backend=backend,
        defaulted_args=ON_DOCKER_HOST if backend is Backend.DOCKER else (),
    )


DEFAULT_DOCKER_HOST = "default"
"""The engine of `[docker] base_url`; `[docker.hosts.NAME]` adds others, which container tools reach with `host`."""
ON_DOCKER_HOST = (("host", DEFAULT_DOCKER_HOST),)


HA = Backend.HOMEASSISTANT


CATALOG: dict[str, ToolClass] = {
    tool.name: tool
    for tool in (
        _read("docker_list_containers", "list containers", filters=("container", "host")),
        _read("docker_inspect_container", "inspect container {container}", target=("container",)),
        _read("docker_container_logs", "read the logs of container {container}", target=("container",)),
        _mutate("docker_start_container", "start container {container}", target=("container",)),
        _mutate("docker_stop_container", "stop container {container}", target=("container",)),
        _mutate("docker_restart_container", "restart container {container}", target=("container",)),
        # Home Assistant. A rule's `entity_id` and `domain` globs filter what the list tools show; `ha_list_services`
        # shows only services that some ha_call_service rule could grant. A pre-approved (`allow`) service call must
        # constrain domain, service and entity_id (and name exact entities in sensitive domains, see decide.py).
        _read("ha_list_entities", "list Home Assistant entities", filters=("entity_id", "domain"), backend=HA),
        _read("ha_get_state", "read the state of Home Assistant entity {entity_id}", target=("entity_id",), backend=HA),
        _read("ha_list_services", "list Home Assistant services", filters=("domain", "service"), backend=HA),
        _mutate(
            "ha_call_service",
            "call Home Assistant service {domain:bare}.{service:bare} on {entity_id}",
            target=("domain", "service", "entity_id"),
            backend=HA,
        ),
    )
}

BUILTIN_TOOLS = frozenset({"argobox_request_status"})
"""Tools every configured agent has without a rule: they only read the agent's own requests."""


class _Shown:
    """A value in a description: quoted by default, as is with the `bare` format spec."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __format__(self, spec: str) -> str:
        value = self.value
        if spec == "bare" and isinstance(value, str):
            return value
        if isinstance(value, list | tuple):
            return ", ".join(repr(v) for v in cast("Sequence[object]", value))
        return repr(value)


def describe_call(tool: str, args: dict[str, object], catalog: Mapping[str, ToolClass] = CATALOG) -> str:
    """The call in words, e.g. "restart container 'jellyfin'"; unknown tools are shown by name."""
    known = catalog.get(tool)
    if known is None:
        return tool
    shown = {name: _Shown(value) for name, value in args.items()}
    try:
        text = known.description.format_map(shown)
    except (KeyError, ValueError):
        text = known.description
    if known.command:
        text += " " + "".join(piece for piece, _ in command_parts(known.command, args))
    for name, default in known.defaulted_args:  # e.g. " on host 'nas'" when not the default Docker host
        if args.get(name) not in (None, default):
            text += f" on {name} {_Shown(args[name]):}"
    return text


def command_parts(words: Sequence[str], args: Mapping[str, object]) -> list[tuple[str, bool]]:
    """A runbook's argv template filled with `args`, as (text, is a value) pieces. Each word is quoted as a whole,
    exactly as `shlex.join` quotes the argv that runs, so `sh -c 'echo hi; id'` never reads as
    `sh -c echo 'hi; id'`; a placeholder without a value is shown as written."""
    parts: list[tuple[str, bool]] = []
    for number, word in enumerate(words):
        pieces = [
            piece
            for literal, name, _, _ in string.Formatter().parse(word)
            for piece in ((literal, False), _filled(name, args))
            if piece[0]
        ]
        whole = "".join(text for text, _ in pieces)
        if shlex.quote(whole) != whole:
            pieces = [("'", False), *((t.replace("'", "'\"'\"'"), v) for t, v in pieces), ("'", False)]
        parts += [(" ", False)] if number else []
        parts += pieces
    return parts


def _filled(name: str | None, args: Mapping[str, object]) -> tuple[str, bool]:
    if name is None:
        return "", False
    return (str(args[name]), True) if name in args else ("{" + name + "}", False)


def tools_for(backends: Iterable[Backend], catalog: Mapping[str, ToolClass] = CATALOG) -> frozenset[str]:
    """The catalog tools that exist when exactly `backends` are configured."""
    wanted = set(backends)
    return frozenset(name for name, tool in catalog.items() if tool.backend in wanted)


def with_tools(extra: Iterable[ToolClass]) -> Mapping[str, ToolClass]:
    """The reviewed table plus tools a configuration declares (runbooks), which can never replace a row of it."""
    catalog = dict(CATALOG)
    for tool in extra:
        if tool.name in catalog or tool.name in BUILTIN_TOOLS:
            raise ValueError(f"{tool.name!r} is already a tool")
        catalog[tool.name] = tool
    return MappingProxyType(catalog)
