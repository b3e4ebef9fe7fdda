"""`GET /healthz`: 200 while the store answers, 503 (without details) when it cannot be read or is too slow."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
from starlette.applications import Starlette

from argobox.server.store import Store
from argobox.server.transport.health import HEALTH_PATH, health_route

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with Store.open(tmp_path / "argobox.db", clock=time.time) as opened:
        yield opened


async def get(store: Store, method: str = "GET", *, store_timeout: float = 5.0) -> httpx2.Response:
    app = Starlette(routes=[health_route(store, timeout=store_timeout)])
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        return await client.request(method, HEALTH_PATH)


async def test_a_store_that_answers_is_healthy(store: Store) -> None:
    response = await get(store)

    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert response.headers["cache-control"] == "no-store"


async def test_a_store_that_cannot_be_read_is_unavailable_and_the_reason_stays_in_the_log(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other = sqlite3.connect(tmp_path / "argobox.db", isolation_level=None)
    try:
        other.execute("ALTER TABLE requests RENAME TO requests_gone")
    finally:
        other.close()

    with caplog.at_level(logging.WARNING, logger="argobox"):
        response = await get(store)

    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert str(tmp_path) not in response.text and "requests" not in response.text
    assert "health check: cannot read the store" in caplog.text


async def test_a_store_slower_than_the_deadline_is_unavailable(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="argobox"):
        response = await get(store, store_timeout=0)

    assert response.status_code == 503
    assert "did not answer within 0 s" in caplog.text


async def test_only_get_is_served(store: Store) -> None:
    response = await get(store, "POST")

    assert response.status_code == 405
