"""`argobox show` of a request interrupted mid-execution (`unknown`): what happened, what the operator can do, and
the target as it is now (tests/e2e/test_crash.py reaches that state by killing a real process)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from argobox.server.app import open_app
from argobox.server.config.model import load_config
from argobox.server.mediation import agent_calls
from argobox.server.mediation.explain import UNKNOWN_OUTCOME, explain, explain_text
from argobox.server.store import RequestStatus
from tests.conftest import WriteConfig

pytestmark = pytest.mark.anyio


async def test_an_interrupted_request_is_explained_with_its_target_as_it_is_now(write_config: WriteConfig) -> None:
    async with open_app(load_config(write_config())) as app:
        call = {"container": "jellyfin"}
        outcome = await agent_calls.call_tool(app, "openclaw", "docker_restart_container", call)
        assert outcome.request_id is not None
        record = await app.store.get(outcome.request_id)
        assert record is not None
        data = await explain(app, replace(record, status=RequestStatus.UNKNOWN))
        finished = await explain(app, replace(record, status=RequestStatus.SUCCEEDED))

    text = explain_text(data)
    assert data["explanation"]["outcome"] == UNKNOWN_OUTCOME
    assert f"  outcome:        {UNKNOWN_OUTCOME}" in text
    assert data["explanation"]["preview"]["available"] is True
    assert "  target now:     container jellyfin: state running" in text
    assert finished["explanation"]["outcome"] is None and "outcome:" not in explain_text(finished)
