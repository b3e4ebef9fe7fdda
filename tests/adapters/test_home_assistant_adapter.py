"""The Home Assistant adapter against the real Home Assistant (scripts/homeassistant.sh) through the real client.

What is asserted is what Home Assistant itself reports (read with the `ha_client` fixture), not what the adapter says.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from argobox.adapters.base import BackendRejected, BackendUnavailable, TargetNotFound
from argobox.adapters.home_assistant import HomeAssistant
from tests.fixtures_homeassistant import GUEST_MODE, LIGHTS, LOCK, THERMOSTAT

pytestmark = pytest.mark.anyio

LAMP, KITCHEN = LIGHTS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def state_of(ha_client: Any, entity_id: str) -> str:
    return ha_client.get_state(entity_id=entity_id).state


@pytest.fixture
async def ha(ha_url: str, ha_token: str) -> AsyncIterator[HomeAssistant]:
    adapter = HomeAssistant(ha_url, ha_token, token_env="ARGOBOX_HA_TOKEN", timeout=10)
    yield adapter
    await adapter.aclose()


@pytest.mark.homeassistant
async def test_reads_report_what_home_assistant_reports(ha: HomeAssistant, ha_client: Any, ha_reset: Any) -> None:
    entities = {e.entity_id: e for e in await ha.list_entities()}
    lock = await ha.get_state(LOCK)
    services = {(s.domain, s.service): s for s in await ha.list_services()}
    targets = await ha.target_states([LOCK, "light.does_not_exist"])

    assert entities[LAMP].state == state_of(ha_client, LAMP) == "off"
    assert entities[LAMP].name == "Living room lamp" and entities[LAMP].domain == "light"
    assert entities[LAMP].last_changed is not None
    assert lock.state == "locked" and lock.attributes["friendly_name"] == "Front door"
    assert services[("lock", "unlock")].fields == ["code"]
    assert ("light", "turn_on") in services
    assert [(t.entity_id, t.state) for t in targets] == [(LOCK, "locked"), ("light.does_not_exist", None)]


@pytest.mark.homeassistant
async def test_unknown_entity_is_target_not_found(ha: HomeAssistant) -> None:
    with pytest.raises(TargetNotFound, match=r"No Home Assistant entity 'light\.does_not_exist'"):
        await ha.get_state("light.does_not_exist")


@pytest.mark.homeassistant
async def test_service_call_runs_once_and_records_the_states_around_it(
    ha: HomeAssistant, ha_client: Any, ha_reset: Any
) -> None:
    result = await ha.call_service("light", "turn_on", [LAMP], {})

    assert state_of(ha_client, LAMP) == "on"
    assert state_of(ha_client, KITCHEN) == "off"
    assert [(t.entity_id, t.state) for t in result.before] == [(LAMP, "off")]
    assert [(t.entity_id, t.state) for t in result.after] == [(LAMP, "on")]


@pytest.mark.homeassistant
async def test_service_call_with_service_data_and_several_targets(
    ha: HomeAssistant, ha_client: Any, ha_reset: Any
) -> None:
    await ha.call_service("input_number", "set_value", [THERMOSTAT], {"value": 23.5})
    both = await ha.call_service("light", "turn_on", [LAMP, KITCHEN], {})

    assert float(state_of(ha_client, THERMOSTAT)) == 23.5
    assert state_of(ha_client, LAMP) == state_of(ha_client, KITCHEN) == "on"
    assert [t.state for t in both.after] == ["on", "on"]


@pytest.mark.homeassistant
async def test_missing_target_stops_the_call_before_anything_runs(
    ha: HomeAssistant, ha_client: Any, ha_reset: Any
) -> None:
    # Home Assistant itself would answer 200 and quietly do nothing for the missing entity; the adapter checks first.
    with pytest.raises(TargetNotFound, match=r"light\.ghost"):
        await ha.call_service("light", "turn_on", [LAMP, "light.ghost"], {})

    assert state_of(ha_client, LAMP) == "off"


@pytest.mark.homeassistant
@pytest.mark.parametrize(
    ("domain", "service", "entity_id", "data"),
    [
        pytest.param("input_number", "set_value", THERMOSTAT, {"value": "abc"}, id="invalid-value"),
        pytest.param("lock", "lock", LOCK, {"bogus": 1}, id="unknown-field"),
        pytest.param("light", "no_such_service", LAMP, {}, id="unknown-service"),
    ],
)
async def test_bad_service_data_is_rejected_clearly_and_changes_nothing(
    ha: HomeAssistant, ha_client: Any, ha_reset: Any, domain: str, service: str, entity_id: str, data: dict[str, Any]
) -> None:
    before = state_of(ha_client, entity_id)

    with pytest.raises(BackendRejected) as info:
        await ha.call_service(domain, service, [entity_id], data)

    assert f"Home Assistant rejected {domain}.{service} (HTTP 400 Bad Request)" in str(info.value)
    assert info.value.detail == {"before": {entity_id: before}}
    assert state_of(ha_client, entity_id) == before
    assert state_of(ha_client, LOCK) == "locked"


@pytest.mark.homeassistant
async def test_wrong_token_is_a_clear_401_and_never_shows_a_token(ha_url: str, ha_token: str) -> None:
    wrong = "wrong-token-0123456789abcdef"
    adapter = HomeAssistant(ha_url, wrong, token_env="ARGOBOX_HA_TOKEN", timeout=10)

    with pytest.raises(BackendRejected) as read:
        await adapter.list_entities()
    with pytest.raises(BackendRejected) as call:
        await adapter.call_service("light", "turn_on", [LAMP], {})
    await adapter.aclose()

    for exc in (read.value, call.value):
        assert "refused the token in ARGOBOX_HA_TOKEN (HTTP 401)" in str(exc)
        assert wrong not in str(exc) and ha_token not in str(exc)


async def test_unreachable_home_assistant_is_unavailable() -> None:
    adapter = HomeAssistant(f"http://127.0.0.1:{free_port()}", "some-token-value", token_env="T", timeout=5)

    with pytest.raises(BackendUnavailable, match="did not answer: connection refused; check that it is running"):
        await adapter.list_entities()
    with pytest.raises(BackendUnavailable) as call:
        await adapter.call_service("light", "turn_on", [LAMP], {})

    assert "connection refused" in str(call.value) and "some-token-value" not in str(call.value)


async def test_missing_token_names_the_variable_to_set() -> None:
    adapter = HomeAssistant("http://127.0.0.1:1", None, token_env="MY_HA_TOKEN")

    with pytest.raises(BackendUnavailable, match="the operator must set MY_HA_TOKEN"):
        await adapter.get_state(LAMP)


class _SlowServices(BaseHTTPRequestHandler):
    """Answers state reads like Home Assistant, but never answers a service call in time. Counts service calls."""

    service_calls: ClassVar[list[str]] = []
    release: ClassVar[threading.Event] = threading.Event()

    def do_GET(self) -> None:
        entity_id = self.path.rsplit("/", 1)[-1]
        body = json.dumps(
            {"entity_id": entity_id, "state": "off", "attributes": {}, "last_changed": "2024-01-01T00:00:00+00:00"}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.service_calls.append(self.path)
        self.release.wait(timeout=10)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def slow_services() -> Iterator[tuple[str, type[_SlowServices]]]:
    handler = type("Handler", (_SlowServices,), {"service_calls": [], "release": threading.Event()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        handler.release.set()
        server.shutdown()
        server.server_close()


async def test_service_call_timeout_is_reported_as_unknown_and_never_retried(
    slow_services: tuple[str, type[_SlowServices]],
) -> None:
    url, handler = slow_services
    adapter = HomeAssistant(url, "some-token-value", token_env="ARGOBOX_HA_TOKEN", timeout=1)
    started = time.monotonic()

    with pytest.raises(BackendUnavailable) as info:
        await adapter.call_service("light", "turn_on", [LAMP], {})
    await adapter.aclose()

    assert "did not answer light.turn_on within 1 s" in str(info.value)
    assert "may or may not have run" in str(info.value)
    assert info.value.detail == {"before": {LAMP: "off"}}
    assert handler.service_calls == ["/api/services/light/turn_on"]
    assert time.monotonic() - started < 5


@pytest.mark.homeassistant
async def test_guest_mode_helper_can_be_switched(ha: HomeAssistant, ha_client: Any, ha_reset: Any) -> None:
    result = await ha.call_service("input_boolean", "toggle", [GUEST_MODE], {})

    assert state_of(ha_client, GUEST_MODE) == "on"
    assert result.after[0].state == "on"
