"""The agent-facing tools: input models, the one outcome envelope every tool answers with, and how each runs.

Which tools exist and how they are classified lives in `argobox.policy.catalog`; this module gives each its
wire shape (description, annotations, input and output schema) and binds it to an adapter call.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Literal, TypeVar

import mcp_types as types
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationError,
    SerializerFunctionWrapHandler,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_serializer,
)

from argobox.adapters.base import (
    MAX_LOG_LINES,
    REDACTED,
    Backends,
    ContainerAction,
    ContainerDetail,
    ContainerLogs,
    EntityDetail,
    EntitySummary,
    ServiceCallResult,
    ServiceSummary,
    states_by_id,
)
from argobox.policy.catalog import CATALOG, Classification
from argobox.policy.decide import Grant, canonical_json, item_visible_by, may_call
from argobox.server.docker_hosts import HostedContainerList, list_on_hosts
from argobox.server.redact import secret_key

OutcomeStatus = Literal[
    "succeeded",
    "failed",
    "pending_approval",
    "approved",
    "executing",
    "denied",
    "expired",
    "unknown",
    "invalid_arguments",
    "refused",
    "rate_limited",
]
"""Request statuses, plus `invalid_arguments` (bad input, nothing recorded as a request), `refused` (ArgoBox
could not record the call, so nothing ran) and `rate_limited` (a budget was exhausted; see `limit`)."""

ERROR_STATUSES: frozenset[str] = frozenset(
    {"failed", "denied", "expired", "unknown", "invalid_arguments", "refused", "rate_limited"}
)

R = TypeVar("R")


class Outcome(BaseModel, Generic[R]):
    """What every ArgoBox tool answers with, whatever happened."""

    model_config = ConfigDict(extra="forbid")

    status: OutcomeStatus
    message: str = Field(description="One line saying what happened and what to do next.")
    request_id: str | None = Field(default=None, description="Check on it with argobox_request_status.")
    tool: str | None = None
    expires_at: str | None = Field(default=None, description="When a pending request expires (ISO 8601 UTC).")
    reason: str | None = Field(default=None, description="Why the policy decided as it did, naming the rule.")
    result: R | None = Field(default=None, description="The backend's answer when the call succeeded.")
    error: str | None = Field(default=None, description="What went wrong when the call failed.")
    limit: str | None = Field(default=None, description="Which budget a rate_limited call tripped.")
    retry_after_seconds: int | None = Field(default=None, description="When a rate_limited call may be retried.")

    @property
    def is_error(self) -> bool:
        return self.status in ERROR_STATUSES


class _Args(BaseModel):
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


class NoArgs(_Args):
    pass


DockerHostName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]


class _OnDockerHost(_Args):
    """Container tools take an optional Docker host; left out, it is the default one and is not recorded."""

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


class RequestStatusArgs(_Args):
    request_id: RequestId


class ListEntitiesArgs(_Args):
    domain: DomainName | None = Field(default=None, description="Only entities of this domain, e.g. light.")


class EntityArgs(_Args):
    entity_id: EntityId


class ListServicesArgs(_Args):
    domain: DomainName | None = Field(default=None, description="Only services of this domain, e.g. light.")


def _data_problem(value: Any, depth: int = 0) -> str | None:
    """Why a `data` value is not acceptable JSON for a service call, or None."""
    if depth > MAX_DATA_DEPTH:
        return f"nested deeper than {MAX_DATA_DEPTH} levels"
    if isinstance(value, float) and not math.isfinite(value):
        return "numbers must be finite"
    if isinstance(value, dict):
        return next((p for v in value.values() if (p := _data_problem(v, depth + 1))), None)  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, list):
        return next((p for v in value if (p := _data_problem(v, depth + 1))), None)  # pyright: ignore[reportUnknownVariableType]
    return None


class CallServiceArgs(_Args):
    domain: DomainName
    service: ServiceName
    entity_id: EntityId | Annotated[list[EntityId], Field(min_length=1, max_length=MAX_TARGETS)] = Field(
        description=f"The target entity id, or a list of 1-{MAX_TARGETS} of them; each must exist."
    )
    data: dict[str, Any] = Field(
        default_factory=dict[str, Any],
        description=f"Service data, e.g. {{\"brightness\": 128}} (a JSON object of at most {MAX_DATA_CHARS} characters; "
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
        if isinstance(checked, list) and len(set(checked)) != len(checked):  # pyright: ignore[reportUnknownArgumentType]
            raise ValueError("lists an entity id twice")
        return checked

    @field_validator("data")
    @classmethod
    def _bounded_data(cls, data: dict[str, Any]) -> dict[str, Any]:
        for key in data:
            if key in TARGETING_KEYS:
                raise ValueError(f"{key!r} is not allowed in data; name the targets in entity_id")
            if key in RESERVED_KEYS or re.fullmatch(DATA_KEY, key) is None:
                raise ValueError(f"{key[:64]!r} is not a valid service data field name")
        if problem := _data_problem(data):
            raise ValueError(problem)
        size = len(canonical_json(data))
        if size > MAX_DATA_CHARS:
            raise ValueError(f"at most {MAX_DATA_CHARS} characters of JSON (got {size})")
        return data

    @property
    def entity_ids(self) -> list[str]:
        return [self.entity_id] if isinstance(self.entity_id, str) else list(self.entity_id)


class EntityList(BaseModel):
    entities: list[EntitySummary]


class ServiceList(BaseModel):
    services: list[ServiceSummary]


Runner = Callable[[Backends, Grant, Any], Awaitable[BaseModel]]
"""Runs one validated call against the process's backends; the grant is there for list tools to filter with."""
Previewer = Callable[[Backends, Any], Awaitable[dict[str, Any]]]
"""Reads (never changes) what a queued call would act on, for the operator who will decide it."""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    title: str
    description: str
    args: type[_Args]
    result: type[BaseModel] | None
    run: Runner | None
    destructive: bool = False
    idempotent: bool = True
    preview: Previewer | None = None
    read_only: bool | None = None
    """For tools outside the reviewed CATALOG (runbooks): their classification; None means look it up there."""

    def mcp_tool(self) -> types.Tool:
        """The tool as `tools/list` shows it; annotations follow the classification table."""
        tool_class = CATALOG.get(self.name)
        read_only = tool_class is None or tool_class.classification is Classification.READ
        if self.read_only is not None:
            read_only = self.read_only
        outcome = Outcome[self.result] if self.result is not None else Outcome[dict[str, Any]]  # type: ignore[name-defined]
        schema = compact_schema(outcome.model_json_schema())
        schema.pop("title", None)
        return types.Tool(
            name=self.name,
            title=self.title,
            description=self.description,
            input_schema=self.args.model_json_schema(),
            output_schema=schema,
            annotations=types.ToolAnnotations(
                title=self.title,
                read_only_hint=read_only,
                destructive_hint=False if read_only else self.destructive,
                idempotent_hint=True if read_only else self.idempotent,
                open_world_hint=False,
            ),
        )


