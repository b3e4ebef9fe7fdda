"""Wiring: one `App` holds the configuration, the store, the backends and the redactor for a process."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from argobox.adapters.base import ContainerRuntime
from argobox.adapters.simulated import SimulatedLab
from argobox.server.config import Config
from argobox.server.redact import Redactor
from argobox.server.store import Clock, Store

SECRET_ENV_VARS = ("ARGOBOX_AGENT_TOKEN", "ARGOBOX_OPERATOR_TOKEN")
"""Environment variables whose values are secrets wherever they might surface."""


_PINNED: ContextVar[tuple[Settings, Config] | None] = ContextVar("argobox_pinned_config", default=None)


class Settings:
    """The configuration in force. A valid reload replaces it whole (`replace`); nothing edits it in place.

    `pinned()` fixes the configuration for the current task and the tasks it starts, so one agent call is decided,
    limited and executed under one configuration even if a reload lands while it runs.
    """

    __slots__ = ("_config", "generation")

    def __init__(self, config: Config) -> None:
        self._config = config
        self.generation = 0

    @property
    def current(self) -> Config:
        pinned = _PINNED.get()
        return pinned[1] if pinned is not None and pinned[0] is self else self._config

    def replace(self, config: Config) -> None:
        self._config = config
        self.generation += 1

    @contextmanager
    def pinned(self) -> Iterator[Config]:
        config = self.current
        token = _PINNED.set((self, config))
        try:
            yield config
        finally:
            _PINNED.reset(token)


@dataclass(frozen=True, slots=True, kw_only=True)
class App:
    settings: Settings
    store: Store
    docker: ContainerRuntime
    redactor: Redactor
    clock: Clock

    @property
    def config(self) -> Config:
        """The configuration in force (pinned for the duration of an agent call; see `Settings`)."""
        return self.settings.current


def build_redactor() -> Redactor:
    return Redactor(os.environ[name] for name in SECRET_ENV_VARS if os.environ.get(name))


def build_docker(config: Config) -> ContainerRuntime:
    if config.docker.simulated_lab is not None:
        return SimulatedLab(config.docker.simulated_lab)
    from argobox.adapters.docker_engine import DockerEngine  # the docker SDK is slow to import; only when used

    return DockerEngine(config.docker.base_url, timeout=config.docker.timeout_seconds)


@asynccontextmanager
async def open_app(
    config: Config, *, clock: Clock = time.time, docker: ContainerRuntime | None = None
) -> AsyncIterator[App]:
    """Open the store (recovering interrupted executions and expiring due requests) and the backends."""
    redactor = build_redactor()
    runtime = docker if docker is not None else build_docker(config)
    try:
        async with Store.open(config.storage.path, clock=clock, redactor=redactor) as store:
            await store.recover_interrupted()
            await store.expire_due()
            yield App(settings=Settings(config), store=store, docker=runtime, redactor=redactor, clock=clock)
    finally:
        await runtime.aclose()
