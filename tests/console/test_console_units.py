"""The console's own layers, fast: authorization, the sign-in limit, sessions, the Host and same-origin checks, how
agent values are made inert, the operator-token edit of the config file, the configuration, and notification links.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from starlette.datastructures import Headers

from argobox.server import gate, notify
from argobox.server.app import open_app
from argobox.server.config import Config, ConfigError, load_config, parse_config
from argobox.server.console.auth import (
    Need,
    NotAuthorized,
    Presented,
    Proven,
    Role,
    SignInLimiter,
    authorize,
    operator_for_token,
)
from argobox.server.console.operator_tokens import write_operator_token_hash
from argobox.server.console.pages import _stale
from argobox.server.console.present import summary_parts
from argobox.server.console.render import environment, inert
from argobox.server.console.security import HostPolicy, session_cookie
from argobox.server.console.sessions import Sessions
from argobox.server.store import Refused
from argobox.server.tokens import TokenWriteError, token_sha256
from tests.conftest import WriteConfig
from tests.server.test_notify import Receiver, channels

CONSOLE = Path(__file__).resolve().parents[2] / "argobox" / "server" / "console"
ALICE, VERA, AGENT = "alice-token-0123456789", "vera-token-0123456789", "agent-token-0123456789"


def config_with_operators() -> Config:
    return parse_config(
        {
            "operators": [
                {"name": "alice", "token_sha256": token_sha256(ALICE)},
                {"name": "vera", "role": "viewer", "token_sha256": token_sha256(VERA)},
                {"name": "nick"},
            ],
            "agents": {"openclaw": {"token_sha256": token_sha256(AGENT)}},
        },
        Path("/nonexistent/argobox.toml"),
    )


@pytest.mark.parametrize(
    ("name", "credential", "need", "outcome"),
    [
        pytest.param("alice", Presented(ALICE), Need.DECIDE, "approver", id="approver-with-her-token-decides"),
        pytest.param("alice", Proven(token_sha256(ALICE)), Need.DECIDE, "approver", id="a-session-of-hers-decides"),
        pytest.param("vera", Presented(VERA), Need.VIEW, "viewer", id="viewer-reads"),
        pytest.param("vera", Presented(VERA), Need.DECIDE, "viewer", id="viewer-never-decides"),
        pytest.param("alice", Presented(VERA), Need.VIEW, "wrong_token", id="someone-elses-token"),
        pytest.param("alice", Presented(AGENT), Need.VIEW, "wrong_token", id="an-agent-token-for-an-operator"),
        pytest.param("openclaw", Presented(AGENT), Need.VIEW, "agent", id="an-agent-name"),
        pytest.param("nick", Presented(""), Need.VIEW, "no_token", id="operator-without-a-token"),
        pytest.param("mallory", Presented(ALICE), Need.VIEW, "unknown_operator", id="unknown-name"),
        pytest.param("alice", Proven("0" * 64), Need.VIEW, "token_changed", id="session-of-a-replaced-token"),
    ],
)
def test_authorize_checks_operator_token_and_role(
    name: str, credential: Presented | Proven, need: Need, outcome: str
) -> None:
    config = config_with_operators()
    try:
        operator = authorize(config, name, credential, need)
    except NotAuthorized as exc:
        got = exc.code
    else:
        got = operator.role.value
    assert got == outcome  # a viewer asking to decide is refused with the code "viewer"


def test_a_bearer_token_names_its_operator_and_an_agent_token_names_none() -> None:
    config = config_with_operators()
    assert operator_for_token(config, ALICE) == "alice"
    assert operator_for_token(config, VERA) == "vera"
    assert operator_for_token(config, AGENT) is None
    assert authorize(config, "vera", Presented(VERA), Need.VIEW).role is Role.VIEWER


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
    payload = {"data": {"message": "<script>alert(1)</script>\x1b[31m\u202eevil\u200b"}}
    rendered = environment().from_string("<pre>{{ value|inert }}</pre>").render(value=payload)
    assert "<script>" not in rendered and "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered
    assert "\\u001b[31m\\u202eevil\\u200b" in rendered and "\u202e" not in rendered
    assert inert("line\nbreak\u2028") == "line\\u000abreak\\u2028"


def test_the_summary_keeps_argoboxs_words_apart_from_the_agents_values() -> None:
    parts = summary_parts("ha_call_service", {"domain": "lock", "service": "unlock", "entity_id": "lock.front"})
    assert [(p.text, p.agent) for p in parts] == [
        ("call Home Assistant service ", False),
        ("lock", True),
        (".", False),
        ("unlock", True),
        (" on ", False),
        ("'lock.front'", True),
    ]
    unknown = summary_parts("<img src=x>", {})
    assert unknown[-1].agent is True and unknown[-1].text == "<img src=x>"


def test_the_console_reaches_argobox_only_through_its_ops_module() -> None:
    imported: dict[str, set[str]] = {}
    for module in CONSOLE.glob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        imported[module.name] = {
            n for n in names if n.startswith("argobox") and not n.startswith("argobox.server.console")
        }
    assert {name: found for name, found in imported.items() if found and name != "ops.py"} == {}
    assert imported["ops.py"]


CONFIG_WITH_OPERATORS = """\
[storage]
path = "argobox.db"

