"""The enforcement path every agent call and every operator decision goes through.

Order for an agent call: identify the tool within the grant, validate the arguments, decide, record the
decision (committed before any effect; if it cannot be written nothing runs), then execute, queue or refuse.
A call that will be queued is first previewed (a read of its targets, never a change) so that the operator sees,
in the `queued` audit event, what it would act on and what it would change.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from dataclasses import replace
from typing import Any

import anyio
from pydantic import BaseModel, ValidationError

from argobox.adapters.base import AdapterError, secret_values
from argobox.policy.catalog import CATALOG, Classification, describe_call
from argobox.policy.decide import Decision, Effect, Grant, canonical_json, decide, request_digest
from argobox.policy.limits import Limits, Tripped
from argobox.server.budgets import CallFacts
from argobox.server import notify
from argobox.server.app import App
from argobox.server.store import (
    Admission,
    Event,
    NewRequest,
    PruneResult,
    Refused,
    RequestRecord,
    RequestStatus,
    StoreError,
    iso,
)
from argobox.server.tools import TOOLS, Outcome, ToolSpec

logger = logging.getLogger("argobox")

MAX_SHOWN_CHARS = 200
REQUEST_ID_BYTES = 10


class UnknownTool(Exception):
    """Raised for a tool the agent's grant does not show; answered exactly like a tool that does not exist."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Unknown tool: {shorten(name, 64)}")


def shorten(value: str, limit: int = MAX_SHOWN_CHARS) -> str:
    """Bound a client-supplied string before it reaches a message or the audit trail."""
    return value if len(value) <= limit else f"{value[:limit]}... ({len(value)} characters)"


MAX_REJECTED_ARGUMENTS_CHARS = 4096


def _bounded_arguments(raw: dict[str, Any]) -> Any:
    """What the audit keeps of arguments that failed validation: a bounded copy, at most a few KiB."""
    kept = _bounded(raw)
    size = len(json.dumps(kept, default=str))
    if size <= MAX_REJECTED_ARGUMENTS_CHARS:
        return kept
    keys = [shorten(str(k), 64) for k in list(raw)[:20]]
    return {"omitted": f"{size} characters of arguments", "keys": keys}


def _bounded(value: Any, depth: int = 0) -> Any:
    """A size-bounded copy of untrusted arguments, for audit records of calls that were rejected."""
    if isinstance(value, str):
        return shorten(value)
    if depth >= 3:
        return "..."
    if isinstance(value, dict):
        items = list(value.items())[:20]  # pyright: ignore[reportUnknownVariableType]
        return {shorten(str(k), 64): _bounded(v, depth + 1) for k, v in items}
    if isinstance(value, list):
        return [_bounded(v, depth + 1) for v in value[:20]]  # pyright: ignore[reportUnknownVariableType]
    return value


def new_request_id() -> str:
    """80 random bits in lowercase base32: unguessable, and safe to paste into a shell."""
    return base64.b32encode(secrets.token_bytes(REQUEST_ID_BYTES)).decode().lower()


_PATTERN_HINTS = {
    "container": "must be a container name (letters, digits, '_', '.', '-'; at most 128)",
    "entity_id": "must be an entity id such as 'light.kitchen' (lowercase letters, digits and '_' around one '.')",
    "domain": "must be a domain such as 'light' (lowercase letters, digits and '_')",
    "service": "must be a service such as 'turn_on' (lowercase letters, digits and '_')",
}


def _validation_message(tool: str, exc: ValidationError) -> str:
    parts: list[str] = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "arguments"
        if error["type"] == "extra_forbidden":
            parts.append(f"{shorten(where, 64)}: not an argument of {tool}")
        elif error["type"] == "missing":
            parts.append(f"{where}: required")
        elif error["type"] == "string_pattern_mismatch" and where in _PATTERN_HINTS:
            parts.append(f"{where}: {_PATTERN_HINTS[where]}")
        else:
            parts.append(f"{where}: {str(error['msg']).removeprefix('Value error, ')}")
    return f"invalid arguments for {tool}: " + "; ".join(parts)


