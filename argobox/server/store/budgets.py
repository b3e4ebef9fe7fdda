"""Budget bookkeeping in the shared store: admitted calls, failure streaks and coalesced refusals.

Plain synchronous SQL helpers, run inside the store's transactions on its connection thread (see
`Connection.transaction`); their tables are made in `schema`, and the decisions themselves are the pure functions of
`argobox.policy.limits`. Counters live in SQLite so they hold across the short-lived stdio servers OpenClaw
starts, across processes and across restarts.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from argobox.policy.limits import Count, FailureState, Limits, Tripped, Usage, after_outcome
from argobox.server.store.records import Event
from argobox.server.store.tx import Tx
from argobox.server.times import iso

REFUSAL_SUMMARY_SECONDS = 60
"""Repeated refusals of one limit are audited as one counted record at most this often."""
_PRUNE_EVERY = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class CallFacts:
    """What the limiter needs to know about one call."""

    agent: str
    digest: str | None = None
    """Same tool and canonical arguments: the identical-call key (mutations only)."""
    target: str | None = None
    """The target of a mutation (e.g. one container), whatever the tool: the per-target key."""
    mutation: bool = False
    """A mutating call that would run or be queued."""
    queues: bool = False
    """The call would wait for approval."""


def _window_start(now: float, seconds: float) -> float:
    return now - seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    usage: Usage
    open_refusals: int
    """Refusal streaks of this agent not yet closed in the audit trail."""
    pending_twin: str | None
    """A pending request with the same digest (an identical call), if any."""


_USAGE_SQL = """
    SELECT
      (SELECT n FROM calls WHERE agent = :a ORDER BY at DESC, n DESC LIMIT 1),
      (SELECT n FROM calls WHERE agent = :a AND at > :req ORDER BY at, n LIMIT 1),
      (SELECT MIN(at) FROM calls WHERE agent = :a AND at > :req),
      (SELECT cooldown_until FROM agent_state WHERE agent = :a),
      (SELECT COUNT(*) FROM refusals WHERE agent = :a)
"""
"""The request budget's window counted from its two ends: an agent's calls are numbered in order and their times
never go back (`record_call`), so the calls after a time are the numbers from the first of them to the last."""
_MUTATION_USAGE_SQL = """
    SELECT
      (SELECT COUNT(*) FROM calls WHERE agent = :a AND mutation = 1 AND at > :mut),
      (SELECT MIN(at) FROM calls WHERE agent = :a AND mutation = 1 AND at > :mut),
      (SELECT COUNT(*) FROM calls WHERE agent = :a AND digest = :d AND at > :ident),
      (SELECT MIN(at) FROM calls WHERE agent = :a AND digest = :d AND at > :ident),
      (SELECT COUNT(*) FROM calls WHERE agent = :a AND target = :t AND mutation = 1 AND at > :tgt),
      (SELECT MIN(at) FROM calls WHERE agent = :a AND target = :t AND mutation = 1 AND at > :tgt),
      (SELECT COUNT(*) FROM requests WHERE agent = :a AND status = 'pending_approval' AND expires_at > :now),
      (SELECT id FROM requests WHERE agent = :a AND digest = :d AND status = 'pending_approval'
         AND expires_at > :now LIMIT 1)
