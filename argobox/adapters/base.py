"""What the server layer may expect of a backend: result models, errors and one Protocol per domain.

Every backend error is translated at the adapter boundary into an `AdapterError` whose message is safe to
show the agent: it names the target and the next step, and never carries credentials or a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, Self

from pydantic import BaseModel, ConfigDict, PrivateAttr

REDACTED = "<redacted>"


class AdapterError(Exception):
    """A backend failed or refused. The message is safe to show the agent and the operator."""


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

    async def list_containers(self, *, all: bool) -> list[ContainerSummary]: ...

    async def inspect_container(self, container: str) -> ContainerDetail: ...

    async def container_logs(self, container: str, *, tail: int) -> ContainerLogs: ...

    async def start_container(self, container: str) -> ContainerAction: ...

    async def stop_container(self, container: str) -> ContainerAction: ...

    async def restart_container(self, container: str) -> ContainerAction: ...

    async def aclose(self) -> None: ...


MAX_LOG_LINES = 1000
MAX_LOG_BYTES = 256 * 1024