async def call_tool(app: App, agent: str, tool: str, raw_args: dict[str, Any]) -> Outcome[Any]:
    """Handle one `tools/call` from `agent`. Raises `UnknownTool` for tools outside the grant."""
    if tool == "argobox_request_status":
        return await request_status(app, agent, raw_args)
    grant = app.config.grant(agent)
    if tool not in grant.visible:
        refusal = Event(event="refused", actor="argobox", detail={"reason": f"unknown tool {shorten(tool, 64)!r}"})
        outcome = await _admit_without_request(app, agent, shorten(tool, 64), [refusal])
        if outcome is not None:
            return outcome
        raise UnknownTool(tool)
    try:
        args = TOOLS[tool].args.model_validate(raw_args)
    except ValidationError as exc:
        message = _validation_message(tool, exc)
        events = [
            Event(event="received", actor=f"agent:{agent}", detail={"arguments": _bounded_arguments(raw_args)}),
            Event(event="rejected", actor="argobox", detail={"reason": message}),
        ]
        return await _admit_without_request(app, agent, tool, events) or Outcome(
            status="invalid_arguments", tool=tool, message=message, error=message
        )
    arguments = args.model_dump(mode="json")
    decision = decide(grant, tool, arguments)
    try:
        admission = await _admit_decision(app, agent, tool, args, arguments, decision)
    except StoreError as exc:
        logger.error("refused %s for %s: the audit trail could not be written: %s", tool, agent, exc)
        return _refused(tool)
    if admission.tripped is not None:
        return _rate_limited(tool, admission.tripped)
    record = admission.record
    assert record is not None
    if record.status is RequestStatus.DENIED:
        return Outcome(
            status="denied", tool=tool, request_id=record.id, reason=decision.reason,
            message=f"denied: {decision.reason}. Do not retry; ask the operator to change the grant if it is needed.",
            error=decision.reason,
        )
    if record.status is RequestStatus.PENDING:
        if not admission.duplicate:
            await _notify(app, "queued", record)
        what = describe_call(tool, arguments)
        already = "is already queued" if admission.duplicate else "is queued"
        return Outcome(
            status="pending_approval", tool=tool, request_id=record.id, expires_at=iso(record.expires_at),
            reason=decision.reason,
            message=f"waiting for operator approval: {what} {already} as request {record.id}; check back later with "
            f"argobox_request_status(request_id={record.id!r}). Do not call {tool} again for it.",
        )
    if record.status is not RequestStatus.EXECUTING:  # a duplicate of a request decided meanwhile
        return outcome_of(record)
    try:
        read = CATALOG[tool].classification is Classification.READ
        # Admitted a moment ago from these very arguments (not loaded from the store): no binding to check.
        admitted = None if admission.duplicate else args
        return outcome_of(await execute(app, record, answer_first=read, admitted=admitted))
    except StoreError as exc:
        logger.error("request %s ran but its outcome could not be recorded: %s", record.id, exc)
        message = (f"unknown: {describe_call(tool, arguments)} ran, but ArgoBox could not record the outcome; "
                   "tell the operator and do not retry")
        return Outcome(status="unknown", tool=tool, request_id=record.id, message=message, error=message)


async def _preview(app: App, spec: ToolSpec, args: BaseModel) -> dict[str, Any] | None:
    """What the operator should see next to a queued call (only reads the backend); an error is shown instead of it."""
    if spec.preview is None:
        return None
    try:
        return await spec.preview(app.backends, args)
    except AdapterError as exc:
        return {"error": app.redactor.text(str(exc))}
    except Exception:  # noqa: BLE001 - a preview is a courtesy: a bug in it must not stop the call being queued
        logger.exception("could not compute the preview of a %s call", spec.name)
        return {"error": "ArgoBox could not compute the preview (see the server log)"}


def _refused(tool: str | None) -> Outcome[Any]:
    message = "refused: ArgoBox could not write the audit record, so nothing was executed; tell the operator"
    return Outcome(status="refused", tool=tool, message=message, error=message)


def _rate_limited(tool: str | None, tripped: Tripped) -> Outcome[Any]:
    message = (
        f"rate_limited: {tripped.message} (limit {tripped.limit}); retry after {tripped.retry_after_seconds} s, "
        "and do not loop on failing calls"
    )
    return Outcome(
        status="rate_limited", tool=tool, message=message, error=message, limit=tripped.limit,
        retry_after_seconds=tripped.retry_after_seconds,
    )


async def _admit_without_request(app: App, agent: str, tool: str, events: list[Event]) -> Outcome[Any] | None:
    """Count and audit a call that creates no request (unknown tool, bad input): an outcome if it was refused."""
    try:
        admission = await app.store.admit(CallFacts(agent=agent), app.config.limits_for(agent), tool=tool,
                                          events=events)
    except StoreError as exc:
        logger.error("could not record a call of agent %s: %s", agent, exc)
        return _refused(tool)
    return _rate_limited(tool, admission.tripped) if admission.tripped is not None else None


def _target_key(tool: str, arguments: dict[str, Any]) -> str | None:
    targets = {name: arguments.get(name) for name in CATALOG[tool].target_args}
    return canonical_json(targets) if targets else None


