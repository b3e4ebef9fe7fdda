"""What the server layer may expect of a backend: result models, errors and one Protocol per domain.

Every backend error is translated at the adapter boundary into an `AdapterError` whose message is safe to
show the agent: it names the target and the next step, and never carries credentials or a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Self

from pydantic import BaseModel, ConfigDict, PrivateAttr

if TYPE_CHECKING:
    from argobox.adapters.commands import CommandRunner

REDACTED = "<redacted>"
"""What every secret is replaced with, wherever it would have shown."""

MIN_SECRET_LENGTH = 6
"""Shorter values (and shorter lines of multi-line values) are not hunted for in free text: they would blank out
ordinary words."""


def secret_fragments(values: Iterable[str]) -> tuple[str, ...]:
    """What to remove from a text so that none of `values` shows in it, longest first: each value, stripped, and
    every line of a multi-line value that is long enough to be secret (a PEM key reaches a log one line at a time)."""
    found: set[str] = set()
    for value in values:
        for candidate in (value, value.strip(), *value.splitlines()):
            fragment = candidate.strip() if candidate is not value else candidate
            if len(fragment) >= MIN_SECRET_LENGTH:
                found.add(fragment)
    return tuple(sorted(found, key=lambda f: (-len(f), f)))


def replace_secrets(text: str, fragments: Sequence[str]) -> str:
    """`text` with every fragment (from `secret_fragments`, longest first) replaced by REDACTED."""
    for fragment in fragments:
        if fragment in text:
            text = text.replace(fragment, REDACTED)
    return text


class AdapterError(Exception):
    """A backend failed or refused. The message is safe to show the agent and the operator.

    `detail` carries what was observed before the failure (e.g. the target states before a service call), for the
    audit trail; it holds no credentials.
    """

    def __init__(self, message: str, *, detail: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.detail: dict[str, Any] = dict(detail or {})


class BackendUnavailable(AdapterError):
    """Raised when the backend cannot be reached at all (socket missing, connection refused, timeout)."""


class TargetNotFound(AdapterError):
    """Raised when the named container (or entity) does not exist on the backend."""


class BackendRejected(AdapterError):
    """Raised when the backend answered but refused or failed the operation (API error, conflict)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    _secret_values: tuple[str, ...] = PrivateAttr(default=())

    def carrying_secrets(self, values: Iterable[str]) -> Self:
        """Mark values (never serialised) that the server must redact wherever they appear in this result."""
        self._secret_values = tuple(value for value in values if value)
        return self


def secret_values(result: BaseModel) -> tuple[str, ...]:
    """The values a backend marked secret in `result` (e.g. the container's environment values in its logs)."""
    values: object = getattr(result, "_secret_values", ())
    return tuple(v for v in values if isinstance(v, str)) if isinstance(values, tuple) else ()  # pyright: ignore[reportUnknownVariableType]


class ContainerSummary(_Model):
    id: str
    """Short (12 hex digits) container id."""
    name: str
    image: str
    state: str
    """Engine state: created, running, paused, restarting, removing, exited or dead."""
    status: str
    """Human-readable status as the engine words it, e.g. "Up 3 minutes"."""


class PortBinding(_Model):
    container_port: str
    """e.g. "80/tcp"."""
    host_ip: str | None = None
    host_port: str | None = None


class Mount(_Model):
    type: str
    source: str | None = None
    destination: str
    read_only: bool


class ContainerDetail(_Model):
    id: str
    name: str
    image: str
    state: str
    health: str | None
    """Health check status (healthy, unhealthy, starting) or None when the container has no health check."""
    restart_count: int
    exit_code: int | None
    ports: list[PortBinding]
    mounts: list[Mount]
    labels: dict[str, str]
    env: dict[str, str]
    """Environment variable names; every value is replaced by REDACTED."""
    created_at: str
    started_at: str | None
    finished_at: str | None


class ContainerLogs(_Model):
    """The container's environment values are marked secret: they are redacted from the lines."""

    container: str
    lines: list[str]
    truncated: bool
    """True when older lines were dropped to stay within the line or byte bound."""


class ContainerAction(_Model):
    """What the engine reports after a start, stop or restart."""

    container: str
    action: str
    state: str
    started_at: str | None
    finished_at: str | None
    restart_count: int


class ContainerRuntime(Protocol):
    """A Docker-API-compatible container engine (the real one, or the simulated demo lab)."""

    async def describe(self) -> str:
        """What answers, e.g. "Docker Engine 20.10.24 (API 1.41)"; raises AdapterError when nothing does."""
        ...

    async def list_containers(self, *, all: bool) -> list[ContainerSummary]: ...

    async def inspect_container(self, container: str) -> ContainerDetail: ...

    async def container_logs(self, container: str, *, tail: int) -> ContainerLogs: ...

    async def start_container(self, container: str) -> ContainerAction: ...

    async def stop_container(self, container: str) -> ContainerAction: ...

    async def restart_container(self, container: str) -> ContainerAction: ...

    async def aclose(self) -> None: ...


MAX_LOG_LINES = 1000
MAX_LOG_BYTES = 256 * 1024