def compact_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The same JSON Schema in the form clients validate fastest: local `$ref`s inlined (none of our models is
    recursive) and pydantic's `X | None` (`anyOf` with `null`) written as one list of types where that means the same.

    Clients check every structured result against the output schema; with `jsonschema`, resolving a `$ref` and
    trying each branch of an `anyOf` are its costliest steps (this form halves the check of an inspect result).
    Only schema positions are rewritten (never `enum`, `const`, `default` or `examples` values, nor property names),
    and a node is merged only when every keyword beside it is an annotation.
    """
    defs: dict[str, Any] = schema.get("$defs", {})

    def walk(node: Any, expanding: frozenset[str]) -> Any:
        if not isinstance(node, dict):
            return node  # true / false
        ref = node.get("$ref")  # pyright: ignore[reportUnknownMemberType]
        if ref is not None:
            name = ref.removeprefix("#/$defs/") if isinstance(ref, str) else ""
            if not isinstance(ref, str) or not ref.startswith("#/$defs/") or name not in defs or name in expanding:
                raise ValueError(f"cannot inline {ref!r} (not local, missing or recursive)")
            target = walk(defs[name], expanding | {name})
            rest = walk({k: v for k, v in node.items() if k != "$ref"}, expanding)  # pyright: ignore
            if set(rest) <= _ANNOTATIONS:
                return {**target, **rest}
            return {**rest, "allOf": [target, *rest.get("allOf", [])]}
        out: dict[str, Any] = {}
        for key, value in node.items():  # pyright: ignore[reportUnknownVariableType]
            if key == "$defs" and node is schema:
                continue  # all inlined
            if key in _SCHEMA_MAPS and isinstance(value, dict):
                out[key] = {k: walk(v, expanding) for k, v in value.items()}  # pyright: ignore
            elif key in _SCHEMA_LISTS and isinstance(value, list):
                out[key] = [walk(v, expanding) for v in value]  # pyright: ignore[reportUnknownVariableType]
            elif key in _SCHEMA_VALUES:
                out[key] = walk(value, expanding)
            else:
                out[key] = value
        branches = out.get("anyOf")
        if isinstance(branches, list) and set(out) - {"anyOf"} <= _ANNOTATIONS:
            merged = _merge_nullable(branches)  # pyright: ignore[reportUnknownArgumentType]
            if merged is not None:
                out = {**merged, **{k: v for k, v in out.items() if k != "anyOf"}}
        return out

    return walk(schema, frozenset())


_ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly", "$comment"}
)
"""Keywords that never change what a schema accepts."""
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "dependentSchemas"})
_SCHEMA_LISTS = frozenset({"anyOf", "allOf", "oneOf", "prefixItems"})
_SCHEMA_VALUES = frozenset({
    "items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else",
    "unevaluatedItems", "unevaluatedProperties",
})
_NUMERIC = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"})
_ONLY_FOR_TYPE: dict[str, frozenset[str]] = {
    "object": frozenset({"properties", "required", "additionalProperties", "patternProperties", "propertyNames",
                         "minProperties", "maxProperties", "dependentRequired"}),
    "array": frozenset({"items", "prefixItems", "minItems", "maxItems", "uniqueItems", "contains", "minContains",
                        "maxContains"}),
    "string": frozenset({"minLength", "maxLength", "pattern", "format"}),
    "integer": _NUMERIC,
    "number": _NUMERIC,
}
"""Keywords that constrain only values of one JSON type: `null` passes them, so a branch holding only these may
merge with `null`. Anything else (enum, const, not, unevaluated*, ...) keeps its `anyOf`."""


def _merge_nullable(branches: list[Any]) -> dict[str, Any] | None:
    """`anyOf` branches as one schema with a list of types, when that means the same; otherwise None.

    Branches of bare types merge (`{"type": ["string", "null"]}`), and so does one typed branch with `null` when its
    other keywords only apply to values of its type (properties, items, pattern, ...).
    """
    if not all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in branches):
        return None
    types_ = [b["type"] for b in branches]
    if len(set(types_)) != len(types_):
        return None
    constrained = [b for b in branches if set(b) - {"type"} - _ANNOTATIONS]
    if not constrained:
        return {"type": types_}
    if len(branches) == 2 and len(constrained) == 1 and "null" in types_:
        branch = constrained[0]
        if set(branch) - {"type"} - _ANNOTATIONS <= _ONLY_FOR_TYPE.get(branch["type"], frozenset()):
            return {**branch, "type": types_}
    return None


async def _list(backends: Backends, grant: Grant, args: ListContainersArgs) -> HostedContainerList:
    return await list_on_hosts(backends, grant, all=args.all, host=args.host)


async def _inspect(backends: Backends, grant: Grant, args: ContainerArgs) -> ContainerDetail:
    return await backends.engine(args.host).inspect_container(args.container)


async def _logs(backends: Backends, grant: Grant, args: ContainerLogsArgs) -> ContainerLogs:
    return await backends.engine(args.host).container_logs(args.container, tail=args.tail)


async def _start(backends: Backends, grant: Grant, args: ContainerArgs) -> ContainerAction:
    return await backends.engine(args.host).start_container(args.container)


async def _stop(backends: Backends, grant: Grant, args: ContainerArgs) -> ContainerAction:
    return await backends.engine(args.host).stop_container(args.container)


async def _restart(backends: Backends, grant: Grant, args: ContainerArgs) -> ContainerAction:
    return await backends.engine(args.host).restart_container(args.container)


async def _ha_entities(backends: Backends, grant: Grant, args: ListEntitiesArgs) -> EntityList:
    entities = await backends.home().list_entities()
    visible = [
        e for e in entities
        if (args.domain is None or e.domain == args.domain)
        and item_visible_by(grant, "ha_list_entities", {"entity_id": e.entity_id, "domain": e.domain})
    ]
    return EntityList(entities=visible)


async def _ha_state(backends: Backends, grant: Grant, args: EntityArgs) -> EntityDetail:
    return await backends.home().get_state(args.entity_id)


async def _ha_services(backends: Backends, grant: Grant, args: ListServicesArgs) -> ServiceList:
    services = await backends.home().list_services()
    visible = [
        s for s in services
        if (args.domain is None or s.domain == args.domain)
        and item_visible_by(grant, "ha_list_services", {"domain": s.domain, "service": s.service})
        and may_call(grant, "ha_call_service", {"domain": s.domain, "service": s.service})
    ]
    return ServiceList(services=visible)


async def _ha_call(backends: Backends, grant: Grant, args: CallServiceArgs) -> ServiceCallResult:
    return await backends.home().call_service(args.domain, args.service, args.entity_ids, args.data)


def _data_text(data: dict[str, Any]) -> str:
    """Service data as `key=value` pairs for the operator, secret-looking values masked."""
    return ", ".join(
        f"{key}={REDACTED if secret_key(key) else canonical_json(value)}" for key, value in sorted(data.items())
    )


async def _ha_preview(backends: Backends, args: CallServiceArgs) -> dict[str, Any]:
    """The current state of every target and what the call would do to it, e.g. "lock.front_door: locked → unlock"."""
    targets = await backends.home().target_states(args.entity_ids)
    change = args.service + (f" ({_data_text(args.data)})" if args.data else "")
    return {
        "states": states_by_id(targets),
        "changes": [
            f"{t.entity_id}: {t.state if t.state is not None else '(no such entity)'} → {change}" for t in targets
        ],
    }


_MUTATION_NOTE = " Needs operator approval unless your grant pre-approves this container; a pending result gives a request_id."
_HA_CALL_NOTE = (
    " Needs operator approval unless your grant pre-approves this service on these entities; a pending result gives a "
    "request_id. A call is made once and never retried: after a failure, check the entity states before asking again."
)

TOOLS: dict[str, ToolSpec] = {
    spec.name: spec
    for spec in (
        ToolSpec(
            "docker_list_containers", "List containers",
            "List the Docker containers you may see, on every Docker host you may see: id, name, image, state, status "
            "and host. A host that does not answer is listed under hosts with the reason.",
            ListContainersArgs, HostedContainerList, _list,
        ),
        ToolSpec(
            "docker_inspect_container", "Inspect a container",
            "Show one container: image, state, health, restart count, ports, mounts, labels and times. "
            "Environment values are never shown.",
            ContainerArgs, ContainerDetail, _inspect,
        ),
        ToolSpec(
            "docker_container_logs", "Container logs",
            "The last lines of a container's logs (at most 1000 lines and 256 KiB).",
            ContainerLogsArgs, ContainerLogs, _logs,
        ),
        ToolSpec(
            "docker_start_container", "Start a container", "Start a stopped container." + _MUTATION_NOTE,
            ContainerArgs, ContainerAction, _start,
        ),
        ToolSpec(
            "docker_stop_container", "Stop a container", "Stop a running container." + _MUTATION_NOTE,
            ContainerArgs, ContainerAction, _stop, destructive=True,
        ),
        ToolSpec(
            "docker_restart_container", "Restart a container", "Restart a container." + _MUTATION_NOTE,
            ContainerArgs, ContainerAction, _restart, destructive=True, idempotent=False,
        ),
        ToolSpec(
            "ha_list_entities", "List Home Assistant entities",
            "List the Home Assistant entities you may see: entity_id, name, state, domain and when it last changed.",
            ListEntitiesArgs, EntityList, _ha_entities,
        ),
        ToolSpec(
            "ha_get_state", "Home Assistant entity state",
            "The state and attributes of one Home Assistant entity; secret-looking attributes are redacted.",
            EntityArgs, EntityDetail, _ha_state,
        ),
        ToolSpec(
            "ha_list_services", "List Home Assistant services",
            "The Home Assistant services your grant could let you call, with their data fields.",
            ListServicesArgs, ServiceList, _ha_services,
        ),
        ToolSpec(
            "ha_call_service", "Call a Home Assistant service",
            "Call a Home Assistant service (e.g. light.turn_on) on one or more entities." + _HA_CALL_NOTE,
            CallServiceArgs, ServiceCallResult, _ha_call, destructive=True, idempotent=False, preview=_ha_preview,
        ),
        ToolSpec(
            "argobox_request_status", "Request status",
            "The status of one of your ArgoBox requests (pending_approval, approved, executing, succeeded, failed, "
            "denied, expired) and, once finished, its result or error.",
            RequestStatusArgs, None, None,
        ),
    )
}
