"""DockerEngine against a real Docker engine: every expectation is checked against what the engine reports."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import docker
import pytest
from docker.models.containers import Container

from argobox.adapters.base import (
    MAX_LOG_BYTES,
    MAX_LOG_LINES,
    REDACTED,
    BackendRejected,
    BackendUnavailable,
    TargetNotFound,
)
from argobox.adapters.docker_engine import MAX_LINE_CHARS, DockerEngine, safe_url
from tests.fixtures_docker import MakeContainer, recorded_events

pytestmark = [pytest.mark.docker, pytest.mark.anyio]

SECRET = "hunter2-SECRET"


@pytest.fixture
async def engine(docker_base_url: str) -> AsyncIterator[DockerEngine]:
    adapter = DockerEngine(docker_base_url, timeout=30)
    yield adapter
    await adapter.aclose()


def finished(container: Container, timeout: float = 15) -> None:
    """Wait (bounded) until the container's command has exited, as the engine reports it."""
    assert container.wait(timeout=timeout)["StatusCode"] == 0
    container.reload()


async def test_list_containers_all_flag(engine: DockerEngine, make_container: MakeContainer) -> None:
    running = make_container("run")
    created = make_container("new", start=False)

    only_running = {c.name: c for c in await engine.list_containers(all=False)}
    everything = {c.name: c for c in await engine.list_containers(all=True)}

    assert running.name in only_running and created.name not in only_running
    assert {running.name, created.name} <= everything.keys()
    assert not any(name.startswith("/") for name in everything)
    for container in (running, created):
        container.reload()
        summary = everything[container.name]
        assert summary.id == container.attrs["Id"][:12]
        assert summary.state == container.attrs["State"]["Status"]
        assert summary.image == "argobox-test/busybox:latest"
    assert everything[running.name].status.startswith("Up")


async def test_list_shows_short_image_id_for_an_untagged_image(
    engine: DockerEngine, make_container: MakeContainer, docker_client: docker.DockerClient
) -> None:
    image_id = docker_client.images.get("argobox-test/busybox:latest").id
    assert image_id is not None
    container = make_container("byid", start=False)
    docker_client.api.remove_container(container.id)
    by_id = docker_client.containers.create(image_id, name=container.name, labels=container.labels, network_mode="none")
    try:
        summary = next(c for c in await engine.list_containers(all=True) if c.name == container.name)
        assert summary.image == image_id.removeprefix("sha256:")[:12]
    finally:
        by_id.remove(force=True)


async def test_inspect_redacts_env_and_reports_engine_facts(
    engine: DockerEngine, make_container: MakeContainer, tmp_path: Path
) -> None:
    container = make_container(
        "insp",
        env={"API_TOKEN": SECRET, "PLAIN": "visible-value"},
        labels={"com.example.role": "db"},
        volumes={str(tmp_path): {"bind": "/data", "mode": "ro"}},
        healthcheck={"test": ["CMD", "true"], "interval": 60 * 10**9, "retries": 1},
    )
    detail = await engine.inspect_container(container.name)
    container.reload()
    attrs = container.attrs

    dumped = detail.model_dump_json()
    assert SECRET not in dumped and "visible-value" not in dumped
    engine_env_names = {entry.partition("=")[0] for entry in attrs["Config"]["Env"]}
    assert detail.env == dict.fromkeys(engine_env_names, REDACTED)
    assert {"API_TOKEN", "PLAIN"} <= detail.env.keys()

    assert detail.id == attrs["Id"][:12] and detail.name == container.name
    assert detail.state == attrs["State"]["Status"] == "running"
    assert detail.exit_code is None
    assert detail.labels == attrs["Config"]["Labels"]
    assert detail.health == attrs["State"]["Health"]["Status"]
    assert detail.created_at == attrs["Created"]
    assert detail.started_at == attrs["State"]["StartedAt"]
    assert attrs["State"]["FinishedAt"].startswith("0001-01-01") and detail.finished_at is None
    assert detail.restart_count == attrs["RestartCount"]
    assert detail.ports == []
    [mount] = detail.mounts
    [engine_mount] = attrs["Mounts"]
    assert (mount.type, mount.source, mount.destination) == ("bind", engine_mount["Source"], "/data")
    assert mount.read_only is (not engine_mount["RW"]) is True


async def test_inspect_exited_container_reports_exit_code_and_no_health(
    engine: DockerEngine, make_container: MakeContainer
) -> None:
    container = make_container("exit", command=["sh", "-c", "exit 3"])
    container.wait(timeout=15)
    container.reload()
    detail = await engine.inspect_container(container.name)
    assert detail.state == container.attrs["State"]["Status"] == "exited"
    assert detail.exit_code == container.attrs["State"]["ExitCode"] == 3
    assert detail.finished_at == container.attrs["State"]["FinishedAt"]
    assert detail.health is None


