"""The console's own layers, fast: sign-in and sessions through ArgoBox's one `authorize`, the sign-in limit, sessions,
the Host and same-origin checks, how agent values are split off and made inert, the configuration, and notification
links.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from starlette.datastructures import Headers

from argobox.policy.catalog import CATALOG
from argobox.server.app import open_app
from argobox.server.config.model import Config, ConfigError, load_config
from argobox.server.config.tokens import token_sha256
from argobox.server.console import auth
from argobox.server.console.auth import SignInLimiter, operator_for_token
from argobox.server.console.pages import stale_message
from argobox.server.console.present import event_view, summary_parts, supplied_arguments
from argobox.server.console.render import STATIC, environment, inert
from argobox.server.console.security import HostPolicy, session_cookie
from argobox.server.console.sessions import Sessions
from argobox.server.mediation import agent_calls, notify
from argobox.server.mediation.operators import Permission
from argobox.server.store import Refused
from argobox.server.transport.operator_views import mark_event, mark_request
from tests.conftest import WriteConfig
from tests.server.test_notify import Receiver, channels

ALICE, VERA, AGENT = "alice-token-0123456789", "vera-token-0123456789", "agent-token-0123456789"
OPERATORS = f"""[[operators]]
name = "alice"
token_sha256 = "{token_sha256(ALICE)}"

[[operators]]
name = "vera"
role = "viewer"
token_sha256 = "{token_sha256(VERA)}"