[[operators]]   # the one who approves
name = "alice"
token_sha256 = "{old}"

[[operators]]
name = "vera"
role = "viewer"

[agents.openclaw]
"""


def test_operator_token_hash_is_written_into_that_operators_entry_only(tmp_path: Path) -> None:
    path = tmp_path / "argobox.toml"
    path.write_text(CONFIG_WITH_OPERATORS.format(old="1" * 64))
    write_operator_token_hash(path, "vera", "2" * 64)
    write_operator_token_hash(path, "alice", "3" * 64)
    config = load_config(path)
    assert [(op.name, op.token_sha256, op.role) for op in config.operators] == [
        ("alice", "3" * 64, "approver"),
        ("vera", "2" * 64, "viewer"),
    ]
    assert "[[operators]]   # the one who approves\n" in path.read_text()
    with pytest.raises(TokenWriteError, match=r"no \[\[operators\]\] entry with name = 'bob'"):
        write_operator_token_hash(path, "bob", "4" * 64)
    path.write_text('operators = [{ name = "alice" }]\n')
    with pytest.raises(TokenWriteError, match="by hand"):
        write_operator_token_hash(path, "alice", "4" * 64)
    assert path.read_text() == 'operators = [{ name = "alice" }]\n'


def test_console_configuration_is_checked_with_clear_errors(write_config: WriteConfig) -> None:
    good = load_config(write_config(extra='[console]\npublic_url = "https://argobox.example.org/"\n'))
    assert good.console is not None and good.console.public_url == "https://argobox.example.org"
    assert (good.console.listen, good.console.session_idle_minutes) == ("127.0.0.1:8766", 30)
    for bad, message in (
        ('listen = "8766"', "is not HOST:PORT"),
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


@pytest.mark.anyio
async def test_a_queued_request_is_announced_with_a_link_to_its_page(write_config: WriteConfig) -> None:
    with Receiver() as receiver:
        extra = channels(f"{receiver.url}/hook", f"{receiver.url}/topic")
        config = load_config(write_config(extra=extra + '\n[console]\npublic_url = "https://argobox.example.org"\n'))
        async with open_app(config) as app:
            queued = await gate.call_tool(app, "openclaw", "docker_restart_container", {"container": "jellyfin"})
            await notify.flush(app)
    link = f"https://argobox.example.org/requests/{queued.request_id}"
    hook = next(json.loads(r["body"]) for r in receiver.received if r["path"] == "/hook")
    push = next(r for r in receiver.received if r["path"] == "/topic")
    assert hook["url"] == link and f"Open {link} to decide" in hook["message"]
    assert push["headers"]["Click"] == link and link in push["body"]


def test_a_decision_that_came_too_late_is_told_plainly() -> None:
    expired = _stale(Refused("expired", "request abc expired at 2026-01-01T00:00:00.000Z; it cannot be approved"))
    decided = _stale(Refused("not_pending", "request abc is succeeded by bob, not pending approval"))
    assert expired == (
        "stale",
        "Too late: request abc expired at 2026-01-01T00:00:00.000Z; it cannot be approved. Nothing was done.",
    )
    assert decided[0] == "stale" and decided[1].startswith("Already decided meanwhile: request abc is succeeded by bob")
