"""Coalesced refusals, on a real store and a clock that moves only when told: the first of a key in each window is
recorded, the rest are counted into the next record of that key, and `flush` records what is still only counted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from argobox.server.store import CoalescedRefusals, Event, Store
from argobox.server.store.coalesce import WINDOW_SECONDS
from tests.server.store.queue import Clock

pytestmark = pytest.mark.anyio


def refused(reason: str, **detail: Any) -> Event:
    return Event(event="operator_refused", actor="operator:vera", detail={"reason": reason, **detail})


async def test_repeats_within_a_window_are_counted_into_the_next_record_and_flushed(tmp_path: Path) -> None:
    clock = Clock()
    async with Store.open(tmp_path / "s.db", clock=clock) as store:
        refusals = CoalescedRefusals(store, clock=clock)
        key, other = ("console", "vera", "viewer"), ("mcp-http", "vera", "viewer")
        written = [await refusals.record(key, refused("viewer", n=n), request_id="r1") for n in range(3)]
        written.append(await refusals.record(other, refused("viewer", n=3)))
        clock.now += WINDOW_SECONDS
        written.append(await refusals.record(key, refused("viewer", n=4), request_id="r2"))
        written.append(await refusals.record(key, refused("viewer", n=5)))
        written.append(await refusals.record(key, refused("viewer", n=6)))
        await refusals.flush()
        await refusals.flush()  # nothing is left to record
        trail = [(e.request_id, e.detail) for e in await store.audit_trail()]

    assert written == [True, False, False, True, True, False, False]
    assert trail == [
        ("r1", {"reason": "viewer", "n": 0}),
        (None, {"reason": "viewer", "n": 3}),
        ("r2", {"reason": "viewer", "n": 4, "refusals_counted_not_recorded_singly": 2}),
        (None, {"reason": "viewer", "n": 6, "refusals_counted_not_recorded_singly": 2, "includes_this_refusal": False}),
    ]


async def test_a_clock_set_back_opens_a_new_window_rather_than_counting_for_ever(tmp_path: Path) -> None:
    clock = Clock()
    async with Store.open(tmp_path / "s.db", clock=clock) as store:
        refusals = CoalescedRefusals(store, clock=clock)
        first = await refusals.record("k", refused("x"))
        clock.now -= 3600
        again = await refusals.record("k", refused("x"))

    assert (first, again) == (True, True)


async def test_flushing_when_cancelled_still_records_the_counts(tmp_path: Path) -> None:
    clock = Clock()
    async with Store.open(tmp_path / "s.db", clock=clock) as store:
        refusals = CoalescedRefusals(store, clock=clock)
        await refusals.record("k", refused("x"))
        await refusals.record("k", refused("x"))
        with anyio.CancelScope() as scope:
            scope.cancel()
            await refusals.flush()
        trail = [e.detail for e in await store.audit_trail()]

    assert trail[-1] == {"reason": "x", "refusals_counted_not_recorded_singly": 1, "includes_this_refusal": False}
