"""The path of every agent call: identify the tool within the grant, validate the arguments, decide, record the
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
from typing import Any, NamedTuple

from pydantic import BaseModel, ValidationError

from argobox.adapters.base import AdapterError, secret_values
from argobox.policy.catalog import Classification, ToolClass, describe_call
from argobox.policy.decide import Decision, Effect, Grant, canonical_json, decide, request_digest
from argobox.policy.limits import Limits
from argobox.server.app import App
from argobox.server.mediation import targets
from argobox.server.mediation.arguments import RequestStatusArgs, bounded_arguments, validation_message
from argobox.server.mediation.notify import announce
from argobox.server.mediation.outcome import CallStatus, Outcome, failure, outcome_of, rate_limited, refused
from argobox.server.mediation.runbooks import tool_spec
from argobox.server.store import Admission, CallFacts, Event, NewRequest, RequestRecord, RequestStatus, StoreError
from argobox.server.text import shorten
from argobox.server.times import iso

logger = logging.getLogger("argobox")

REQUEST_ID_BYTES = 10


class UnknownTool(Exception):
    """Raised for a tool the agent's grant does not show; answered exactly like a tool that does not exist."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Unknown tool: {shorten(name, 64)}")


def new_request_id() -> str:
    """80 random bits in lowercase base32: unguessable, and safe to paste into a shell."""
    return base64.b32encode(secrets.token_bytes(REQUEST_ID_BYTES)).decode().lower()


async def call_tool(app: App, agent: str, tool: str, raw_args: dict[str, Any]) -> Outcome[Any]:
    """Handle one `tools/call` from `agent`. Raises `UnknownTool` for tools outside the grant."""
    if tool == "argobox_request_status":
        return await request_status(app, agent, raw_args)
    grant = app.config.grant(agent)
    if tool not in grant.visible:
        shown = shorten(app.redactor.text(tool), 64)  # redacted before it is cut or quoted, or a piece could show
        refusal = Event(event="refused", actor="argobox", detail={"reason": f"unknown tool {shown!r}"})
        outcome = await _admit_without_request(app, agent, shown, [refusal])
        if outcome is not None:
            return outcome
        raise UnknownTool(shown)
    spec = tool_spec(app.config.runbooks, tool)
    assert spec is not None  # noqa: S101 - every tool a grant shows has a spec
    try:
        args = spec.args.model_validate(raw_args)
    except ValidationError as exc:
        message = validation_message(tool, exc, app.redactor.text)
        kept = bounded_arguments(raw_args, app.redactor.text)
        events = [
            Event(event="received", actor=f"agent:{agent}", detail={"arguments": kept}),
            Event(event="rejected", actor="argobox", detail={"reason": message}),
        ]
        return await _admit_without_request(app, agent, tool, events) or failure(
            CallStatus.INVALID_ARGUMENTS, message, tool=tool
        )
    arguments = args.model_dump(mode="json")
    decision = decide(grant, tool, arguments)
    try:
        admission = await _admit_decision(app, agent, tool, args, arguments=arguments, decision=decision)
    except StoreError as exc:
        logger.error("refused %s for %s: the audit trail could not be written: %s", tool, agent, exc)
        return refused(tool)
    if admission.tripped is not None:
        return rate_limited(tool, admission.tripped)
    return await _answer_admitted(app, tool, args, arguments=arguments, decision=decision, admission=admission)


async def _answer_admitted(
    app: App, tool: str, args: BaseModel, *, arguments: dict[str, Any], decision: Decision, admission: Admission
) -> Outcome[Any]:
    """The answer to a call the store admitted: denied, queued, or run now (once)."""
    record = admission.record
    assert record is not None  # noqa: S101 - an admission that tripped no budget always holds its request
    if record.status is RequestStatus.DENIED:
        return Outcome(
            status=CallStatus.DENIED,
            tool=tool,
            request_id=record.id,
            reason=decision.reason,
            message=f"denied: {decision.reason}. Do not retry; ask the operator to change the grant if it is needed.",
        )
    if record.status is RequestStatus.PENDING:
        if not admission.duplicate:
            await announce(app, "queued", record)
        what = describe_call(tool, arguments, app.config.catalog)
        already = "is already queued" if admission.duplicate else "is queued"
        return Outcome(
            status=CallStatus.PENDING,
            tool=tool,
            request_id=record.id,
            expires_at=iso(record.expires_at),
            reason=decision.reason,
            message=f"waiting for operator approval: {what} {already} as request {record.id}; check back later with "
            f"argobox_request_status(request_id={record.id!r}). Do not call {tool} again for it.",
        )
    if record.status is not RequestStatus.EXECUTING:  # a duplicate of a request decided meanwhile
        return outcome_of(record, app.config.catalog)
    try:
        read = app.config.catalog[tool].classification is Classification.READ
        # Admitted a moment ago from these very arguments (not loaded from the store): no binding to check.
        admitted = None if admission.duplicate else args
        done = await _execute(app, record, answer_first=read, admitted=admitted)
        outcome = outcome_of(done.record, app.config.catalog)
        return outcome.with_redacted_result(done.result_json) if done.result_json is not None else outcome
    except StoreError as exc:
        logger.error("request %s ran but its outcome could not be recorded: %s", record.id, exc)
        what = describe_call(tool, arguments, app.config.catalog)
        message = f"unknown: {what} ran, but ArgoBox could not record the outcome; tell the operator and do not retry"
        return failure(CallStatus.UNKNOWN, message, tool=tool, request_id=record.id)


