"""Pytest fixtures for tests against a real Home Assistant (see scripts/homeassistant.sh).

Registered through ``pytest_plugins`` (or ``-p tests.fixtures_homeassistant``).

Where Home Assistant is found, in order:
  * ``ARGOBOX_TEST_HA_URL`` and ``ARGOBOX_TEST_HA_TOKEN`` or ``ARGOBOX_TEST_HA_TOKEN_FILE``;
  * otherwise the defaults that ``scripts/homeassistant.sh start`` uses:
    ``http://127.0.0.1:${ARGOBOX_HA_PORT:-18123}`` and
    ``${ARGOBOX_STATE_DIR:-<repo>/.state}/homeassistant/token``.

If it does not answer: ``pytest.fail`` when ``CI=true``, else a loud ``pytest.skip``.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, cast

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PORT = "18123"
START_HINT = "run scripts/homeassistant.sh start"

# Entities that scripts/homeassistant.sh configures.
LIGHTS = ("light.living_room_lamp", "light.kitchen")
LOCK = "lock.front_door"
GUEST_MODE = "input_boolean.guest_mode"
THERMOSTAT = "input_number.thermostat_setpoint"

# entity_id -> (expected state, (domain, service) that brings it there)
BASELINE: dict[str, tuple[str, tuple[str, str]]] = {
    LIGHTS[0]: ("off", ("light", "turn_off")),
    LIGHTS[1]: ("off", ("light", "turn_off")),
    LOCK: ("locked", ("lock", "lock")),
    GUEST_MODE: ("off", ("input_boolean", "turn_off")),
}
THERMOSTAT_BASELINE = 21.0

RESET_TIMEOUT_S = 10.0
CHECK_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class _HAConnection:
    url: str
    token: str


def _default_token_file() -> Path:
    state_root = Path(os.environ.get("ARGOBOX_STATE_DIR") or REPO_ROOT / ".state")
    return state_root / "homeassistant" / "token"


def _resolve() -> tuple[str, str | None, str]:
    """Return (url, token or None, where the token was looked for)."""
    url = os.environ.get("ARGOBOX_TEST_HA_URL") or f"http://127.0.0.1:{os.environ.get('ARGOBOX_HA_PORT', DEFAULT_PORT)}"
    url = url.rstrip("/")
    url = url.removesuffix("/api")
    token = os.environ.get("ARGOBOX_TEST_HA_TOKEN")
    if token:
        return url, token.strip(), "ARGOBOX_TEST_HA_TOKEN"
    token_file = Path(os.environ.get("ARGOBOX_TEST_HA_TOKEN_FILE") or _default_token_file())
    try:
        token = token_file.read_text(encoding="utf-8").strip() or None
    except OSError:
        token = None
    return url, token, str(token_file)


def _request(method: str, url: str, token: str, body: Any = None, timeout: float = CHECK_TIMEOUT_S) -> tuple[int, Any]:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{url!r} is not an http(s) URL; set ARGOBOX_TEST_HA_URL to Home Assistant's address")
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(  # noqa: S310 - an http(s) URL, checked above
        url,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - an http(s) URL, checked above
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def _unavailable(reason: str) -> NoReturn:
    msg = f"no Home Assistant: {reason}; {START_HINT}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{msg} (CI=true: the Home Assistant backend is required here)", pytrace=False)
    pytest.skip(f"!!! {msg} !!!")


@pytest.fixture(scope="session")
def _ha_connection() -> _HAConnection:
    url, token, token_source = _resolve()
    if not token:
        _unavailable(f"no token (looked in {token_source})")
    try:
        status, body = _request("GET", f"{url}/api/", token)
    except OSError as err:
        _unavailable(f"{url} does not answer ({err})")
    if status == 401:
        _unavailable(f"{url} rejects the token from {token_source} (HTTP 401)")
    if status != 200:
        _unavailable(f"{url}/api/ answered HTTP {status}: {body!r}")
    return _HAConnection(url=url, token=token)


@pytest.fixture(scope="session")
def ha_url(_ha_connection: _HAConnection) -> str:
    """Base URL of the Home Assistant under test (no trailing /api)."""
    return _ha_connection.url


@pytest.fixture(scope="session")
def ha_token(_ha_connection: _HAConnection) -> str:
    """A long-lived access token for it. Never print it."""
    return _ha_connection.token


@pytest.fixture(scope="session")
def ha_client(ha_url: str, ha_token: str) -> Iterator[Any]:
    """A ``homeassistant_api.Client`` bound to the Home Assistant under test."""
    import niquests
    from homeassistant_api import Client

    with niquests.Session() as session:  # closed afterwards (the client closes its own only as a context manager)
        yield Client(f"{ha_url}/api", ha_token, session=session, global_request_kwargs={"timeout": 30})


def _read_states(url: str, token: str) -> dict[str, str]:
    states: dict[str, str] = {}
    for entity_id in (*BASELINE, THERMOSTAT):
        status, body = _request("GET", f"{url}/api/states/{entity_id}", token)
        found = status == 200 and isinstance(body, dict)
        states[entity_id] = str(cast("dict[str, Any]", body).get("state")) if found else f"<HTTP {status}>"
    return states


def _at_baseline(states: dict[str, str]) -> bool:
    if any(states[e] != expected for e, (expected, _) in BASELINE.items()):
        return False
    try:
        return float(states[THERMOSTAT]) == THERMOSTAT_BASELINE
    except (TypeError, ValueError):
        return False


def reset_to_baseline(ha_url: str, ha_token: str, timeout: float = RESET_TIMEOUT_S) -> dict[str, str]:
    """Put the test entities into the baseline through the real API and wait (bounded) until HA
    reports it: both lights off, the front door locked, guest mode off, thermostat setpoint 21.

    Returns the states read back (entity_id -> state).
    """
    states = _read_states(ha_url, ha_token)
    for entity_id, (expected, (domain, service)) in BASELINE.items():
        if states[entity_id] != expected:
            status, body = _request(
                "POST", f"{ha_url}/api/services/{domain}/{service}", ha_token, {"entity_id": entity_id}, timeout=15
            )
            assert status == 200, f"reset {domain}.{service} on {entity_id}: HTTP {status}: {body!r}"
    if states[THERMOSTAT] != str(THERMOSTAT_BASELINE):
        status, body = _request(
            "POST",
            f"{ha_url}/api/services/input_number/set_value",
            ha_token,
            {"entity_id": THERMOSTAT, "value": THERMOSTAT_BASELINE},
            timeout=15,
        )
        assert status == 200, f"reset input_number.set_value: HTTP {status}: {body!r}"

    deadline = time.monotonic() + timeout
    while True:
        states = _read_states(ha_url, ha_token)
        if _at_baseline(states):
            return states
        if time.monotonic() > deadline:
            pytest.fail(f"Home Assistant did not reach the baseline within {timeout} s: {states}")
        time.sleep(0.1)


@pytest.fixture
def ha_reset(ha_url: str, ha_token: str) -> dict[str, str]:
    """Before the test: the test entities at the baseline (see ``reset_to_baseline``)."""
    return reset_to_baseline(ha_url, ha_token)
