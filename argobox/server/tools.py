"""The agent-facing tools: input models, the one outcome envelope every tool answers with, and how each runs.

Which tools exist and how they are classified lives in `argobox.policy.catalog`; this module gives each its
wire shape (description, annotations, input and output schema) and binds it to an adapter call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Literal, TypeVar

import mcp_types as types
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints

from argobox.adapters.base import (
    MAX_LOG_LINES,
    ContainerAction,
    ContainerDetail,
    ContainerLogs,
    ContainerRuntime,
    ContainerSummary,
)
from argobox.policy.catalog import CATALOG, Classification
from argobox.policy.decide import Grant, item_visible

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
    Field(description="Container name or id (letters, digits, '_', '.', '-'; at most 128 characters)."),
]
RequestId = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9]{8,64}$"),
    Field(description="The request_id a pending result gave you."),
]


class NoArgs(_Args):
    pass


class ListContainersArgs(_Args):
    all: StrictBool = Field(default=False, description="Include stopped containers.")


class ContainerArgs(_Args):
    container: ContainerName


class ContainerLogsArgs(_Args):
    container: ContainerName
    tail: Annotated[StrictInt, Field(ge=1, le=MAX_LOG_LINES, description="Lines from the end (1-1000).")] = 100


class RequestStatusArgs(_Args):
    request_id: RequestId


class ContainerList(BaseModel):
    containers: list[ContainerSummary]


Runner = Callable[[ContainerRuntime, Grant, Any], Awaitable[BaseModel]]


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

    def mcp_tool(self) -> types.Tool:
        """The tool as `tools/list` shows it; annotations follow the classification table."""
        tool_class = CATALOG.get(self.name)
        read_only = tool_class is None or tool_class.classification is Classification.READ
        outcome = Outcome[self.result] if self.result is not None else Outcome[dict[str, Any]]  # type: ignore[name-defined]
        schema = outcome.model_json_schema()
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


async def _list(runtime: ContainerRuntime, grant: Grant, args: ListContainersArgs) -> ContainerList:
    containers = await runtime.list_containers(all=args.all)
    visible = [c for c in containers if item_visible(grant, "docker_list_containers", "container", c.name)]
    return ContainerList(containers=visible)


async def _inspect(runtime: ContainerRuntime, grant: Grant, args: ContainerArgs) -> ContainerDetail:
    return await runtime.inspect_container(args.container)


async def _logs(runtime: ContainerRuntime, grant: Grant, args: ContainerLogsArgs) -> ContainerLogs:
    return await runtime.container_logs(args.container, tail=args.tail)


async def _start(runtime: ContainerRuntime, grant: Grant, args: ContainerArgs) -> ContainerAction:
    return await runtime.start_container(args.container)


async def _stop(runtime: ContainerRuntime, grant: Grant, args: ContainerArgs) -> ContainerAction:
    return await runtime.stop_container(args.container)


async def _restart(runtime: ContainerRuntime, grant: Grant, args: ContainerArgs) -> ContainerAction:
    return await runtime.restart_container(args.container)


_MUTATION_NOTE = " Needs operator approval unless your grant pre-approves this container; a pending result gives a request_id."

TOOLS: dict[str, ToolSpec] = {
    spec.name: spec
    for spec in (
        ToolSpec(
            "docker_list_containers", "List containers",
            "List the Docker containers you may see: id, name, image, state and status.",
            ListContainersArgs, ContainerList, _list,
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
            "argobox_request_status", "Request status",
            "The status of one of your ArgoBox requests (pending_approval, approved, executing, succeeded, failed, "
            "denied, expired) and, once finished, its result or error.",
            RequestStatusArgs, None, None,
        ),
    )
}
