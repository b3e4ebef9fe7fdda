"""An approval runs only on a target that was identified when its request was queued: a request whose target could
not be read then, or that has no identity at all (stored before ArgoBox recorded targets), fails and runs nothing.
Over the shipped simulated lab; the real engine is in tests/e2e/test_target_identity.py."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator

import pytest

from argobox.server.app import App, open_app
from argobox.server.config.model import load_config
from argobox.server.mediation import agent_calls, operator_actions
from argobox.server.mediation.operators import OperatorClaim
from tests.conftest import WriteConfig

pytestmark = pytest.mark.anyio


@pytest.fixture
async def app(write_config: WriteConfig) -> AsyncIterator[App]:
    async with open_app(load_config(write_config())) as app:
        yield app


async def restart_count(app: App, container: str) -> int:
    return (await app.docker.inspect_container(container)).restart_count


async def test_a_request_stored_without_a_target_identity_is_refused_at_approval_and_runs_nothing(app: App) -> None:
    """The row of a request queued before the `request_targets` migration has no target: it is not run blind."""
    queued = await agent_calls.call_tool(app, "openclaw", "docker_restart_container", {"container": "jellyfin"})
    assert queued.request_id is not None
    before = await restart_count(app, "jellyfin")
    db = sqlite3.connect(app.config.storage.path, isolation_level=None)
    try:
        db.execute("DROP TRIGGER requests_binding_is_immutable")
        db.execute("UPDATE requests SET target = NULL WHERE id = ?", (queued.request_id,))
    finally:
        db.close()

    record = await operator_actions.approve(app, queued.request_id, operator=OperatorClaim("alice"), note="")
    failed = (await app.store.audit_trail(request_id=record.id))[-1]

    assert record.status.value == "failed" and record.error is not None
    assert "could not be identified when the request was queued; ask again" in record.error
    assert "no identity was recorded" in record.error
    assert failed.event == "failed" and failed.detail["target_when_queued"] is None
    assert await restart_count(app, "jellyfin") == before


async def test_a_container_missing_when_queued_is_recorded_as_unidentified_with_why(app: App) -> None:
    queued = await agent_calls.call_tool(app, "openclaw", "docker_restart_container", {"container": "web-new"})
    assert queued.request_id is not None

    record = await app.store.get(queued.request_id)

    assert record is not None and record.target is not None
    assert list(record.target) == ["unidentified"] and "web-new" in record.target["unidentified"]
