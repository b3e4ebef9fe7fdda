"""Crash test: a real ArgoBox process is killed with SIGKILL at each state transition of a request, then ArgoBox
starts again, and what the operator and the Docker engine see is checked.

The agent's MCP client (the official one) talks to `argobox serve` over stdio; the operator approves and prunes with
the `argobox` command; the container is restarted by a real Docker engine, whose own event log is the count of
what ran. The process to kill runs through tests/crash_launcher.py, which wraps the real function at the chosen
point (no crash hook in ArgoBox itself). After each crash: nothing ran twice, nothing ran without its record, every
request is in a state the operator can act on or read (and `argobox show` explains it), `argobox audit verify`
passes, and the next ordinary call works.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import docker
import pytest
from docker.models.containers import Container
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from tests.conftest import WriteConfig
from tests.crash_launcher import NO_NAMESPACE
from tests.figures import write_figures
from tests.fixtures_docker import recorded_events

pytestmark = [pytest.mark.docker, pytest.mark.anyio]

ARGOBOX = str(Path(sys.executable).with_name("argobox"))
LAUNCHER = str(Path(__file__).resolve().parents[1] / "crash_launcher.py")
RESTART = "docker_restart_container"
READ = "docker_inspect_container"
SETTLED = {"pending_approval", "succeeded", "failed", "denied", "expired", "unknown"}
"""States an operator can act on (pending) or read as final; `executing` and `approved` must not outlive a crash."""
STEPS = {"received", "decision", "queued", "approved", "executing", "succeeded", "failed", "interrupted", "denied"}
"""The audit events of a request's own transitions (notifications about it are recorded under its id too)."""
SEND_TIMEOUT_S = "0.25"
"""The outbox case's notification send bound: a dead sender's claim is taken over after four times it."""


@dataclass(frozen=True, slots=True)
class Case:
    point: str
    """Where the process is killed (see tests/crash_launcher.py POINTS)."""
    step: str
    """Which step's process is killed: "queue" (the agent's server), "approve" or "prune" (the operator's CLI)."""
    status: str | None
    """The request's status once ArgoBox has started again (None: the request may or may not have been made)."""
    ran: int
    """Restarts the engine reports before the next call: the approval that reached the engine."""
    pid1: bool = False
    """The killed process runs as process 1 of its own PID namespace, as in the container image."""

    @property
    def id(self) -> str:
        return f"{self.step}-{self.point}" + ("-as-pid-1" if self.pid1 else "")


CASES = [
    Case("queued", "queue", "pending_approval", 0),
    Case("checkpoint", "queue", None, 0),  # the first checkpoint of a new store: killed before it is renamed
    Case("approved", "approve", "unknown", 0),
    Case("executing", "approve", "unknown", 1),
    Case("executing", "approve", "unknown", 1, pid1=True),  # restarted, the container's process 1 is another one
    Case("finished", "approve", "succeeded", 1),
    Case("outbox", "approve", "succeeded", 1),
    Case("checkpoint", "prune", "succeeded", 1),  # the checkpoint after a prune: the old one is still in place
    Case("prune", "prune", "succeeded", 1),
]


class Receiver:
    """A loopback webhook receiver: every POST body, by path; `wait_for` blocks on a condition, bounded."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.changed = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                self.send_response(200)
                self.end_headers()
                with outer.changed:
                    outer.posts.append((self.path, body))
                    outer.changed.notify_all()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def received(self, path: str) -> Counter[tuple[str, str]]:
        """How many times each (request id, event) reached `path`."""
        with self.changed:
            return Counter((b["request"]["id"], b["event"]) for p, b in self.posts if p == path)

    def wait_for(self, ready: Callable[[], bool], timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(ready, timeout)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def figures() -> Iterator[Counter[str]]:
    """What the cases add up to, written for scripts/reliability.py when ARGOBOX_FIGURES is set."""
    totals: Counter[str] = Counter()
    yield totals
    if totals["crash_points"]:
        write_figures(dict(totals))


@dataclass(frozen=True, slots=True)
class Run:
    """How to start one ArgoBox process: the real command, or the crash launcher killing it at `point`."""

    config: Path
    point: str | None = None
    send_timeout: str | None = None
    pid1: bool = False

    @property
    def mark(self) -> Path:
        return self.config.with_name("crashed.json")

    def command(self) -> list[str]:
        if self.point is None and self.send_timeout is None and not self.pid1:
            return [ARGOBOX, "--config", str(self.config)]
        return [sys.executable, LAUNCHER, "--config", str(self.config)]

    def env(self) -> dict[str, str]:
        env = {"ARGOBOX_CRASH_MARK": str(self.mark)}
        if self.point is not None:
            env["ARGOBOX_CRASH_AT"] = self.point
        if self.send_timeout is not None:
            env["ARGOBOX_CRASH_SEND_TIMEOUT"] = self.send_timeout
        if self.pid1:
            env["ARGOBOX_CRASH_PID1"] = "1"
        return env

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.command(), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, **self.env()},
        )

    def crashed(self) -> dict[str, Any]:
        """The launcher's mark: the point reached just before the kill."""
        return json.loads(self.mark.read_text())


