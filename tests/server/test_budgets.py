"""Budgets through the real enforcement path and store (simulated lab, injected clock, no sleeps)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from argobox.server.app import App, open_app
from argobox.server.config.model import load_config
from argobox.server.mediation import agent_calls
from argobox.server.store import RequestStatus
from tests.conftest import WriteConfig

pytestmark = pytest.mark.anyio

LIMITS = """
[agents.openclaw.limits]
requests_per_minute = 10
mutations_per_hour = 20
max_pending = 2
identical_calls = { count = 3, window_seconds = 300 }
failures = { count = 3, window_seconds = 600, cooldown_seconds = 900 }
per_target = { count = 3, window_seconds = 3600 }

[[agents.openclaw.rules]]
tools = ["docker_start_container", "docker_stop_container"]
args = { container = ["backup"] }
effect = "allow"
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def config_path(write_config: WriteConfig) -> Path:
    return write_config(extra=LIMITS)


@pytest.fixture
def open_lab(config_path: Path, clock: Clock) -> Callable[[], Any]:
    @asynccontextmanager
    async def opener() -> AsyncGenerator[App]:
        async with open_app(load_config(config_path), clock=clock) as app:
            yield app

    return opener


async def call(app: App, tool: str, **arguments: Any) -> dict[str, Any]:
    return (await agent_calls.call_tool(app, "openclaw", tool, arguments)).model_dump()


async def events(app: App, name: str) -> list[dict[str, Any]]:
    return [e.detail for e in await app.store.audit_trail() if e.event == name]


async def test_request_budget_stops_a_loop_and_refills_after_the_window(open_lab: Any, clock: Clock) -> None:
    async with open_lab() as app:
        answers = [await call(app, "docker_list_containers") for _ in range(25)]
        clock.now += 61
        after = await call(app, "docker_list_containers")
        refusals = await events(app, "rate_limited")

    assert [a["status"] for a in answers] == ["succeeded"] * 10 + ["rate_limited"] * 15
    assert answers[10]["limit"] == "requests_per_minute" and 1 <= answers[10]["retry_after_seconds"] <= 60
    assert answers[10]["message"].startswith("rate_limited: ")
    assert after["status"] == "succeeded"
    # one record for the first refusal, one counted record for the other 14 once the agent was admitted again
    assert [(r["limit"], r["refusals"]) for r in refusals] == [("requests_per_minute", 1), ("requests_per_minute", 14)]


async def test_a_clock_set_back_never_lets_an_agent_past_its_request_budget(open_lab: Any, clock: Clock) -> None:
    """The window is counted from its two ends (the first and last call in it, by number): a call made after the
    clock went back is counted as late as the latest before it, so the run of numbers stays whole."""
    start = clock.now
    async with open_lab() as app:
        early = await call(app, "docker_list_containers")
        clock.now = start + 100
        late = await call(app, "docker_list_containers")
        clock.now = start + 70  # set back: the early call is out of the window, the late one is not
        after = [await call(app, "docker_list_containers") for _ in range(12)]
        usage, _ = await app.store.budget("openclaw", app.config.limits_for("openclaw"))

    assert early["status"] == late["status"] == "succeeded"
    assert [a["status"] for a in after] == ["succeeded"] * 9 + ["rate_limited"] * 3  # 10 a minute, the late one too
    assert usage.requests.count == 10


async def test_the_request_budget_counts_a_long_window_exactly(open_lab: Any, clock: Clock) -> None:
    """Calls spread over the minute: each leaves the window exactly when its minute is over."""
    start = clock.now
    async with open_lab() as app:
        spread: list[dict[str, Any]] = []
        for second in range(0, 50, 5):  # 10 calls, 5 s apart: the budget is full
            clock.now = start + second
            spread.append(await call(app, "docker_list_containers"))
        clock.now = start + 59
        full = await call(app, "docker_list_containers")
        clock.now = start + 60.5  # the first call is a minute old: one more fits, then none
        freed = [await call(app, "docker_list_containers") for _ in range(2)]
        clock.now = start + 70.5  # two more have left
        later = [await call(app, "docker_list_containers") for _ in range(3)]

    assert [a["status"] for a in spread] == ["succeeded"] * 10
    assert full["status"] == "rate_limited" and full["retry_after_seconds"] == 1
    assert [a["status"] for a in freed] == ["succeeded", "rate_limited"]
    assert [a["status"] for a in later] == ["succeeded", "succeeded", "rate_limited"]


async def test_status_checks_do_not_spend_the_request_budget(open_lab: Any) -> None:
    async with open_lab() as app:
        queued = await call(app, "docker_restart_container", container="jellyfin")
        checks = [await call(app, "argobox_request_status", request_id=queued["request_id"]) for _ in range(30)]
        usage, _ = await app.store.budget("openclaw", app.config.limits_for("openclaw"))

    assert {c["status"] for c in checks} == {"pending_approval"}
    assert usage.requests.count == 1


