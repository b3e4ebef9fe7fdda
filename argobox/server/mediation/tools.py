"""The agent-facing tools: input models, the one outcome envelope every tool answers with, and how each runs.

Which tools exist and how they are classified lives in `argobox.policy.catalog`; this module gives each its
wire shape (description, annotations, input and output schema) and binds it to an adapter call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import mcp_types as types
from pydantic import BaseModel

from argobox.adapters.base import (
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
from argobox.policy.decide import SENSITIVE_HA_DOMAINS, Grant, canonical_json, item_visible_by, may_call
from argobox.server.mediation.arguments import (
    Args,
    CallServiceArgs,
    ContainerArgs,
    ContainerLogsArgs,
    EntityArgs,
    ListContainersArgs,
    ListEntitiesArgs,
    ListServicesArgs,
    RequestStatusArgs,
)
from argobox.server.mediation.docker_hosts import HostedContainerList, list_on_hosts
from argobox.server.mediation.outcome import Outcome
from argobox.server.mediation.schema import compact_schema
from argobox.server.redact import Redactor, secret_key


class EntityList(BaseModel):
    entities: list[EntitySummary]


class ServiceList(BaseModel):
    services: list[ServiceSummary]


Runner = Callable[[Backends, Grant, Any], Awaitable[BaseModel]]
"""Runs one validated call against the process's backends; the grant is there for list tools to filter with."""
Previewer = Callable[[Backends, Any], Awaitable[dict[str, Any]]]
"""Reads (never changes) what a call would act on, for the operator who will decide it. Its `identity` key says
which target that is (a container's id and image; an entity's presence, and its state where it matters): an
approval runs only while the target still has the identity the operator was shown."""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    title: str
    description: str
    args: type[Args]
    result: type[BaseModel] | None
    run: Runner | None
    destructive: bool = False
    idempotent: bool = True
    preview: Previewer | None = None
    read_only: bool | None = None
    """For tools outside the reviewed CATALOG (runbooks): their classification; None means look it up there."""
    identifies_target: bool = False
    """Whether its preview names the target's identity: an approval of such a call runs only on the target
    identified when the call was queued, and never when none could be identified."""

    def mcp_tool(self) -> types.Tool:
        """The tool as `tools/list` shows it; annotations follow the classification table."""
        tool_class = CATALOG.get(self.name)
        read_only = tool_class is None or tool_class.classification is Classification.READ
        if self.read_only is not None:
            read_only = self.read_only
        outcome = Outcome[self.result] if self.result is not None else Outcome[dict[str, Any]]
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
        e
        for e in entities
        if (args.domain is None or e.domain == args.domain)
        and item_visible_by(grant, "ha_list_entities", {"entity_id": e.entity_id, "domain": e.domain})
    ]
    return EntityList(entities=visible)


async def _ha_state(backends: Backends, grant: Grant, args: EntityArgs) -> EntityDetail:
    return await backends.home().get_state(args.entity_id)


async def _ha_services(backends: Backends, grant: Grant, args: ListServicesArgs) -> ServiceList:
    services = await backends.home().list_services()
    visible = [
        s
        for s in services
        if (args.domain is None or s.domain == args.domain)
        and item_visible_by(grant, "ha_list_services", {"domain": s.domain, "service": s.service})
        and may_call(grant, "ha_call_service", {"domain": s.domain, "service": s.service})
    ]
    return ServiceList(services=visible)


async def _ha_call(backends: Backends, grant: Grant, args: CallServiceArgs) -> ServiceCallResult:
    return await backends.home().call_service(args.domain, args.service, args.entity_ids, args.data)


_MASK_KEYS = Redactor()
"""Masks the values of secret-looking keys at any depth (configured secrets go on the way out, as everywhere)."""


def _data_text(data: dict[str, Any]) -> str:
    """Service data as `key=value` pairs for the operator, secret-looking values masked (nested ones too)."""
    return ", ".join(
        f"{key}={REDACTED if secret_key(key) else canonical_json(_MASK_KEYS(value))}"
        for key, value in sorted(data.items())
    )


async def _ha_preview(backends: Backends, args: CallServiceArgs) -> dict[str, Any]:
    """The current state of every target and what the call would do to it, e.g. "lock.front_door: locked → unlock".

    Its identity: whether each entity exists and, in the sensitive domains (locks, alarms, covers, ...), its state:
    an approval to unlock a door shown locked does not run on a door found in another state."""
    targets = await backends.home().target_states(args.entity_ids)
    change = args.service + (f" ({_data_text(args.data)})" if args.data else "")
    sensitive = args.domain in SENSITIVE_HA_DOMAINS
    return {
        "states": states_by_id(targets),
        "changes": [
            f"{t.entity_id}: {t.state if t.state is not None else '(no such entity)'} → {change}" for t in targets
        ],
        "identity": {
            t.entity_id: (t.state if sensitive else "present") if t.state is not None else None for t in targets
        },
    }


