"""The request queue: rows written and read, and every transition of a request as one conditional UPDATE.

A transition holds `UPDATE requests ... WHERE id = ? AND <the status it moves from>` together with the audit events
that describe it, in one transaction: two processes racing on the same request produce exactly one transition, and
no transition exists without its audit record.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from argobox.policy.limits import Limits
from argobox.server.redact import Redactor
from argobox.server.store import budgets
from argobox.server.store.records import (
    Event,
    NewRequest,
    Refused,
    RequestRecord,
    RequestStatus,
    operator_actor,
    request_from_row,
)
from argobox.server.store.sealing import Sealer, opened
from argobox.server.store.tx import Body, Tx
from argobox.server.times import iso

logger = logging.getLogger("argobox")

MAX_STORED_RESULT_CHARS = 64 * 1024
"""A request keeps its result up to this size (a long log tail is not kept for every call that read it)."""


def new_record(request: NewRequest, now: float, executor: str) -> RequestRecord:
    """The record of `request` as created at `now`; `executor` is recorded when it is created executing."""
    return RequestRecord(
        id=request.id,
        agent=request.agent,
        tool=request.tool,
        arguments=request.arguments,
        digest=request.digest,
        classification=request.classification,
        effect=request.effect,
        rule=request.rule,
        reason=request.reason,
        status=request.status,
        created_at=now,
        expires_at=request.expires_at,
        decided_by=request.decided_by,
        decided_at=now if request.decided_by else None,
        note=None,
        executor=executor if request.status is RequestStatus.EXECUTING else None,
        result=None,
        error=None,
        updated_at=now,
        target=request.target,
    )


def insert(db: sqlite3.Connection, record: RequestRecord, sealer: Sealer) -> None:
    db.execute(
        "INSERT INTO requests (id, agent, tool, arguments, digest, classification, effect, rule, reason,"
        " status, created_at, expires_at, decided_by, decided_at, executor, updated_at, target)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            record.id,
            record.agent,
            record.tool,
            json.dumps(sealer.seal(record.arguments, record.id), sort_keys=True),
            record.digest,
            record.classification,
            record.effect,
            record.rule,
            record.reason,
            record.status.value,
            record.created_at,
            record.expires_at,
            record.decided_by,
            record.decided_at,
            record.executor,
            record.updated_at,
            json.dumps(record.target, sort_keys=True) if record.target is not None else None,
        ),
    )


def fetch(db: sqlite3.Connection, request_id: str, sealer: Sealer) -> RequestRecord | None:
    row = db.execute("SELECT * FROM requests WHERE id = ?", (request_id,)).fetchone()
    return opened(request_from_row(row), sealer) if row is not None else None


def listing(
    *,
    status: RequestStatus | None,
    agent: str | None,
    limit: int,
    tool: str | None = None,
    since: float | None = None,
    until: float | None = None,
) -> tuple[str, list[Any]]:
    """The query (and its parameters) for the most recent requests, optionally of one status, agent or tool, and
    created at or after `since` and before `until`."""
    clauses, params = ["1 = 1"], list[Any]()
    if status is not None:
        clauses.append("status = ?")
        params.append(status.value)
    wanted = (("agent = ?", agent), ("tool = ?", tool), ("created_at >= ?", since), ("created_at < ?", until))
    for clause, value in wanted:
        if value is not None:
            clauses.append(clause)
            params.append(value)
    sql = f"SELECT * FROM requests WHERE {' AND '.join(clauses)} ORDER BY created_at DESC, id LIMIT ?"  # noqa: S608
    return sql, [*params, limit]


def transition_body(
    request_id: str,
    *,
    where: str,
    params: Sequence[Any],
    sets: dict[str, Any],
    events: Sequence[Event],
    outcome: tuple[Limits, bool] | None = None,
) -> Body[RequestRecord | None]:
    """Apply `sets` when `where` still holds, with `events`, atomically; None when it no longer held.

    `outcome` (limits, failed) moves the agent's failure streak in the same transaction."""
    assignments = ", ".join(f"{column} = ?" for column in sets)
    sql = f"UPDATE requests SET {assignments}, updated_at = ? WHERE id = ? AND ({where}) RETURNING *"  # noqa: S608

    def body(tx: Tx) -> RequestRecord | None:
        rows = tx.db.execute(sql, (*sets.values(), tx.now, request_id, *params)).fetchall()
        if not rows:
            return None
        record = opened(request_from_row(rows[0]), tx.sealer)
        tx.append(events, request_id=request_id, agent=record.agent, tool=record.tool)
        if record.status is RequestStatus.DENIED:
            budgets.uncount_change(tx.db, [request_id])  # it never ran: not a change of its target
        if outcome is not None:
            budgets.audit_outcome(tx, record.agent, outcome[0], failed=outcome[1])
        return record

    return body


def approving(
    request_id: str,
    *,
    operator: str,
    note: str,
    now: float,
    executor: str,
    redact: Redactor,
    via: Mapping[str, str] | None = None,
) -> Body[RequestRecord | None]:
    """pending_approval -> executing by `executor`: the approval and the start of its execution, in one
    transaction. `via` (how the decision came: its channel, and what proved the operator) joins the `approved`
    event."""
    return transition_body(
        request_id,
        where="status = ? AND expires_at > ?",
        params=(RequestStatus.PENDING.value, now),
        sets={
            "status": RequestStatus.EXECUTING.value,
            "decided_by": operator,
            "decided_at": now,
            "note": redact.text(note),
            "executor": executor,
        },
        events=[
            Event(event="approved", actor=f"operator:{operator}", detail={"note": note, **(via or {})}),
            Event(event="executing", actor="argobox"),
        ],
    )


