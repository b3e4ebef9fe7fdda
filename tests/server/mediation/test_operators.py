"""Every operator action goes through one authorization: the operator exists, is not an agent, shows its token when
it has one (whatever the channel), and has a role that allows the action. Each refusal is audited."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from argobox.server.app import App, open_app
from argobox.server.config.model import load_config
from argobox.server.mediation import agent_calls, operator_actions
from argobox.server.mediation.operators import OperatorClaim, Permission, authorize
from argobox.server.store import Refused, RequestStatus
from argobox.server.store.coalesce import WINDOW_SECONDS as COALESCE_WINDOW_SECONDS
from tests.conftest import WriteConfig

TOKEN = "alice-operator-token-0123456789"
DIGEST = hashlib.sha256(TOKEN.encode()).hexdigest()


class WallClock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def with_operators(write_config: WriteConfig) -> Any:
    path = write_config()
    path.write_text(
        path.read_text()
        .replace('[[operators]]\nname = "alice"', f'[[operators]]\nname = "alice"\ntoken_sha256 = "{DIGEST}"')
        .replace(
            '[[operators]]\nname = "bob"',
            '[[operators]]\nname = "bob"\n\n[[operators]]\nname = "vera"\nrole = "viewer"',
        )
    )
    return load_config(path)


async def queue(app: App) -> str:
    outcome = await agent_calls.call_tool(app, "openclaw", "docker_restart_container", {"container": "jellyfin"})
    assert outcome.request_id is not None
    return outcome.request_id


Action = Callable[[App, str, OperatorClaim], Awaitable[Any]]
ACTIONS: dict[str, Action] = {
    "approve": lambda app, rid, who: operator_actions.approve(app, rid, operator=who, note="ok"),
    "deny": lambda app, rid, who: operator_actions.deny(app, rid, operator=who, reason="no"),
    "reset_budget": lambda app, rid, who: operator_actions.reset_budget(app, "openclaw", operator=who),
    "prune_audit": lambda app, rid, who: operator_actions.prune_audit(app, before=app.clock() + 1, operator=who),
}


@pytest.mark.parametrize("action", sorted(ACTIONS))
@pytest.mark.parametrize(
    ("claim", "code"),
    [
        pytest.param(OperatorClaim("alice"), "token_required", id="token-missing"),
        pytest.param(OperatorClaim("alice", token="wrong-wrong-wrong"), "token_mismatch", id="token-wrong"),
        pytest.param(OperatorClaim("mallory", token=TOKEN), "unknown_operator", id="stranger"),
        pytest.param(OperatorClaim("openclaw"), "not_an_operator", id="an-agent"),
        pytest.param(OperatorClaim("vera"), "viewer", id="viewer"),
        pytest.param(OperatorClaim("bob", channel="console"), "no_token", id="tokenless-remote"),
    ],
)
async def test_every_operator_action_refuses_and_audits_an_unproven_operator(
    write_config: WriteConfig, action: str, claim: OperatorClaim, code: str
) -> None:
    async with open_app(with_operators(write_config)) as app:
        request_id = await queue(app)
        before = len(await app.store.audit_trail())
        with pytest.raises(Refused) as refused:
            await ACTIONS[action](app, request_id, claim)
        after = await app.store.audit_trail()
        record = await app.store.get(request_id)

    assert refused.value.code == code
    assert [e.event for e in after[before:]] == ["operator_refused"]
    assert after[-1].actor == f"operator:{claim.name}" and after[-1].detail["action"] != ""
    assert TOKEN not in str(after[-1].detail) and "wrong-wrong-wrong" not in str(after[-1].detail)
    assert record is not None and record.status is RequestStatus.PENDING  # nothing was decided
    assert not any(e.event == "pruned" for e in after)


@pytest.mark.parametrize("action", sorted(ACTIONS))
async def test_every_operator_action_goes_through_with_the_right_token(write_config: WriteConfig, action: str) -> None:
    async with open_app(with_operators(write_config)) as app:
        request_id = await queue(app)
        with anyio.fail_after(60):
            await ACTIONS[action](app, request_id, OperatorClaim("alice", token=TOKEN))
        events = [e.event for e in await app.store.audit_trail()]

    assert "operator_refused" not in events


async def test_a_channel_that_proved_the_operator_needs_no_token_but_still_a_role(write_config: WriteConfig) -> None:
    async with open_app(with_operators(write_config)) as app:
        proven = await authorize(
            app, OperatorClaim("alice", channel="home-assistant", verified_by="ha user 1"), Permission.DECIDE
        )
        with pytest.raises(Refused) as viewer:
            await authorize(app, OperatorClaim("vera", channel="home-assistant", verified_by="x"), Permission.DECIDE)

    assert proven.name == "alice"
    assert viewer.value.code == "viewer"


async def test_a_viewer_may_view(write_config: WriteConfig) -> None:
    async with open_app(with_operators(write_config)) as app:
        entry = await authorize(app, OperatorClaim("vera"), Permission.VIEW)

    assert entry.role == "viewer"


async def test_a_denial_needs_a_reason(write_config: WriteConfig) -> None:
    async with open_app(with_operators(write_config)) as app:
        request_id = await queue(app)
        with pytest.raises(Refused) as refused:
            await operator_actions.deny(app, request_id, operator=OperatorClaim("bob"), reason="   ")
        record = await app.store.get(request_id)

    assert refused.value.code == "reason_required"
    assert record is not None and record.status is RequestStatus.PENDING


async def test_a_session_proves_the_operator_by_the_hash_of_the_token_it_signed_in_with(
    write_config: WriteConfig,
) -> None:
    """A console session keeps the hash its sign-in matched: valid while the configuration holds that hash, and the
    check is still made here, in constant time, with the role and the refusal's audit record as for a token."""
    async with open_app(with_operators(write_config)) as app:
        session = OperatorClaim("alice", channel="console", token_sha256=DIGEST, remote="192.0.2.7")
        entry = await authorize(app, session, Permission.DECIDE)
        replaced = OperatorClaim("alice", channel="console", token_sha256="0" * 64, remote="192.0.2.7")
        with pytest.raises(Refused) as changed:
            await authorize(app, replaced, Permission.VIEW)
        with pytest.raises(Refused) as tokenless:  # bob has no token: no session of his can be proven
            await authorize(app, OperatorClaim("bob", channel="console", token_sha256=DIGEST), Permission.VIEW)
        with pytest.raises(Refused) as neither:
            await authorize(app, OperatorClaim("alice", channel="console"), Permission.VIEW)
        refusals = [e for e in await app.store.audit_trail() if e.event == "operator_refused"]

    assert entry.name == "alice"
    assert (changed.value.code, tokenless.value.code, neither.value.code) == (
        "token_changed",
        "no_token",
        "token_required",
    )
    assert [e.detail.get("remote") for e in refusals] == ["192.0.2.7", None, None]
    assert refusals[0].detail == {
        "reason": "the token of operator 'alice' changed since this session signed in",
        "channel": "console",
        "action": "view",
        "remote": "192.0.2.7",
    }
    assert DIGEST not in str([e.detail for e in refusals])


