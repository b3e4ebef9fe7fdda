"""The outbox: notifications written with the request they are about, then claimed and settled by a deliverer.

A row is `pending` until a deliverer claims it (`sending`), then `sent`, `pending` again (a later retry), or `failed`
(given up). A claim older than the deliverer's bound returns to `pending`: the process that made it died mid-way.
What a notification says and how it is delivered is `argobox.server.mediation.notify`'s business.
"""

from __future__ import annotations

from collections.abc import Sequence

from argobox.server.store.records import Event, Notification
from argobox.server.store.tx import Body, Tx

CLAIM_BATCH = 20


def queueing(*, request_id: str, event: str, channels: Sequence[str], payload: str) -> Body[None]:
    """Put one notification per channel in the outbox, due at once."""

    def body(tx: Tx) -> None:
        tx.db.executemany(
            "INSERT INTO outbox (created_at, request_id, event, channel, payload, next_at, status)"
            " VALUES (?, ?, ?, ?, ?, ?, 'pending')",
            [(tx.now, request_id, event, channel, payload, tx.now) for channel in channels],
        )

    return body


def claiming(*, stale_after: float, limit: int = CLAIM_BATCH) -> Body[list[Notification]]:
    """Claim up to `limit` due notifications (oldest first), each counted as one more attempt; a claim older than
    `stale_after` seconds is released first."""

    def body(tx: Tx) -> list[Notification]:
        tx.db.execute(
            "UPDATE outbox SET status = 'pending' WHERE status = 'sending' AND claimed_at < ?",
            (tx.now - stale_after,),
        )
        rows = tx.db.execute(
            "UPDATE outbox SET status = 'sending', claimed_at = ?, attempts = attempts + 1 WHERE id IN"
            " (SELECT id FROM outbox WHERE status = 'pending' AND next_at <= ? ORDER BY id LIMIT ?)"
            " RETURNING id, request_id, event, channel, payload, attempts",
            (tx.now, tx.now, limit),
        ).fetchall()
        claimed = [
            Notification(
                id=row["id"],
                request_id=row["request_id"],
                event=row["event"],
                channel=row["channel"],
                payload=row["payload"],
                attempts=row["attempts"],
            )
            for row in rows
        ]
        return sorted(claimed, key=lambda n: n.id)

    return body


def settling(notification: Notification, *, retry_at: float | None, error: str | None, event: Event) -> Body[None]:
    """Record how a delivery went, with its audit `event`: sent (no `error`), to be retried at `retry_at`, or given
    up (an `error` and no `retry_at`)."""
    status = "sent" if error is None else "failed" if retry_at is None else "pending"

    def body(tx: Tx) -> None:
        tx.db.execute(
            "UPDATE outbox SET status = ?, next_at = COALESCE(?, next_at), last_error = ? WHERE id = ?",
            (status, retry_at, error, notification.id),
        )
        tx.append([event], request_id=notification.request_id, agent=None, tool=None)

    return body
