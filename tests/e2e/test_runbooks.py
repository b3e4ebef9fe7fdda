"""Runbooks end to end: the real `argobox` command over MCP stdio with the official client, approvals from the real
CLI in another process, and commands run on the built-in `local` host and through a real sshd (scripts/sshd.sh).

What is asserted is what the hosts show: files a command wrote (or did not write) on the "remote" side, the
arguments a program itself received, the process table after a timeout.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.adapters.test_commands import SHOW_ARGV, nasty_values, wait_until_gone
from tests.conftest import first_text
from tests.fixtures_sshd import SshServer

pytestmark = [pytest.mark.sshd, pytest.mark.anyio]

ARGOBOX = str(Path(sys.executable).with_name("argobox"))
HA_TOKEN = "ha-token-that-must-never-be-shown-0123456789"
PASSWORD = "hunter2-in-a-url"
CUT = 4096
"""The output limit of runbook remote_at_the_cut (4 KiB): the newest CUT bytes of its output are kept."""
AT_THE_CUT = HA_TOKEN[-16:]
"""The end of the secret that the newest CUT bytes of at_the_cut.txt start with."""


def argobox(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ARGOBOX, "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": str(Path(sys.executable).parent), "HOME": str(config.parent), "ARGOBOX_HA_TOKEN": HA_TOKEN},
    )


async def agent_calls(config: Path, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """One OpenClaw-like session: launch `argobox serve`, make the calls, let the process go."""
    params = StdioServerParameters(
        command=ARGOBOX,
        args=["--config", str(config), "serve", "--agent", "openclaw"],
        env={"ARGOBOX_HA_TOKEN": HA_TOKEN},
    )
    results: list[Any] = []
    with open(config.parent / "serve.err", "a") as err, anyio.fail_after(90):  # noqa: ASYNC230 - stderr needs a file
        async with Client(stdio_client(params, errlog=err)) as client:
            for tool, arguments in calls:
                results.append(await client.call_tool(tool, arguments))
    return results


def toml_list(words: list[str]) -> str:
    return json.dumps(words)


@pytest.fixture(scope="module")
def lab(ssh_server: SshServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A configuration with local and SSH runbooks; the "remote" side's files live in <dir>/remote."""
    base = tmp_path_factory.mktemp("runbooks")
    remote = base / "remote"
    remote.mkdir()
    (base / "report.txt").write_text(f"backup ok\nrepository: https://admin:{PASSWORD}@nas.lan/repo\nha: {HA_TOKEN}\n")
    (remote / "status.txt").write_text("pool tank: ONLINE, last scrub 3 days ago\n")
    (remote / "at_the_cut.txt").write_text("y" * 500 + HA_TOKEN + "x" * (CUT - len(AT_THE_CUT)))  # cut in the token
    empty = base / "empty_known_hosts"
    empty.write_text("")
    impostor = base / "impostor"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(impostor)], check=True, timeout=30)
    kind, data = impostor.with_suffix(".pub").read_text().split()[:2]
    changed = base / "changed_known_hosts"
    changed.write_text(f"[{ssh_server.address}]:{ssh_server.port} {kind} {data}\n")
    show = toml_list(SHOW_ARGV)
    config = base / "argobox.toml"
    config.write_text(
        textwrap.dedent(f"""\
        [storage]
        path = "argobox.db"

        [docker]
        simulated_lab = "lab.json"

        [[operators]]
        name = "alice"
        {ssh_server.host_section("lab")}
        {ssh_server.host_section("stranger", known_hosts=empty)}
        {ssh_server.host_section("impostor", known_hosts=changed)}
        [runbooks.backup_report]
        description = "Show the last backup report"
        host = "local"
        argv = ["cat", "{base}/report.txt"]
        kind = "read"

        [runbooks.remote_report]
        description = "Show the last backup report, as a copy on the NAS"
        host = "lab"
        argv = ["cat", "{base}/report.txt"]
        kind = "read"

        [runbooks.remote_at_the_cut]
        description = "Show a file whose kept output starts inside a secret"
        host = "lab"
        argv = ["cat", "{remote}/at_the_cut.txt"]
        kind = "read"
        output_limit_kib = {CUT // 1024}

        [runbooks.echo]
        description = "Show a text as the program receives it"
        host = "lab"
        argv = {show[:-1]}, "{{text}}"]
        params = {{ text = {{ pattern = "^.*$", max_length = 1024 }} }}
        kind = "read"

        [runbooks.echo_option]
        description = "Show an option as the program receives it"
        host = "lab"
        argv = {show[:-1]}, "{{option}}"]
        params = {{ option = {{ pattern = "^-[a-z-]+$", allow_leading_dash = true }} }}
        kind = "read"

        [runbooks.sleep]
        description = "Sleep"
        host = "lab"
        argv = ["sleep", "{{seconds}}"]
        params = {{ seconds = {{ type = "integer", min = 1, max = 99999999 }} }}
        kind = "read"
        timeout_seconds = 1

        [runbooks.count]
        description = "Count"
        host = "lab"
        argv = ["seq", "1", "{{to}}"]
        params = {{ to = {{ type = "integer", min = 1, max = 1000000 }} }}
        kind = "read"
        output_limit_kib = 4

        [runbooks.touch_stranger]
        description = "Touch a file on a host whose key is unknown"
        host = "stranger"
        argv = ["touch", "{remote}/stranger-ran"]
        kind = "read"

        [runbooks.touch_impostor]
        description = "Touch a file on a host whose key changed"
        host = "impostor"
        argv = ["touch", "{remote}/impostor-ran"]
        kind = "read"

        [runbooks.mark]
        description = "Append a line to a marker file on the host"
        host = "lab"
        argv = ["sh", "-c", "echo ran >> \\"$1\\"", "sh", "{remote}/marker-{{name}}"]
        params = {{ name = {{ pattern = "^[a-z0-9]{{1,16}}$" }} }}
        preview_argv = ["cat", "{remote}/status.txt"]
        timeout_seconds = 30

        [runbooks.busy]
        description = "A command that fails"
        argv = ["sh", "-c", "echo starting; echo 'pool tank is busy' >&2; exit 2"]

        [agents.openclaw]

        [[agents.openclaw.rules]]
        tools = ["runbook_backup_report", "runbook_remote_*", "runbook_echo", "runbook_echo_option", "runbook_sleep",
                 "runbook_count", "runbook_touch_*"]
        effect = "allow"

        [[agents.openclaw.rules]]
        tools = ["runbook_mark", "runbook_busy"]
        effect = "approve"
        """)
    )
    return config


