"""Notification delivery to a real loopback HTTP receiver: webhook JSON, ntfy text, retries when it is down."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from argobox.server.app import open_app
from argobox.server.config.model import load_config
from argobox.server.mediation import agent_calls, notify, operator_actions
from argobox.server.mediation.operators import OperatorClaim
from tests.conftest import WriteConfig

pytestmark = pytest.mark.anyio


class Receiver:
    """A loopback HTTP server that records every POST (path, headers, body)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append({"path": self.path, "headers": dict(self.headers), "body": body.decode()})
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # the stdlib's signature
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def channels(webhook: str, ntfy: str) -> str:
    return f"""
[[notifications.webhooks]]
url = "{webhook}"

[[notifications.ntfy]]
url = "{ntfy}"
"""


async def test_queued_and_decided_requests_reach_webhook_and_ntfy(
    write_config: WriteConfig, receiver: Receiver
) -> None:
    config = load_config(
        write_config(extra=channels(f"{receiver.url}/hook?token=hook-secret-123", f"{receiver.url}/topic"))
    )
    async with open_app(config) as app:
        queued = await agent_calls.call_tool(app, "openclaw", "docker_restart_container", {"container": "jellyfin"})
        await notify.flush(app)
        await operator_actions.approve(app, queued.request_id or "", operator=OperatorClaim("alice"), note="go")
        await notify.flush(app)
        trail = await app.store.audit_trail(request_id=queued.request_id)

    hooks = [json.loads(r["body"]) for r in receiver.received if r["path"].startswith("/hook")]
    pushes = [r for r in receiver.received if r["path"] == "/topic"]
    assert [h["event"] for h in hooks] == ["queued", "approved"]
    assert hooks[0]["request"]["summary"] == "restart container 'jellyfin'"
    assert hooks[0]["approve_command"] == f"argobox approve {queued.request_id} --as <operator>"
    assert hooks[1]["request"]["status"] == "succeeded" and hooks[1]["request"]["decided_by"] == "alice"
    assert len(pushes) == 2 and "openclaw asks to restart container 'jellyfin'" in pushes[0]["body"]
    assert pushes[0]["headers"]["Title"] == "ArgoBox: approval needed"
    assert [e.event for e in trail].count("notified") == 4
    assert all("hook-secret-123" not in json.dumps(e.detail) for e in trail)


async def test_receiver_down_is_retried_audited_and_never_blocks_the_request(write_config: WriteConfig) -> None:
    down = f"http://127.0.0.1:{closed_port()}"
    config = load_config(write_config(extra=channels(f"{down}/hook", f"{down}/topic")))
    async with open_app(config) as app:
        queued = await agent_calls.call_tool(app, "openclaw", "docker_restart_container", {"container": "jellyfin"})
        await notify.flush(app)
        record = await app.store.get(queued.request_id or "")
        failures = [e.detail for e in await app.store.audit_trail() if e.event == "notification_failed"]

    assert queued.status == "pending_approval"
    assert record is not None and record.status.value == "pending_approval"
    assert len(failures) == 2
    assert all(f["will_retry"] is True and "cannot reach the receiver" in f["error"] for f in failures)


