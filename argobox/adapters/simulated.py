"""The simulated lab behind `argobox demo`: a few containers and a small simulated Home Assistant, each kept in a
JSON file shared between processes.

They implement the same `ContainerRuntime` and `HomeAutomation` Protocols as the real adapters, so the demo runs
every layer of ArgoBox for real (MCP over stdio, policy, queue, CLI approval, audit) without touching a Docker
engine or a Home Assistant.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from collections.abc import Callable, Generator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel

from argobox.adapters.base import (
    MAX_LOG_LINES,
    REDACTED,
    BackendRejected,
    BackendUnavailable,
    ContainerAction,
    ContainerDetail,
    ContainerLogs,
    ContainerSummary,
    EntityDetail,
    EntitySummary,
    PortBinding,
    ServiceCallResult,
    ServiceSummary,
    TargetNotFound,
    TargetState,
    bounded_attributes,
    no_entity,
    states_by_id,
)

_SEED: dict[str, dict[str, Any]] = {
    "jellyfin": {"image": "jellyfin/jellyfin:10.9", "running": True, "ports": {"8096/tcp": "8096"}},
    "web-frontend": {"image": "nginx:1.27", "running": True, "ports": {"80/tcp": "8080"}},
    "web-api": {"image": "ghcr.io/example/api:2.3", "running": True, "ports": {}},
    "postgres": {"image": "postgres:16", "running": True, "ports": {}, "env": {"POSTGRES_PASSWORD": "lab-only"}},
    "backup": {"image": "restic/restic:0.17", "running": False, "ports": {}},
}


_PAST = {"start": "started", "stop": "stopped", "restart": "restarted"}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _append_line(path: Path, line: str) -> None:
    with open(path, "a") as out:
        out.write(line + "\n")


@contextmanager
def _locked_json(path: Path, seed: Callable[[], dict[str, Any]], what: str) -> Generator[dict[str, Any]]:
    """The JSON object in `path` (created from `seed()` on first use) under an exclusive file lock; changes are
    written back atomically."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            existed = path.exists()
            if existed:
                try:
                    state = json.loads(path.read_text())
                except ValueError:
                    raise BackendUnavailable(f"the {what} file {path.name!r} is corrupt") from None
            else:
                state = seed()
            before = json.dumps(state, sort_keys=True)
            yield state
            if not existed or json.dumps(state, sort_keys=True) != before:
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
                tmp.replace(path)
    except OSError as exc:
        raise BackendUnavailable(f"the {what} at {path.name!r} cannot be used: {exc.strerror}") from None


class SimulatedLab:
    """A `ContainerRuntime` whose containers live in a JSON file (created with seed containers on first use)."""

    def __init__(self, path: Path, *, clock: Callable[[], str] = _now) -> None:
        self._path = path
        self._clock = clock

    async def describe(self) -> str:
        await anyio.lowlevel.checkpoint()
        with self._state() as state:
            return f"the simulated demo lab in {self._path.name} ({len(state)} containers); no Docker engine is used"

    def _state(self) -> AbstractContextManager[dict[str, dict[str, Any]]]:
        """The lab's containers under an exclusive file lock; changes are written back."""
        return _locked_json(self._path, self._seed, "simulated lab")

    def _seed(self) -> dict[str, dict[str, Any]]:
        started = self._clock()
        return {
            name: {
                **spec,
                "id": hashlib.sha256(name.encode()).hexdigest()[:12],
                "created": started,
                "started_at": started if spec["running"] else None,
                "finished_at": None if spec["running"] else started,
                "restart_count": 0,
                "log": [f"{started} {name} started"] if spec["running"] else [],
            }
            for name, spec in _SEED.items()
        }

    @staticmethod
    def _find(state: dict[str, dict[str, Any]], container: str) -> tuple[str, dict[str, Any]]:
        for name, spec in state.items():
            if container == name:  # names only, as with the Docker engine adapter
                return name, spec
        raise TargetNotFound(f"No container named {container!r}.")

    @staticmethod
    def _summary(name: str, spec: dict[str, Any]) -> ContainerSummary:
        state = "running" if spec["running"] else "exited"
        status = f"Up since {spec['started_at']}" if spec["running"] else f"Exited (0) at {spec['finished_at']}"
        return ContainerSummary(id=spec["id"], name=name, image=spec["image"], state=state, status=status)

    async def list_containers(self, *, all: bool) -> list[ContainerSummary]:
        with self._state() as state:
            return [self._summary(n, s) for n, s in sorted(state.items()) if all or s["running"]]

    async def inspect_container(self, container: str) -> ContainerDetail:
        with self._state() as state:
            name, spec = self._find(state, container)
            return ContainerDetail(
                id=spec["id"],
                name=name,
                image=spec["image"],
                state=self._summary(name, spec).state,
                health=None,
                restart_count=spec["restart_count"],
                exit_code=None if spec["running"] else 0,
                # What `docker inspect` shows for a port published on every address: data, nothing binds here.
                ports=[PortBinding(container_port=p, host_ip="0.0.0.0", host_port=h) for p, h in spec["ports"].items()],  # noqa: S104
                mounts=[],
                labels={"lab.argobox": "simulated"},
                env=dict.fromkeys(spec.get("env", {}), REDACTED),
                created_at=spec["created"],
                started_at=spec["started_at"],
                finished_at=spec["finished_at"],
            )

    async def container_logs(self, container: str, *, tail: int) -> ContainerLogs:
        with self._state() as state:
            _, spec = self._find(state, container)
            lines: list[str] = spec["log"]
            tail = max(1, min(tail, MAX_LOG_LINES))
            logs = ContainerLogs(container=container, lines=lines[-tail:], truncated=len(lines) > tail)
            return logs.carrying_secrets(spec.get("env", {}).values())

    async def _act(self, container: str, action: str) -> ContainerAction:
        await anyio.lowlevel.checkpoint()
        with self._state() as state:
            name, spec = self._find(state, container)
            now = self._clock()
            if action == "start" and spec["running"]:
                raise BackendRejected(f"container {name!r} is already running")
            if action in ("start", "restart"):
                if action == "restart":
                    spec["restart_count"] += 1
                spec.update(running=True, started_at=now)
            else:
                spec.update(running=False, finished_at=now)
            spec["log"] = [*spec["log"], f"{now} {name} {_PAST[action]} by ArgoBox"][-MAX_LOG_LINES:]
            return ContainerAction(
                container=name,
                action=action,
                state=self._summary(name, spec).state,
                started_at=spec["started_at"],
                finished_at=spec["finished_at"],
                restart_count=spec["restart_count"],
            )

    async def start_container(self, container: str) -> ContainerAction:
        return await self._act(container, "start")

    async def stop_container(self, container: str) -> ContainerAction:
        return await self._act(container, "stop")

    async def restart_container(self, container: str) -> ContainerAction:
        return await self._act(container, "restart")

    async def aclose(self) -> None:
        return None


