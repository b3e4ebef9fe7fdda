"""What an agent reads about its request says what to do next: check back later while it runs, ask again once it
expired. The text alone must carry it (Hermes drops the structured content of an error result)."""

from __future__ import annotations

import pytest

from argobox.server.mediation.outcome import outcome_of
from argobox.server.store import RequestRecord, RequestStatus

CHECK_BACK = 'check back later with argobox_request_status(request_id="abc")'


def record(status: RequestStatus, decided_by: str | None = "alice") -> RequestRecord:
    return RequestRecord(
        id="abc",
        agent="openclaw",
        tool="docker_restart_container",
        arguments={"container": "jellyfin"},
        digest="d",
        classification="mutation",
        effect="approve",
        rule="agents.openclaw.rules[1]",
        reason="needs approval",
        status=status,
        created_at=0.0,
        expires_at=1767225600.0,
        decided_by=decided_by,
        decided_at=None,
        note=None,
        executor=None,
        result=None,
        error=None,
        updated_at=0.0,
    )


@pytest.mark.parametrize(
    ("status", "decided_by", "text"),
    [
        pytest.param(
            RequestStatus.APPROVED,
            "alice",
            f"approved by alice, about to execute: restart container 'jellyfin'; {CHECK_BACK}",
            id="approved",
        ),
        pytest.param(
            RequestStatus.EXECUTING, "alice", f"executing: restart container 'jellyfin'; {CHECK_BACK}", id="executing"
        ),
        pytest.param(
            RequestStatus.EXPIRED,
            None,
            "expired: restart container 'jellyfin' was not approved before 2026-01-01T00:00:00.000Z; ask again if it "
            "is still needed",
            id="expired",
        ),
    ],
)
def test_a_request_in_progress_or_expired_tells_the_agent_what_to_do(
    status: RequestStatus, decided_by: str | None, text: str
) -> None:
    assert outcome_of(record(status, decided_by)).message == text
