"""Refusals a caller can repeat without end, recorded so that repeating them cannot flood the audit trail.

Per key (for an operator refusal: the channel, who was refused, from which address, and why), the first refusal in
each window is appended at once and the others of that window are only counted. The count joins the next record of
that key (`refusals_counted_not_recorded_singly`), or the record `flush` appends when the process stops (marked
`includes_this_refusal: false`: it stands for the counted refusals only, with the detail of the latest). The counts
live in the memory of the process that refuses; the budgets' refusals are coalesced in the store's tables instead
(see `budgets`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from argobox.server.store.records import Event, StoreError

if TYPE_CHECKING:
    from argobox.server.store.facade import Store

logger = logging.getLogger("argobox")

WINDOW_SECONDS = 10.0
MAX_KEYS = 10_000
"""Past this many open windows, the counts are flushed and every window closed (memory stays bounded)."""
COUNTED = "refusals_counted_not_recorded_singly"
INCLUDES_THIS = "includes_this_refusal"


@dataclass(slots=True)
class _Window:
    opened: float
    counted: int = 0
    latest: Event | None = None
    """The latest refusal counted in this window (its detail goes into the flushed record)."""


class CoalescedRefusals:
    """The refusals one process records into `store`, coalesced per key within `window` seconds of `clock`."""

    def __init__(
        self, store: Store, *, clock: Callable[[], float] = time.monotonic, window: float = WINDOW_SECONDS
    ) -> None:
        self._store = store
        self._clock = clock
        self._window = window
        self._open: dict[Hashable, _Window] = {}

    async def record(self, key: Hashable, event: Event, *, request_id: str | None = None) -> bool:
        """Append `event` (with `request_id`) when it is the first of `key` in a window, else count it; whether it
        was appended. Raises `StoreError` (the refusal is then neither recorded nor counted)."""
        now = self._clock()
        window = self._open.get(key)
        if window is not None and 0 <= now - window.opened < self._window:  # a clock set back opens a new one
            window.counted += 1
            window.latest = event
            return False
        earlier = window.counted if window is not None else 0
        if window is None and len(self._open) >= MAX_KEYS:
            await self.flush()
        self._open[key] = _Window(opened=now)
        detail = {**event.detail, COUNTED: earlier} if earlier else event.detail
        await self._store.audit([Event(event=event.event, actor=event.actor, detail=detail)], request_id=request_id)
        return True

    async def flush(self) -> None:
        """Append a record for every count not yet recorded, and close every window (when the process stops: even
        when cancelled). A record that cannot be written is logged."""
        counted = [(w.latest, w.counted) for w in self._open.values() if w.latest is not None and w.counted]
        self._open.clear()
        with anyio.CancelScope(shield=True):
            for latest, count in counted:
                detail = {**latest.detail, COUNTED: count, INCLUDES_THIS: False}
                try:
                    await self._store.audit([Event(event=latest.event, actor=latest.actor, detail=detail)])
                except StoreError as exc:
                    logger.error("could not record %d counted %s: %s", count, latest.event, exc)
