"""Changes are counted per target, shown in the budgets and cleared by a reset; a request that never ran (denied,
expired) is not a change."""

from __future__ import annotations

from argobox.server.app import App, open_app
from argobox.server.config.model import load_config
from argobox.server.mediation import agent_calls, operator_actions
from argobox.server.mediation.operators import OperatorClaim
from argobox.server.mediation.views import budget_json
from tests.conftest import WriteConfig

LIMITS = (
    "[agents.openclaw.limits]\n"
    "per_target = { count = 2, window_seconds = 3600 }\n"
    "identical_calls = { count = 10, window_seconds = 60 }\n"
)
JELLYFIN = '{"container":"jellyfin"}'


async def restart(app: App, container: str = "jellyfin") -> str:
    outcome = await agent_calls.call_tool(app, "openclaw", "docker_restart_container", {"container": container})
    return outcome.status.value if outcome.request_id is None else outcome.request_id


async def budgets(app: App) -> dict[str, object]:
    limits = app.config.limits_for("openclaw")
    usage, failures = await app.store.budget("openclaw", limits)
    targets = await app.store.target_use("openclaw", limits)
    return budget_json("openclaw", limits, usage, failures, now=app.clock(), targets=targets)


async def test_a_denied_or_expired_request_is_not_a_change_of_its_target(write_config: WriteConfig) -> None:
    async with open_app(load_config(write_config(extra=LIMITS))) as app:
        first = await restart(app)
        queued = await budgets(app)
        await operator_actions.deny(app, first, operator=OperatorClaim("bob"), reason="not now")
        after_denial = await budgets(app)
        second = await restart(app)
        third = await agent_calls.call_tool(app, "openclaw", "docker_stop_container", {"container": "jellyfin"})

    assert queued["changes_per_target"] == {JELLYFIN: 1} and queued["mutations_last_hour"] == 1
    assert after_denial["changes_per_target"] == {} and after_denial["mutations_last_hour"] == 0
    assert len(second) == 16  # queued: the denied one did not use up the target's budget
    assert third.status.value == "pending_approval"


async def test_budgets_show_changes_per_target_and_a_reset_clears_them(write_config: WriteConfig) -> None:
    async with open_app(load_config(write_config(extra=LIMITS))) as app:
        await restart(app)
        await agent_calls.call_tool(app, "openclaw", "docker_stop_container", {"container": "jellyfin"})
        limited = await agent_calls.call_tool(app, "openclaw", "docker_start_container", {"container": "jellyfin"})
        shown = await budgets(app)
        await operator_actions.reset_budget(app, "openclaw", operator=OperatorClaim("alice"))
        cleared = await budgets(app)
        again = await agent_calls.call_tool(app, "openclaw", "docker_start_container", {"container": "jellyfin"})
        reset_event = [e for e in await app.store.audit_trail() if e.event == "budget_reset"][-1]

    assert limited.status.value == "rate_limited" and limited.limit == "per_target"
    assert shown["changes_per_target"] == {JELLYFIN: 2} and shown["per_target_limit"] == 2
    assert cleared["changes_per_target"] == {}
    assert again.status.value == "pending_approval"
    assert reset_event.detail["targets_cleared"] == 1