async def test_a_read_runbook_answers_at_once_and_its_output_is_redacted(lab: Path) -> None:
    (report,) = await agent_calls(lab, [("runbook_backup_report", {})])
    result = report.structured_content["result"]

    assert report.is_error is False and report.structured_content["status"] == "succeeded"
    assert result["host"] == "local" and result["exit_status"] == 0
    assert "backup ok" in result["stdout"]
    assert PASSWORD not in json.dumps(report.structured_content) and HA_TOKEN not in json.dumps(
        report.structured_content
    )
    assert PASSWORD not in first_text(report) and HA_TOKEN not in first_text(report)
    audit = argobox(lab, "audit", "--request", report.structured_content["request_id"], "--json")
    assert PASSWORD not in audit.stdout and HA_TOKEN not in audit.stdout


async def test_a_secret_a_command_prints_through_the_sshd_is_redacted_even_where_the_output_is_cut(lab: Path) -> None:
    report, cut = await agent_calls(lab, [("runbook_remote_report", {}), ("runbook_remote_at_the_cut", {})])
    audit = argobox(lab, "audit", "--json")
    shown = [
        argobox(lab, "show", call.structured_content["request_id"]).stdout + json.dumps(call.structured_content)
        for call in (report, cut)
    ]

    assert [call.structured_content["status"] for call in (report, cut)] == ["succeeded", "succeeded"]
    assert {call.structured_content["result"]["host"] for call in (report, cut)} == {"lab"}
    assert "backup ok" in report.structured_content["result"]["stdout"]
    kept = cut.structured_content["result"]
    assert kept["stdout_truncated"] is True and kept["stdout"].endswith("x" * 100) and len(kept["stdout"]) <= CUT
    for text in (*shown, report.content[0].text, cut.content[0].text, audit.stdout):
        assert PASSWORD not in text and HA_TOKEN not in text and AT_THE_CUT not in text


async def test_injection_attempts_reach_the_remote_program_as_plain_arguments(lab: Path) -> None:
    sentinel = lab.parent / "remote" / "pwned"
    values = [v for v in nasty_values(sentinel) if len(v) <= 1024 and not any(ord(c) < 32 or ord(c) == 127 for c in v)]
    values = [v for v in values if not v.startswith("-")]

    results = await agent_calls(lab, [("runbook_echo", {"text": v}) for v in values])

    received = [json.loads(r.structured_content["result"]["stdout"]) for r in results]
    assert received == [[v] for v in values]
    assert not sentinel.exists()


async def test_values_that_could_become_options_or_break_lines_are_refused_before_any_decision(lab: Path) -> None:
    refused = ["-rf", "--help", "a\nb; touch x", "a\0b", "x" * 1025, "tab\there"]

    results = await agent_calls(
        lab,
        [("runbook_echo", {"text": v}) for v in refused]
        + [
            ("runbook_echo_option", {"option": "--all"}),
        ],
    )

    assert [r.structured_content["status"] for r in results[:-1]] == ["invalid_arguments"] * len(refused)
    assert "must not start with '-'" in results[0].structured_content["error"]
    assert "control characters" in results[2].structured_content["error"]
    assert "at most 1024 characters" in results[4].structured_content["error"]
    option = results[-1].structured_content
    assert option["status"] == "succeeded" and json.loads(option["result"]["stdout"]) == ["--all"]