async def _admit_decision(
    app: App, agent: str, tool: str, args: BaseModel, arguments: dict[str, Any], decision: Decision
) -> Admission:
    classification = CATALOG[tool].classification
    status = {
        Effect.DENY: RequestStatus.DENIED,
        Effect.APPROVE: RequestStatus.PENDING,
        Effect.ALLOW: RequestStatus.EXECUTING,
    }[decision.effect]
    events = [
        Event(event="received", actor=f"agent:{agent}", detail={"arguments": arguments}),
        Event(
            event="decision", actor="policy",
            detail={"effect": decision.effect.value, "rule": decision.rule, "reason": decision.reason,
                    "classification": classification.value},
        ),
    ]
    digest = request_digest(agent, tool, arguments)
    mutation = classification is Classification.MUTATE and status is not RequestStatus.DENIED
    facts = CallFacts(
        agent=agent, digest=digest, target=_target_key(tool, arguments) if mutation else None, mutation=mutation,
        queues=status is RequestStatus.PENDING,
    )
    limits = app.config.limits_for(agent)
    if status is RequestStatus.PENDING:
        queued: dict[str, Any] = {"ttl_seconds": app.config.approvals.ttl_seconds}
        # Read the targets only for a call that will really be queued: refusals and repeats stay cheap.
        if await app.store.would_queue(facts, limits):
            preview = await _preview(app, TOOLS[tool], args)
            if preview is not None:
                queued["preview"] = preview
        events.append(Event(event="queued", actor="argobox", detail=queued))
    elif status is RequestStatus.EXECUTING:
        events.append(Event(event="executing", actor="argobox"))
    request = NewRequest(
        id=new_request_id(), agent=agent, tool=tool, arguments=arguments, digest=digest,
        classification=classification.value, effect=decision.effect.value, rule=decision.rule,
        reason=decision.reason, status=status,
        expires_at=app.clock() + app.config.approvals.ttl_seconds if status is RequestStatus.PENDING else None,
        decided_by="policy" if status is not RequestStatus.PENDING else None,
    )
    return await app.store.admit(
        facts, limits, tool=tool, events=events, request=request,
        failed=True if status is RequestStatus.DENIED else None,
    )


async def execute(
    app: App, record: RequestRecord, *, answer_first: bool = False, admitted: BaseModel | None = None
) -> RequestRecord:
    """Run an `executing` request exactly as it was recorded, and record its outcome.

    `answer_first` (reads only: they change nothing) returns without waiting for the outcome record to be written;
    the store writes it before anything else it does. `admitted` is the validated arguments `record` was just made
    from, in this same call; a request read back from the store (an approved one) is checked against its binding
    and validated again instead.
    """
    spec = TOOLS[record.tool]
    limits = app.config.limits_for(record.agent)

    async def finish(
        *, ok: bool, detail: dict[str, Any], result: Any = None, error: str | None = None
    ) -> RequestRecord:
        if answer_first:
            return app.store.finish_behind(record, ok=ok, result=result, error=error, detail=detail, limits=limits)
        return await app.store.finish(record.id, ok=ok, result=result, error=error, detail=detail, limits=limits)

    async def fail(error: str, detail: dict[str, Any]) -> RequestRecord:
        return await finish(ok=False, error=error, detail=detail)

    if spec.run is None or (
        admitted is None and record.digest != request_digest(record.agent, record.tool, record.arguments)
    ):
        return await fail("the request does not match what was approved; not executed", {"error": "binding check failed"})
    args = admitted if admitted is not None else spec.args.model_validate(record.arguments)
    grant = app.config.grant(record.agent) if record.agent in app.config.agents else Grant(agent=record.agent, rules=())
    try:
        result: BaseModel = await spec.run(app.backends, grant, args)
    except AdapterError as exc:
        error = app.redactor.text(str(exc))
        return await fail(error, {**exc.detail, "error": error})
    except Exception:  # noqa: BLE001 - top of the execution path: a bug must fail the request, never crash
        logger.exception("unexpected error while executing request %s", record.id)
        error = "internal error in ArgoBox while executing (see the server log)"
        return await fail(error, {"error": error})
    secrets = secret_values(result)
    payload = (app.redactor.with_secrets(secrets) if secrets else app.redactor)(result.model_dump(mode="json"))
    return await finish(ok=True, result=payload, detail={"summary": _summary(payload)})


def _summary(payload: dict[str, Any]) -> dict[str, Any]:
    """A short record of a result for the audit trail (the full result stays on the request)."""
    if "before" in payload and "after" in payload:  # a Home Assistant service call: the states around it
        return {
            "service": f"{payload.get('domain')}.{payload.get('service')}",
            "before": {t["entity_id"]: t["state"] for t in payload["before"]},
            "after": {t["entity_id"]: t["state"] for t in payload["after"]},
        }
    for listing in ("containers", "entities", "services"):
        if listing in payload:
            return {listing: len(payload[listing])}
    if "lines" in payload:
        return {"lines": len(payload["lines"]), "truncated": payload.get("truncated")}
    keys = ("container", "entity_id", "action", "state", "started_at", "restart_count", "name", "image", "health")
    return {k: payload[k] for k in keys if k in payload}