async def _admit_without_request(app: App, agent: str, tool: str, events: list[Event]) -> Outcome[Any] | None:
    """Count and audit a call that creates no request (unknown tool, bad input): an outcome if it was refused."""
    try:
        admission = await app.store.admit(
            CallFacts(agent=agent), app.config.limits_for(agent), tool=tool, events=events
        )
    except StoreError as exc:
        logger.error("could not record a call of agent %s: %s", agent, exc)
        return refused(tool)
    return rate_limited(tool, admission.tripped) if admission.tripped is not None else None


def call_facts(agent: str, tool: ToolClass, arguments: dict[str, Any], decision: Decision) -> CallFacts:
    """What the budgets count of a decided call: its digest, its target, whether it mutates and whether it queues."""
    mutation = tool.classification is Classification.MUTATE and decision.effect is not Effect.DENY
    return CallFacts(
        agent=agent,
        digest=request_digest(agent, tool.name, arguments),
        target=_target_key(tool, arguments) if mutation else None,
        mutation=mutation,
        queues=decision.effect is Effect.APPROVE,
    )


def _target_key(tool: ToolClass, arguments: dict[str, Any]) -> str | None:
    """The per-target budget key: the target arguments, and a defaulted one (the Docker host) when the call names
    another value than its default, so the same container name on two hosts is two targets."""
    targets = {name: arguments.get(name) for name in tool.target_args}
    for name, default in tool.defaulted_args if targets else ():
        if arguments.get(name) not in (None, default):
            targets[name] = arguments[name]
    return canonical_json(targets) if targets else None


async def _admit_decision(
    app: App, agent: str, tool: str, args: BaseModel, *, arguments: dict[str, Any], decision: Decision
) -> Admission:
    """Record the decided call (its request and its audit events) and count it, in one transaction."""
    tool_class = app.config.catalog[tool]
    classification = tool_class.classification
    status = {
        Effect.DENY: RequestStatus.DENIED,
        Effect.APPROVE: RequestStatus.PENDING,
        Effect.ALLOW: RequestStatus.EXECUTING,
    }[decision.effect]
    events = [
        Event(event="received", actor=f"agent:{agent}", detail={"arguments": arguments}),
        Event(
            event="decision",
            actor="policy",
            detail={
                "effect": decision.effect.value,
                "rule": decision.rule,
                "reason": decision.reason,
                "classification": classification.value,
            },
        ),
    ]
    facts = call_facts(agent, tool_class, arguments, decision)
    digest = facts.digest
    assert digest is not None  # noqa: S101 - call_facts always binds a decided call to its digest
    limits = app.config.limits_for(agent)
    target: dict[str, Any] | None = None
    if status is RequestStatus.PENDING:
        queued, target = await _queued_detail(app, tool, args, facts, limits)
        events.append(Event(event="queued", actor="argobox", detail=queued))
    elif status is RequestStatus.EXECUTING:
        events.append(Event(event="executing", actor="argobox"))
    request = NewRequest(
        id=new_request_id(),
        agent=agent,
        tool=tool,
        arguments=arguments,
        digest=digest,
        classification=classification.value,
        effect=decision.effect.value,
        rule=decision.rule,
        reason=decision.reason,
        status=status,
        expires_at=app.clock() + app.config.approvals.ttl_seconds if status is RequestStatus.PENDING else None,
        decided_by="policy" if status is not RequestStatus.PENDING else None,
        target=target,
    )
    return await app.store.admit(
        facts,
        limits,
        tool=tool,
        events=events,
        request=request,
        failed=True if status is RequestStatus.DENIED else None,
    )