async def test_repeated_refusals_are_recorded_once_a_window_and_the_rest_counted_then_flushed_on_close(
    write_config: WriteConfig,
) -> None:
    """A client that keeps trying (a viewer's approve, a stale session) cannot flood the trail: per channel, actor,
    client address and reason, the first refusal in each window is recorded and the rest counted, into the next
    record or into the one written when the process closes its app."""
    config = with_operators(write_config)
    clock = WallClock()
    viewer = OperatorClaim("vera")
    phone = OperatorClaim("vera", channel="home-assistant", verified_by="ha user 1")
    stale = OperatorClaim("alice", channel="console", token_sha256="0" * 64, remote="192.0.2.7")
    elsewhere = OperatorClaim("alice", channel="console", token_sha256="0" * 64, remote="192.0.2.8")
    async with open_app(config, clock=clock) as app:
        request_id = await queue(app)
        before = len(await app.store.audit_trail())
        for claim in (viewer, viewer, viewer, phone, stale, stale, elsewhere):
            with pytest.raises(Refused):
                await authorize(app, claim, Permission.DECIDE, request_id=request_id)
        clock.now += COALESCE_WINDOW_SECONDS
        for _ in range(2):
            with pytest.raises(Refused):
                await operator_actions.approve(app, request_id, operator=viewer, note="")
    async with open_app(config, clock=clock) as app:
        trail = (await app.store.audit_trail())[before:]

    counted = "refusals_counted_not_recorded_singly"
    refusals = [
        (e.actor, e.detail["channel"], e.detail.get("remote"), e.detail.get(counted), e.request_id)
        for e in trail
        if e.event == "operator_refused"
    ]
    assert refusals[:5] == [
        ("operator:vera", "cli", None, None, request_id),
        ("operator:vera", "home-assistant", None, None, request_id),
        ("operator:alice", "console", "192.0.2.7", None, request_id),
        ("operator:alice", "console", "192.0.2.8", None, request_id),
        ("operator:vera", "cli", None, 2, request_id),  # the two repeats of the first window
    ]
    assert sorted(refusals[5:]) == [  # flushed on close: the counted ones only
        ("operator:alice", "console", "192.0.2.7", 1, None),
        ("operator:vera", "cli", None, 1, None),
    ]
    assert [e.detail.get("includes_this_refusal") for e in trail if e.event == "operator_refused"][5:] == [False] * 2
