"""Reading a container's logs closes what it opened (found by the fuzzer, which reads logs thousands of times in one
process): a finished log stream of the Docker SDK left its socket to the garbage collector, a ResourceWarning."""

from __future__ import annotations

import gc
import warnings

import anyio
import pytest

from argobox.adapters.docker_engine import DockerEngine
from tests.fixtures_docker import IDLE_COMMAND, MakeContainer

pytestmark = [pytest.mark.docker, pytest.mark.anyio]


async def test_reading_logs_leaves_no_socket_to_the_garbage_collector(
    docker_base_url: str, make_container: MakeContainer
) -> None:
    web = make_container("logs", command=["sh", "-c", "echo one; echo two >&2; " + IDLE_COMMAND[2]])
    with anyio.fail_after(10):
        while b"two" not in web.logs():  # noqa: ASYNC110 - bounded by the deadline; the engine has no event for it
            await anyio.sleep(0.05)
    engine = DockerEngine(docker_base_url)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        try:
            read = [await engine.container_logs(web.name or "", tail=10) for _ in range(5)]
        finally:
            await engine.aclose()
        gc.collect()

    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert all(sorted(logs.lines) == ["one", "two"] for logs in read), read[0].lines  # two streams: either order
