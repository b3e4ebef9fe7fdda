"""Table tests of the limiter: pure logic over (counts, clock)."""

from __future__ import annotations

import pytest

from argobox.policy.limits import Count, FailureState, Limits, Usage, Window, after_outcome, check

NOW = 10_000.0
LIMITS = Limits(
    requests_per_minute=5,
    mutations_per_hour=4,
    max_pending=2,
    identical_calls=Window(3, 300),
    failures=Window(3, 600),
    cooldown_seconds=900,
    per_target=Window(2, 3600),
)


@pytest.mark.parametrize(
    ("usage", "flags", "limit", "retry_after"),
    [
        pytest.param(Usage(), {}, None, None, id="fresh-agent-passes"),
        pytest.param(Usage(requests=Count(4, NOW - 10)), {}, None, None, id="under-request-budget"),
        pytest.param(Usage(requests=Count(5, NOW - 10)), {}, "requests_per_minute", 50, id="request-budget-spent"),
        pytest.param(Usage(requests=Count(5, NOW - 59.5)), {}, "requests_per_minute", 1, id="retry-at-least-1s"),
        pytest.param(Usage(cooldown_until=NOW + 120), {}, "cooldown", 120, id="cooldown-refuses-reads-too"),
        pytest.param(Usage(cooldown_until=NOW - 1), {}, None, None, id="cooldown-over"),
        pytest.param(Usage(mutations=Count(4, NOW - 600)), {}, None, None, id="mutation-budget-ignores-reads"),
        pytest.param(
            Usage(mutations=Count(4, NOW - 600)),
            {"mutation": True},
            "mutations_per_hour",
            3000,
            id="mutation-budget-spent",
        ),
        pytest.param(
            Usage(identical=Count(3, NOW - 100)),
            {"mutation": True, "identical": True},
            "identical_calls",
            200,
            id="identical-calls",
        ),
        pytest.param(
            Usage(identical=Count(3, NOW - 100)),
            {"identical": True},
            "identical_calls",
            200,
            id="identical-repeat-of-pending",
        ),
        pytest.param(
            Usage(per_target=Count(2, NOW - 3000)), {"mutation": True}, "per_target", 600, id="same-target-too-often"
        ),
        pytest.param(Usage(pending=2), {"mutation": True, "queues": True}, "max_pending", 60, id="queue-full"),
        pytest.param(Usage(pending=2), {"mutation": True}, None, None, id="pre-approved-mutation-does-not-queue"),
        pytest.param(Usage(pending=1), {"mutation": True, "queues": True}, None, None, id="queue-has-room"),
        pytest.param(
            Usage(requests=Count(5, NOW - 10), pending=9),
            {"mutation": True, "queues": True},
            "requests_per_minute",
            50,
            id="request-budget-checked-first",
        ),
    ],
)
def test_check(usage: Usage, flags: dict[str, bool], limit: str | None, retry_after: int | None) -> None:
    tripped = check(LIMITS, usage, now=NOW, **flags)

    assert (tripped.limit if tripped else None) == limit
    assert (tripped.retry_after_seconds if tripped else None) == retry_after
    if tripped:
        assert tripped.message


def test_consecutive_failures_trip_a_cooldown_and_a_success_resets_the_streak() -> None:
    state = FailureState()
    state = after_outcome(state, failed=True, now=NOW, limits=LIMITS)
    state = after_outcome(state, failed=True, now=NOW + 1, limits=LIMITS)
    assert (state.streak, state.cooldown_until) == (2, None)

    reset = after_outcome(state, failed=False, now=NOW + 2, limits=LIMITS)
    tripped = after_outcome(state, failed=True, now=NOW + 3, limits=LIMITS)

    assert reset.streak == 0
    assert tripped.cooldown_until == NOW + 3 + 900 and tripped.streak == 0


def test_failures_outside_the_window_start_a_new_streak() -> None:
    state = after_outcome(FailureState(), failed=True, now=NOW, limits=LIMITS)
    state = after_outcome(state, failed=True, now=NOW + 1, limits=LIMITS)

    later = after_outcome(state, failed=True, now=NOW + 601, limits=LIMITS)

    assert (later.streak, later.since, later.cooldown_until) == (1, NOW + 601, None)
