"""Nothing an agent (or a backend it can influence) wrote reaches the operator's terminal raw: `argobox audit`,
`requests`, `show` and `approve` print escape sequences, carriage returns and bidi overrides as visible stand-ins,
while `--json` keeps every value exact. (The simulated home holds the hostile entity state here; the same with a real
Home Assistant, and `argobox watch --all`, are in tests/e2e/test_terminal.py.)"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

import anyio
import pytest

from argobox.server.app import open_app
from argobox.server.cli.main import main
from argobox.server.config.model import load_config
from argobox.server.mediation import agent_calls
from tests.conftest import HOME_RULES, WriteConfig

HOSTILE_TOOL = "\x1b[2J\x1b[H\x1b]0;all clear\x07\x1b]8;;http://127.0.0.1/\x1b\\ok\x1b]8;;\x1b\\\r\u202ekcol\x9b"
"""A tool name that would clear the screen, set the window title, add a hyperlink, go back to the line's start and
reverse the text that follows (under 64 characters, so it is recorded whole)."""
HOSTILE_STATE = "locked\r\x1b[2Kunlocked \u2066\u202elocked\u2069\x1b]0;fine\x07"
"""An entity state that would overwrite its own line with "unlocked"."""


def dangerous(text: str) -> list[str]:
    return [f"U+{ord(c):04X}" for c in text if unicodedata.category(c) in ("Cc", "Cf", "Cs") and c != "\n"]


def run(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str, str]:
    status = main(["--config", str(config), *args])
    shown = capsys.readouterr()
    return status, shown.out, shown.err


@pytest.fixture
def hostile(write_config: WriteConfig) -> tuple[Path, str]:
    """A store with a call to a tool named by escape sequences, and a pending unlock of a door whose state (in the
    simulated home) is hostile. Returns the config and the request's id."""
    config = write_config(homeassistant='simulated_home = "home.json"', extra=HOME_RULES)

    async def act() -> str:
        async with open_app(load_config(config)) as app:
            with pytest.raises(agent_calls.UnknownTool):
                await agent_calls.call_tool(app, "openclaw", HOSTILE_TOOL, {})
            await app.homeassistant.list_entities()  # type: ignore[union-attr]  # seeds home.json
            home = json.loads((config.parent / "home.json").read_text())
            home["lock.front_door"]["state"] = HOSTILE_STATE
            (config.parent / "home.json").write_text(json.dumps(home))
            unlock: dict[str, Any] = {"domain": "lock", "service": "unlock", "entity_id": "lock.front_door", "data": {}}
            outcome = await agent_calls.call_tool(app, "openclaw", "ha_call_service", unlock)
            assert outcome.request_id is not None, outcome
            return outcome.request_id

    return config, anyio.run(act)


def test_audit_prints_an_escape_sequence_tool_name_inert_and_json_exact(
    hostile: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = hostile

    status, text, _ = run(capsys, config, "audit")
    _, exact, _ = run(capsys, config, "audit", "--json")

    assert status == 0 and dangerous(text) == []
    assert "refused by argobox \\x1b[2J\\x1b[H\\x1b]0;all clear\\x07" in text and "\\r<U+202E>kcol\\x9b" in text
    assert HOSTILE_STATE not in text
    assert [e["tool"] for e in json.loads(exact) if e["event"] == "refused"] == [HOSTILE_TOOL]


def test_show_requests_and_approve_print_a_hostile_entity_state_inert(
    hostile: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    config, request_id = hostile

    _, listed, _ = run(capsys, config, "requests", "--status", "pending")
    status, shown, _ = run(capsys, config, "show", request_id)
    _, exact, _ = run(capsys, config, "show", request_id, "--json")
    approved, outcome, executing = run(capsys, config, "approve", request_id, "--as", "alice")
    refused, _, error = run(capsys, config, "show", HOSTILE_TOOL)

    assert dangerous(listed + shown + outcome + executing + error) == []
    assert "call Home Assistant service lock.unlock on 'lock.front_door'" in listed
    assert status == 0 and "lock.front_door: locked\\r\\x1b[2Kunlocked <U+2066><U+202E>locked<U+2069>" in shown
    assert json.loads(exact)["explanation"]["preview"]["states"] == {"lock.front_door": HOSTILE_STATE}
    assert approved == 0 and "executing..." in executing and "\\u001b]0;fine\\u0007" in outcome  # JSON escapes
    assert refused == 1 and "no request '\\x1b[2J" in error