async def test_logs_clamp_tail_and_keep_newest_lines(engine: DockerEngine, make_container: MakeContainer) -> None:
    container = make_container("logs", command=["seq", "1", "1500"])
    finished(container)
    engine_tail = container.logs(tail=MAX_LOG_LINES).decode().splitlines()

    clamped = await engine.container_logs(container.name, tail=5000)
    assert clamped.container == container.name
    assert clamped.lines == engine_tail and len(clamped.lines) == MAX_LOG_LINES
    assert clamped.lines[-1] == "1500" and clamped.truncated is True

    ten = await engine.container_logs(container.name, tail=10)
    assert ten.lines == container.logs(tail=10).decode().splitlines() and ten.truncated is False

    for tail in (0, -5):
        one = await engine.container_logs(container.name, tail=tail)
        assert one.lines == ["1500"] and one.truncated is False


async def test_logs_of_a_running_container_return_instead_of_following(
    engine: DockerEngine, make_container: MakeContainer
) -> None:
    idle = 'echo ready; trap "exit 0" TERM; while :; do sleep 1; done'
    container = make_container("running", command=["sh", "-c", idle])
    for _ in range(100):  # bounded: the container has printed its line
        if container.logs():
            break
        await anyio.sleep(0.05)

    with anyio.fail_after(10):
        logs = await engine.container_logs(container.name, tail=10)

    assert logs.lines == ["ready"]


async def test_logs_include_stdout_and_stderr(engine: DockerEngine, make_container: MakeContainer) -> None:
    container = make_container("streams", command=["sh", "-c", "echo to-stdout; echo to-stderr >&2"])
    finished(container)
    logs = await engine.container_logs(container.name, tail=10)
    # The engine copies the two streams independently, so their relative order is not fixed.
    assert sorted(logs.lines) == ["to-stderr", "to-stdout"] == sorted(container.logs().decode().splitlines())


async def test_logs_within_byte_bound_drop_older_lines(engine: DockerEngine, make_container: MakeContainer) -> None:
    script = 'L=$(head -c 2000 /dev/zero | tr "\\0" x); for i in $(seq 1 300); do echo "$i-$L"; done'
    container = make_container("bytes", command=["sh", "-c", script])
    finished(container)
    engine_lines = container.logs(tail=300).decode().splitlines()
    assert sum(len(line) + 1 for line in engine_lines) > MAX_LOG_BYTES

    logs = await engine.container_logs(container.name, tail=300)
    assert logs.truncated is True
    assert sum(len(line.encode()) + 1 for line in logs.lines) <= MAX_LOG_BYTES
    assert logs.lines == engine_lines[-len(logs.lines) :]
    assert len(logs.lines) == MAX_LOG_BYTES // 2005  # every line is "NNN-" + 2000 x's + newline


async def test_logs_cut_huge_lines_and_replace_bad_utf8(engine: DockerEngine, make_container: MakeContainer) -> None:
    script = "head -c 50000 /dev/zero | tr '\\0' y; echo; printf 'bad-\\377-byte\\n'; echo last"
    container = make_container("huge", command=["sh", "-c", script])
    finished(container)
    logs = await engine.container_logs(container.name, tail=20)
    assert logs.truncated is True
    assert logs.lines[-1] == "last" and logs.lines[-2] == "bad-\ufffd-byte"
    assert all(len(line) <= MAX_LINE_CHARS for line in logs.lines)
    assert logs.lines[0] == "y" * MAX_LINE_CHARS


async def test_logs_of_tty_container(engine: DockerEngine, make_container: MakeContainer) -> None:
    container = make_container("tty", command=["sh", "-c", "seq 1 5"], tty=True)
    finished(container)
    logs = await engine.container_logs(container.name, tail=3)
    assert logs.lines == ["3", "4", "5"] and logs.truncated is False


