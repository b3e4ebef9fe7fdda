"""`argobox budgets` and `argobox budgets reset AGENT --as OPERATOR`: both audited; a reset needs an operator."""

from __future__ import annotations

import json

import anyio

from argobox.server.app import open_app
from argobox.server.config.model import load_config
from argobox.server.mediation import agent_calls
from tests.conftest import WriteConfig
from tests.server.cli.support import argobox


def test_budgets_show_use_and_reset_clears_a_cooldown_both_audited(write_config: WriteConfig) -> None:
    config = write_config(
        extra="[agents.openclaw.limits]\nfailures = { count = 1, window_seconds = 60, cooldown_seconds = 600 }\n"
    )

    async def deny_once() -> None:
        async with open_app(load_config(config)) as app:
            await agent_calls.call_tool(app, "openclaw", "docker_stop_container", {"container": "postgres"})

    anyio.run(deny_once)
    before = json.loads(argobox(config, "budgets", "--json").stdout)
    shown = argobox(config, "budgets")
    reset = argobox(config, "budgets", "reset", "openclaw", "--as", "alice")
    after = json.loads(argobox(config, "budgets", "--json").stdout)
    unknown = argobox(config, "budgets", "reset", "mallory", "--as", "alice")
    anonymous = argobox(config, "budgets", "reset", "openclaw")
    audit = [e["event"] for e in json.loads(argobox(config, "audit", "--json").stdout)]

    assert next(b for b in before if b["agent"] == "openclaw")["cooldown_until"] is not None
    assert shown.stdout.splitlines()[0].split() == [
        "AGENT", "REQUESTS/MIN", "MUTATIONS/H", "PENDING", "FAILURES", "COOLDOWN", "UNTIL", "CHANGES", "PER", "TARGET"
    ]  # fmt: skip
    assert reset.returncode == 0 and "cooldown until" in reset.stdout
    assert next(b for b in after if b["agent"] == "openclaw")["cooldown_until"] is None
    assert unknown.returncode == 1 and "unknown agent 'mallory'" in unknown.stderr
    assert anonymous.returncode == 2 and "--as" in anonymous.stderr
    assert audit.count("budgets_viewed") == 3 and audit.count("budget_reset") == 1 and "cooldown" in audit


def test_budgets_help_says_changes_per_target_are_shown_and_reset_clears_them() -> None:
    from argobox.server.cli.main import build_parser
    from tests.server.cli.test_main import subcommands

    commands = dict(subcommands(build_parser()))
    budgets, reset = commands["argobox budgets"], commands["argobox budgets reset"]

    assert "changes per target" in (budgets.description or "")
    assert "changes per target" in (reset.description or "") and "changes per target" in reset.format_help()
    listed = " ".join(budgets.format_help().split())
    assert "reset clear an agent's cooldown, failure streak and changes per target" in listed
