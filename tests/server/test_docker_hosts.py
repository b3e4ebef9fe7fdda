"""Listing containers across Docker hosts, and deciding calls with a `host`: fast tables over fake engines."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from argobox.adapters.base import (
    AdapterError,
    Backends,
    BackendUnavailable,
    ContainerSummary,
    TargetNotFound,
)
from argobox.adapters.simulated import SimulatedLab
from argobox.policy.catalog import describe_call
from argobox.policy.decide import Effect, Grant, Rule, check_grant, decide
from argobox.server.app import open_app
from argobox.server.config.model import load_config
from argobox.server.mediation import agent_calls
from argobox.server.mediation.docker_hosts import list_on_hosts
from tests.conftest import WriteConfig

pytestmark = pytest.mark.anyio


class FakeEngine:
    """A ContainerRuntime that lists fixed containers, or fails."""

    def __init__(self, *names: str, fails: AdapterError | None = None) -> None:
        self.names, self.fails = names, fails

    async def list_containers(self, *, all: bool) -> list[ContainerSummary]:
        if self.fails is not None:
            raise self.fails
        return [
            ContainerSummary(id=f"{n:0>12}"[:12], name=n, image="i", state="running", status="Up") for n in self.names
        ]

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected call {name}")


def backends(**hosts: FakeEngine) -> Backends:
    return Backends(docker=FakeEngine("jellyfin", "db"), docker_hosts=hosts)  # type: ignore[arg-type]


def grant(*rules: Rule) -> Grant:
    return Grant(agent="openclaw", rules=rules)


LIST_ALL = Rule(tools=("docker_list_containers",), effect=Effect.ALLOW)


async def test_every_visible_host_is_listed_and_a_silent_one_is_reported_beside_the_others() -> None:
    lab = backends(
        nas=FakeEngine("jellyfin"), down=FakeEngine(fails=BackendUnavailable("nas2 did not answer: timed out"))
    )

    listed = await list_on_hosts(lab, grant(LIST_ALL), all=False, host=None)

    assert [(c.host, c.name) for c in listed.containers] == [
        ("default", "jellyfin"),
        ("default", "db"),
        ("nas", "jellyfin"),
    ]
    assert [(h.name, h.answered, h.containers, h.error) for h in listed.hosts] == [
        ("default", True, 2, None),
        ("down", False, 0, "nas2 did not answer: timed out"),
        ("nas", True, 1, None),
    ]


async def test_a_grant_limited_to_one_host_hides_the_others_and_their_containers() -> None:
    lab = backends(nas=FakeEngine("jellyfin", "secret"))
    only_nas = Rule(
        tools=("docker_list_containers",), args={"host": ("nas",), "container": ("jelly*",)}, effect=Effect.ALLOW
    )

    listed = await list_on_hosts(lab, grant(only_nas), all=False, host=None)

    assert [(c.host, c.name) for c in listed.containers] == [("nas", "jellyfin")]
    assert [h.name for h in listed.hosts] == ["nas"]


async def test_when_no_host_answers_the_listing_fails_like_a_single_engine() -> None:
    lab = Backends(docker=FakeEngine(fails=BackendUnavailable("Docker engine did not answer")))  # type: ignore[arg-type]

    with pytest.raises(BackendUnavailable, match="did not answer"):
        await list_on_hosts(lab, grant(LIST_ALL), all=False, host=None)


async def test_an_unknown_host_is_an_error_not_an_empty_list() -> None:
    with pytest.raises(TargetNotFound, match="No Docker host named 'nope' \\(configured: default, nas\\)"):
        await list_on_hosts(backends(nas=FakeEngine()), grant(LIST_ALL), all=False, host="nope")


def test_a_call_without_host_is_decided_as_on_the_default_host() -> None:
    on_nas = grant(
        Rule(tools=("docker_restart_container",), args={"host": ("nas",), "container": ("*",)}, effect=Effect.APPROVE)
    )
    on_default = grant(Rule(tools=("docker_inspect_container",), args={"host": ("default",)}, effect=Effect.ALLOW))

    assert decide(on_nas, "docker_restart_container", {"container": "web"}).effect is Effect.DENY
    assert decide(on_nas, "docker_restart_container", {"container": "web", "host": "nas"}).effect is Effect.APPROVE
    assert decide(on_default, "docker_inspect_container", {"container": "web"}).effect is Effect.ALLOW
    assert decide(on_default, "docker_inspect_container", {"container": "web", "host": "nas"}).effect is Effect.DENY


def test_host_is_a_constraint_rules_may_use_and_the_operator_reads_it() -> None:
    rule = Rule(
        tools=("docker_restart_container",), args={"host": ("nas",), "container": ("jellyfin",)}, effect=Effect.ALLOW
    )

    assert check_grant(grant(rule)) == []
    assert describe_call("docker_restart_container", {"container": "jellyfin", "host": "nas"}) == (
        "restart container 'jellyfin' on host 'nas'"
    )
    assert describe_call("docker_restart_container", {"container": "jellyfin"}) == "restart container 'jellyfin'"


BACKUP_ANYWHERE = """
[agents.openclaw.limits]
requests_per_minute = 50
mutations_per_hour = 50
per_target = { count = 3, window_seconds = 3600 }

[[agents.openclaw.rules]]
tools = ["docker_start_container", "docker_stop_container"]
args = { container = ["backup"] }
effect = "allow"
"""


async def test_the_same_container_name_on_two_hosts_has_two_per_target_budgets(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    """The default host, named or not, is one target; `nas` is another (the per-target key includes the host)."""
    tools = ("docker_stop_container", "docker_start_container") * 2
    async with open_app(load_config(write_config(extra=BACKUP_ANYWHERE))) as app:
        nas_lab = SimulatedLab(tmp_path / "nas.json")
        two_hosts = replace(app, backends=replace(app.backends, docker_hosts={"nas": nas_lab}))
        default = [
            await agent_calls.call_tool(two_hosts, "openclaw", tool, {"container": "backup", **host})
            for tool, host in zip(tools, ({}, {"host": "default"}, {}, {"host": "default"}), strict=True)
        ]
        nas = [
            await agent_calls.call_tool(two_hosts, "openclaw", tool, {"container": "backup", "host": "nas"})
            for tool in tools
        ]
        states = [
            (await engine.inspect_container("backup")).state for engine in (app.docker, SimulatedLab(tmp_path / "nas"))
        ]

    assert [o.status for o in default] == ["succeeded"] * 3 + ["rate_limited"]
    assert [o.status for o in nas] == ["succeeded"] * 3 + ["rate_limited"]
    assert default[3].limit == nas[3].limit == "per_target"
    assert states == ["exited", "exited"]  # stop, start, stop ran on each host; the fourth change on neither