async def test_start_stop_restart_verified_by_engine(
    engine: DockerEngine, make_container: MakeContainer, docker_client: docker.DockerClient
) -> None:
    container = make_container("life", start=False)
    assert container.attrs["State"]["Status"] == "created"

    started = await engine.start_container(container.name)
    container.reload()
    state = container.attrs["State"]
    assert state["Status"] == started.state == "running"
    assert started.started_at == state["StartedAt"] and started.restart_count == container.attrs["RestartCount"]

    stopped = await engine.stop_container(container.name)
    container.reload()
    state = container.attrs["State"]
    assert state["Status"] == stopped.state == "exited" and state["ExitCode"] == 0  # clean exit on SIGTERM
    assert stopped.finished_at == state["FinishedAt"] is not None

    await engine.start_container(container.name)
    container.reload()
    before = container.attrs["State"]["StartedAt"]
    since = time.time()
    restarted = await engine.restart_container(container.name)
    container.reload()
    state = container.attrs["State"]
    assert state["Status"] == restarted.state == "running"
    assert state["StartedAt"] == restarted.started_at != before
    assert restarted.restart_count == container.attrs["RestartCount"]
    events = recorded_events(docker_client, container.id, since=since, until=time.time())
    actions = [event["Action"] for event in events]
    assert {"die", "start", "restart"} <= set(actions)


async def test_missing_container_is_target_not_found(engine: DockerEngine) -> None:
    name = "argobox-no-such-container"
    calls = [
        engine.inspect_container(name),
        engine.container_logs(name, tail=10),
        engine.start_container(name),
        engine.stop_container(name),
        engine.restart_container(name),
    ]
    for call in calls:
        with pytest.raises(TargetNotFound) as info:
            await call
        assert str(info.value) == f"No container named '{name}'."


async def test_engine_refusal_is_backend_rejected(engine: DockerEngine, make_container: MakeContainer) -> None:
    container = make_container("bad", start=False, command=["/no/such/binary"])
    with pytest.raises(BackendRejected) as info:
        await engine.start_container(container.name)
    message = str(info.value)
    assert container.name in message and "no/such/binary" in message
    assert len(message) < 400 and "Traceback" not in message
    container.reload()
    assert container.attrs["State"]["Status"] == "created"
    detail = await engine.inspect_container(container.name)
    assert detail.state == "created" and detail.exit_code == container.attrs["State"]["ExitCode"] != 0


async def test_unreachable_engine_is_backend_unavailable(tmp_path: Path) -> None:
    missing = DockerEngine(f"unix://{tmp_path}/missing/docker.sock", timeout=5)
    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as info:
        await missing.list_containers(all=True)
    assert time.monotonic() - started < 5
    assert str(info.value) == f"Docker engine at unix://{tmp_path}/missing/docker.sock did not answer: socket not found"
    with pytest.raises(BackendUnavailable):  # not cached: every call tries again
        await missing.inspect_container("anything")
    await missing.aclose()


@pytest.mark.parametrize("url", ["tcp://argo:s3cret-pw@127.0.0.1:1", "unix://argo:s3cret-pw@/nonexistent.sock"])
async def test_unavailable_message_never_shows_password(url: str) -> None:
    adapter = DockerEngine(url, timeout=2)
    with pytest.raises(BackendUnavailable) as info:
        await adapter.list_containers(all=False)
    assert "s3cret-pw" not in str(info.value) and len(str(info.value)) < 300
    assert str(info.value).startswith(f"Docker engine at {safe_url(url)} did not answer:")
    await adapter.aclose()


async def test_aclose_is_idempotent_and_client_reopens(engine: DockerEngine, make_container: MakeContainer) -> None:
    container = make_container("close")
    await engine.aclose()
    await engine.aclose()
    assert (await engine.inspect_container(container.name)).state == "running"


def test_safe_url_strips_password_only() -> None:
    assert safe_url("tcp://user:pw@host:2376") == "tcp://user@host:2376"
    assert safe_url("unix:///var/run/docker.sock") == "unix:///var/run/docker.sock"
    assert safe_url("ssh://admin@nas") == "ssh://admin@nas"


def test_constructing_does_not_touch_the_engine() -> None:
    DockerEngine("unix:///nonexistent/docker.sock")  # must not raise


@pytest.mark.docker
@pytest.mark.anyio
async def test_an_id_or_id_prefix_never_stands_in_for_a_name(
    docker_base_url: str, make_container: Callable[..., Container]
) -> None:
    """A grant matches names; an id prefix (`db3f` under a `db*` glob) must not reach another container."""
    target = make_container("idprefix")
    started = target.attrs["State"]["StartedAt"]
    target_id, name = target.id, target.name
    assert target_id is not None and name is not None
    engine = DockerEngine(docker_base_url)
    try:
        for alias in (target_id, target_id[:12], target_id[:4]):
            with pytest.raises(TargetNotFound):
                await engine.restart_container(alias)
            with pytest.raises(TargetNotFound):
                await engine.inspect_container(alias)
        target.reload()
        detail = await engine.inspect_container(name)
    finally:
        await engine.aclose()

    assert target.attrs["State"]["StartedAt"] == started  # never restarted
    assert detail.name == target.name