# Home Assistant --------------------------------------------------------------------------------------------------

MAX_ATTRIBUTES = 64
"""At most this many attributes of one entity are returned (sorted by name); the rest are dropped."""
MAX_ATTRIBUTE_CHARS = 2048
"""An attribute whose JSON form is longer than this is replaced by a note saying how long it was."""


class EntitySummary(_Model):
    entity_id: str
    name: str | None
    """The friendly name, when Home Assistant has one."""
    state: str
    domain: str
    last_changed: str | None


class EntityDetail(_Model):
    entity_id: str
    name: str | None
    state: str
    domain: str
    last_changed: str | None
    last_updated: str | None
    attributes: dict[str, Any]
    """Bounded (MAX_ATTRIBUTES, MAX_ATTRIBUTE_CHARS); secret-looking values are redacted before they leave ArgoBox."""


class ServiceSummary(_Model):
    domain: str
    service: str
    name: str | None
    description: str | None
    fields: list[str]
    """Names of the service data fields Home Assistant documents for it."""


class TargetState(_Model):
    entity_id: str
    state: str | None
    """None when Home Assistant does not know the entity."""


class ServiceCallResult(_Model):
    """A service call that ran once, with the state of every target just before and just after it."""

    domain: str
    service: str
    entity_ids: list[str]
    before: list[TargetState]
    after: list[TargetState]


class HomeAutomation(Protocol):
    """A Home Assistant instance (the real one through its REST API, or the simulated demo home)."""

    async def describe(self) -> str:
        """What answers and that it accepts the token, e.g. "Home Assistant 2024.3.3"; raises AdapterError."""
        ...

    async def list_entities(self) -> list[EntitySummary]: ...

    async def get_state(self, entity_id: str) -> EntityDetail: ...

    async def target_states(self, entity_ids: Sequence[str]) -> list[TargetState]:
        """The current state of each entity, None for those Home Assistant does not know."""
        ...

    async def list_services(self) -> list[ServiceSummary]: ...

    async def call_service(
        self, domain: str, service: str, entity_ids: Sequence[str], data: Mapping[str, Any]
    ) -> ServiceCallResult:
        """Check that every target exists (TargetNotFound otherwise, and nothing is called), call the service exactly
        once (never retried: a failed call may have run) and read the targets again. An AdapterError raised after the
        targets were read carries them in `detail["before"]`."""
        ...

    async def notify(self, service: str, *, title: str, message: str, data: Mapping[str, Any] | None = None) -> None:
        """Send a push through a `notify.*` service (the operator's phone); sent once, never retried here. `data` is
        the service's `data` field (the companion app's `tag`, `actions`, ...), left out when None."""
        ...

    async def aclose(self) -> None: ...


def no_entity(entity_id: str) -> TargetNotFound:
    return TargetNotFound(f"No Home Assistant entity {entity_id!r}; check the entity id with ha_list_entities.")


def bounded_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """At most MAX_ATTRIBUTES attributes, each at most MAX_ATTRIBUTE_CHARS long once serialised."""
    out: dict[str, Any] = {}
    for key in sorted(attributes)[:MAX_ATTRIBUTES]:
        value = attributes[key]
        size = len(json.dumps(value, default=str))
        out[str(key)] = value if size <= MAX_ATTRIBUTE_CHARS else f"<omitted: {size} characters>"
    return out


def states_by_id(states: Sequence[TargetState]) -> dict[str, str | None]:
    """`[TargetState]` as `{entity_id: state}`, the form the audit trail records."""
    return {s.entity_id: s.state for s in states}


# The backends of one process -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Backends:
    """The backends configured for this process; tools reach them only through this."""

    docker: ContainerRuntime
    homeassistant: HomeAutomation | None = None
    commands: CommandRunner | None = None
    """Runs runbook commands on the built-in `local` host and the configured `[hosts.NAME]`."""
    docker_hosts: Mapping[str, ContainerRuntime] = field(default_factory=dict[str, ContainerRuntime])
    """The engines of `[docker.hosts.NAME]`, beside `docker` (the default host, `[docker] base_url`)."""

    def home(self) -> HomeAutomation:
        """The Home Assistant backend; raises BackendUnavailable when the configuration has none."""
        if self.homeassistant is None:
            raise BackendUnavailable(
                "Home Assistant is not configured here; the operator must add a [homeassistant] section."
            )
        return self.homeassistant

    def engine(self, host: str | None) -> ContainerRuntime:
        """The Docker engine named `host` (None or "default": the one of `[docker] base_url`)."""
        if host is None or host == "default":
            return self.docker
        engine = self.docker_hosts.get(host)
        if engine is None:
            known = ", ".join(["default", *sorted(self.docker_hosts)])
            raise TargetNotFound(f"No Docker host named {host!r} (configured: {known}).")
        return engine

    def runner(self) -> CommandRunner:
        """The runbook command runner; raises BackendUnavailable when this process has none."""
        if self.commands is None:
            raise BackendUnavailable("runbooks cannot run here: this ArgoBox process has no command runner.")
        return self.commands