# Home Assistant ----------------------------------------------------------------------------------------------------

_HOME_SEED: dict[str, dict[str, Any]] = {
    "light.living_room_lamp": {"state": "off", "attributes": {"friendly_name": "Living room lamp", "brightness": None}},
    "light.kitchen": {"state": "on", "attributes": {"friendly_name": "Kitchen", "brightness": 180}},
    "lock.front_door": {"state": "locked", "attributes": {"friendly_name": "Front door", "code_format": r"^\d{4}$"}},
    "cover.garage_door": {"state": "closed", "attributes": {"friendly_name": "Garage door", "device_class": "garage"}},
    "input_boolean.guest_mode": {"state": "off", "attributes": {"friendly_name": "Guest mode"}},
    "sensor.outdoor_temperature": {
        "state": "12.5",
        "attributes": {"friendly_name": "Outdoor temperature", "unit_of_measurement": "°C"},
    },
    "camera.porch": {
        "state": "idle",
        "attributes": {
            # Secrets a real camera entity carries; ArgoBox must never show them.
            "friendly_name": "Porch camera",
            "access_token": "sim-camera-token-5f2b9c",
            "entity_picture": "/api/camera_proxy/camera.porch?token=sim-camera-token-5f2b9c",
            "stream_source": "rtsp://admin:porch-cam-pw@192.0.2.20:554/live",
        },
    },
}

_ON_OFF = {"turn_on": "on", "turn_off": "off", "toggle": "toggle"}
_SERVICES: dict[str, dict[str, tuple[str | None, frozenset[str], str]]] = {
    # domain -> service -> (new state, or "toggle", or None for unchanged; accepted data fields; description)
    "light": {
        "turn_on": ("on", frozenset({"brightness"}), "Turns on one or more lights."),
        "turn_off": ("off", frozenset(), "Turns off one or more lights."),
        "toggle": ("toggle", frozenset(), "Toggles one or more lights."),
    },
    "lock": {
        "lock": ("locked", frozenset({"code"}), "Locks a lock."),
        "unlock": ("unlocked", frozenset({"code"}), "Unlocks a lock."),
        "open": ("open", frozenset({"code"}), "Opens a lock."),
    },
    "cover": {
        "open_cover": ("open", frozenset(), "Opens a cover."),
        "close_cover": ("closed", frozenset(), "Closes a cover."),
        "stop_cover": (None, frozenset(), "Stops the cover movement."),
    },
    "input_boolean": {
        "turn_on": ("on", frozenset(), "Turns on the helper."),
        "turn_off": ("off", frozenset(), "Turns off the helper."),
        "toggle": ("toggle", frozenset(), "Toggles the helper."),
    },
    "homeassistant": {
        name: (new, frozenset(), f"Generic service to {name.replace('_', ' ')} devices.")
        for name, new in _ON_OFF.items()
    },
}
_GENERIC = {"cover": {"on": "open", "off": "closed"}, "lock": {"on": "unlocked", "off": "locked"}}
"""How `homeassistant.turn_on/turn_off` maps onto domains whose states are not on/off."""


