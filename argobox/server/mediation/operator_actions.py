"""What operators do: approve, deny, reset a budget, prune the audit trail. Each action is authorized first, by
`authorize` (argobox.server.mediation.operators), whatever channel it comes from."""

from __future__ import annotations

from collections.abc import Mapping

from argobox.policy.decide import Effect, decide
from argobox.policy.limits import FailureState, Limits
from argobox.server.app import App
from argobox.server.mediation.agent_calls import execute
from argobox.server.mediation.notify import announce
from argobox.server.mediation.operators import OperatorClaim, Permission, authorize
from argobox.server.mediation.shield import to_the_end
from argobox.server.store import PruneResult, Refused, RequestRecord, RequestStatus
from argobox.server.text import shorten


async def approve(
    app: App, request_id: str, *, operator: OperatorClaim, note: str, via: Mapping[str, str] | None = None
) -> RequestRecord:
    """Approve a pending request as `operator` and execute it here, once. Raises `Refused`.

    The request is checked again against the grant in force now: if the grant no longer covers it, it is denied
    by policy instead of run. `via` (how the decision came: a channel's own detail, e.g. the Home Assistant user
    of a phone's press) joins the `approved` audit event.
    """
    entry = await authorize(app, operator, Permission.DECIDE, request_id=request_id)
    await _recheck_grant(app, request_id)
    # Once approved, it runs to its end and is recorded, even if the operator's client goes away meanwhile.
    with to_the_end():
        record = await execute(app, await app.store.approve(request_id, operator=entry.name, note=note, via=via))
        await announce(app, "approved", record)
    return record


async def _recheck_grant(app: App, request_id: str) -> None:
    record = await app.store.get(request_id)
    if record is None or record.status is not RequestStatus.PENDING:
        return  # the store's conditional update gives the precise refusal
    if record.agent in app.config.agents:
        decision = decide(app.config.grant(record.agent), record.tool, record.arguments)
        if decision.effect is not Effect.DENY:
            return
        reason = f"the grant changed since the request was queued: {decision.reason}"
    else:
        reason = f"agent {record.agent!r} is no longer configured"
    try:
        await app.store.deny(request_id, operator="policy", reason=reason)
    except Refused:
        return
    raise Refused("not_granted", f"request {request_id} is no longer covered by the grant ({reason}); denied")


async def deny(
    app: App, request_id: str, *, operator: OperatorClaim, reason: str, via: Mapping[str, str] | None = None
) -> RequestRecord:
    """Deny a pending request as `operator`, saying why (required). Raises `Refused`. `via` joins the `denied`
    audit event (see `approve`)."""
    entry = await authorize(app, operator, Permission.DECIDE, request_id=request_id)
    if not reason.strip():
        raise Refused("reason_required", "a denial needs a reason: say why, so the agent and the audit trail know")
    limits = await _limits_of_request(app, request_id)
    with to_the_end():
        record = await app.store.deny(request_id, operator=entry.name, reason=reason, limits=limits, via=via)
        await announce(app, "denied", record)
    return record


async def _limits_of_request(app: App, request_id: str) -> Limits | None:
    record = await app.store.get(request_id)
    return app.config.limits_for(record.agent) if record is not None else None


async def prune_audit(app: App, *, before: float, operator: OperatorClaim) -> PruneResult:
    """Remove audit events older than `before` as `operator`, through a recorded prune. Raises `Refused`."""
    entry = await authorize(app, operator, Permission.PRUNE_AUDIT)
    return await app.store.prune(before=before, operator=entry.name)


async def reset_budget(app: App, agent: str, *, operator: OperatorClaim) -> FailureState:
    """Clear `agent`'s cooldown and failure streak as `operator`, audited. Raises `Refused`."""
    entry = await authorize(app, operator, Permission.RESET_BUDGET)
    if agent not in app.config.agents:
        raise Refused("unknown_agent", f"unknown agent {shorten(agent, 64)!r}")
    return await app.store.reset_budget(agent, actor=f"operator:{entry.name}")
