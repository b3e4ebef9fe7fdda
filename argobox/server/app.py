"""Wiring: one `App` holds the configuration, the store, the backends and the redactor for a process."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncGenerator, Generator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import Any

from argobox.adapters.base import Backends, ContainerRuntime, HomeAutomation
from argobox.adapters.commands import CommandRunner, HostCommands, RemoteHost
from argobox.adapters.simulated import SimulatedHome, SimulatedLab
from argobox.server.audit import KeyFileError
from argobox.server.config.hosts import DockerHostConfig, HostConfig
from argobox.server.config.model import Config, ConfigError, HomeAssistantConfig
from argobox.server.redact import Redactor
from argobox.server.store import Clock, CoalescedRefusals, Store

SECRET_ENV_VARS = ("ARGOBOX_AGENT_TOKEN", "ARGOBOX_OPERATOR_TOKEN", "ARGOBOX_HA_TOKEN")
"""Environment variables whose values are secrets wherever they might surface (plus the configured token_env)."""


_PINNED: ContextVar[tuple[Settings, Config] | None] = ContextVar("argobox_pinned_config", default=None)


class Settings:
    """The configuration in force. A valid reload replaces it whole (`replace`); nothing edits it in place.

    `pinned()` fixes the configuration for the current task and the tasks it starts, so one agent call is decided,
    limited and executed under one configuration even if a reload lands while it runs.
    """

    __slots__ = ("_config",)

    def __init__(self, config: Config) -> None:
        self._config = config

    @property
    def current(self) -> Config:
        pinned = _PINNED.get()
        return pinned[1] if pinned is not None and pinned[0] is self else self._config

    def replace(self, config: Config) -> None:
        self._config = config

    @contextmanager
    def pinned(self) -> Generator[Config]:
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
    backends: Backends
    redactor: Redactor
    clock: Clock
    refusals: CoalescedRefusals
    """This process's refusals that a caller can repeat (operators'), coalesced; flushed when the app closes."""

    @property
    def config(self) -> Config:
        """The configuration in force (pinned for the duration of an agent call; see `Settings`)."""
        return self.settings.current

    @property
    def docker(self) -> ContainerRuntime:
        return self.backends.docker

    @property
    def homeassistant(self) -> HomeAutomation | None:
        return self.backends.homeassistant


def build_redactor(config: Config | None = None) -> Redactor:
    """A redactor for the secrets in this process's environment, including the configured Home Assistant token."""
    names: list[str] = list(SECRET_ENV_VARS)
    if config is not None and config.homeassistant is not None:
        names.append(config.homeassistant.token_env)
    values = [os.environ[name] for name in names if os.environ.get(name)]
    return Redactor([*values, *(v.strip() for v in values)])  # adapters use the stripped value


def build_docker(config: Config, redactor: Redactor) -> ContainerRuntime:
    if config.docker.simulated_lab is not None:
        return SimulatedLab(config.docker.simulated_lab)
    from argobox.adapters.docker_engine import DockerEngine  # the docker SDK is slow to import; only when used

    return DockerEngine(config.docker.base_url, timeout=config.docker.timeout_seconds, secrets=redactor.secrets)


def open_store(config: Config, *, clock: Clock, redactor: Redactor) -> AbstractAsyncContextManager[Store]:
    """The store as configured: its bounded lock wait, and the key that signs its audit checkpoints."""
    try:
        signer = config.audit.signer()
    except KeyFileError as exc:
        raise ConfigError(f"{config.source}: audit.signing_key_file: {exc}") from None
    return Store.open(
        config.storage.path,
        clock=clock,
        redactor=redactor,
        busy_timeout_ms=config.storage.busy_timeout_ms,
        signer=signer,
    )


def build_homeassistant(section: HomeAssistantConfig) -> HomeAutomation:
    """The Home Assistant backend of a [homeassistant] section; the token is read from `token_env` here, once."""
    if section.simulated_home is not None:
        return SimulatedHome(section.simulated_home)
    from argobox.adapters.home_assistant import HomeAssistant  # the client is slow to import; only when used

    assert section.url is not None  # noqa: S101 - the config model requires url unless simulated_home is set
    token = os.environ.get(section.token_env, "").strip() or None  # without one, each call says what to set
    return HomeAssistant(section.url, token, token_env=section.token_env, timeout=section.timeout_seconds)


