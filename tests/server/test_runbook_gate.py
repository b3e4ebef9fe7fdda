"""Runbooks through the gate, in process, on the built-in `local` host: queue with a preview, approve, run once,
record host, argv, exit status and duration; a runbook redefined before approval does not run old arguments."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from argobox.server.app import open_app
from argobox.server.config.model import load_config
from argobox.server.mediation import agent_calls, operator_actions
from argobox.server.mediation.operators import OperatorClaim
from argobox.server.store import RequestStatus

pytestmark = pytest.mark.anyio


def write(tmp_path: Path, choices: str) -> Path:
    config = tmp_path / "argobox.toml"
    config.write_text(
        textwrap.dedent(f"""\
        [storage]
        path = "argobox.db"

        [docker]
        simulated_lab = "lab.json"

        [[operators]]
        name = "alice"

        [runbooks.make_flag]
        description = "Create a flag file"
        argv = ["touch", "{tmp_path}/flag-{{name}}"]
        params = {{ name = {{ choices = [{choices}] }} }}
        preview_argv = ["ls", "{tmp_path}"]

        [[agents.openclaw.rules]]
        tools = ["runbook_make_flag"]
        effect = "approve"
        """)
    )
    return config


async def test_a_local_mutate_runbook_is_previewed_approved_and_recorded(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '"a", "b"'))
    async with open_app(config) as app:
        queued = await agent_calls.call_tool(app, "openclaw", "runbook_make_flag", {"name": "a"})
        assert queued.request_id is not None
        record = await operator_actions.approve(app, queued.request_id, operator=OperatorClaim("alice"), note="")
        trail = await app.store.audit_trail(request_id=queued.request_id)

    assert queued.status == "pending_approval"
    assert record.status is RequestStatus.SUCCEEDED and (tmp_path / "flag-a").exists()
    preview = next(e for e in trail if e.event == "queued").detail["preview"]
    assert preview["argv"] == ["touch", f"{tmp_path}/flag-a"] and preview["exit_status"] == 0
    assert "argobox.toml" in preview["output"] and "changes" not in preview
    summary = trail[-1].detail["summary"]
    assert summary["host"] == "local" and summary["argv"] == ["touch", f"{tmp_path}/flag-a"]
    assert summary["exit_status"] == 0 and summary["duration_seconds"] >= 0


async def test_a_runbook_redefined_before_approval_does_not_run_the_old_arguments(tmp_path: Path) -> None:
    async with open_app(load_config(write(tmp_path, '"a", "b"'))) as app:
        queued = await agent_calls.call_tool(app, "openclaw", "runbook_make_flag", {"name": "b"})
    assert queued.request_id is not None

    async with open_app(load_config(write(tmp_path, '"c"'))) as app:
        record = await operator_actions.approve(app, queued.request_id, operator=OperatorClaim("alice"), note="")

    assert record.status is RequestStatus.FAILED
    assert record.error is not None and "the tool changed since the request was made" in record.error
    assert not (tmp_path / "flag-b").exists()