def denying(
    request_id: str,
    *,
    operator: str,
    reason: str,
    now: float,
    limits: Limits | None,
    redact: Redactor,
    via: Mapping[str, str] | None = None,
) -> Body[RequestRecord | None]:
    """pending_approval -> denied; with `limits`, the denial counts toward the failure streak. `via` joins the
    `denied` event (see `approving`)."""
    return transition_body(
        request_id,
        where="status = ? AND expires_at > ?",
        params=(RequestStatus.PENDING.value, now),
        sets={
            "status": RequestStatus.DENIED.value,
            "decided_by": operator,
            "decided_at": now,
            "note": redact.text(reason),
        },
        events=[Event(event="denied", actor=operator_actor(operator), detail={"reason": reason, **(via or {})})],
        outcome=(limits, True) if limits is not None else None,
    )


def finishing(
    request_id: str, *, sets: dict[str, Any], ok: bool, detail: dict[str, Any], limits: Limits | None
) -> Body[RequestRecord | None]:
    """executing -> succeeded or failed, with the columns of `outcome_columns`."""
    status = RequestStatus.SUCCEEDED if ok else RequestStatus.FAILED
    return transition_body(
        request_id,
        where="status = ?",
        params=(RequestStatus.EXECUTING.value,),
        sets=sets,
        events=[Event(event=status.value, actor="argobox", detail=detail)],
        outcome=(limits, not ok) if limits is not None else None,
    )


def outcome_columns(
    redact: Redactor, *, ok: bool, result: Any, error: str | None, cap: bool, result_json: str | None = None
) -> dict[str, Any]:
    """The columns an outcome sets (redacted). With `cap` (a result its caller already has), a result over
    MAX_STORED_RESULT_CHARS is stored as a note of its size. `result_json` is `result` as its caller already
    redacted and serialised it (sorted keys), if it did."""
    if result_json is not None:
        text: str | None = result_json
    else:
        redacted = redact(result) if result is not None else None
        text = json.dumps(redacted, sort_keys=True) if redacted is not None else None
    if cap and text is not None and len(text) > MAX_STORED_RESULT_CHARS:
        omitted = (
            f"{len(text)} characters; the result was returned to the caller when the call was made, and results "
            f"over {MAX_STORED_RESULT_CHARS} characters are not kept"
        )
        text = json.dumps({"omitted": omitted})
    status = RequestStatus.SUCCEEDED if ok else RequestStatus.FAILED
    return {"status": status.value, "result": text, "error": redact(error) if error is not None else None}


def log_if_missed(record: RequestRecord | None, request_id: str, status: RequestStatus) -> None:
    """Log an outcome written behind (`Store.finish_behind`) that found its request no longer executing."""
    if record is None:
        logger.error("request %s was no longer executing when its outcome (%s) was recorded", request_id, status.value)


def expiring(tx: Tx) -> int:
    """Mark every pending request past its expiry as expired, with an audit event each; how many."""
    due = tx.db.execute(
        "UPDATE requests SET status = ?, updated_at = ? WHERE status = ? AND expires_at <= ?"
        " RETURNING id, agent, tool, expires_at",
        (RequestStatus.EXPIRED.value, tx.now, RequestStatus.PENDING.value, tx.now),
    ).fetchall()
    for row in due:
        tx.append(
            [Event(event="expired", actor="argobox", detail={"expired_at": iso(row["expires_at"])})],
            request_id=row["id"],
            agent=row["agent"],
            tool=row["tool"],
        )
    budgets.uncount_change(tx.db, [row["id"] for row in due])  # they never ran
    return len(due)


_PAST = {"approve": "approved", "deny": "denied"}
_NOW = {
    RequestStatus.APPROVED: "about to execute",
    RequestStatus.UNKNOWN: "outcome unknown: it was interrupted while executing",
}


def refusal(request_id: str, record: RequestRecord | None, verb: str) -> Refused:
    """Why `verb` (approve, deny) was refused for the request as it now is (after expiring what was due): what
    happened to it, in the past tense, then that only a pending request can be approved or denied."""
    if record is None:
        return Refused("not_found", f"no request {request_id!r}")
    only = f"only a pending request can be {_PAST.get(verb, verb)}"
    if record.status is RequestStatus.EXPIRED:
        return Refused(
            "expired", f"request {request_id} expired at {iso(record.expires_at)} without a decision; {only}"
        )
    now = _NOW.get(record.status, f"now {record.status.value}")
    if record.status is RequestStatus.DENIED:
        how = (
            "was denied by policy"
            if record.decided_by in (None, "policy")
            else f"was already denied by {record.decided_by}"
        )
    elif record.decided_by == "policy":
        how = f"was allowed by policy ({now})"
    elif record.decided_by is None:
        how = f"is no longer pending ({now})"
    else:
        how = f"was already approved by {record.decided_by} ({now})"
    return Refused("not_pending", f"request {request_id} {how}; {only}")
