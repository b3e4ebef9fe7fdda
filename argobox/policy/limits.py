"""Rate limits and budgets as pure logic over counts and a clock value handed in by the caller.

The store counts what an agent was admitted to do in each window (refused calls are not counted, so a flood
cannot extend its own block); `check` says which limit, if any, a new call would trip and when to retry.
`after_outcome` moves the consecutive-failure streak that trips a cooldown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Window:
    count: int
    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    requests_per_minute: int = 60
    """Every tools/call counts, except argobox_request_status."""
    mutations_per_hour: int = 20
    """Mutating calls that were allowed or queued."""
    max_pending: int = 5
    """Requests waiting for approval at once."""
    identical_calls: Window = Window(3, 300)
    """The same tool with the same canonical arguments."""
    failures: Window = Window(5, 600)
    """Consecutive failed executions or denials within the window..."""
    cooldown_seconds: float = 900
    """...trip a cooldown this long, during which every call is refused."""
    per_target: Window = Window(3, 3600)
    """Mutations of the same target (e.g. one container), whatever the tool."""


@dataclass(frozen=True, slots=True)
class Count:
    """How many admitted calls fall in a window, and when the oldest of them was."""

    count: int = 0
    oldest_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    requests: Count = Count()
    mutations: Count = Count()
    identical: Count = Count()
    per_target: Count = Count()
    pending: int = 0
    cooldown_until: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Tripped:
    limit: str
    """requests_per_minute, mutations_per_hour, max_pending, identical_calls, per_target or cooldown."""
    retry_after_seconds: int
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureState:
    streak: int = 0
    since: float | None = None
    cooldown_until: float | None = None


def _retry(count: Count, window: float, now: float) -> int:
    if count.oldest_at is None:
        return 1
    return max(1, math.ceil(count.oldest_at + window - now))


def check(
    limits: Limits, usage: Usage, *, now: float, mutation: bool = False, queues: bool = False, identical: bool = False
) -> Tripped | None:
    """The first limit a new call would trip, or None when it may proceed.

    `mutation`: a mutating call that would run or be queued; `queues`: it would wait for approval; `identical`:
    the identical-call limit applies (mutations, including repeats of a pending request).
    """
    if usage.cooldown_until is not None and usage.cooldown_until > now:
        wait = max(1, math.ceil(usage.cooldown_until - now))
        return Tripped(
            limit="cooldown",
            retry_after_seconds=wait,
            message=f"too many consecutive failures or denials; every call is refused for {wait} more seconds "
            "unless an operator resets the budget",
        )
    if usage.requests.count >= limits.requests_per_minute:
        return Tripped(
            limit="requests_per_minute",
            retry_after_seconds=_retry(usage.requests, 60, now),
            message=f"more than {limits.requests_per_minute} calls in a minute",
        )
    window = limits.identical_calls
    if identical and usage.identical.count >= window.count:
        return Tripped(
            limit="identical_calls",
            retry_after_seconds=_retry(usage.identical, window.seconds, now),
            message=f"the same call was made {window.count} times in {window.seconds:g} s",
        )
    if mutation:
        checks = (
            (
                "per_target",
                usage.per_target,
                limits.per_target,
                f"this target was changed {limits.per_target.count} times in {limits.per_target.seconds:g} s",
            ),
            (
                "mutations_per_hour",
                usage.mutations,
                Window(limits.mutations_per_hour, 3600),
                f"more than {limits.mutations_per_hour} changes in an hour",
            ),
        )
        for name, count, limit, message in checks:
            if count.count >= limit.count:
                return Tripped(limit=name, retry_after_seconds=_retry(count, limit.seconds, now), message=message)
    if queues and usage.pending >= limits.max_pending:
        return Tripped(
            limit="max_pending",
            retry_after_seconds=60,
            message=f"{usage.pending} requests already wait for approval (at most {limits.max_pending}); "
            "wait for the operator to decide them",
        )
    return None


def after_outcome(state: FailureState, *, failed: bool, now: float, limits: Limits) -> FailureState:
    """The failure streak after one more outcome; a streak of `failures.count` within its window trips a cooldown."""
    if not failed:
        return replace(state, streak=0, since=None)
    fresh = state.since is None or now - state.since > limits.failures.seconds
    streak, since = (1, now) if fresh else (state.streak + 1, state.since)
    if streak >= limits.failures.count:
        return FailureState(streak=0, since=None, cooldown_until=now + limits.cooldown_seconds)
    return replace(state, streak=streak, since=since)