async def _container_preview(backends: Backends, args: ContainerArgs) -> dict[str, Any]:
    """The container as it is now; its identity is its id and image (a container replaced under the same name
    is another container)."""
    detail = await backends.engine(args.host).inspect_container(args.container)
    identity: dict[str, Any] = {"container": detail.name, "id": detail.id, "image": detail.image}
    if args.host is not None:
        identity["host"] = args.host
    return {
        "container": detail.name,
        "state": detail.state,
        "image": detail.image,
        "health": detail.health,
        "restart_count": detail.restart_count,
        "started_at": detail.started_at,
        "identity": identity,
    }


_MUTATION_NOTE = (
    " Needs operator approval unless your grant pre-approves this container; a pending result gives a request_id."
)
_HA_CALL_NOTE = (
    " Needs operator approval unless your grant pre-approves this service on these entities; a pending result gives a "
    "request_id. A call is made once and never retried: after a failure, check the entity states before asking again."
)

TOOLS: dict[str, ToolSpec] = {
    spec.name: spec
    for spec in (
        ToolSpec(
            "docker_list_containers",
            "List containers",
            "List the Docker containers you may see, on every Docker host you may see: id, name, image, state, status "
            "and host. A host that does not answer is listed under hosts with the reason.",
            ListContainersArgs,
            HostedContainerList,
            _list,
        ),
        ToolSpec(
            "docker_inspect_container",
            "Inspect a container",
            "Show one container: image, state, health, restart count, ports, mounts, labels and times. "
            "Environment values are never shown.",
            ContainerArgs,
            ContainerDetail,
            _inspect,
        ),
        ToolSpec(
            "docker_container_logs",
            "Container logs",
            "The last lines of a container's logs (at most 1000 lines and 256 KiB).",
            ContainerLogsArgs,
            ContainerLogs,
            _logs,
        ),
        ToolSpec(
            "docker_start_container",
            "Start a container",
            "Start a stopped container." + _MUTATION_NOTE,
            ContainerArgs,
            ContainerAction,
            _start,
            preview=_container_preview,
            identifies_target=True,
        ),
        ToolSpec(
            "docker_stop_container",
            "Stop a container",
            "Stop a running container." + _MUTATION_NOTE,
            ContainerArgs,
            ContainerAction,
            _stop,
            destructive=True,
            preview=_container_preview,
            identifies_target=True,
        ),
        ToolSpec(
            "docker_restart_container",
            "Restart a container",
            "Restart a container." + _MUTATION_NOTE,
            ContainerArgs,
            ContainerAction,
            _restart,
            destructive=True,
            idempotent=False,
            preview=_container_preview,
            identifies_target=True,
        ),
        ToolSpec(
            "ha_list_entities",
            "List Home Assistant entities",
            "List the Home Assistant entities you may see: entity_id, name, state, domain and when it last changed.",
            ListEntitiesArgs,
            EntityList,
            _ha_entities,
        ),
        ToolSpec(
            "ha_get_state",
            "Home Assistant entity state",
            "The state and attributes of one Home Assistant entity; secret-looking attributes are redacted.",
            EntityArgs,
            EntityDetail,
            _ha_state,
        ),
        ToolSpec(
            "ha_list_services",
            "List Home Assistant services",
            "The Home Assistant services your grant could let you call, with their data fields.",
            ListServicesArgs,
            ServiceList,
            _ha_services,
        ),
        ToolSpec(
            "ha_call_service",
            "Call a Home Assistant service",
            "Call a Home Assistant service (e.g. light.turn_on) on one or more entities." + _HA_CALL_NOTE,
            CallServiceArgs,
            ServiceCallResult,
            _ha_call,
            destructive=True,
            idempotent=False,
            preview=_ha_preview,
            identifies_target=True,
        ),
        ToolSpec(
            "argobox_request_status",
            "Request status",
            "The status of one of your ArgoBox requests (pending_approval, approved, executing, succeeded, failed, "
            "denied, expired) and, once finished, its result or error.",
            RequestStatusArgs,
            None,
            None,
        ),
    )
}
