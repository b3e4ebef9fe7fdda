"""The simulated lab behind `argobox demo`: a few containers kept in a JSON file, shared between processes.

It implements the same `ContainerRuntime` Protocol as the Docker engine adapter, so the demo runs every layer
of ArgoBox for real (MCP over stdio, policy, queue, CLI approval, audit) without touching a Docker engine.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from argobox.adapters.base import (
    MAX_LOG_LINES,
    REDACTED,
    BackendRejected,
    BackendUnavailable,
    ContainerAction,
    ContainerDetail,
    ContainerLogs,
    ContainerSummary,
    PortBinding,
    TargetNotFound,
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


class SimulatedLab:
    """A `ContainerRuntime` whose containers live in a JSON file (created with seed containers on first use)."""

    def __init__(self, path: Path, *, clock: Callable[[], str] = _now) -> None:
        self._path = path
        self._clock = clock

    @contextmanager
    def _state(self) -> Iterator[dict[str, dict[str, Any]]]:
        """The lab's containers under an exclusive file lock; changes are written back."""
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with open(self._path.with_suffix(".lock"), "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                state = self._load()
                before = json.dumps(state, sort_keys=True)
                yield state
                if json.dumps(state, sort_keys=True) != before:
                    tmp = self._path.with_suffix(".tmp")
                    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
                    tmp.replace(self._path)
        except OSError as exc:
            raise BackendUnavailable(f"the simulated lab at {self._path.name!r} cannot be used: {exc.strerror}") from None

    def _load(self) -> dict[str, dict[str, Any]]:
        if not self._path.exists():
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
        try:
            return json.loads(self._path.read_text())
        except ValueError:
            raise BackendUnavailable(f"the simulated lab file {self._path.name!r} is corrupt") from None

    @staticmethod
    def _find(state: dict[str, dict[str, Any]], container: str) -> tuple[str, dict[str, Any]]:
        for name, spec in state.items():
            if container in (name, spec["id"]):
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
                id=spec["id"], name=name, image=spec["image"], state=self._summary(name, spec).state,
                health=None, restart_count=spec["restart_count"], exit_code=None if spec["running"] else 0,
                ports=[PortBinding(container_port=p, host_ip="0.0.0.0", host_port=h) for p, h in spec["ports"].items()],
                mounts=[], labels={"lab.argobox": "simulated"},
                env={key: REDACTED for key in spec.get("env", {})},
                created_at=spec["created"], started_at=spec["started_at"], finished_at=spec["finished_at"],
            )

    async def container_logs(self, container: str, *, tail: int) -> ContainerLogs:
        with self._state() as state:
            _, spec = self._find(state, container)
            lines: list[str] = spec["log"]
            tail = max(1, min(tail, MAX_LOG_LINES))
            logs = ContainerLogs(container=container, lines=lines[-tail:], truncated=len(lines) > tail)
            return logs.carrying_secrets(spec.get("env", {}).values())

    async def _act(self, container: str, action: str) -> ContainerAction:
        await anyio.sleep(0)
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
                container=name, action=action, state=self._summary(name, spec).state,
                started_at=spec["started_at"], finished_at=spec["finished_at"], restart_count=spec["restart_count"],
            )

    async def start_container(self, container: str) -> ContainerAction:
        return await self._act(container, "start")

    async def stop_container(self, container: str) -> ContainerAction:
        return await self._act(container, "stop")

    async def restart_container(self, container: str) -> ContainerAction:
        return await self._act(container, "restart")

    async def aclose(self) -> None:
        return None
