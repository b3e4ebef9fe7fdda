"""`argobox doctor` on the phone's buttons: whether a listening process is connected to Home Assistant, read from
the `ha_listener` records the listeners leave in the audit trail (the listener itself is tested in
tests/e2e/test_phone.py against the real Home Assistant)."""

from __future__ import annotations

import socket
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from argobox.server.app import App, open_app
from argobox.server.config.model import load_config
from argobox.server.mediation.doctor import Finding, Report, Severity, check_phone_listener
from argobox.server.mediation.phone.listening import LISTENER_EVENT, ListenerStatus, record_listener
from argobox.server.store import Event
from tests.conftest import WriteConfig
from tests.server.test_phone_presses import phone_extra

pytestmark = pytest.mark.anyio

TOKEN_ENV = "ARGOBOX_TEST_PHONE_DOCTOR_TOKEN"
URL = "http://127.0.0.1:1"
GONE = f"{socket.gethostname()}:2147483646"
"""A process on this host that cannot exist (beyond any pid_max)."""

OpenApp = Callable[..., AbstractAsyncContextManager[App]]


@pytest.fixture
def phone_app(write_config: WriteConfig) -> OpenApp:
    @asynccontextmanager
    async def make(*, actions: bool = True) -> AsyncGenerator[App]:
        home = f'url = "{URL}"\ntoken_env = "{TOKEN_ENV}"'
        async with open_app(load_config(write_config(homeassistant=home, extra=phone_extra(actions)))) as app:
            yield app

    return make


async def phone_findings(app: App) -> list[Finding]:
    report = Report()
    await check_phone_listener(app, report)
    return report.findings


async def test_without_buttons_there_is_nothing_to_say(phone_app: OpenApp) -> None:
    async with phone_app(actions=False) as app:
        assert await phone_findings(app) == []


async def test_without_the_token_the_listener_cannot_run(phone_app: OpenApp, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    async with phone_app() as app:
        (finding,) = await phone_findings(app)

    assert finding.severity is Severity.ERROR
    assert finding.message.startswith(
        f"the phone listener needs the Home Assistant token in the environment variable "
        f"{TOKEN_ENV}: the Approve and Deny buttons are not heard"
    )


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "a-home-assistant-token-for-the-doctor")


@pytest.mark.usefixtures("token")
async def test_no_listener_yet_is_a_warning(phone_app: OpenApp) -> None:
    async with phone_app() as app:
        (finding,) = await phone_findings(app)

    assert finding.severity is Severity.WARNING and finding.message.startswith("no ArgoBox process is listening")
    assert finding.fix is not None
    assert all(f"`argobox {c}`" in finding.fix for c in ("serve --http", "console", "listen")), finding.fix


@pytest.mark.usefixtures("token")
async def test_a_running_process_connected_is_ok_and_one_that_fails_is_an_error(phone_app: OpenApp) -> None:
    async with phone_app() as app:
        await record_listener(app, ListenerStatus.CONNECTED, url=URL, ha_user_id="b" * 32)
        (connected,) = await phone_findings(app)
        await record_listener(app, ListenerStatus.DISCONNECTED, url=URL, error="Home Assistant refused the token")
        (failing,) = await phone_findings(app)
        await record_listener(app, ListenerStatus.STOPPED, url=URL)
        (stopped,) = await phone_findings(app)

    assert connected.severity is Severity.OK
    assert connected.message.startswith(f"the Home Assistant listener is connected ({socket.gethostname()}:")
    assert failing.severity is Severity.ERROR
    assert failing.message.startswith("the Home Assistant listener is not connected: Home Assistant refused the token")
    assert stopped.severity is Severity.WARNING and ", stopped at " in stopped.message


@pytest.mark.usefixtures("token")
async def test_a_connected_record_of_a_process_that_is_gone_does_not_count(phone_app: OpenApp) -> None:
    async with phone_app() as app:
        detail = {"state": "connected", "url": URL, "process": GONE}
        await app.store.audit([Event(event=LISTENER_EVENT, actor="argobox", detail=detail)])
        (finding,) = await phone_findings(app)

    assert finding.severity is Severity.WARNING
    assert f"(the last record: process {GONE}, connected at " in finding.message