def outcome_of(record: RequestRecord) -> Outcome[Any]:
    what = describe_call(record.tool, record.arguments)
    status = record.status.value
    by_operator = record.decided_by not in (None, "policy")
    reason = record.note if record.status is RequestStatus.DENIED and by_operator else record.reason
    messages = {
        "succeeded": f"succeeded: {what}",
        "failed": f"failed: {what}: {record.error}",
        "pending_approval": f"waiting for operator approval: {what} (request {record.id}, expires {iso(record.expires_at)})",
        "approved": f"approved by {record.decided_by}, about to execute: {what}",
        "executing": f"executing: {what}",
        "denied": f"denied: {what}: {reason}",
        "expired": f"expired: {what} was not approved before {iso(record.expires_at)}",
        "unknown": f"unknown: {what} was interrupted; the operator must check whether it ran",
    }
    return Outcome(
        status=status,  # type: ignore[arg-type]
        message=messages[status], request_id=record.id, tool=record.tool, expires_at=iso(record.expires_at),
        reason=reason, result=record.result,
        error=reason if record.status is RequestStatus.DENIED else record.error,
    )


async def request_status(app: App, agent: str, raw_args: dict[str, Any]) -> Outcome[Any]:
    """`argobox_request_status`: the agent's own request; any other id answers as unknown."""
    try:
        request_id = TOOLS["argobox_request_status"].args.model_validate(raw_args).request_id  # type: ignore[attr-defined]
    except ValidationError as exc:
        message = _validation_message("argobox_request_status", exc)
        return Outcome(status="invalid_arguments", tool="argobox_request_status", message=message, error=message)
    try:
        record = await app.store.get(request_id)  # a read only: status polls never take the write lock
    except StoreError as exc:
        logger.error("could not read request %s: %s", request_id, exc)
        message = "refused: ArgoBox could not read its store; try again later"
        return Outcome(status="refused", message=message, error=message)
    if record is None or record.agent != agent:
        message = f"no request {request_id!r} among your requests"
        return Outcome(status="invalid_arguments", message=message, error=message)
    if record.status is RequestStatus.PENDING and record.expires_at is not None and record.expires_at <= app.clock():
        record = replace(record, status=RequestStatus.EXPIRED)  # as the next sweep will record it
    return outcome_of(record)


async def approve(app: App, request_id: str, *, operator: str, note: str) -> RequestRecord:
    """Approve a pending request as `operator` and execute it here, once. Raises `Refused`.

    The request is checked again against the grant in force now: if the grant no longer covers it, it is denied
    by policy instead of run.
    """
    await _require_operator(app, operator, request_id)
    await _recheck_grant(app, request_id)
    # Once approved, it runs to its end and is recorded, even if the operator's client goes away meanwhile.
    with anyio.CancelScope(shield=True):
        await app.store.approve(request_id, operator=operator, note=note)
        record = await execute(app, await app.store.begin_execution(request_id))
        await _notify(app, "approved", record)
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


async def deny(app: App, request_id: str, *, operator: str, reason: str) -> RequestRecord:
    """Deny a pending request as `operator`. Raises `Refused`."""
    await _require_operator(app, operator, request_id)
    limits = await _limits_of_request(app, request_id)
    with anyio.CancelScope(shield=True):
        record = await app.store.deny(request_id, operator=operator, reason=reason, limits=limits)
        await _notify(app, "denied", record)
    return record


async def _notify(app: App, event: str, record: RequestRecord) -> None:
    """Queue notifications; a failure here never fails or loses the request itself."""
    try:
        await notify.enqueue(app, event, record)
    except StoreError as exc:
        logger.error("could not queue notifications for request %s: %s", record.id, exc)


async def _limits_of_request(app: App, request_id: str) -> Limits | None:
    record = await app.store.get(request_id)
    return app.config.limits_for(record.agent) if record is not None else None


async def prune_audit(app: App, *, before: float, operator: str) -> PruneResult:
    """Remove audit events older than `before` as `operator`, through a recorded prune. Raises `Refused`."""
    await _require_operator(app, operator, None)
    return await app.store.prune(before=before, operator=operator)


async def _require_operator(app: App, operator: str, request_id: str | None) -> None:
    entry = app.config.operator(operator)
    if entry is not None and entry.role == "approver":
        return
    message = f"{shorten(operator, 64)!r} is not a configured operator"
    if entry is not None:  # a viewer sees everything and decides nothing, whichever way it asks
        message = f"operator {operator!r} is a viewer: a viewer can read requests but never approve, deny or prune"
    await app.store.audit(
        [Event(event="refused", actor=f"operator:{shorten(operator, 64)}", detail={"reason": message})],
        request_id=shorten(request_id, 64) if request_id is not None else None,
    )
    raise Refused("unknown_operator" if entry is None else "not_an_approver", message)