"""


def usage(db: sqlite3.Connection, facts: CallFacts, limits: Limits, now: float, *, full: bool = True) -> Snapshot:
    """What `facts.agent` was admitted to do in each window. Without `full` (for a call that neither mutates nor
    queues: the only limits `check` applies to it are the request budget and the cooldown) the mutation, target,
    identical-call and pending counts are left at zero rather than counted."""
    params: dict[str, Any] = {
        "a": facts.agent,
        "d": facts.digest,
        "t": facts.target,
        "now": now,
        "req": _window_start(now, 60),
        "mut": _window_start(now, 3600),
        "ident": _window_start(now, limits.identical_calls.seconds),
        "tgt": _window_start(now, limits.per_target.seconds),
    }
    last, first, oldest, cooldown_until, open_refusals = db.execute(_USAGE_SQL, params).fetchone()
    requests = 0 if first is None else int(last) - int(first) + 1
    if not full:
        return Snapshot(
            usage=Usage(requests=Count(requests, oldest), cooldown_until=cooldown_until),
            open_refusals=open_refusals,
            pending_twin=None,
        )
    row = db.execute(_MUTATION_USAGE_SQL, params).fetchone()
    current = Usage(
        requests=Count(requests, oldest),
        mutations=Count(row[0], row[1]),
        identical=Count(row[2], row[3]),
        per_target=Count(row[4], row[5]),
        pending=row[6],
        cooldown_until=cooldown_until,
    )
    return Snapshot(usage=current, open_refusals=open_refusals, pending_twin=row[7])


def record_call(
    db: sqlite3.Connection,
    facts: CallFacts,
    limits: Limits,
    now: float,
    *,
    duplicate: bool,
    request_id: str | None = None,
) -> None:
    """Count an admitted call (of the request `request_id`, when it made one); now and then drop rows older than
    every window.

    The call is numbered after the agent's last one, at `now` or at the last one's time if the clock went back
    since: its calls stay in order by time (a clock set back makes them count a little longer, never less)."""
    last = db.execute(
        "SELECT at, n FROM calls WHERE agent = ? ORDER BY at DESC, n DESC LIMIT 1", (facts.agent,)
    ).fetchone()
    at, number = (now, 1) if last is None else (max(now, float(last[0])), int(last[1]) + 1)
    cursor = db.execute(
        "INSERT INTO calls (agent, at, n, digest, target, mutation, request_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            facts.agent,
            at,
            number,
            facts.digest if facts.mutation else None,
            None if duplicate else facts.target,
            int(facts.mutation and not duplicate),
            request_id,
        ),
    )
    if cursor.lastrowid is not None and cursor.lastrowid % _PRUNE_EVERY == 0:
        horizon = max(3600.0, limits.identical_calls.seconds, limits.per_target.seconds)
        db.execute("DELETE FROM calls WHERE at < ?", (now - horizon,))


def record_refusal(db: sqlite3.Connection, agent: str, limit: str, now: float) -> int | None:
    """Count a refusal. Returns how many refusals the audit should record now: 1 for the first of a streak, N for a
    summary every REFUSAL_SUMMARY_SECONDS, or None when this one is only counted."""
    first_at, count = db.execute(
        "INSERT INTO refusals (agent, limit_name, first_at, last_at, count) VALUES (?, ?, ?, ?, 0)"
        " ON CONFLICT (agent, limit_name) DO UPDATE SET count = count + 1, last_at = excluded.last_at"
        " RETURNING first_at, count",
        (agent, limit, now, now),
    ).fetchall()[0]
    if count == 0:
        return 1
    if now - first_at < REFUSAL_SUMMARY_SECONDS:
        return None
    db.execute("UPDATE refusals SET first_at = ?, count = 0 WHERE agent = ? AND limit_name = ?", (now, agent, limit))
    return count


def close_refusals(db: sqlite3.Connection, agent: str) -> list[tuple[str, int, float, float]]:
    """End the agent's refusal streaks (it was admitted again): (limit, uncounted refusals, first, last) of each."""
    rows = db.execute(
        "DELETE FROM refusals WHERE agent = ? RETURNING limit_name, count, first_at, last_at", (agent,)
    ).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows if r[1] > 0]


def failure_state(db: sqlite3.Connection, agent: str) -> FailureState:
    row = db.execute("SELECT streak, since, cooldown_until FROM agent_state WHERE agent = ?", (agent,)).fetchone()
    if row is None:
        return FailureState()
    streak, since, cooldown_until = row
    return FailureState(streak=streak, since=since, cooldown_until=cooldown_until)


