"""Requests to queue in a store under test, on a clock that moves only when told."""

from __future__ import annotations

from argobox.policy.limits import Limits
from argobox.server.store import CallFacts, Event, NewRequest, RequestRecord, RequestStatus, Store


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def create(store: Store, request: NewRequest, events: list[Event]) -> RequestRecord:
    """Queue `request` through the store's one way in (budgets generous enough never to refuse it)."""
    admission = await store.admit(
        CallFacts(agent=request.agent), Limits(), tool=request.tool, events=events, request=request
    )
    assert admission.record is not None
    return admission.record


def pending(request_id: str = "req0000000000001", *, expires_at: float = 1_800_000_600.0) -> NewRequest:
    return NewRequest(
        id=request_id,
        agent="openclaw",
        tool="docker_restart_container",
        arguments={"container": "jellyfin"},
        digest="d" * 64,
        classification="mutate",
        effect="approve",
        rule="agents.openclaw.rules[1]",
        reason="needs approval",
        status=RequestStatus.PENDING,
        expires_at=expires_at,
    )
