"""The arguments of the agent-facing tools: strict models (unknown keys, wrong types and bad names refused before
any decision), and the messages an agent gets when its arguments do not fit."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Annotated, Any, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_serializer,
)

from argobox.adapters.base import MAX_LOG_LINES
from argobox.policy.decide import canonical_json
from argobox.server.redact import valid_text
from argobox.server.text import shorten


class Args(BaseModel):
    """The base of every tool's arguments: no extra keys, no coercion of types."""

    model_config = ConfigDict(extra="forbid", strict=True)


ContainerName = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"),
    Field(description="Container name, exactly (letters, digits, '_', '.', '-'; at most 128 characters)."),
]
RequestId = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9]{8,64}$"),
    Field(description="The request_id a pending result gave you."),
]


ENTITY_ID_PATTERN = r"^[a-z_]+\.[a-z0-9_]+$"
EntityId = Annotated[
    str,
    StringConstraints(pattern=ENTITY_ID_PATTERN, max_length=255),
    Field(description="A Home Assistant entity id, e.g. light.kitchen."),
]
DomainName = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9_]+$", max_length=64),
    Field(description="A Home Assistant domain, e.g. light or lock."),
]
ServiceName = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9_]+$", max_length=64),
    Field(description="A service of the domain, e.g. turn_on."),
]

MAX_TARGETS = 20
MAX_DATA_CHARS = 4096
MAX_DATA_DEPTH = 4
DATA_KEY = r"^[a-z_][a-z0-9_]{0,63}$"
TARGETING_KEYS = frozenset({"entity_id", "device_id", "area_id", "floor_id", "label_id", "target"})
"""Keys that would choose targets from inside `data`, around the entity_id the grant checks."""
RESERVED_KEYS = frozenset({"domain", "service", "self"})
"""Keys the client's trigger_service(domain, service, **data) cannot carry."""


DockerHostName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]


class _OnDockerHost(Args):
    """Container tools take an optional Docker host; left out, it is the default one and is not recorded (so the
    arguments, and the digest of a request, are the same as before there were several hosts)."""

    host: DockerHostName | None = Field(
        default=None, description='The Docker host (default: "default", the main engine).'
    )

    @model_serializer(mode="wrap")
    def _without_default_host(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("host") is None:
            data.pop("host", None)
        return data


class ListContainersArgs(_OnDockerHost):
    all: StrictBool = Field(default=False, description="Include stopped containers.")
    host: DockerHostName | None = Field(
        default=None, description="Only this Docker host (default: every host you may see)."
    )


class ContainerArgs(_OnDockerHost):
    container: ContainerName


class ContainerLogsArgs(_OnDockerHost):
    container: ContainerName
    tail: Annotated[StrictInt, Field(ge=1, le=MAX_LOG_LINES, description="Lines from the end (1-1000).")] = 100


class RequestStatusArgs(Args):
    request_id: RequestId


class ListEntitiesArgs(Args):
    domain: DomainName | None = Field(default=None, description="Only entities of this domain, e.g. light.")


class EntityArgs(Args):
    entity_id: EntityId


class ListServicesArgs(Args):
    domain: DomainName | None = Field(default=None, description="Only services of this domain, e.g. light.")


def _data_problem(value: Any, depth: int = 0) -> str | None:
    """Why a `data` value is not acceptable JSON for a service call, or None."""
    if depth > MAX_DATA_DEPTH:
        return f"nested deeper than {MAX_DATA_DEPTH} levels"
    if isinstance(value, float) and not math.isfinite(value):
        return "numbers must be finite"
    if isinstance(value, str) and valid_text(value) != value:
        return "text must be valid Unicode (it holds a lone surrogate)"
    if isinstance(value, dict):
        return next((p for v in value.values() if (p := _data_problem(v, depth + 1))), None)  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, list):
        return next((p for v in value if (p := _data_problem(v, depth + 1))), None)  # pyright: ignore[reportUnknownVariableType]
    return None