def note_outcome(
    db: sqlite3.Connection, agent: str, limits: Limits, now: float, *, failed: bool
) -> FailureState | None:
    """Move the agent's failure streak; returns the new state when this outcome tripped a cooldown."""
    before = failure_state(db, agent)
    if not failed and before.streak == 0:
        return None
    after = after_outcome(before, failed=failed, now=now, limits=limits)
    db.execute(
        "INSERT INTO agent_state (agent, streak, since, cooldown_until) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (agent) DO UPDATE SET streak = excluded.streak, since = excluded.since,"
        " cooldown_until = excluded.cooldown_until",
        (agent, after.streak, after.since, after.cooldown_until),
    )
    tripped = after.cooldown_until is not None and after.cooldown_until != before.cooldown_until
    return after if tripped else None


def reset(db: sqlite3.Connection, agent: str) -> tuple[FailureState, int]:
    """Clear the agent's failure streak, cooldown, refusal streaks and changes counted per target; returns what was
    cleared (the failure state, and how many targets had changes counted)."""
    before = failure_state(db, agent)
    targets = db.execute(
        "SELECT COUNT(DISTINCT target) FROM calls WHERE agent = ? AND target IS NOT NULL", (agent,)
    ).fetchone()[0]
    db.execute("DELETE FROM agent_state WHERE agent = ?", (agent,))
    db.execute("DELETE FROM refusals WHERE agent = ?", (agent,))
    db.execute("UPDATE calls SET target = NULL WHERE agent = ? AND target IS NOT NULL", (agent,))
    return before, int(targets)


def uncount_change(db: sqlite3.Connection, request_ids: Sequence[str]) -> None:
    """Requests that never ran (denied, expired) no longer count as changes, of their target or in the hour."""
    db.executemany(
        "UPDATE calls SET mutation = 0, target = NULL WHERE request_id = ? AND (mutation = 1 OR target IS NOT NULL)",
        [(request_id,) for request_id in request_ids],
    )


def target_use(db: sqlite3.Connection, agent: str, limits: Limits, now: float) -> dict[str, int]:
    """How many changes each target of `agent` had in the per-target window (only targets with any)."""
    rows = db.execute(
        "SELECT target, COUNT(*) FROM calls WHERE agent = ? AND target IS NOT NULL AND mutation = 1 AND at > ?"
        " GROUP BY target ORDER BY target",
        (agent, _window_start(now, limits.per_target.seconds)),
    ).fetchall()
    return {str(target): int(count) for target, count in rows}


# The audit events budgets cause, recorded in the transaction that moved them -----------------------------------


def audit_refusal(tx: Tx, agent: str, tool: str | None, tripped: Tripped) -> None:
    """Count a refused call, and audit it when it opens a streak or its summary is due."""
    audited = record_refusal(tx.db, agent, tripped.limit, tx.now)
    if audited is not None:
        detail = {
            "limit": tripped.limit,
            "retry_after_seconds": tripped.retry_after_seconds,
            "message": tripped.message,
            "refusals": audited,
        }
        tx.append(
            [Event(event="rate_limited", actor="argobox", detail=detail)], request_id=None, agent=agent, tool=tool
        )


def audit_closed_refusals(tx: Tx, agent: str) -> None:
    """End the agent's refusal streaks, auditing the refusals only counted so far."""
    for limit, count, first_at, last_at in close_refusals(tx.db, agent):
        detail = {
            "limit": limit,
            "refusals": count,
            "first_at": iso(first_at),
            "last_at": iso(last_at),
            "message": f"{count} more calls were refused by {limit}",
        }
        tx.append(
            [Event(event="rate_limited", actor="argobox", detail=detail)], request_id=None, agent=agent, tool=None
        )


def audit_outcome(tx: Tx, agent: str, limits: Limits, *, failed: bool) -> None:
    """Move the agent's failure streak; audit the cooldown it trips, if any."""
    tripped = note_outcome(tx.db, agent, limits, tx.now, failed=failed)
    if tripped is not None:
        detail = {
            "cooldown_until": iso(tripped.cooldown_until),
            "failures": limits.failures.count,
            "window_seconds": limits.failures.seconds,
        }
        tx.append([Event(event="cooldown", actor="argobox", detail=detail)], request_id=None, agent=agent, tool=None)
