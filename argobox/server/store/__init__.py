"""The durable store: one SQLite database (WAL) shared by every ArgoBox process. All of ArgoBox's SQL lives here.

    facade        Store: every operation, as the rest of ArgoBox calls it
    schema        the tables, and the named migrations that build and upgrade them
    records       what the store holds and hands out (requests, audit events, notifications) and its errors
    tx            one write transaction as its body sees it (Tx), appending to the audit chain
    connection    the one connection: transactions, reads, writes left behind
    admission     a call checked against its budgets and recorded, in one transaction
    budgets       the budgets' counters, streaks and refusals
    requests      the request queue and its transitions
    trail         the audit trail as stored: reads, prune, a read-only snapshot for verify and export
    recovery      requests whose executing process died
    outbox        notifications waiting for delivery
    phone         the phone's button presses: events taken on, codes used
    checkpointer  the thread that keeps the audit checkpoint at the head, and moves the WAL
    coalesce      refusals a caller can repeat without end, recorded at most once a window and counted

The rest of ArgoBox uses the names below and never reaches into the modules that implement them.
"""

from argobox.server.store.budgets import CallFacts
from argobox.server.store.coalesce import CoalescedRefusals
from argobox.server.store.facade import Store
from argobox.server.store.phone import CodeUse
from argobox.server.store.records import (
    Admission,
    AuditRecord,
    Clock,
    Event,
    NewRequest,
    Notification,
    PruneResult,
    Refused,
    RequestRecord,
    RequestStatus,
    StoreError,
)
from argobox.server.store.recovery import executor_alive, this_executor
from argobox.server.store.trail import TrailSnapshot, trail_snapshot
from argobox.server.store.tx import Tx

__all__ = [
    "Admission",
    "AuditRecord",
    "CallFacts",
    "Clock",
    "CoalescedRefusals",
    "CodeUse",
    "Event",
    "NewRequest",
    "Notification",
    "PruneResult",
    "Refused",
    "RequestRecord",
    "RequestStatus",
    "Store",
    "StoreError",
    "TrailSnapshot",
    "Tx",
    "executor_alive",
    "this_executor",
    "trail_snapshot",
]