async def test_retries_are_bounded_then_the_notification_is_given_up(write_config: WriteConfig, tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{closed_port()}"
    now = [1_900_000_000.0]
    config = load_config(write_config(extra=f'[[notifications.webhooks]]\nurl = "{down}/hook"\n'))
    async with open_app(config, clock=lambda: now[0]) as app:
        await agent_calls.call_tool(app, "openclaw", "docker_restart_container", {"container": "jellyfin"})
        for _ in range(10):
            await notify.deliver_due(app)
            now[0] += 3600
        failures = [e.detail for e in await app.store.audit_trail() if e.event == "notification_failed"]

    assert [f["attempt"] for f in failures] == [1, 2, 3, 4]
    assert [f["will_retry"] for f in failures] == [True, True, True, False]


async def test_home_assistant_push_goes_through_the_notify_service(write_config: WriteConfig, tmp_path: Path) -> None:
    extra = '[notifications.homeassistant]\nservice = "notify.mobile_app_phone"\n'
    config = load_config(write_config(homeassistant='simulated_home = "home.json"', extra=extra))
    async with open_app(config) as app:
        queued = await agent_calls.call_tool(app, "openclaw", "docker_restart_container", {"container": "jellyfin"})
        await notify.flush(app)
        notified = [e.detail for e in await app.store.audit_trail() if e.event == "notified"]
    pushes = [json.loads(line) for line in (tmp_path / "home.json.notifications.jsonl").read_text().splitlines()]

    assert [p["service"] for p in pushes] == ["notify.mobile_app_phone"]
    assert pushes[0]["title"] == "ArgoBox: approval needed"
    assert f"argobox approve {queued.request_id}" in pushes[0]["message"]
    assert notified == [{"attempt": 1, "channel": "homeassistant", "event": "queued"}]


def test_home_assistant_channel_needs_the_homeassistant_section(write_config: WriteConfig) -> None:
    from argobox.server.config.model import ConfigError

    with pytest.raises(ConfigError, match=r"notifications\.homeassistant: needs a \[homeassistant\] section"):
        load_config(write_config(extra='[notifications.homeassistant]\nservice = "notify.phone"\n'))


@pytest.mark.homeassistant
async def test_a_notify_service_home_assistant_lacks_is_a_clear_audited_failure(
    write_config: WriteConfig, ha_url: str, ha_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARGOBOX_HA_TOKEN", ha_token)
    extra = '[notifications.homeassistant]\nservice = "notify.no_such_phone"\n'
    config = load_config(write_config(homeassistant=f'url = "{ha_url}"', extra=extra))
    async with open_app(config) as app:
        queued = await agent_calls.call_tool(app, "openclaw", "docker_restart_container", {"container": "jellyfin"})
        await notify.flush(app)
        failures = [e.detail for e in await app.store.audit_trail() if e.event == "notification_failed"]

    assert queued.status == "pending_approval"
    assert len(failures) == 1 and failures[0]["channel"] == "homeassistant" and failures[0]["will_retry"] is True
    assert ha_token not in json.dumps(failures)


@pytest.mark.parametrize("url", ["https://x:abc/h", "http://[bad/h", "https:///nohost"])
def test_unusable_notification_urls_are_config_errors(write_config: WriteConfig, url: str) -> None:
    from argobox.server.config.model import ConfigError

    with pytest.raises(ConfigError, match=r"notifications\.webhooks\[0\]\.url"):
        load_config(write_config(extra=f'[[notifications.webhooks]]\nurl = "{url}"\n'))


async def test_a_receiver_answering_errors_is_retried_and_audited(write_config: WriteConfig) -> None:
    class Failing(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(500)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # the stdlib's signature
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        async with open_app(load_config(write_config(extra=f'[[notifications.webhooks]]\nurl = "{url}"\n'))) as app:
            await agent_calls.call_tool(app, "openclaw", "docker_restart_container", {"container": "jellyfin"})
            await notify.flush(app)
            failures = [e.detail for e in await app.store.audit_trail() if e.event == "notification_failed"]
    finally:
        server.shutdown()
        server.server_close()

    assert [(f["error"], f["will_retry"]) for f in failures] == [("HTTP 500 Internal Server Error", True)]


async def test_credentials_in_a_url_go_in_a_basic_header_and_never_to_the_name_resolver(
    write_config: WriteConfig, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    looked_up: list[object] = []
    resolve = socket.getaddrinfo

    def recording(host: object, *args: Any, **kwargs: Any) -> Any:
        looked_up.append(host)
        return resolve(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    port = receiver.url.rsplit(":", 1)[1]
    down = closed_port()
    config = load_config(
        write_config(
            extra=channels(
                f"http://alice:s3cret%2Fpass@127.0.0.1:{port}/hook", f"http://bob:tops3cret@127.0.0.1:{down}/t"
            )
        )
    )
    async with open_app(config) as app:
        await agent_calls.call_tool(app, "openclaw", "docker_restart_container", {"container": "jellyfin"})
        await notify.flush(app)
        trail = json.dumps([e.detail for e in await app.store.audit_trail()])

    (hook,) = receiver.received
    assert hook["headers"]["Authorization"] == "Basic " + base64.b64encode(b"alice:s3cret/pass").decode()
    assert hook["headers"]["Host"] == f"127.0.0.1:{port}"
    assert all("s3cret" not in str(host) and "@" not in str(host) for host in looked_up), looked_up
    assert "s3cret" not in trail and "cannot reach the receiver" in trail
