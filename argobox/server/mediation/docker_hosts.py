"""Container tools across several Docker hosts: the engine of `[docker] base_url` (the host named "default") and
those of `[docker.hosts.NAME]`.

`docker_list_containers` asks every host the grant lets the agent see, at the same time, and says which host each
container is on; a host that does not answer is reported beside the others' containers, never in their place.
"""

from __future__ import annotations

import anyio
from pydantic import BaseModel

from argobox.adapters.base import AdapterError, Backends, ContainerSummary
from argobox.policy.catalog import DEFAULT_DOCKER_HOST
from argobox.policy.decide import Grant, item_visible_by

LIST_TOOL = "docker_list_containers"


class HostedContainer(ContainerSummary):
    host: str
    """The Docker host the container is on ("default" for the engine of `[docker] base_url`)."""


class DockerHostReport(BaseModel):
    name: str
    answered: bool
    containers: int
    """How many of its containers are listed (those the grant lets the agent see)."""
    error: str | None = None
    """Why the host did not answer, when it did not."""


class HostedContainerList(BaseModel):
    containers: list[HostedContainer]
    hosts: list[DockerHostReport]
    """Every host that was asked, and whether it answered."""


def visible_hosts(backends: Backends, grant: Grant, host: str | None) -> list[str]:
    """The hosts a listing asks: the one named, or every configured host the grant lets the agent see."""
    if host is not None:
        backends.engine(host)  # an unknown host is an error, not an empty list
        return [host]
    names = [DEFAULT_DOCKER_HOST, *sorted(backends.docker_hosts)]
    return [name for name in names if item_visible_by(grant, LIST_TOOL, {"host": name})]


async def list_on_hosts(backends: Backends, grant: Grant, *, all: bool, host: str | None) -> HostedContainerList:
    """The containers the grant lets the agent see on each visible host, listed concurrently."""
    hosts = visible_hosts(backends, grant, host)
    found: dict[str, list[ContainerSummary] | AdapterError] = {}

    async def ask(name: str) -> None:
        try:
            found[name] = await backends.engine(name).list_containers(all=all)
        except AdapterError as exc:
            found[name] = exc

    if len(hosts) == 1:  # the usual case: one engine, asked directly
        await ask(hosts[0])
    else:
        async with anyio.create_task_group() as tg:
            for name in hosts:
                tg.start_soon(ask, name)
    failures = [result for result in found.values() if isinstance(result, AdapterError)]
    if hosts and len(failures) == len(hosts):
        raise failures[0]  # nothing answered: the call fails, as with one engine
    containers: list[HostedContainer] = []
    reports: list[DockerHostReport] = []
    for name in hosts:
        result = found[name]
        if isinstance(result, AdapterError):
            reports.append(DockerHostReport(name=name, answered=False, containers=0, error=str(result)))
            continue
        shown = [
            HostedContainer(host=name, **c.model_dump())
            for c in result
            if item_visible_by(grant, LIST_TOOL, {"host": name, "container": c.name})
        ]
        containers += shown
        reports.append(DockerHostReport(name=name, answered=True, containers=len(shown)))
    return HostedContainerList(containers=containers, hosts=reports)