[[operators]]
name = "bob"
"""


def console_config(write_config: WriteConfig, extra: str = "") -> Config:
    """alice (approver) and vera (viewer) with tokens, bob without one; openclaw with a token."""
    path = write_config(token_sha256=token_sha256(AGENT), extra=extra)
    text = path.read_text().replace('[[operators]]\nname = "alice"\n\n[[operators]]\nname = "bob"\n', OPERATORS)
    path.write_text(text)
    return load_config(path)


@pytest.mark.parametrize(
    ("name", "token", "outcome"),
    [
        pytest.param("alice", ALICE, "approver", id="approver-with-her-token"),
        pytest.param("vera", VERA, "viewer", id="viewer-with-hers"),
        pytest.param("alice", VERA, "token_mismatch", id="someone-elses-token"),
        pytest.param("alice", AGENT, "token_mismatch", id="an-agent-token-for-an-operator"),
        pytest.param("openclaw", AGENT, "not_an_operator", id="an-agent-name"),
        pytest.param("bob", "", "no_token", id="operator-without-a-token"),
        pytest.param("mallory", ALICE, "unknown_operator", id="unknown-name"),
    ],
)
async def test_sign_in_is_argoboxs_authorize_with_the_typed_token_and_each_refusal_is_audited_once(
    write_config: WriteConfig, name: str, token: str, outcome: str
) -> None:
    async with open_app(console_config(write_config)) as app:
        try:
            operator = await auth.sign_in(app, name, token, "192.0.2.9")
        except Refused as exc:
            got = exc.code
        else:
            got = operator.role
        refusals = [e for e in await app.store.audit_trail() if e.event == "operator_refused"]

    assert got == outcome
    if outcome in ("approver", "viewer"):
        assert refusals == []
    else:
        assert len(refusals) == 1
        assert refusals[0].detail["channel"] == "console" and refusals[0].detail["remote"] == "192.0.2.9"
        assert refusals[0].detail["action"] == "view"
        assert all(t not in str(refusals[0].detail) for t in (ALICE, VERA, AGENT))


async def test_a_session_acts_by_the_hash_it_signed_in_with_and_a_viewer_never_decides(
    write_config: WriteConfig,
) -> None:
    async with open_app(console_config(write_config)) as app:
        alice = await auth.check(app, auth.session_claim("alice", token_sha256(ALICE), "::1"), Permission.DECIDE)
        codes: list[str] = []
        for claim, permission in (
            (auth.session_claim("vera", token_sha256(VERA), "::1"), Permission.DECIDE),
            (auth.session_claim("vera", token_sha256(VERA), "::1"), Permission.RESET_BUDGET),
            (auth.session_claim("alice", "0" * 64, "::1"), Permission.VIEW),  # her token was replaced since
        ):
            with pytest.raises(Refused) as refused:
                await auth.check(app, claim, permission)
            codes.append(refused.value.code)
        vera = await auth.check(app, auth.session_claim("vera", token_sha256(VERA), "::1"), Permission.VIEW)

    assert (alice.name, alice.can_decide, vera.can_decide) == ("alice", True, False)
    assert codes == ["viewer", "viewer", "token_changed"]


def test_a_bearer_token_names_its_operator_and_an_agent_token_names_none(write_config: WriteConfig) -> None:
    config = console_config(write_config)
    assert operator_for_token(config, ALICE) == "alice"
    assert operator_for_token(config, VERA) == "vera"
    assert operator_for_token(config, AGENT) is None
    assert auth.is_agent_token(config, AGENT) and not auth.is_agent_token(config, ALICE)
    assert auth.may_decide(config, "alice") and not auth.may_decide(config, "vera")
    assert not auth.may_decide(config, "mallory")


def test_sign_in_is_refused_after_five_failures_per_address_until_the_window_passes() -> None:
    now = [1000.0]
    limiter = SignInLimiter(lambda: now[0], failures=5, window=300)
    for _ in range(5):
        assert limiter.retry_after("10.0.0.1") is None
        limiter.failed("10.0.0.1")
    blocked = limiter.retry_after("10.0.0.1")
    other = limiter.retry_after("10.0.0.2")
    now[0] += 301
    assert blocked is not None and 1 <= blocked <= 300
    assert other is None
    assert limiter.retry_after("10.0.0.1") is None


def test_sessions_end_when_idle_or_signed_out_and_polls_do_not_keep_them_alive() -> None:
    now = [0.0]
    sessions = Sessions(lambda: now[0], idle_seconds=1800)
    cookie, session = sessions.create("alice", "a" * 64)
    other, _ = sessions.create("bob", "b" * 64)
    now[0] = 1700
    assert sessions.get(cookie, touch=False) is session  # a live poll
    now[0] = 1801
    assert sessions.get(cookie, touch=True) is None  # idle for 1801 s: gone
    assert sessions.get(other, touch=False) is None
    again, _ = sessions.create("alice", "a" * 64)
    assert sessions.end(again) is not None
    assert sessions.get(again, touch=True) is None
    assert sessions.get("forged", touch=True) is None and len(sessions) == 0


def test_the_host_check_accepts_loopback_and_the_public_url_only() -> None:
    local = HostPolicy.build("127.0.0.1", None)
    public = HostPolicy.build("0.0.0.0", "https://argobox.example.org")  # noqa: S104 - a test of the policy
    assert local.allows_host("127.0.0.1:8766") and local.allows_host("localhost:1") and local.allows_host("[::1]:9")
    assert not local.allows_host("evil.example") and not local.allows_host("127.0.0.1.evil.example:80")
    assert not local.allows_host(None) and not local.allows_host("user@127.0.0.1")
    assert public.allows_host("argobox.example.org") and public.allows_host("argobox.example.org:443")
    assert not public.allows_host("argobox.example.org:8443") and not public.allows_host("0.0.0.0:8766")


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({"host": "127.0.0.1:8766", "origin": "http://127.0.0.1:8766", "sec-fetch-site": "same-origin"}, False),
        ({"host": "argobox.example.org", "origin": "https://argobox.example.org"}, False),
        ({"host": "127.0.0.1:8766", "sec-fetch-site": "same-origin"}, False),
        ({"host": "127.0.0.1:8766", "origin": "http://127.0.0.1:9999"}, True),
        ({"host": "127.0.0.1:8766", "origin": "null"}, True),
        ({"host": "127.0.0.1:8766", "sec-fetch-site": "same-site"}, True),
        ({"host": "127.0.0.1:8766"}, True),
    ],
)
def test_state_changes_must_come_from_the_consoles_own_pages(headers: dict[str, str], refused: bool) -> None:
    policy = HostPolicy.build("127.0.0.1", "https://argobox.example.org")
    assert (policy.cross_site(Headers(headers)) is not None) is refused


def test_the_session_cookie_is_secure_and_host_bound_over_https() -> None:
    plain = session_cookie("v", secure=False)
    secure = session_cookie("v", secure=True)
    assert plain == "argobox_session=v; Path=/; HttpOnly; SameSite=Strict"
    assert secure == "__Host-argobox_session=v; Path=/; HttpOnly; SameSite=Strict; Secure"


def test_agent_values_are_rendered_as_visible_inert_text() -> None:
    payload = {"data": {"message": "<script>alert(1)</script>\x1b[31m\u202eevil\u200b\x85"}}
    rendered = environment().from_string("<pre>{{ value|inert }}</pre>").render(value=payload)
    assert "<script>" not in rendered and "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered
    assert "\\u001b[31m&lt;U+202E&gt;evil&lt;U+200B&gt;\\x85" in rendered
    assert "\u202e" not in rendered and "\x1b" not in rendered and "\x85" not in rendered
    assert inert("line\nbreak\u2028") == "line\\nbreak<U+2028>"
    assert inert({"a": ["b\nc"]}) == '{\n  "a": [\n    "b\\nc"\n  ]\n}'  # JSON's own lines are kept


def test_the_summary_keeps_argoboxs_words_apart_from_the_agents_values() -> None:
    parts = summary_parts(
        "ha_call_service", {"domain": "lock", "service": "unlock", "entity_id": "lock.front"}, CATALOG
    )
    assert [(p.text, p.agent) for p in parts] == [
        ("call Home Assistant service ", False),
        ("lock", True),
        (".", False),
        ("unlock", True),
        (" on ", False),
        ("'lock.front'", True),
    ]
    unknown = summary_parts("<img src=x>", {}, CATALOG)
    assert unknown[-1].agent is True and unknown[-1].text == "<img src=x>"


def test_a_runbook_summary_quotes_each_word_whole_and_marks_the_agents_part_of_it(write_config: WriteConfig) -> None:
    config = load_config(
        write_config(
            extra="""