async def _queued_detail(
    app: App, tool: str, args: BaseModel, facts: CallFacts, limits: Limits
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The detail of a call's `queued` event (with the preview of its target) and the target's identity.

    The targets are read only for a call that will really be queued: refusals and repeats stay cheap.
    """
    queued: dict[str, Any] = {"ttl_seconds": app.config.approvals.ttl_seconds}
    if not await app.store.would_queue(facts, limits):
        return queued, None
    spec = tool_spec(app.config.runbooks, tool)
    shown = await targets.preview(app, spec, args) if spec is not None else None
    if spec is None or shown is None:
        return queued, None
    queued["preview"] = shown
    return queued, targets.queued_identity(spec, shown)


class Executed(NamedTuple):
    record: RequestRecord
    result_json: str | None
    """For a read answered first that succeeded: its result, redacted, as JSON (sorted keys), made once for both
    the answer and the stored outcome."""


async def execute(
    app: App, record: RequestRecord, *, answer_first: bool = False, admitted: BaseModel | None = None
) -> RequestRecord:
    """Run an `executing` request exactly as it was recorded, and record its outcome.

    `answer_first` (reads only: they change nothing) returns without waiting for the outcome record to be written;
    the store writes it before anything else it does. `admitted` is the validated arguments `record` was just made
    from, in this same call; a request read back from the store (an approved one) is checked against its binding
    and validated again instead.
    """
    return (await _execute(app, record, answer_first=answer_first, admitted=admitted)).record


async def _execute(app: App, record: RequestRecord, *, answer_first: bool, admitted: BaseModel | None) -> Executed:
    spec = tool_spec(app.config.runbooks, record.tool)
    limits = app.config.limits_for(record.agent)

    async def finish(*, ok: bool, detail: dict[str, Any], result: Any = None, error: str | None = None) -> Executed:
        if answer_first:
            # Redacted once, serialised once: the answer and the stored outcome use the same text.
            text = json.dumps(result, sort_keys=True) if result is not None else None
            return Executed(
                app.store.finish_behind(
                    record, ok=ok, result=result, result_json=text, error=error, detail=detail, limits=limits
                ),
                text,
            )
        done = await app.store.finish(record.id, ok=ok, result=result, error=error, detail=detail, limits=limits)
        return Executed(done, None)

    async def fail(error: str, detail: dict[str, Any]) -> Executed:
        return await finish(ok=False, error=error, detail=detail)

    if spec is None:
        return await fail(f"{record.tool} is no longer configured; not executed", {"error": "unknown tool"})
    if spec.run is None or (
        admitted is None and record.digest != request_digest(record.agent, record.tool, record.arguments)
    ):
        return await fail(
            "the request does not match what was approved; not executed", {"error": "binding check failed"}
        )
    try:
        args = admitted if admitted is not None else spec.args.model_validate(record.arguments)
    except ValidationError as exc:  # a runbook whose params were redefined since the request was made
        error = f"{validation_message(record.tool, exc)} (the tool changed since the request was made); not executed"
        return await fail(error, {"error": "arguments no longer valid"})
    if admitted is None:
        changed = await targets.refusal(app, spec, args, record.target)
        if changed is not None:
            return await fail(changed, {"error": changed, "target_when_queued": record.target})
    grant = app.config.grant(record.agent) if record.agent in app.config.agents else Grant(agent=record.agent, rules=())
    try:
        result: BaseModel = await spec.run(app.backends, grant, args)
    except AdapterError as exc:
        error = app.redactor.text(str(exc))
        return await fail(error, {**exc.detail, "error": error})
    except Exception:
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
    if "argv" in payload and "exit_status" in payload:  # a runbook: what ran where, and how it ended
        ran = ("host", "argv", "exit_status", "exit_signal", "duration_seconds", "stdout_truncated", "stderr_truncated")
        return {k: payload[k] for k in ran if k in payload}
    for listing in ("containers", "entities", "services"):
        if listing in payload:
            return {listing: len(payload[listing])}
    if "lines" in payload:
        return {"lines": len(payload["lines"]), "truncated": payload.get("truncated")}
    keys = ("container", "entity_id", "action", "state", "started_at", "restart_count", "name", "image", "health")
    return {k: payload[k] for k in keys if k in payload}


async def request_status(app: App, agent: str, raw_args: dict[str, Any]) -> Outcome[Any]:
    """`argobox_request_status`: the agent's own request; any other id answers as unknown."""
    try:
        request_id = RequestStatusArgs.model_validate(raw_args).request_id
    except ValidationError as exc:
        message = validation_message("argobox_request_status", exc)
        return failure(CallStatus.INVALID_ARGUMENTS, message, tool="argobox_request_status")
    try:
        record = await app.store.get(request_id)  # a read only: status polls never take the write lock
    except StoreError as exc:
        logger.error("could not read request %s: %s", request_id, exc)
        message = "refused: ArgoBox could not read its store; try again later"
        return failure(CallStatus.REFUSED, message)
    if record is None or record.agent != agent:
        message = f"no request {request_id!r} among your requests"
        return failure(CallStatus.INVALID_ARGUMENTS, message)
    if record.status is RequestStatus.PENDING and record.expires_at is not None and record.expires_at <= app.clock():
        record = replace(record, status=RequestStatus.EXPIRED)  # as the next sweep will record it
    return outcome_of(record, app.config.catalog).as_report()
