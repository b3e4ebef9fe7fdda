"""The real Home Assistant backend (scripts/homeassistant.sh) through the real ``homeassistant-api`` client.

These tests pin down both the test backend and the client's behaviour that ArgoBox's Home Assistant
adapter relies on, including which exception the client raises for each failure.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Generator
from contextlib import contextmanager
from typing import Any

import pytest

pytestmark = pytest.mark.homeassistant

ha_api = pytest.importorskip("homeassistant_api")
niquests = pytest.importorskip("niquests")

LAMP = "light.living_room_lamp"
LAMP_BACKING = "input_boolean.living_room_light_power"
KITCHEN = "light.kitchen"
LOCK = "lock.front_door"
LOCK_BACKING = "input_boolean.front_door_locked"
GUEST_MODE = "input_boolean.guest_mode"
THERMOSTAT = "input_number.thermostat_setpoint"

POLL_TIMEOUT_S = 10.0


def wait_for_state(client: Any, entity_id: str, expected: str, timeout: float = POLL_TIMEOUT_S) -> str:
    """Poll (bounded) until HA reports ``expected`` for ``entity_id``; returns the last state seen."""
    deadline = time.monotonic() + timeout
    state = client.get_state(entity_id=entity_id).state
    while state != expected and time.monotonic() < deadline:
        time.sleep(0.1)
        state = client.get_state(entity_id=entity_id).state
    assert state == expected, f"{entity_id}: expected {expected!r} within {timeout} s, HA reports {state!r}"
    return state


@contextmanager
def rest_client(url: str, token: str, *, timeout: float) -> Generator[Any]:
    """A `homeassistant_api.Client` whose connections are closed afterwards. (The client closes its session only as
    a context manager, which first checks that the API answers: not for a client meant to fail.)"""
    with niquests.Session() as session:
        yield ha_api.Client(url, token, session=session, global_request_kwargs={"timeout": timeout})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_states_include_the_test_entities(ha_client: Any, ha_reset: dict[str, str]) -> None:
    states = {s.entity_id: s for s in ha_client.get_states()}
    for entity_id in (LAMP, LAMP_BACKING, KITCHEN, LOCK, LOCK_BACKING, GUEST_MODE, THERMOSTAT):
        assert entity_id in states, f"{entity_id} missing from HA states: {sorted(states)}"
    assert states[LAMP].state == "off"
    assert states[KITCHEN].state == "off"
    assert states[LOCK].state == "locked"
    assert states[GUEST_MODE].state == "off"
    assert float(states[THERMOSTAT].state) == 21.0
    assert states[LAMP].attributes.get("friendly_name") == "Living room lamp"


def test_trigger_service_turns_the_lamp_on_and_off(ha_client: Any, ha_reset: dict[str, str]) -> None:
    changed = ha_client.trigger_service("light", "turn_on", entity_id=LAMP)
    assert isinstance(changed, tuple)
    wait_for_state(ha_client, LAMP, "on")
    # The template light really switched its backing helper, and nothing else.
    assert ha_client.get_state(entity_id=LAMP_BACKING).state == "on"
    assert ha_client.get_state(entity_id=KITCHEN).state == "off"

    ha_client.trigger_service("light", "turn_off", entity_id=LAMP)
    wait_for_state(ha_client, LAMP, "off")
    assert ha_client.get_state(entity_id=LAMP_BACKING).state == "off"


def test_lock_can_be_unlocked_and_locked(ha_client: Any, ha_reset: dict[str, str]) -> None:
    ha_client.trigger_service("lock", "unlock", entity_id=LOCK)
    wait_for_state(ha_client, LOCK, "unlocked")
    assert ha_client.get_state(entity_id=LOCK_BACKING).state == "off"

    ha_client.trigger_service("lock", "lock", entity_id=LOCK)
    wait_for_state(ha_client, LOCK, "locked")
    assert ha_client.get_state(entity_id=LOCK_BACKING).state == "on"


def test_reset_restores_the_baseline(ha_client: Any, ha_reset: dict[str, str], ha_url: str, ha_token: str) -> None:
    ha_client.trigger_service("light", "turn_on", entity_id=KITCHEN)
    ha_client.trigger_service("input_boolean", "turn_on", entity_id=GUEST_MODE)
    ha_client.trigger_service("input_number", "set_value", entity_id=THERMOSTAT, value=25.5)
    wait_for_state(ha_client, KITCHEN, "on")
    wait_for_state(ha_client, GUEST_MODE, "on")
    wait_for_state(ha_client, THERMOSTAT, "25.5")

    # What the ha_reset fixture does before the next test.
    from tests.fixtures_homeassistant import reset_to_baseline

    states = reset_to_baseline(ha_url, ha_token)
    assert states[KITCHEN] == "off"
    assert states[GUEST_MODE] == "off"
    assert ha_client.get_state(entity_id=THERMOSTAT).state == "21.0"


# --------------------------------------------------------------------------- error mapping


def test_wrong_token_raises_unauthorized(ha_url: str) -> None:
    with rest_client(f"{ha_url}/api", "not-a-valid-token", timeout=10) as bad:
        with pytest.raises(ha_api.errors.UnauthorizedError, match="Invalid authentication token"):
            bad.get_states()
        with pytest.raises(ha_api.errors.UnauthorizedError):
            bad.trigger_service("light", "turn_on", entity_id=LAMP)


def test_unknown_entity_raises_endpoint_not_found(ha_client: Any) -> None:
    with pytest.raises(ha_api.errors.EndpointNotFoundError, match=r"/api/states/light\.does_not_exist"):
        ha_client.get_state(entity_id="light.does_not_exist")
    with pytest.raises(ha_api.errors.EndpointNotFoundError):
        ha_client.get_entity(entity_id="light.does_not_exist")


def test_service_on_unknown_entity_is_not_an_error(ha_client: Any) -> None:
    # HA 2024.3 answers 200 with no changed states (it only logs "Referenced entities ... are
    # missing"): an adapter must check the entity exists itself.
    assert ha_client.trigger_service("light", "turn_on", entity_id="light.does_not_exist") == ()


@pytest.mark.parametrize(
    ("domain", "service", "data"),
    [
        pytest.param("input_number", "set_value", {"entity_id": THERMOSTAT, "value": "abc"}, id="invalid-value"),
        pytest.param("lock", "lock", {"entity_id": LOCK, "bogus": 1}, id="extra-key"),
        pytest.param("light", "no_such_service", {"entity_id": LAMP}, id="unknown-service"),
        pytest.param("no_such_domain", "turn_on", {}, id="unknown-domain"),
    ],
)
def test_bad_service_call_raises_request_error(
    ha_client: Any, ha_reset: dict[str, str], domain: str, service: str, data: dict[str, Any]
) -> None:
    # HA answers a bare "400: Bad Request" (no detail); the client raises RequestError with it.
    with pytest.raises(ha_api.errors.RequestError, match="400: Bad Request") as excinfo:
        ha_client.trigger_service(domain, service, **data)
    assert not isinstance(excinfo.value, ha_api.errors.RequestTimeoutError)
    assert f"/api/services/{domain}/{service}" in str(excinfo.value)
    # Nothing changed.
    assert ha_client.get_state(entity_id=LOCK).state == "locked"
    assert float(ha_client.get_state(entity_id=THERMOSTAT).state) == 21.0


def test_connection_refused_raises_niquests_connection_error(ha_token: str) -> None:
    # Not wrapped by homeassistant_api: niquests.exceptions.ConnectionError (an OSError subclass).
    with (
        rest_client(f"http://127.0.0.1:{free_port()}/api", ha_token, timeout=5) as dead,
        pytest.raises(niquests.exceptions.ConnectionError, match="Connection refused") as excinfo,
    ):
        dead.get_states()
    assert isinstance(excinfo.value, OSError)
    assert not isinstance(excinfo.value, ha_api.errors.HomeassistantAPIError)


def test_no_answer_raises_request_timeout_error() -> None:
    # A listener that never answers: the client wraps the timeout (a RequestError subclass!).
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        with (
            rest_client(f"http://127.0.0.1:{port}/api", "x", timeout=1) as silent,
            pytest.raises(ha_api.errors.RequestTimeoutError, match="did not respond in time"),
        ):
            silent.get_states()


def test_domain_object_service_call_raises_after_running(ha_client: Any, ha_reset: dict[str, str]) -> None:
    """Pitfall on HA 2024.3: calling through a Domain object raises *after* the service ran.

    The adapter must use ``trigger_service`` and never retry a service call blindly.
    """
    domain = ha_client.get_domain("light")
    call: Callable[..., Any] = domain.turn_on
    with pytest.raises(TypeError, match="Expected dict response, got list"):
        call(entity_id=KITCHEN)
    wait_for_state(ha_client, KITCHEN, "on")