async def test_identical_call_returns_the_pending_request_then_is_refused(open_lab: Any) -> None:
    async with open_lab() as app:
        answers = [await call(app, "docker_restart_container", container="jellyfin") for _ in range(5)]
        pending = await app.store.list_requests(status=RequestStatus.PENDING)

    assert [a["status"] for a in answers] == ["pending_approval"] * 3 + ["rate_limited"] * 2
    assert len({a["request_id"] for a in answers[:3]}) == 1
    assert "already queued" in answers[1]["message"]
    assert answers[3]["limit"] == "identical_calls"
    assert len(pending) == 1


async def test_queue_never_grows_past_max_pending(open_lab: Any) -> None:
    async with open_lab() as app:
        answers = [
            await call(app, "docker_restart_container", container=c) for c in ("jellyfin", "web-api", "web-frontend")
        ]
        pending = await app.store.list_requests(status=RequestStatus.PENDING)

    assert [a["status"] for a in answers] == ["pending_approval", "pending_approval", "rate_limited"]
    assert answers[2]["limit"] == "max_pending"
    assert len(pending) == 2


async def test_the_same_target_changed_too_often_is_refused(open_lab: Any) -> None:
    async with open_lab() as app:
        answers = [
            await call(app, tool, container="backup")
            for tool in (
                "docker_start_container",
                "docker_stop_container",
                "docker_start_container",
                "docker_stop_container",
            )
        ]
        state = (await app.docker.inspect_container("backup")).state

    assert [a["status"] for a in answers] == ["succeeded"] * 3 + ["rate_limited"]
    assert answers[3]["limit"] == "per_target"
    assert state == "running"  # the fourth change never ran


async def test_repeated_denials_trip_a_cooldown_that_an_operator_can_reset(open_lab: Any, clock: Clock) -> None:
    async with open_lab() as app:
        denials = [await call(app, "docker_restart_container", container="postgres") for _ in range(3)]
        clock.now += 1
        cooled = await call(app, "docker_list_containers")
        cleared = await app.store.reset_budget("openclaw", actor="operator:alice")
        after = await call(app, "docker_list_containers")
        cooldowns = await events(app, "cooldown")
        resets = await events(app, "budget_reset")

    assert [d["status"] for d in denials] == ["denied"] * 3
    assert cooled["status"] == "rate_limited" and cooled["limit"] == "cooldown"
    assert 890 <= cooled["retry_after_seconds"] <= 900
    assert cleared.cooldown_until is not None
    assert after["status"] == "succeeded"
    assert len(cooldowns) == 1 and len(resets) == 1


async def test_failed_executions_count_toward_the_cooldown_and_success_resets(open_lab: Any) -> None:
    async with open_lab() as app:
        await call(app, "docker_inspect_container", container="ghost")
        await call(app, "docker_inspect_container", container="ghost")
        await call(app, "docker_inspect_container", container="jellyfin")
        _, after_success = await app.store.budget("openclaw", app.config.limits_for("openclaw"))
        for _ in range(3):
            await call(app, "docker_inspect_container", container="ghost")
        _, tripped = await app.store.budget("openclaw", app.config.limits_for("openclaw"))

    assert after_success.streak == 0
    assert tripped.cooldown_until is not None


async def test_budgets_survive_a_restart_of_the_server(open_lab: Any) -> None:
    async with open_lab() as app:
        for _ in range(10):
            await call(app, "docker_list_containers")
    async with open_lab() as app:
        refused = await call(app, "docker_list_containers")

    assert refused["status"] == "rate_limited"


async def test_a_flood_leaves_the_queue_and_the_store_bounded(open_lab: Any, clock: Clock) -> None:
    async with open_lab() as app:
        statuses: dict[str, int] = {}
        for i in range(2000):
            clock.now += 0.01
            answer = await call(app, "docker_restart_container", container="web-api" if i % 2 else "jellyfin")
            statuses[answer["status"]] = statuses.get(answer["status"], 0) + 1
        pending = await app.store.list_requests(status=RequestStatus.PENDING)
        audit = await app.store.audit_trail()

    assert statuses["rate_limited"] >= 1990
    assert len(pending) <= 2
    assert len(audit) < 60


FLOODER = """
import sys, anyio
from pathlib import Path
from argobox.server.mediation import agent_calls
from argobox.server.app import open_app
from argobox.server.config.model import load_config
async def main():
    async with open_app(load_config(Path(sys.argv[1]))) as app:
        while not Path(sys.argv[2]).exists():
            await anyio.sleep(0.005)
        for _ in range(15):
            print((await agent_calls.call_tool(app, "openclaw", "docker_list_containers", {})).status)
anyio.run(main)
"""


def test_two_processes_share_one_request_budget_exactly(config_path: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", FLOODER, str(config_path), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    go.touch()
    done = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in done]
    statuses = done[0][0].split() + done[1][0].split()

    assert statuses.count("succeeded") == 10, statuses
    assert statuses.count("rate_limited") == 20, statuses