@dataclass(frozen=True, slots=True)
class Scene:
    """One case's world: its own store and configuration, its own container, its own webhook path."""

    config: Path
    container: Container
    hook: str
    """The path of this case's webhook on the receiver."""
    since: float
    """When the case began (the engine's events are counted from here)."""

    @property
    def name(self) -> str:
        return str(self.container.name)

    def run(self, **kwargs: Any) -> Run:
        return Run(self.config, **kwargs)


@pytest.fixture
def scene(
    write_config: WriteConfig, docker_base_url: str, make_container: Callable[..., Container], receiver: Receiver
) -> Scene:
    since = time.time()
    container = make_container("crash")
    hook = f"/{container.name}"
    config = write_config(
        docker=f'base_url = "{docker_base_url}"',
        mutate_globs='"argobox-crash-*"',
        extra=f'\n[[notifications.webhooks]]\nurl = "{receiver.url}{hook}"\n',
    )
    return Scene(config=config, container=container, hook=hook, since=since)


async def agent_restart(run: Run, container: str, *, until: Callable[[], bool] | None = None) -> Any:
    """One agent session asking to restart `container`: its answer, or None when the server died under it.

    With `until` (which blocks until its condition holds or its deadline passes), the session stays open, its server
    delivering notifications meanwhile, until `until` returns; it must return True."""
    command = run.command()
    params = StdioServerParameters(
        command=command[0], args=[*command[1:], "serve", "--agent", "openclaw"], env=run.env()
    )
    answer: Any = None
    try:
        with anyio.fail_after(60):
            async with Client(params) as client:
                answer = await client.call_tool(RESTART, {"container": container})
                if until is not None:
                    assert await anyio.to_thread.run_sync(until)
    except* MCPError:  # "Connection closed": the server was killed under the client
        if run.point is None:
            raise
        answer = None
    return answer


def engine_restarts(client: docker.DockerClient, container: Container, since: float) -> int:
    """Restarts of `container` as the Docker engine itself recorded them since `since`."""
    events = recorded_events(client, container.id, since=int(since) - 1, until=int(time.time()) + 1, event="restart")
    return sum(1 for e in events if e.get("Action") == "restart")


