"""What a notification tells a phone or a screen is inert: agent-chosen text cannot clear a screen, set a title,
or reverse what an operator reads (an unlock shown as a lock); the request's arguments stay exact in the JSON."""

from __future__ import annotations

from dataclasses import replace

import pytest

from argobox.server.app import open_app
from argobox.server.config.model import load_config
from argobox.server.mediation import agent_calls, notify
from tests.conftest import WriteConfig

pytestmark = pytest.mark.anyio

HOSTILE = "\x1b[2J\x1b]0;all clear\x07\u202ekcol\r\x9b\u3164"  # the last: a letter that shows as nothing


async def test_a_notification_shows_agent_text_inert_and_keeps_the_arguments_exact(write_config: WriteConfig) -> None:
    async with open_app(load_config(write_config())) as app:
        outcome = await agent_calls.call_tool(app, "openclaw", "docker_restart_container", {"container": "jellyfin"})
        assert outcome.request_id is not None
        record = await app.store.get(outcome.request_id)
        assert record is not None
        hostile = replace(record, arguments={"container": HOSTILE})  # as a stored value could hold it
        queued = notify.payload(app, "queued", hostile)
        decided = notify.payload(app, "denied", hostile)

    for body in (queued, decided):
        assert body["message"].isprintable() and body["request"]["summary"].isprintable()
        assert not {"\x1b", "\x07", "\u202e", "\r", "\x9b", "\u3164"} & set(
            body["message"] + body["request"]["summary"]
        )
        assert "\\x1b[2J" in body["message"] and "<U+3164>" in body["message"]  # shown, as visible stand-ins
        assert body["request"]["arguments"] == {"container": HOSTILE}
