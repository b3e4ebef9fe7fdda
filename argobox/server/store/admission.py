"""Admission: a call checked against its agent's budgets and, when it fits, recorded, in one transaction.

The counts a decision reads hold until its commit (BEGIN IMMEDIATE), so two processes admitting calls of one agent
at once cannot both take the last unit of a budget. The limits themselves are the pure `argobox.policy.limits`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from argobox.policy.limits import FailureState, Limits, Usage, check
from argobox.server.store import budgets
from argobox.server.store.budgets import CallFacts, Snapshot
from argobox.server.store.records import Admission, Event, NewRequest, RequestRecord
from argobox.server.store.requests import fetch, insert, new_record
from argobox.server.store.tx import Body, Tx
from argobox.server.times import iso


def admitting(
    facts: CallFacts,
    limits: Limits,
    *,
    tool: str | None,
    events: Sequence[Event],
    request: NewRequest | None,
    failed: bool | None,
    executor: str,
) -> Body[Admission]:
    """The transaction of `Store.admit`; `executor` is recorded on a request created executing."""

    def body(tx: Tx) -> Admission:
        # A read needs only its request budget and cooldown counted.
        snapshot = budgets.usage(tx.db, facts, limits, tx.now, full=facts.mutation or facts.queues)
        twin = snapshot.pending_twin if facts.queues else None
        existing = fetch(tx.db, twin, tx.sealer) if twin is not None else None
        tripped = check(
            limits,
            snapshot.usage,
            now=tx.now,
            mutation=facts.mutation and existing is None,
            queues=facts.queues and existing is None,
            identical=facts.mutation,
        )
        if tripped is not None:
            budgets.audit_refusal(tx, facts.agent, tool, tripped)
            return Admission(tripped=tripped)
        record = new_record(request, tx.now, executor) if request is not None and existing is None else None
        budgets.record_call(
            tx.db, facts, limits, tx.now, duplicate=existing is not None, request_id=record.id if record else None
        )
        if snapshot.open_refusals:
            budgets.audit_closed_refusals(tx, facts.agent)
        if existing is not None:
            return _duplicate(tx, facts.agent, existing)
        if record is not None:
            insert(tx.db, record, tx.sealer)
        tx.append(events, request_id=record.id if record else None, agent=facts.agent, tool=tool)
        if failed is not None:
            budgets.audit_outcome(tx, facts.agent, limits, failed=failed)
        return Admission(record=record)

    return body


def _duplicate(tx: Tx, agent: str, existing: RequestRecord) -> Admission:
    """A call identical to a pending request: audited on that request, which is returned instead of a new one."""
    event = Event(event="duplicate", actor=f"agent:{agent}", detail={"message": "identical to this pending request"})
    tx.append([event], request_id=existing.id, agent=existing.agent, tool=existing.tool)
    return Admission(record=existing, duplicate=True)


def would_queue(snapshot: Snapshot, facts: CallFacts, limits: Limits, now: float) -> bool:
    """Whether a call with this `snapshot` of its agent's budgets would now be queued as a new request."""
    if snapshot.pending_twin is not None:
        return False
    verdict = check(
        limits, snapshot.usage, now=now, mutation=facts.mutation, queues=facts.queues, identical=facts.mutation
    )
    return verdict is None


def budget_reading(
    agent: str, limits: Limits, now: float
) -> Callable[[sqlite3.Connection], tuple[Usage, FailureState]]:
    """The read of `Store.budget`: the agent's use of its budgets and its failure state, from one snapshot."""

    def read(db: sqlite3.Connection) -> tuple[Usage, FailureState]:
        db.execute("BEGIN")
        try:
            return budgets.usage(db, CallFacts(agent=agent), limits, now).usage, budgets.failure_state(db, agent)
        finally:
            db.execute("COMMIT")

    return read


def resetting(agent: str, *, actor: str) -> Body[FailureState]:
    """Clear an agent's cooldown, failure streak and refusal streaks, audited; returns what was cleared."""

    def body(tx: Tx) -> FailureState:
        cleared, targets = budgets.reset(tx.db, agent)
        detail = {"streak": cleared.streak, "cooldown_until": iso(cleared.cooldown_until), "targets_cleared": targets}
        tx.append([Event(event="budget_reset", actor=actor, detail=detail)], request_id=None, agent=agent, tool=None)
        return cleared

    return body
