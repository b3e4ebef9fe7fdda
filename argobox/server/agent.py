"""The agent-facing MCP server: one agent identity, fixed when the server is built; tools filtered by its grant.

Built on the low-level `Server` so that `tools/list` and `tools/call` see who is asking, and so that every
answer (success, pending, denied, bad input) is one explicit `CallToolResult` matching the tool's schema.
"""

from __future__ import annotations

import json
from typing import Any

import mcp.types as types
from mcp.server import Server, ServerRequestContext
from mcp.shared.exceptions import MCPError

from argobox import __version__
from argobox.policy.decide import visible_tools
from argobox.server import gate
from argobox.server.app import App
from argobox.server.redact import Redactor
from argobox.server.tools import TOOLS, Outcome

INSTRUCTIONS = (
    "ArgoBox mediates your access to this homelab. Read-only tools answer at once. A change may come back as "
    "'pending_approval' with a request_id: a human operator decides it outside this conversation; check on it "
    "later with argobox_request_status and do not repeat the call. 'denied' is final."
)


def _result(outcome: Outcome[Any], redact: Redactor) -> types.CallToolResult:
    """The answer to the agent; everything in it passes through the redactor."""
    structured = redact(outcome.model_dump(mode="json"))
    text = outcome.message
    if outcome.result is not None:
        text += "\n" + json.dumps(structured["result"], sort_keys=True)
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=redact.text(text))],
        structured_content=structured,
        is_error=outcome.is_error,
    )


def build_agent_server(app: App, agent: str) -> Server[Any]:
    """The MCP server for `agent` (which must be a configured agent), backed by `app`."""
    if agent not in app.config.agents:
        raise ValueError(f"{agent!r} is not a configured agent")

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        names = visible_tools(app.config.grant(agent))
        return types.ListToolsResult(tools=[TOOLS[name].mcp_tool() for name in names])

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        arguments: dict[str, Any] = dict(params.arguments or {})
        try:
            outcome = await gate.call_tool(app, agent, params.name, arguments)
        except gate.UnknownTool as exc:
            raise MCPError(types.INVALID_PARAMS, app.redactor.text(str(exc))) from None
        return _result(outcome, app.redactor)

    return Server(
        "argobox",
        version=__version__,
        title="ArgoBox",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )
