"""Pytest fixtures for tests against a real Docker engine (start one with `scripts/docker-engine.sh start`).

Load with `pytest_plugins = ["tests.fixtures_docker"]`. Without a reachable engine, tests using these fixtures are
skipped loudly, or fail when the environment variable CI is "true".
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, NoReturn, cast

import docker
import docker.errors
import docker.models.containers
import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_IMAGE = "argobox-test/busybox:latest"
TEST_LABEL = "argobox.test"
SESSION_LABEL = "argobox.test.session"
IDLE_COMMAND = ["sh", "-c", 'trap "exit 0" TERM; while :; do sleep 1; done']
STALE_AFTER_S = 3600
"""Test containers of other sessions older than this are leftovers of crashed runs and get removed."""

Container = docker.models.containers.Container


class MadeContainer(Container):
    """A container as `make_container` returns it: created with a name, so its name and id are known. For the type
    checker only (the SDK's stubs leave both optional); the object itself is the SDK's `Container`."""

    @property
    def name(self) -> str: ...

    @property
    def id(self) -> str: ...

    @property
    def labels(self) -> dict[str, str]: ...


MakeContainer = Callable[..., MadeContainer]


def recorded_events(
    client: docker.DockerClient, container_id: str | None, *, since: float, until: float, event: str | None = None
) -> list[dict[str, Any]]:
    """The events the engine itself recorded for a container (of kind `event`, if given) between `since` and
    `until`: a bounded read, and the stream (an HTTP connection to the engine) is closed after it."""
    filters: dict[str, Any] = {"container": container_id} | ({"event": event} if event else {})
    # The stub leaves *args and **kwargs of events() untyped.
    stream = client.events(since=since, until=until, decode=True, filters=filters)  # pyright: ignore[reportUnknownMemberType]
    with closing_stream(stream):
        return list(stream)


@contextlib.contextmanager
def closing_stream(stream: Any) -> Generator[Any]:
    """`stream` (an SDK event or log stream), closed with its HTTP response when the block ends.

    The SDK's own `close()` shuts the socket but leaves the response's file object open, which keeps the descriptor
    until the garbage collector comes: its ResourceWarning then fails whichever later test it lands in."""
    try:
        yield stream
    finally:
        response = getattr(stream, "_response", None)
        stream.close()
        if response is not None:
            response.close()


def _no_engine(reason: str) -> NoReturn:
    message = f"no Docker engine: run scripts/docker-engine.sh start ({reason})"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _candidate_url() -> str | None:
    if url := os.environ.get("ARGOBOX_TEST_DOCKER_HOST"):
        return url
    sock = REPO / ".state" / "docker" / "docker.sock"
    return f"unix://{sock}" if sock.is_socket() else None


@pytest.fixture(scope="session")
def docker_base_url() -> str:
    """The engine's URL, from ARGOBOX_TEST_DOCKER_HOST or the socket scripts/docker-engine.sh creates."""
    url = _candidate_url()
    if url is None:
        _no_engine("ARGOBOX_TEST_DOCKER_HOST is unset and .state/docker/docker.sock does not exist")
    try:
        client = docker.DockerClient(base_url=url, timeout=10)
        try:
            client.api.ping()
        finally:
            client.close()
    except (docker.errors.DockerException, OSError) as exc:  # an engine that does not answer is no engine
        _no_engine(f"{url} did not answer: {type(exc).__name__}")
    return url


def _remove(client: docker.DockerClient, container_ids: list[str]) -> None:
    for container_id in container_ids:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(container_id, force=True, v=True)


def _labelled(client: docker.DockerClient, label: str, *, created_before: float | None = None) -> list[str]:
    # The stub leaves the type of the engine's answer open: a list of JSON objects.
    rows = cast("list[dict[str, Any]]", client.api.containers(all=True, filters={"label": label}))  # pyright: ignore[reportUnknownMemberType]
    return [r["Id"] for r in rows if created_before is None or r["Created"] < created_before]


@pytest.fixture(scope="session")
def docker_session_id() -> str:
    """Labels this session's containers, so concurrent sessions on one engine do not remove each other's."""
    return secrets.token_hex(6)


@pytest.fixture(scope="session")
def docker_client(docker_base_url: str, docker_session_id: str) -> Iterator[docker.DockerClient]:
    """A client for the test engine; removes this session's containers (and stale ones of crashed runs)."""
    client = docker.DockerClient(base_url=docker_base_url, timeout=30)
    try:
        client.images.get(TEST_IMAGE)
    except docker.errors.ImageNotFound:
        client.close()
        _no_engine(f"image {TEST_IMAGE} is missing")
    _remove(client, _labelled(client, f"{TEST_LABEL}=1", created_before=time.time() - STALE_AFTER_S))
    yield client
    try:
        _remove(client, _labelled(client, f"{SESSION_LABEL}={docker_session_id}"))
    finally:
        client.close()


@pytest.fixture
def make_container(docker_client: docker.DockerClient, docker_session_id: str) -> Iterator[MakeContainer]:
    """Factory creating (and by default starting) throw-away busybox containers, all removed at teardown.

    `make_container(name_prefix="t", *, start=True, env=None, labels=None, command=None, name=None, **create_kwargs)`:
    the default command idles and exits 0 on SIGTERM; extra keyword arguments go to `containers.create`.
    """
    created: list[Container] = []

    def make(
        name_prefix: str = "t",
        *,
        start: bool = True,
        env: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
        command: list[str] | str | None = None,
        name: str | None = None,
        **create_kwargs: Any,
    ) -> MadeContainer:
        container = docker_client.containers.create(
            TEST_IMAGE,
            command=command if command is not None else IDLE_COMMAND,
            name=name or f"argobox-{name_prefix}-{secrets.token_hex(4)}",
            network_mode="none",
            environment=env or {},
            labels={**(labels or {}), TEST_LABEL: "1", SESSION_LABEL: docker_session_id},
            **create_kwargs,
        )
        created.append(container)
        if start:
            container.start()
        container.reload()
        assert container.name and container.id, "the engine names every container it creates"
        return cast(MadeContainer, container)

    yield make
    _remove(docker_client, [c.id for c in created if c.id is not None])