async def test_unknown_and_changed_host_keys_are_refused_and_nothing_runs(lab: Path) -> None:
    stranger, impostor = await agent_calls(lab, [("runbook_touch_stranger", {}), ("runbook_touch_impostor", {})])

    assert stranger.structured_content["status"] == "failed"
    assert "never trusts a key on first use" in stranger.structured_content["error"]
    assert impostor.structured_content["status"] == "failed"
    assert "differs from the one in" in impostor.structured_content["error"]
    assert not (lab.parent / "remote" / "stranger-ran").exists()
    assert not (lab.parent / "remote" / "impostor-ran").exists()


async def test_a_command_that_outlives_its_timeout_is_killed_on_the_host(lab: Path) -> None:
    seconds = random.randrange(10**6, 10**7)

    (slept,) = await agent_calls(lab, [("runbook_sleep", {"seconds": seconds})])

    assert slept.structured_content["status"] == "failed"
    assert "did not finish within 1 s; it was killed on the host" in slept.structured_content["error"]
    assert await wait_until_gone(["sleep", str(seconds)]) == []


async def test_huge_output_is_bounded(lab: Path) -> None:
    (counted,) = await agent_calls(lab, [("runbook_count", {"to": 500000})])
    result = counted.structured_content["result"]

    assert counted.structured_content["status"] == "succeeded"
    assert result["stdout_truncated"] is True and len(result["stdout"]) == 4096
    assert result["stdout"].endswith("499999\n500000\n")


async def test_a_mutate_runbook_is_queued_shown_approved_from_the_cli_and_runs_exactly_once(lab: Path) -> None:
    name = f"m{random.randrange(10**6)}"
    marker = lab.parent / "remote" / f"marker-{name}"

    (queued,) = await agent_calls(lab, [("runbook_mark", {"name": name})])
    request_id = queued.structured_content["request_id"]
    ran_while_pending = marker.exists()
    queue = argobox(lab, "requests")
    shown = argobox(lab, "show", request_id)
    approved = argobox(lab, "approve", request_id, "--as", "alice", "--note", "planned")
    again = argobox(lab, "approve", request_id, "--as", "alice")
    (status,) = await agent_calls(lab, [("argobox_request_status", {"request_id": request_id})])
    audit = json.loads(argobox(lab, "audit", "--request", request_id, "--json").stdout)

    assert queued.structured_content["status"] == "pending_approval" and not ran_while_pending
    assert f"run runbook mark on host lab: sh -c 'echo ran >> \"$1\"' sh {marker}" in shown.stdout
    assert "preview_argv `cat " in shown.stdout and "    | pool tank: ONLINE, last scrub 3 days ago" in shown.stdout
    queued_line = next(line for line in queue.stdout.splitlines() if line.startswith(request_id))
    assert queued_line.endswith(f"run runbook mark on host lab: sh -c 'echo ran >> \"$1\"' sh {marker}")
    assert approved.returncode == 0, approved.stderr
    assert "succeeded: run runbook mark" in approved.stdout
    assert again.returncode == 1 and "only a pending request can be approved" in again.stderr
    assert marker.read_text() == "ran\n"  # exactly once, on the "remote" side
    assert status.structured_content["status"] == "succeeded"
    events = [e["event"] for e in audit]
    assert events == ["received", "decision", "queued", "approved", "executing", "succeeded"]
    summary = audit[-1]["detail"]["summary"]
    assert summary["host"] == "lab" and summary["exit_status"] == 0 and summary["duration_seconds"] >= 0
    assert summary["argv"] == ["sh", "-c", 'echo ran >> "$1"', "sh", str(marker)]


async def test_a_failing_runbook_fails_with_its_exit_status_and_stderr_in_the_audit(lab: Path) -> None:
    (queued,) = await agent_calls(lab, [("runbook_busy", {})])
    request_id = queued.structured_content["request_id"]

    approved = argobox(lab, "approve", request_id, "--as", "alice")
    audit = json.loads(argobox(lab, "audit", "--request", request_id, "--json").stdout)

    assert approved.returncode == 3
    assert "exited with status 2: pool tank is busy" in approved.stdout
    failed = audit[-1]
    assert failed["event"] == "failed"
    assert failed["detail"]["exit_status"] == 2 and failed["detail"]["host"] == "local"
    assert failed["detail"]["argv"][:2] == ["sh", "-c"] and failed["detail"]["stderr_tail"] == "pool tank is busy"
    assert failed["detail"]["duration_seconds"] >= 0
