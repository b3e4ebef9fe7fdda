"""A runbook reads as its command wherever ArgoBox words a request (the CLI queue line, a dry run, the operator
server's events, the surface report), and `argobox doctor` checks every Docker host and SSH host."""

from __future__ import annotations

import pytest

from argobox.server.app import open_app
from argobox.server.cli.tables import request_summary
from argobox.server.config.model import load_config
from argobox.server.mediation.doctor import Report, Severity, check_backends
from argobox.server.mediation.dry_run import dry_run
from argobox.server.mediation.surface import surface, surface_lines
from argobox.server.store import Refused
from argobox.server.transport.operator_views import AGENT_SUPPLIED, mark_event
from tests.conftest import WriteConfig

pytestmark = pytest.mark.anyio

RUNBOOKS = """
[docker.hosts.nas]
base_url = "ssh://argobox@127.0.0.1:1"
known_hosts = "absent_known_hosts"

[hosts.nas]
ssh = "argobox@127.0.0.1:1"
known_hosts = "absent_known_hosts"

[runbooks.zfs_scrub]
description = "Start a scrub of a ZFS pool"
host = "nas"
argv = ["zpool", "scrub", "{pool}"]
params = { pool = { pattern = "^[a-z][a-z0-9_-]{0,31}$" } }

[runbooks.uptime]
description = "How long the machine has been up"
argv = ["uptime"]
kind = "read"

[[agents.openclaw.rules]]
tools = ["runbook_*"]
effect = "approve"
"""
SCRUB_TANK = "run runbook zfs_scrub on host nas: zpool scrub tank"


def test_the_queue_line_and_the_operator_events_name_a_configured_runbook(write_config: WriteConfig) -> None:
    config = load_config(write_config(docker='simulated_lab = "lab.json"', extra=RUNBOOKS))
    configured = mark_event({"tool": "runbook_zfs_scrub", "detail": {"reason": "r"}}, config.catalog)
    unknown = mark_event({"tool": "runbook_nope", "detail": {"reason": "r"}}, config.catalog)

    assert request_summary("runbook_zfs_scrub", {"pool": "tank"}, catalog=config.catalog) == SCRUB_TANK
    assert configured["tool"] == "runbook_zfs_scrub" and AGENT_SUPPLIED not in configured
    assert unknown["tool"] is None and unknown[AGENT_SUPPLIED]["tool"] == "runbook_nope"


def test_the_surface_report_lists_each_runbook_with_its_host_and_the_docker_hosts(write_config: WriteConfig) -> None:
    report = surface(load_config(write_config(extra=RUNBOOKS)))
    lines = surface_lines(report)

    assert report["runbooks"] == {
        "runbook_uptime": "read on host local: uptime",
        "runbook_zfs_scrub": "mutate on host nas: zpool scrub '{pool}'",
    }
    assert report["docker_hosts"] == ["default", "nas"]
    assert "  hosts: default, nas" in lines
    assert any(line.startswith("runbooks: tested against OpenSSH") for line in lines)
    assert lines[-2:] == [
        "  runbook_uptime: read on host local: uptime",
        "  runbook_zfs_scrub: " + report["runbooks"]["runbook_zfs_scrub"],
    ]
    by_agent = {entry["agent"]: entry for entry in report["agents"]}
    assert "runbook_zfs_scrub" in by_agent["openclaw"]["mutations"]
    assert "runbook_uptime" not in by_agent["openclaw"]["mutations"]


async def test_a_dry_run_words_a_runbook_call_and_refuses_a_value_that_would_be_an_option(
    write_config: WriteConfig,
) -> None:
    async with open_app(load_config(write_config(extra=RUNBOOKS))) as app:
        checked = await dry_run(app, "openclaw", "runbook_zfs_scrub", {"pool": "tank"})
        with pytest.raises(Refused, match="must not start with '-'"):
            await dry_run(app, "openclaw", "runbook_zfs_scrub", {"pool": "-rf"})

    assert (checked["what"], checked["classification"], checked["effect"]) == (SCRUB_TANK, "mutate", "approve")


async def test_doctor_checks_every_docker_host_and_ssh_host_and_says_what_to_fix(write_config: WriteConfig) -> None:
    report = Report()
    async with open_app(load_config(write_config(extra=RUNBOOKS))) as app:
        await check_backends(app, report)
    found = {finding.check: finding for finding in report.findings}

    assert found["docker"].severity is Severity.OK
    assert found["docker.hosts.nas"].severity is Severity.ERROR
    assert found["docker.hosts.nas"].fix is not None and "[docker.hosts.nas]" in found["docker.hosts.nas"].fix
    assert found["hosts.nas"].severity is Severity.ERROR
    assert "known_hosts file" in found["hosts.nas"].message and "could not be read" in found["hosts.nas"].message
    assert found["hosts.nas"].fix is not None and "[hosts.nas]" in found["hosts.nas"].fix