def _new_state(domain: str, entity_domain: str, service: str, current: str) -> str | None:
    """The state `service` puts an entity of `entity_domain` in, or None when it does not apply to it."""
    new, _, _ = _SERVICES[domain][service]
    if new is None:
        return None
    if domain == "homeassistant":
        mapping = _GENERIC.get(entity_domain, {"on": "on", "off": "off"})
        if new == "toggle":
            new = mapping["off"] if current == mapping["on"] else mapping["on"]
        return mapping.get(new, new)
    if domain != entity_domain:
        return None
    if new == "toggle":
        return "off" if current == "on" else "on"
    return new


def _check_data(what: str, data: Mapping[str, Any], accepted: frozenset[str]) -> None:
    for key, value in data.items():
        if key not in accepted:
            raise BackendRejected(f"Home Assistant (simulated) rejected {what}: it takes no data field {key!r}.")
        if key == "brightness" and (not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 255):
            raise BackendRejected(f"Home Assistant (simulated) rejected {what}: brightness must be an integer 0-255.")


class SimulatedHome:
    """A `HomeAutomation` whose entities live in a JSON file (created with a few seed entities on first use)."""

    def __init__(self, path: Path, *, clock: Callable[[], str] = _now) -> None:
        self._path = path
        self._clock = clock

    async def describe(self) -> str:
        await anyio.lowlevel.checkpoint()
        with self._state() as state:
            return f"the simulated demo home in {self._path.name} ({len(state)} entities); no Home Assistant is used"

    def _state(self) -> AbstractContextManager[dict[str, dict[str, Any]]]:
        return _locked_json(self._path, self._seed, "simulated Home Assistant")

    def _seed(self) -> dict[str, dict[str, Any]]:
        now = self._clock()
        return {entity_id: {**spec, "last_changed": now} for entity_id, spec in _HOME_SEED.items()}

    @staticmethod
    def _summary(entity_id: str, spec: dict[str, Any]) -> EntitySummary:
        return EntitySummary(
            entity_id=entity_id,
            name=spec["attributes"].get("friendly_name"),
            state=spec["state"],
            domain=entity_id.partition(".")[0],
            last_changed=spec["last_changed"],
        )

    async def list_entities(self) -> list[EntitySummary]:
        with self._state() as state:
            return [self._summary(entity_id, spec) for entity_id, spec in sorted(state.items())]

    async def get_state(self, entity_id: str) -> EntityDetail:
        with self._state() as state:
            if entity_id not in state:
                raise no_entity(entity_id)
            spec = state[entity_id]
            summary = self._summary(entity_id, spec)
            return EntityDetail(
                **summary.model_dump(),
                last_updated=spec["last_changed"],
                attributes=bounded_attributes(spec["attributes"]),
            )

    async def target_states(self, entity_ids: Sequence[str]) -> list[TargetState]:
        with self._state() as state:
            return [TargetState(entity_id=e, state=state[e]["state"] if e in state else None) for e in entity_ids]

    async def list_services(self) -> list[ServiceSummary]:
        return [
            ServiceSummary(
                domain=domain,
                service=service,
                name=service.replace("_", " ").capitalize(),
                description=description,
                fields=sorted(fields),
            )
            for domain, services in sorted(_SERVICES.items())
            for service, (_, fields, description) in sorted(services.items())
        ]

    async def call_service(
        self, domain: str, service: str, entity_ids: Sequence[str], data: Mapping[str, Any]
    ) -> ServiceCallResult:
        await anyio.lowlevel.checkpoint()
        what = f"{domain}.{service}"
        with self._state() as state:
            missing = [e for e in entity_ids if e not in state]
            if missing:
                raise no_entity(missing[0])
            before = [TargetState(entity_id=e, state=state[e]["state"]) for e in entity_ids]
            try:
                if service not in _SERVICES.get(domain, {}):
                    raise BackendRejected(
                        f"Home Assistant (simulated) rejected {what}: there is no such service; see ha_list_services."
                    )
                _check_data(what, data, _SERVICES[domain][service][1])
            except BackendRejected as exc:
                exc.detail = {"before": states_by_id(before)}
                raise
            now = self._clock()
            for entity_id in entity_ids:
                spec = state[entity_id]
                new = _new_state(domain, entity_id.partition(".")[0], service, spec["state"])
                if new is not None and new != spec["state"]:
                    spec.update(state=new, last_changed=now)
                if new is not None and "brightness" in data:
                    spec["attributes"]["brightness"] = data["brightness"]
            after = [TargetState(entity_id=e, state=state[e]["state"]) for e in entity_ids]
        return ServiceCallResult(
            domain=domain, service=service, entity_ids=list(entity_ids), before=before, after=after
        )

    async def notify(self, service: str, *, title: str, message: str, data: Mapping[str, Any] | None = None) -> None:
        """Append the notification to `<home file>.notifications.jsonl`, where the demo and tests can read it."""
        sent = {"service": service, "title": title, "message": message, "at": self._clock()}
        line = json.dumps(sent | ({"data": dict(data)} if data is not None else {}))
        target = self._path.with_name(self._path.name + ".notifications.jsonl")
        try:
            await anyio.to_thread.run_sync(_append_line, target, line)
        except OSError as exc:
            raise BackendUnavailable(f"the simulated home cannot take notifications: {exc.strerror}") from None

    async def aclose(self) -> None:
        return None
