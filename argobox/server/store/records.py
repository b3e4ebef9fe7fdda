"""What the store holds and hands out: requests, audit events, and the errors of its operations."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from argobox.policy.limits import Tripped
from argobox.server.audit import GENESIS

Clock = Callable[[], float]

RESERVED_ACTORS = frozenset({"policy", "argobox"})
"""Actors that are ArgoBox itself; no operator may carry these names."""


class StoreError(Exception):
    """Raised when the store cannot be read or written (locked past the bounded wait, read-only, disk full).

    Callers fail closed: an action whose record cannot be written does not run.
    """


class Refused(Exception):
    """Raised when an operator's transition is not possible; `code` says why, the message says it in words."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class RequestStatus(StrEnum):
    PENDING = "pending_approval"
    APPROVED = "approved"
    """Only in stores written before approval and the start of execution became one transaction."""
    EXECUTING = "executing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DENIED = "denied"
    EXPIRED = "expired"
    UNKNOWN = "unknown"
    """The process executing it stopped mid-way; whether the action ran is not known. Never re-run automatically."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    event: str
    actor: str
    detail: dict[str, Any] = field(default_factory=dict[str, Any])


@dataclass(frozen=True, slots=True, kw_only=True)
class NewRequest:
    id: str
    agent: str
    tool: str
    arguments: dict[str, Any]
    digest: str
    classification: str
    effect: str
    rule: str | None
    reason: str
    status: RequestStatus
    expires_at: float | None = None
    decided_by: str | None = None
    target: dict[str, Any] | None = None
    """The identity of the target when the request was made (what the operator is shown and approves)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestRecord:
    id: str
    agent: str
    tool: str
    arguments: dict[str, Any]
    digest: str
    classification: str
    effect: str
    rule: str | None
    reason: str
    status: RequestStatus
    created_at: float
    expires_at: float | None
    decided_by: str | None
    decided_at: float | None
    note: str | None
    executor: str | None
    result: Any
    error: str | None
    updated_at: float
    target: dict[str, Any] | None = None
    """The identity of the target when the request was made; an approval runs only on that target."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Admission:
    """What `Store.admit` did with a call: refused it (`tripped`), found it already pending (`duplicate`), or
    recorded it (`record` is the new request, if one was created)."""

    tripped: Tripped | None = None
    record: RequestRecord | None = None
    duplicate: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRecord:
    seq: int
    at: float
    request_id: str | None
    event: str
    actor: str
    agent: str | None
    tool: str | None
    detail: dict[str, Any]
    prev_hash: str = GENESIS
    hash: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class PruneResult:
    record_seq: int
    """The seq of the `pruned` event recording it."""
    through_seq: int
    """Every event up to this seq is gone (if it was not already)."""
    deleted: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification:
    """One notification of the outbox, claimed for delivery to one channel."""

    id: int
    request_id: str | None
    event: str
    channel: str
    payload: str
    """The JSON text of what the channel is told."""
    attempts: int
    """Delivery attempts so far, this one included."""


def operator_actor(operator: str) -> str:
    """The audit actor of an operator (ArgoBox's own names stay as they are)."""
    return operator if operator in RESERVED_ACTORS else f"operator:{operator}"


def request_from_row(row: sqlite3.Row) -> RequestRecord:
    return RequestRecord(
        id=row["id"],
        agent=row["agent"],
        tool=row["tool"],
        arguments=json.loads(row["arguments"]),
        digest=row["digest"],
        classification=row["classification"],
        effect=row["effect"],
        rule=row["rule"],
        reason=row["reason"],
        status=RequestStatus(row["status"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        decided_by=row["decided_by"],
        decided_at=row["decided_at"],
        note=row["note"],
        executor=row["executor"],
        result=json.loads(row["result"]) if row["result"] is not None else None,
        error=row["error"],
        updated_at=row["updated_at"],
        target=json.loads(row["target"]) if row["target"] is not None else None,
    )


def audit_from_row(row: sqlite3.Row) -> AuditRecord:
    return AuditRecord(
        seq=row["seq"],
        at=row["at"],
        request_id=row["request_id"],
        event=row["event"],
        actor=row["actor"],
        agent=row["agent"],
        tool=row["tool"],
        detail=json.loads(row["detail"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )
