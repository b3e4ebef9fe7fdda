"""The outbox: notifications claimed oldest first and counted, settled as sent, retried or given up, audited; a claim
whose deliverer died is released."""

from __future__ import annotations

from pathlib import Path

import pytest

from argobox.server.store import Event, Notification, Store

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def sent(notification: Notification) -> Event:
    return Event(event="notified", actor="argobox", detail={"channel": notification.channel})


async def test_notifications_are_claimed_once_oldest_first_and_counted(tmp_path: Path) -> None:
    async with Store.open(tmp_path / "s.db", clock=Clock()) as store:
        await store.queue_notifications(
            request_id="r1", event="queued", channels=["webhooks[0]", "ntfy[0]"], payload="{}"
        )
        await store.queue_notifications(request_id="r2", event="queued", channels=["webhooks[0]"], payload='{"a": 1}')
        first = await store.claim_notifications(stale_after=20)
        again = await store.claim_notifications(stale_after=20)

    assert [(n.request_id, n.channel, n.attempts) for n in first] == [
        ("r1", "webhooks[0]", 1),
        ("r1", "ntfy[0]", 1),
        ("r2", "webhooks[0]", 1),
    ]
    assert first[2].payload == '{"a": 1}' and first[0].event == "queued"
    assert again == []


async def test_a_notification_is_settled_sent_retried_or_given_up_and_audited(tmp_path: Path) -> None:
    clock = Clock()
    async with Store.open(tmp_path / "s.db", clock=clock) as store:
        await store.queue_notifications(request_id="r1", event="queued", channels=["a", "b", "c"], payload="{}")
        a, b, c = await store.claim_notifications(stale_after=20)
        await store.settle_notification(a, retry_at=None, error=None, event=sent(a))
        await store.settle_notification(b, retry_at=clock.now + 60, error="HTTP 500", event=sent(b))
        await store.settle_notification(c, retry_at=None, error="HTTP 500", event=sent(c))
        before_retry = await store.claim_notifications(stale_after=20)
        clock.now += 60
        retried = await store.claim_notifications(stale_after=20)
        trail = await store.audit_trail(request_id="r1")

    assert before_retry == []
    assert [(n.channel, n.attempts) for n in retried] == [("b", 2)]
    assert [(e.event, e.detail["channel"]) for e in trail] == [("notified", "a"), ("notified", "b"), ("notified", "c")]


async def test_a_claim_whose_deliverer_died_is_released(tmp_path: Path) -> None:
    clock = Clock()
    async with Store.open(tmp_path / "s.db", clock=clock) as store:
        await store.queue_notifications(request_id="r1", event="queued", channels=["a"], payload="{}")
        (claimed,) = await store.claim_notifications(stale_after=20)
        clock.now += 10
        while_fresh = await store.claim_notifications(stale_after=20)
        clock.now += 11
        after_it_went_stale = await store.claim_notifications(stale_after=20)

    assert claimed.attempts == 1 and while_fresh == []
    assert [(n.id, n.attempts) for n in after_it_went_stale] == [(claimed.id, 2)]
