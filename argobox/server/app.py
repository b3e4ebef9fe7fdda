"""Wiring: one `App` holds the configuration, the store, the backends and the redactor for a process."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from argobox.adapters.base import ContainerRuntime
from argobox.adapters.simulated import SimulatedLab
from argobox.server.audit_checkpoint import KeyFileError
from argobox.server.config import Config, ConfigError
from argobox.server.redact import Redactor
from argobox.server.store import Clock, Store

SECRET_ENV_VARS = ("ARGOBOX_AGENT_TOKEN", "ARGOBOX_OPERATOR_TOKEN")
"""Environment variables whose values are secrets wherever they might surface."""


@dataclass(frozen=True, slots=True, kw_only=True)
class App:
    config: Config
    store: Store
    docker: ContainerRuntime
    redactor: Redactor
    clock: Clock


def build_redactor() -> Redactor:
    return Redactor(os.environ[name] for name in SECRET_ENV_VARS if os.environ.get(name))


def build_docker(config: Config) -> ContainerRuntime:
    if config.docker.simulated_lab is not None:
        return SimulatedLab(config.docker.simulated_lab)
    from argobox.adapters.docker_engine import DockerEngine  # the docker SDK is slow to import; only when used

    return DockerEngine(config.docker.base_url, timeout=config.docker.timeout_seconds)


def open_store(config: Config, *, clock: Clock, redactor: Redactor) -> AbstractAsyncContextManager[Store]:
    """The store as configured: its bounded lock wait, and the key that signs its audit checkpoints."""
    try:
        signer = config.audit.signer()
    except KeyFileError as exc:
        raise ConfigError(f"{config.source}: audit.signing_key_file: {exc}") from None
    return Store.open(
        config.storage.path, clock=clock, redactor=redactor, busy_timeout_ms=config.storage.busy_timeout_ms,
        signer=signer,
    )


@asynccontextmanager
async def open_app(
    config: Config, *, clock: Clock = time.time, docker: ContainerRuntime | None = None
) -> AsyncIterator[App]:
    """Open the store (recovering interrupted executions and expiring due requests) and the backends."""
    redactor = build_redactor()
    runtime = docker if docker is not None else build_docker(config)
    try:
        async with open_store(config, clock=clock, redactor=redactor) as store:
            await store.recover_interrupted()
            await store.expire_due()
            yield App(config=config, store=store, docker=runtime, redactor=redactor, clock=clock)
    finally:
        await runtime.aclose()
