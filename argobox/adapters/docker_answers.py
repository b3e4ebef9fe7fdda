"""The Docker engine's JSON answers, read into the adapter's models.

The engine answers in JSON that the SDK hands over untyped. Each answer is narrowed here where it is read: a field
that is missing, null or of another shape reads as empty, and a missing required one (an id) raises KeyError, which
the adapter reports as an unexpected answer. Environment variable values never leave: only their names.
"""

from __future__ import annotations

from typing import Any, cast

import docker
import docker.errors

from argobox.adapters.base import REDACTED, ContainerAction, ContainerDetail, ContainerSummary, Mount, PortBinding

Attrs = dict[str, Any]
"""A JSON object of the engine's answer."""


def json_object(value: object) -> Attrs:
    """`value` where the engine answered a JSON object, else an empty one (a field missing, null or another shape)."""
    return cast(Attrs, value) if isinstance(value, dict) else {}


def json_array(value: object) -> list[Any]:
    """`value` where the engine answered a JSON array, else an empty one."""
    return cast("list[Any]", value) if isinstance(value, list) else []


def inspect(api: docker.APIClient, container: str) -> Attrs:
    """The engine's inspection of `container` (the SDK leaves the type of its answer open)."""
    return json_object(cast(object, api.inspect_container(container)))  # pyright: ignore[reportUnknownMemberType]


def container_rows(api: docker.APIClient, *, everything: bool) -> list[Attrs]:
    """The engine's list of containers, running ones or `everything` (the SDK leaves the type of its answer open)."""
    answer = cast(object, api.containers(all=everything))  # pyright: ignore[reportUnknownMemberType]
    return [json_object(row) for row in json_array(answer)]


def engine_time(value: str | None) -> str | None:
    """The engine's timestamp, or None for an unset one (Go's zero time "0001-01-01T00:00:00Z")."""
    return None if not value or value.startswith("0001-01-01T00:00:00") else value


def image_ref(image: str) -> str:
    """The image as the engine names it (its tag), shortened to 12 hex digits when that is a bare id."""
    return image.removeprefix("sha256:")[:12] if image.startswith("sha256:") else image


def engine_name(raw: str) -> str:
    """A container's name as the engine gives it, without its leading slash."""
    return raw.lstrip("/")


def summary(row: Attrs) -> ContainerSummary:
    """One row of the engine's container list."""
    names = [engine_name(str(n)) for n in json_array(row.get("Names"))]
    # Legacy links add names like "other/alias"; the container's own name has no slash.
    name = next((n for n in names if "/" not in n), names[0] if names else row["Id"][:12])
    return ContainerSummary(
        id=row["Id"][:12],
        name=name,
        image=image_ref(str(row.get("Image") or row.get("ImageID") or "")),
        state=str(row.get("State", "unknown")),
        status=str(row.get("Status", "")),
    )


def detail(attrs: Attrs) -> ContainerDetail:
    """The engine's inspection of a container, its environment variables reduced to their names."""
    config, state = json_object(attrs.get("Config")), json_object(attrs.get("State"))
    status, exit_code = str(state.get("Status", "unknown")), state.get("ExitCode")
    if status in ("running", "paused") or (status == "created" and not exit_code):
        exit_code = None  # nothing has exited (a "created" one keeps the code of a start that failed)
    ports = [
        PortBinding(container_port=port, host_ip=b.get("HostIp") or None, host_port=b.get("HostPort") or None)
        for port, bindings in sorted(json_object(json_object(attrs.get("NetworkSettings")).get("Ports")).items())
        for b in map(json_object, json_array(bindings) or [{}])
    ]
    mounts = [
        Mount(
            type=str(m.get("Type", "")),
            source=m.get("Source") or None,
            destination=str(m.get("Destination", "")),
            read_only=not m.get("RW", True),
        )
        for m in map(json_object, json_array(attrs.get("Mounts")))
    ]
    env_names = (str(entry).partition("=")[0] for entry in json_array(config.get("Env")))
    return ContainerDetail(
        id=attrs["Id"][:12],
        name=engine_name(attrs.get("Name", "")),
        image=image_ref(str(config.get("Image") or attrs.get("Image") or "")),
        state=status,
        health=json_object(state.get("Health")).get("Status") or None,
        restart_count=int(attrs.get("RestartCount") or 0),
        exit_code=exit_code,
        ports=ports,
        mounts=mounts,
        labels={str(k): str(v) for k, v in json_object(config.get("Labels")).items()},
        env={name: REDACTED for name in env_names if name},
        created_at=str(attrs.get("Created", "")),
        started_at=engine_time(state.get("StartedAt")),
        finished_at=engine_time(state.get("FinishedAt")),
    )


def resolve(api: docker.APIClient, container: str) -> tuple[str, Attrs]:
    """The full id and attributes of the container NAMED `container`.

    The engine also resolves ids and unique id prefixes, which would let an argument the grant's name globs match
    (say `db3f` under `db*`) reach another container; so only an exact name is accepted, and every later call uses
    the resolved id.
    """
    attrs = inspect(api, container)
    if engine_name(str(attrs.get("Name") or "")) != container:
        raise docker.errors.NotFound(f"no container is named {container!r}")
    return str(attrs["Id"]), attrs


def action_report(attrs: Attrs, container: str, action: str) -> ContainerAction:
    """What `action` left of `container`, as the engine reports it after the action."""
    state = json_object(attrs.get("State"))
    return ContainerAction(
        container=engine_name(attrs.get("Name") or container),
        action=action,
        state=str(state.get("Status", "unknown")),
        started_at=engine_time(state.get("StartedAt")),
        finished_at=engine_time(state.get("FinishedAt")),
        restart_count=int(attrs.get("RestartCount") or 0),
    )