class CallServiceArgs(Args):
    domain: DomainName
    service: ServiceName
    entity_id: EntityId | Annotated[list[EntityId], Field(min_length=1, max_length=MAX_TARGETS)] = Field(
        description=f"The target entity id, or a list of 1-{MAX_TARGETS} of them; each must exist."
    )
    data: dict[str, Any] = Field(
        default_factory=dict[str, Any],
        description=f'Service data, e.g. {{"brightness": 128}} (a JSON object of at most {MAX_DATA_CHARS} characters; '
        "targets go in entity_id, never here).",
    )

    @field_validator("entity_id", mode="wrap")
    @classmethod
    def _entity_ids(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            checked = handler(value)
        except ValidationError:
            raise ValueError(
                "must be an entity id such as 'light.kitchen' (lowercase letters, digits and '_' around one '.'), "
                f"or a list of 1-{MAX_TARGETS} of them"
            ) from None
        entity_ids = [checked] if isinstance(checked, str) else cast("list[str]", checked)
        if len(set(entity_ids)) != len(entity_ids):
            raise ValueError("lists an entity id twice")
        return checked

    @field_validator("data")
    @classmethod
    def _bounded_data(cls, data: dict[str, Any]) -> dict[str, Any]:
        for key in data:
            if key in TARGETING_KEYS:
                raise ValueError(f"{key!r} is not allowed in data; name the targets in entity_id")
            if key in RESERVED_KEYS or re.fullmatch(DATA_KEY, key) is None:
                shown = repr(key) if len(key) <= 64 else f"a name of {len(key)} characters"  # never cut a secret
                raise ValueError(f"{shown} is not a valid service data field name")
        if problem := _data_problem(data):
            raise ValueError(problem)
        size = len(canonical_json(data))
        if size > MAX_DATA_CHARS:
            raise ValueError(f"at most {MAX_DATA_CHARS} characters of JSON (got {size})")
        return data

    @property
    def entity_ids(self) -> list[str]:
        return [self.entity_id] if isinstance(self.entity_id, str) else list(self.entity_id)


MAX_REJECTED_ARGUMENTS_CHARS = 4096


def bounded_arguments(raw: dict[str, Any], redact: Callable[[str], str]) -> Any:
    """What the audit keeps of arguments that failed validation: a bounded copy, at most a few KiB.

    Each string is passed through `redact` before it is cut: a secret cut first would leave its start behind."""
    kept = _bounded(raw, redact)
    size = len(json.dumps(kept, default=str))
    if size <= MAX_REJECTED_ARGUMENTS_CHARS:
        return kept
    keys = [shorten(redact(str(k)), 64) for k in list(raw)[:20]]
    return {"omitted": f"{size} characters of arguments", "keys": keys}


def _bounded(value: Any, redact: Callable[[str], str], depth: int = 0) -> Any:
    """A size-bounded, redacted copy of untrusted arguments, for audit records of calls that were rejected."""
    if isinstance(value, str):
        return shorten(redact(value))
    if depth >= 3:
        return "..."
    if isinstance(value, dict):
        items = list(cast("dict[object, Any]", value).items())[:20]
        return {shorten(redact(str(k)), 64): _bounded(v, redact, depth + 1) for k, v in items}
    if isinstance(value, list):
        return [_bounded(v, redact, depth + 1) for v in cast("list[Any]", value)[:20]]
    return value


_PATTERN_HINTS = {
    "container": "must be a container name (letters, digits, '_', '.', '-'; at most 128)",
    "entity_id": "must be an entity id such as 'light.kitchen' (lowercase letters, digits and '_' around one '.')",
    "domain": "must be a domain such as 'light' (lowercase letters, digits and '_')",
    "service": "must be a service such as 'turn_on' (lowercase letters, digits and '_')",
}


def validation_message(tool: str, exc: ValidationError, redact: Callable[[str], str] = str) -> str:
    """Why arguments do not fit, one part per error (at most five); argument names pass through `redact` before
    they are cut."""
    parts: list[str] = []
    for error in exc.errors()[:5]:
        where = redact(".".join(str(p) for p in error["loc"])) or "arguments"
        if error["type"] == "extra_forbidden":
            parts.append(f"{shorten(where, 64)}: not an argument of {tool}")
        elif error["type"] == "missing":
            parts.append(f"{where}: required")
        elif error["type"] == "string_pattern_mismatch" and where in _PATTERN_HINTS:
            parts.append(f"{where}: {_PATTERN_HINTS[where]}")
        else:
            parts.append(f"{where}: {str(error['msg']).removeprefix('Value error, ')}")
    return f"invalid arguments for {tool}: " + "; ".join(parts)
