"""The durable store: one SQLite database (WAL) shared by every ArgoBox process. All of ArgoBox's SQL lives here.

The rest of ArgoBox uses the names below and never reaches into the modules that implement them.
"""

from argobox.server.store.budgets import CallFacts
from argobox.server.store.core import (
    Admission,
    AuditRecord,
    Clock,
    Event,
    NewRequest,
    PruneResult,
    Refused,
    RequestRecord,
    RequestStatus,
    Store,
    StoreError,
    Tx,
)

__all__ = [
    "Admission",
    "AuditRecord",
    "CallFacts",
    "Clock",
    "Event",
    "NewRequest",
    "PruneResult",
    "Refused",
    "RequestRecord",
    "RequestStatus",
    "Store",
    "StoreError",
    "Tx",
]
