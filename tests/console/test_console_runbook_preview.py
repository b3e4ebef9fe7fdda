"""The console's request page for a runbook: the preview command, with the agent's values in it, sits in a box marked
as the agent's; what the host printed is labelled as the output of preview_argv on that host, outside the agent's
box; nothing is worded as "the changes it would make, as the agent wrote them"."""

from __future__ import annotations

import html
import re

import httpx2
import pytest

from argobox.server.app import open_app
from argobox.server.console.web import Console
from argobox.server.mediation import agent_calls
from tests.conftest import WriteConfig
from tests.console.test_console_units import ALICE, console_config
from tests.console_support import sign_in
from tests.server.transport.test_runbook_previews import HOST_SAYS, INJECTION, RUNBOOK

pytestmark = pytest.mark.anyio

BASE = "http://127.0.0.1:8080/"


def boxes(page: str, css_class: str) -> list[str]:
    """The text of every <pre> element of `page` with `css_class`, unescaped."""
    found = re.findall(rf'<pre class="[^"]*\b{css_class}\b[^"]*"[^>]*>(.*?)</pre>', page, re.DOTALL)
    return [html.unescape(text) for text in found]


async def test_the_request_page_marks_the_preview_command_as_the_agents_and_labels_the_host_output(
    write_config: WriteConfig,
) -> None:
    async with open_app(console_config(write_config, extra=RUNBOOK)) as app:
        outcome = await agent_calls.call_tool(app, "openclaw", "runbook_note", {"text": INJECTION})
        transport = httpx2.ASGITransport(app=Console(app, bound_host="127.0.0.1").asgi())
        async with httpx2.AsyncClient(transport=transport, base_url=BASE) as http:
            signed = await sign_in(http, BASE, "alice", ALICE)
            page = (await http.get(f"{BASE}requests/{outcome.request_id}")).text

    host_output = boxes(page, "host-output")
    agent_boxes = boxes(page, "agent-box")
    assert signed.status_code == 303
    assert host_output == [HOST_SAYS + "\n"]
    assert "as host <code>local</code> printed it" in page
    assert "ran on host <code>local</code>\n    and exited 0" in page
    assert any(INJECTION in box and "printf" in box for box in agent_boxes)  # the filled preview_argv
    assert not any(HOST_SAYS in box for box in agent_boxes)
    assert "as the agent wrote them" not in page and "would run" not in page
