"""The one envelope every agent tool answers with, whatever happened, and the one family of statuses it carries.

A call's status is its request's status (`RequestStatus`, kept by the store) or one of three that no request
carries: `invalid_arguments` (bad input, nothing recorded as a request), `refused` (ArgoBox could not record the
call, so nothing ran) and `rate_limited` (a budget was exhausted; see `limit`). The text of every outcome says
plainly what happened and what to do next: some clients show the model only that text.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from argobox.policy.catalog import CATALOG, ToolClass, describe_call
from argobox.policy.limits import Tripped
from argobox.server.store import RequestRecord, RequestStatus
from argobox.server.times import iso


class CallStatus(StrEnum):
    """Every status an agent's call can end in: the request statuses, and three that no request carries."""

    PENDING = RequestStatus.PENDING.value
    APPROVED = RequestStatus.APPROVED.value
    EXECUTING = RequestStatus.EXECUTING.value
    SUCCEEDED = RequestStatus.SUCCEEDED.value
    FAILED = RequestStatus.FAILED.value
    DENIED = RequestStatus.DENIED.value
    EXPIRED = RequestStatus.EXPIRED.value
    UNKNOWN = RequestStatus.UNKNOWN.value
    INVALID_ARGUMENTS = "invalid_arguments"
    REFUSED = "refused"
    RATE_LIMITED = "rate_limited"

    @classmethod
    def of(cls, status: RequestStatus) -> CallStatus:
        return cls(status.value)


ERROR_STATUSES = frozenset({CallStatus.FAILED, CallStatus.UNKNOWN, CallStatus.INVALID_ARGUMENTS, CallStatus.REFUSED})
"""The statuses answered as MCP error results: something went wrong with the call itself.

A denial, a rate limit and an expiry are answers, not errors: Hermes Agent and OpenClaw pause a server after three
error results in a row (Hermes then answers every tool of it, the allowed ones included, without calling ArgoBox),
and Hermes shows its model only the text of an error result. The text of every outcome starts with its status,
so the model reads "denied: ..." or "rate_limited: ..." either way (see docs/clients.md)."""
REPORT_ERROR_STATUSES = frozenset({CallStatus.INVALID_ARGUMENTS, CallStatus.REFUSED})
"""For `argobox_request_status`, which reports on a request: an error only when the check itself failed."""

R = TypeVar("R")


class Outcome(BaseModel, Generic[R]):
    """What every ArgoBox tool answers with, whatever happened."""

    model_config = ConfigDict(extra="forbid")

    status: CallStatus
    message: str = Field(description="One line saying what happened and what to do next.")
    request_id: str | None = Field(default=None, description="Check on it with argobox_request_status.")
    tool: str | None = None
    expires_at: str | None = Field(default=None, description="When a pending request expires (ISO 8601 UTC).")
    reason: str | None = Field(default=None, description="Why the policy decided as it did, naming the rule.")
    result: R | None = Field(default=None, description="The backend's answer when the call succeeded.")
    error: str | None = Field(default=None, description="What went wrong when the call failed.")
    limit: str | None = Field(default=None, description="Which budget a rate_limited call tripped.")
    retry_after_seconds: int | None = Field(default=None, description="When a rate_limited call may be retried.")
    _report: bool = PrivateAttr(default=False)
    _result_json: str | None = PrivateAttr(default=None)

    def with_redacted_result(self, text: str) -> Outcome[R]:
        """Mark `result` as already redacted (by the redactor of the call that produced it, which knows the
        result's own secrets too) and give its JSON `text` (sorted keys): the answer uses both as they are, rather
        than copying, redacting and serialising the result a second time."""
        self._result_json = text
        return self

    @property
    def redacted_result_json(self) -> str | None:
        """The JSON of a result marked by `with_redacted_result`, else None."""
        return self._result_json

    def as_report(self) -> Outcome[R]:
        """This outcome as the answer of a status check: its request's failure is not the check's."""
        self._report = True
        return self

    @property
    def is_error(self) -> bool:
        return self.status in (REPORT_ERROR_STATUSES if self._report else ERROR_STATUSES)


def failure(
    status: CallStatus, message: str, *, tool: str | None = None, request_id: str | None = None
) -> Outcome[Any]:
    """An outcome that carries no result; its message is also its error."""
    return Outcome(status=status, tool=tool, request_id=request_id, message=message, error=message)


def refused(tool: str | None) -> Outcome[Any]:
    """The answer when the audit record could not be written: nothing ran (fail closed)."""
    message = "refused: ArgoBox could not write the audit record, so nothing was executed; tell the operator"
    return failure(CallStatus.REFUSED, message, tool=tool)


def rate_limited(tool: str | None, tripped: Tripped) -> Outcome[Any]:
    message = (
        f"rate_limited: {tripped.message} (limit {tripped.limit}); retry after {tripped.retry_after_seconds} s, "
        "and do not loop on failing calls"
    )
    return Outcome(
        status=CallStatus.RATE_LIMITED,
        tool=tool,
        message=message,
        limit=tripped.limit,
        retry_after_seconds=tripped.retry_after_seconds,
    )


def outcome_of(record: RequestRecord, catalog: Mapping[str, ToolClass] = CATALOG) -> Outcome[Any]:
    """A request as its agent (or an operator) sees it: its status, and a message that says what happened (in the
    words of `catalog`, the table in force, which knows the configured runbooks)."""
    what = describe_call(record.tool, record.arguments, catalog)
    by_operator = record.decided_by not in (None, "policy")
    reason = record.note if record.status is RequestStatus.DENIED and by_operator else record.reason
    expires = iso(record.expires_at)
    check_back = f'check back later with argobox_request_status(request_id="{record.id}")'
    messages = {
        RequestStatus.SUCCEEDED: f"succeeded: {what}",
        RequestStatus.FAILED: f"failed: {what}: {record.error}",
        RequestStatus.PENDING: f"waiting for operator approval: {what} (request {record.id}, expires {expires}); "
        "check back later with argobox_request_status and do not repeat the call",
        RequestStatus.APPROVED: f"approved by {record.decided_by}, about to execute: {what}; {check_back}",
        RequestStatus.EXECUTING: f"executing: {what}; {check_back}",
        RequestStatus.DENIED: f"denied: {what}: {reason}; the decision is final",
        RequestStatus.EXPIRED: f"expired: {what} was not approved before {expires}; ask again if it is still needed",
        RequestStatus.UNKNOWN: f"unknown: {what} was interrupted; the operator must check whether it ran",
    }
    return Outcome(
        status=CallStatus.of(record.status),
        message=messages[record.status],
        request_id=record.id,
        tool=record.tool,
        expires_at=expires,
        reason=reason,
        result=record.result,
        error=record.error,  # a denial is an answer, not an error: its reason is in `reason`
    )