def build_commands(hosts: Mapping[str, HostConfig], secrets: Sequence[str] = ()) -> CommandRunner:
    """The runbook runner for the built-in `local` host and every `[hosts.NAME]` (nothing connects until a command);
    `secrets` are removed from commands' output before it is cut to its limit, as from container logs."""
    remotes: dict[str, RemoteHost] = {}
    if not hosts:  # asyncssh is slow to import: only for a configuration with [hosts.NAME]
        return HostCommands(remotes, secrets)
    from argobox.adapters.ssh_host import SshHost

    for name, host in hosts.items():
        user, address, port = host.target
        remotes[name] = SshHost(
            name,
            user=user,
            address=address,
            port=port,
            known_hosts=host.known_hosts,
            key_file=host.key_file,
            connect_timeout=host.connect_timeout_seconds,
            secrets=secrets,
        )
    return HostCommands(remotes, secrets)


def build_docker_hosts(
    hosts: Mapping[str, DockerHostConfig], secrets: Iterable[str] = ()
) -> dict[str, ContainerRuntime]:
    """An engine per `[docker.hosts.NAME]` (nothing connects until first use); like the default engine, each removes
    `secrets` from the log lines it returns."""
    if not hosts:
        return {}
    from argobox.adapters.docker_hosts import RemoteDockerEngine, ssh_client, tls_client  # slow imports: when used

    engines: dict[str, ContainerRuntime] = {}
    for name, host in hosts.items():
        connect: Any
        if host.tls is not None:
            tls = host.tls
            connect = partial(
                tls_client, host.base_url, ca=tls.ca, cert=tls.cert, key=tls.key, timeout=host.timeout_seconds
            )
        else:
            connect = partial(
                ssh_client,
                host.base_url,
                known_hosts=host.known_hosts,
                key_file=host.key_file,
                timeout=host.timeout_seconds,
            )
        engines[name] = RemoteDockerEngine(
            name, host.base_url, timeout=host.timeout_seconds, connect=connect, secrets=secrets
        )
    return engines


@asynccontextmanager
async def open_app(
    config: Config,
    *,
    clock: Clock = time.time,
    docker: ContainerRuntime | None = None,
    homeassistant: HomeAutomation | None = None,
) -> AsyncGenerator[App]:
    """Open the store (recovering interrupted executions and expiring due requests) and the backends.

    `docker` and `homeassistant` replace the configured backends (tests); Home Assistant is only ever used when the
    configuration has a [homeassistant] section.
    """
    redactor = build_redactor(config)
    async with AsyncExitStack() as stack:
        runtime = docker if docker is not None else build_docker(config, redactor)
        stack.push_async_callback(runtime.aclose)
        home: HomeAutomation | None = None
        if config.homeassistant is not None:
            home = homeassistant if homeassistant is not None else build_homeassistant(config.homeassistant)
            stack.push_async_callback(home.aclose)
        commands = build_commands(config.hosts, redactor.secrets)
        stack.push_async_callback(commands.aclose)
        docker_hosts = build_docker_hosts(config.docker.hosts, redactor.secrets)
        for engine in docker_hosts.values():
            stack.push_async_callback(engine.aclose)
        store = await stack.enter_async_context(open_store(config, clock=clock, redactor=redactor))
        await store.recover_interrupted()
        await store.expire_due()
        refusals = CoalescedRefusals(store, clock=clock)
        stack.push_async_callback(refusals.flush)  # before the store closes: the counts are recorded
        backends = Backends(docker=runtime, homeassistant=home, commands=commands, docker_hosts=docker_hosts)
        yield App(
            settings=Settings(config),
            store=store,
            backends=backends,
            redactor=redactor,
            clock=clock,
            refusals=refusals,
        )