def stored(config: Path, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    """Rows of the store, read-only (how a crash left the outbox; the final tally of requests)."""
    db = sqlite3.connect(config.with_name("argobox.db").resolve().as_uri() + "?mode=ro", uri=True)
    try:
        db.row_factory = sqlite3.Row
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def outbox_row(config: Path, notification: int) -> sqlite3.Row:
    (row,) = stored(config, "SELECT * FROM outbox WHERE id = ?", (notification,))
    return row


def verify(run: Run) -> None:
    done = run.cli("audit", "verify")
    assert done.returncode == 0 and done.stdout.startswith("ok: "), done.stdout + done.stderr


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


async def crash_at(case: Case, scene: Scene) -> str | None:
    """Drive one request up to the step whose process is killed at `case.point`; the request's id, if known."""
    normal, crashing = scene.run(), scene.run(point=case.point, pid1=case.pid1)
    answer = await agent_restart(crashing if case.step == "queue" else normal, scene.name)
    request_id = answer.structured_content["request_id"] if answer is not None else None
    if case.step == "approve":
        killed = crashing.cli("approve", str(request_id), "--as", "alice")
        if killed.returncode == NO_NAMESPACE and os.environ.get("CI") != "true":
            pytest.skip(f"no PID namespace here (needs root): {killed.stderr.strip()}")
        assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    elif case.step == "prune":
        assert normal.cli("approve", str(request_id), "--as", "alice").returncode == 0
        killed = crashing.cli("audit", "prune", "--before", now_iso(), "--as", "alice")
        assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    mark = crashing.crashed()
    assert mark["point"] == case.point
    if case.point == "checkpoint":
        assert mark["temporary_exists"] is True  # written, and not renamed over the checkpoint
        assert mark["replaced"] is (case.step == "prune")
    return request_id


def check_after_restart(case: Case, scene: Scene, request_id: str | None) -> dict[str, Any] | None:
    """ArgoBox starts again (the operator lists the queue): every request settled, explained, the trail verified."""
    run = scene.run()
    listed = run.cli("requests", "--json")
    assert listed.returncode == 0, listed.stderr
    requests = json.loads(listed.stdout)
    assert {r["status"] for r in requests} <= SETTLED, requests
    assert len(requests) <= 1, requests
    mine = next((r for r in requests if request_id is None or r["id"] == request_id), None)
    if case.status is not None:
        assert mine is not None and mine["status"] == case.status, requests
    for request in requests:
        shown = run.cli("show", request["id"])
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.startswith(f"Request {request['id']}: {request['status']}")
        if request["status"] == "unknown":  # what happened, what to do, and the target as it is now
            assert "outcome:        the process executing it stopped before recording the outcome" in shown.stdout
            assert f"target now:     container {scene.name}: state running" in shown.stdout
            assert "whether the action ran is unknown, check the target" in shown.stdout  # the timeline
    verify(run)
    return mine


def check_records(case: Case, scene: Scene, request: dict[str, Any] | None, receiver: Receiver) -> None:
    """The trail of the crashed request says what happened, and the case's own state is as the crash left it."""
    everything = [dict(row) for row in stored(scene.config, "SELECT request_id, event FROM audit ORDER BY seq")]
    kinds = [e["event"] for e in everything]
    mine = [e["event"] for e in everything if request is not None and e["request_id"] == request["id"]]
    steps = [event for event in mine if event in STEPS]
    assert all(n <= 1 for n in Counter(steps).values()), steps  # no step recorded twice
    if case.step == "prune" and case.point == "checkpoint":
        assert "pruned" in kinds and not mine  # the prune was committed (its checkpoint was not)
        return
    if case.ran:
        assert "executing" in steps  # what ran was recorded as executing before it ran
    if request is not None and request["status"] == "unknown":
        assert steps[-2:] == ["executing", "interrupted"], steps
    if case.point == "prune":
        assert "pruned" not in kinds and kinds.count("received") == 1  # rolled back whole
    if case.point == "outbox":
        row = outbox_row(scene.config, int(scene.run().crashed()["notification"]))
        assert row["status"] == "sending" and row["attempts"] == 1  # claimed, sent, never settled
        assert receiver.received(scene.hook)[(row["request_id"], row["event"])] == 1


async def next_call(case: Case, scene: Scene, receiver: Receiver, request_id: str | None) -> None:
    """The next ordinary call works: a request approved runs once; the outbox case's notification is delivered."""
    run = scene.run()
    if case.point == "outbox":
        row = outbox_row(scene.config, int(run.crashed()["notification"]))
        key = (row["request_id"], row["event"])
        # A server whose deliverer takes the dead sender's claim over after 1 s instead of 20 s.
        redelivered = lambda: receiver.wait_for(lambda: receiver.received(scene.hook)[key] == 2, 30)  # noqa: E731
        answer = await agent_restart(scene.run(send_timeout=SEND_TIMEOUT_S), scene.name, until=redelivered)
        assert outbox_row(scene.config, row["id"])["status"] == "sent"
    else:
        answer = await agent_restart(run, scene.name)
    assert answer is not None and answer.structured_content["status"] == "pending_approval"
    new_id = answer.structured_content["request_id"]
    if case.status == "pending_approval":
        assert new_id == request_id  # the agent asked again: the same request, not a second one
    approved = run.cli("approve", new_id, "--as", "alice")
    assert approved.returncode == 0 and "succeeded: restart container" in approved.stdout, approved.stderr
    if case.step == "prune":
        assert run.cli("audit", "prune", "--before", now_iso(), "--as", "alice").returncode == 0
        verify(run)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_a_crash_at_each_transition_runs_nothing_twice_or_unrecorded_and_leaves_the_queue_usable(
    case: Case, scene: Scene, docker_client: docker.DockerClient, receiver: Receiver, figures: Counter[str]
) -> None:
    request_id = await crash_at(case, scene)
    request = check_after_restart(case, scene, request_id)
    check_records(case, scene, request, receiver)
    assert engine_restarts(docker_client, scene.container, scene.since) == case.ran

    await next_call(case, scene, receiver, request["id"] if request is not None else None)
    succeeded = stored(scene.config, "SELECT COUNT(*) FROM requests WHERE status = 'succeeded'")[0][0]
    seen = engine_restarts(docker_client, scene.container, scene.since)
    expected = case.ran + 1  # what reached the engine before the crash, and the next call
    assert seen == expected
    assert seen == succeeded + (1 if case.point == "executing" else 0)  # the one that ran unrecorded is `unknown`
    figures.update(crash_points=1, executions_expected=expected, executions_seen=seen)


async def agent_inspect(run: Run, container: str) -> tuple[Any, Any]:
    """One agent session asking to inspect `container` twice if it can: its two answers (None for one not had)."""
    command = run.command()
    params = StdioServerParameters(
        command=command[0], args=[*command[1:], "serve", "--agent", "openclaw"], env=run.env()
    )
    answers: list[Any] = [None, None]
    try:
        with anyio.fail_after(60):
            async with Client(params) as client:
                await client.list_tools()  # the output schemas the client checks an answer against, beforehand
                for n in range(2):
                    answers[n] = await client.call_tool(READ, {"container": container})
    except* MCPError:  # "Connection closed": the server was killed under the client
        if run.point is None:
            raise
    return answers[0], answers[1]


async def test_a_crash_after_a_read_is_answered_leaves_its_outcome_unknown_in_the_trail_not_lost(
    scene: Scene, docker_client: docker.DockerClient
) -> None:
    # A read's outcome is written just after its answer is sent: a process killed in between has answered a call
    # it has not recorded the end of. The decision (and `executing`) was committed before the engine was asked, so
    # the next start finds the request executing under a dead process and marks it unknown, audited.
    crashing = scene.run(point="answered")
    answer, never = await agent_inspect(crashing, scene.name)
    assert answer is not None and never is None, (answer, never)
    assert answer.structured_content["status"] == "succeeded"
    assert answer.structured_content["result"]["name"] == scene.name  # the engine's answer reached the agent
    request_id = answer.structured_content["request_id"]
    mark = crashing.crashed()
    assert mark["point"] == "answered" and mark["waiting"] == [f"the outcome of request {request_id}"]
    assert stored(scene.config, "SELECT status FROM requests WHERE id = ?", (request_id,))[0][0] == "executing"

    run = scene.run()
    listed = run.cli("requests", "--json")
    assert listed.returncode == 0, listed.stderr
    mine = next(r for r in json.loads(listed.stdout) if r["id"] == request_id)
    assert mine["status"] == "unknown"
    shown = run.cli("show", request_id)
    assert shown.returncode == 0 and "the process executing it stopped before recording the outcome" in shown.stdout
    steps = [
        row["event"]
        for row in stored(scene.config, "SELECT event FROM audit WHERE request_id = ? ORDER BY seq", (request_id,))
    ]
    assert steps == ["received", "decision", "executing", "interrupted"]
    verify(run)

    first, second = await agent_inspect(run, scene.name)  # the next reads are answered and recorded
    assert first.structured_content["status"] == second.structured_content["status"] == "succeeded"
    statuses = stored(scene.config, "SELECT status, COUNT(*) FROM requests GROUP BY status")
    assert {row[0]: row[1] for row in statuses} == {"unknown": 1, "succeeded": 2}
    assert engine_restarts(docker_client, scene.container, scene.since) == 0
