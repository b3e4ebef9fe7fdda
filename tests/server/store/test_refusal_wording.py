"""What an operator reads when approve or deny finds the request no longer pending: each past state said plainly."""

from __future__ import annotations

import pytest

from argobox.server.store import RequestRecord, RequestStatus
from argobox.server.store.requests import refusal


def record(status: RequestStatus, decided_by: str | None) -> RequestRecord:
    return RequestRecord(
        id="abc",
        agent="openclaw",
        tool="docker_restart_container",
        arguments={"container": "jellyfin"},
        digest="d",
        classification="mutation",
        effect="allow",
        rule=None,
        reason="r",
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


ONLY = "only a pending request can be"


@pytest.mark.parametrize(
    ("status", "decided_by", "verb", "code", "text"),
    [
        pytest.param(
            RequestStatus.SUCCEEDED, "policy", "approve", "not_pending",
            f"request abc was allowed by policy (now succeeded); {ONLY} approved", id="allowed-by-policy",
        ),
        pytest.param(
            RequestStatus.EXECUTING, "policy", "deny", "not_pending",
            f"request abc was allowed by policy (now executing); {ONLY} denied", id="allowed-by-policy-running",
        ),
        pytest.param(
            RequestStatus.DENIED, "policy", "approve", "not_pending",
            f"request abc was denied by policy; {ONLY} approved", id="denied-by-policy",
        ),
        pytest.param(
            RequestStatus.SUCCEEDED, "alice", "deny", "not_pending",
            f"request abc was already approved by alice (now succeeded); {ONLY} denied", id="approved-succeeded",
        ),
        pytest.param(
            RequestStatus.FAILED, "alice", "approve", "not_pending",
            f"request abc was already approved by alice (now failed); {ONLY} approved", id="approved-failed",
        ),
        pytest.param(
            RequestStatus.UNKNOWN, "alice", "approve", "not_pending",
            f"request abc was already approved by alice (outcome unknown: it was interrupted while executing); "
            f"{ONLY} approved",
            id="approved-unknown",
        ),
        pytest.param(
            RequestStatus.DENIED, "bob", "deny", "not_pending",
            f"request abc was already denied by bob; {ONLY} denied", id="denied-by-operator",
        ),
        pytest.param(
            RequestStatus.EXPIRED, None, "approve", "expired",
            f"request abc expired at 2026-01-01T00:00:00.000Z without a decision; {ONLY} approved", id="expired",
        ),
        pytest.param(
            RequestStatus.EXPIRED, None, "deny", "expired",
            f"request abc expired at 2026-01-01T00:00:00.000Z without a decision; {ONLY} denied", id="expired-deny",
        ),
        pytest.param(
            RequestStatus.SUCCEEDED, None, "deny", "not_pending",
            f"request abc is no longer pending (now succeeded); {ONLY} denied", id="undecided-record",
        ),
    ],
)  # fmt: skip
def test_a_request_no_longer_pending_is_refused_in_plain_past_tense(
    status: RequestStatus, decided_by: str | None, verb: str, code: str, text: str
) -> None:
    refused = refusal("abc", record(status, decided_by), verb)
    assert (refused.code, str(refused)) == (code, text)


def test_an_unknown_request_is_refused_by_its_id() -> None:
    refused = refusal("nosuchrequest000", None, "deny")
    assert (refused.code, str(refused)) == ("not_found", "no request 'nosuchrequest000'")