[runbooks.clean]
description = "Clean a scratch area"
argv = ["find", "/srv/scratch/{area}", "-delete"]
params = { area = { pattern = "^.*$" } }
"""
        )
    )

    parts = summary_parts("runbook_clean", {"area": "a b'c"}, config.catalog)

    assert "".join(p.text for p in parts) == "run runbook clean on host local: find '/srv/scratch/a b'\"'\"'c' -delete"
    assert [p.text for p in parts if p.agent] == ["a b'\"'\"'c"]


def test_pages_split_what_the_agent_wrote_from_argoboxs_account_as_the_operator_tools_do() -> None:
    request: dict[str, Any] = {"id": "abc", "tool": "docker_restart_container", "arguments": {"container": "<b>"}}
    received: dict[str, Any] = {
        "event": "received",
        "actor": "agent:openclaw",
        "tool": "docker_restart_container",
        "detail": {"arguments": {"container": "<b>"}},
    }
    unknown: dict[str, Any] = {
        "event": "refused",
        "actor": "argobox",
        "tool": "<img src=x>",
        "detail": {"reason": "unknown tool '<img src=x>'"},
    }
    decision: dict[str, Any] = {"event": "decision", "actor": "policy", "tool": "docker_restart_container"}
    failed: dict[str, Any] = {"event": "failed", "actor": "argobox", "detail": {"error": "No container named '<b>'."}}
    views = [
        event_view(mark_event({**e, "detail": e.get("detail", {"effect": "approve"})}))
        for e in (received, unknown, decision, failed)
    ]

    assert supplied_arguments(mark_request(request)) == {"container": "<b>"}
    assert "arguments" not in mark_request(request)
    assert (views[0]["detail"], views[0]["supplied"]) == ({}, {"arguments": {"container": "<b>"}})
    assert (views[1]["tool"], views[1]["supplied_tool"]) == (None, "<img src=x>")
    assert views[1]["supplied"] == {"detail": {"reason": "unknown tool '<img src=x>'"}} and views[1]["detail"] == {}
    assert (views[2]["detail"], views[2]["supplied"], views[2]["supplied_tool"]) == ({"effect": "approve"}, {}, None)
    assert (views[3]["detail"], views[3]["backend"]) == ({}, {"error": "No container named '<b>'."})
    assert views[2]["backend"] is None


def test_console_configuration_is_checked_with_clear_errors(write_config: WriteConfig) -> None:
    good = load_config(write_config(extra='[console]\npublic_url = "https://argobox.example.org/"\n'))
    assert good.console is not None and good.console.public_url == "https://argobox.example.org"
    assert (good.console.listen, good.console.session_idle_minutes) == ("127.0.0.1:8766", 30)
    assert good.console.trusted_proxies == []  # no forwarded address is believed unless a proxy is named
    proxies = load_config(write_config(extra='[console]\ntrusted_proxies = ["127.0.0.1", "10.0.0.1/24", "::1"]\n'))
    assert proxies.console is not None and proxies.console.trusted_proxies == ["127.0.0.1", "10.0.0.0/24", "::1"]
    for bad, message in (
        ('listen = "8766"', "is not HOST:PORT"),
        ('trusted_proxies = ["proxy.lan"]', "'proxy.lan' is not an IP address or network"),
        ('trusted_proxies = "127.0.0.1"', "trusted_proxies"),
        ('public_url = "https://argobox.example.org/console"', "just scheme, host and port"),
        ('public_url = "ftp://x"', "http:// or https://"),
        ("session_idle_minutes = 0", "session_idle_minutes"),
    ):
        with pytest.raises(ConfigError, match=message):
            load_config(write_config(extra=f"[console]\n{bad}\n"))
    bad_role = write_config().with_name("roles.toml")
    bad_role.write_text('[[operators]]\nname = "a"\nrole = "admin"\n')
    with pytest.raises(ConfigError, match=r"operators\[0\]\.role"):
        load_config(bad_role)


async def test_a_queued_request_is_announced_with_a_link_to_its_page(write_config: WriteConfig) -> None:
    with Receiver() as receiver:
        extra = channels(f"{receiver.url}/hook", f"{receiver.url}/topic")
        config = load_config(write_config(extra=extra + '\n[console]\npublic_url = "https://argobox.example.org"\n'))
        async with open_app(config) as app:
            queued = await agent_calls.call_tool(app, "openclaw", "docker_restart_container", {"container": "jellyfin"})
            await notify.flush(app)
    link = f"https://argobox.example.org/requests/{queued.request_id}"
    hook = next(json.loads(r["body"]) for r in receiver.received if r["path"] == "/hook")
    push = next(r for r in receiver.received if r["path"] == "/topic")
    assert hook["url"] == link and f"Open {link} to decide" in hook["message"]
    assert push["headers"]["Click"] == link and link in push["body"]


def test_a_decision_that_came_too_late_is_told_plainly() -> None:
    expired = stale_message(
        Refused(
            "expired",
            "request abc expired at 2026-01-01T00:00:00.000Z without a decision; only a pending request can be "
            "approved",
        )
    )
    decided = stale_message(
        Refused(
            "not_pending",
            "request abc was already approved by bob (now succeeded); only a pending request can be approved",
        )
    )
    assert expired == (
        "stale",
        "Too late: request abc expired at 2026-01-01T00:00:00.000Z without a decision; only a pending request can be "
        "approved. Nothing was done.",
    )
    assert decided == (
        "stale",
        "Already decided meanwhile: request abc was already approved by bob (now succeeded); only a pending request "
        "can be approved. Nothing more was done.",
    )


def test_the_pending_page_asks_for_new_requests_at_least_every_two_seconds() -> None:
    """New requests must appear on an open Pending page within 2 seconds. The browser test cannot assert a time (it
    only waits, generously, for the request to appear without a reload), so the interval is checked here, where the
    page's script sets it."""
    script = (STATIC / "console.js").read_text()
    interval = re.search(r"\bvar PENDING_EVERY_MS = (\d+);", script)

    assert interval is not None, "console.js no longer sets PENDING_EVERY_MS"
    assert 0 < int(interval[1]) <= 2000
    assert re.search(r"setTimeout\(poll, PENDING_EVERY_MS\)", script)  # the constant is the one the poll uses
