"""The agent-facing MCP server; tools filtered by the grant of the agent asking.

Built on the low-level `Server` so that `tools/list` and `tools/call` see who is asking, and so that every
answer (success, pending, denied, bad input) is one explicit `CallToolResult` matching the tool's schema.

Who is asking comes from an identity resolver, never from the request body: over stdio it is the agent fixed at
launch (`fixed_identity`); over HTTP it is the agent whose bearer token authenticated the request
(`argobox.server.transport.http`). The resolver is asked on every request, under the configuration in force at that
moment, so a reload that removes an agent or changes its token takes effect at once.
"""

from __future__ import annotations

import json
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
from mcp import types
from mcp.server import Server, ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions
from mcp.server.models import InitializationOptions
from mcp.shared.exceptions import MCPError

from argobox import __version__
from argobox.server.app import App
from argobox.server.config.model import Config
from argobox.server.config.tokens import token_matches
from argobox.server.mediation import agent_calls
from argobox.server.mediation.outcome import Outcome
from argobox.server.mediation.runbooks import runbook_tool
from argobox.server.mediation.shield import to_the_end
from argobox.server.mediation.tools import TOOLS
from argobox.server.redact import Redactor
from argobox.server.transport.live import CallTracker, LiveState

logger = logging.getLogger("argobox")

INSTRUCTIONS = (
    "ArgoBox mediates your access to this homelab. Read-only tools answer at once. A change may come back as "
    "'pending_approval' with a request_id: a human operator decides it outside this conversation; check on it "
    "later with argobox_request_status and do not repeat the call. 'denied' is final."
)

Identity = Callable[[], str | None]
"""Who is asking, under the configuration in force: a configured agent's name, or None (serve nothing)."""
Background = Callable[[App], Coroutine[Any, Any, None]]
"""A task that runs beside a server for as long as it serves (such as notification delivery)."""

_TOOL_CACHE: dict[str, types.Tool] = {}


def _tool(name: str, config: Config | None = None) -> types.Tool:
    tool = _TOOL_CACHE.get(name)
    if tool is None and name not in TOOLS and config is not None:  # a runbook of this configuration
        return runbook_tool(config.runbooks, name)
    if tool is None:
        tool = _TOOL_CACHE[name] = TOOLS[name].mcp_tool()
    return tool


def _input_schema(name: str) -> Mapping[str, Any] | None:
    # Used by the SDK only to check `Mcp-Param-*` headers on 2026 HTTP calls. No ArgoBox tool declares such
    # headers, so the answer is the same for a tool the caller may not see and for one that does not exist; it
    # spares the SDK a `tools/list` round per call.
    return _tool(name).input_schema if name in TOOLS else None


def _result(outcome: Outcome[Any], redact: Redactor) -> types.CallToolResult:
    """The answer to the agent; everything in it passes through the redactor.

    Envelope fields with no value are left out (they are optional in the output schema): a literal `"error": null`
    reads as a failure to clients that look for the word (Hermes Agent's loop guard does)."""
    result_json = outcome.redacted_result_json
    if result_json is not None:  # redacted and serialised once already (see `Outcome.with_redacted_result`)
        dumped = outcome.model_dump(mode="json", exclude={"result"})
        structured = redact({key: value for key, value in dumped.items() if value is not None})
        structured["result"] = outcome.result
        text = redact.text(outcome.message + "\n" + result_json)  # as a whole, as any other answer's text
    else:
        dumped = outcome.model_dump(mode="json")
        structured = redact({key: value for key, value in dumped.items() if value is not None})
        text = outcome.message
        if outcome.result is not None:
            text += "\n" + json.dumps(structured["result"], sort_keys=True)
        text = redact.text(text)
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content=structured,
        is_error=outcome.is_error,
    )


def fixed_identity(app: App, agent: str, token: str | None = None, *, check_token: bool = True) -> Identity:
    """The identity of a server started for one agent (stdio): `agent` while the configuration in force still has
    it and, with `check_token`, while `token` matches its `token_sha256` (if it has one); otherwise None."""
    checked: list[tuple[Config, str | None]] = []

    def identity() -> str | None:
        config = app.config
        if checked and checked[0][0] is config:
            return checked[0][1]
        configured = config.agents.get(agent)
        if configured is None:
            valid = False
        elif configured.token_sha256 is None or not check_token:
            valid = True
        else:
            valid = token is not None and token_matches(token, configured.token_sha256)
        if not valid and (not checked or checked[0][1] is not None):
            logger.warning(
                "agent %r is not configured with the identity this server was started with; it sees no tools", agent
            )
        checked[:] = [(config, agent if valid else None)]
        return checked[0][1]

    return identity


class _AgentServer(Server[Any]):
    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        # Handshake-era clients learn of grant changes through notifications/tools/list_changed: advertise it.
        return super().create_initialization_options(
            notification_options or NotificationOptions(tools_changed=True), experimental_capabilities, extensions
        )


def build_agent_server(
    app: App,
    agent: str | Identity,
    *,
    live: LiveState | None = None,
    on_refused: Callable[[str], Awaitable[None]] | None = None,
) -> Server[Any]:
    """The MCP server backed by `app`, for one configured agent (a name) or for whoever `agent` resolves to.

    `live` collects the server's live connections (for tools-changed events) and calls in flight; pass one to
    publish to them. `on_refused(tool)` is awaited for each call refused because there is no identity (to audit it).
    """
    if isinstance(agent, str):
        if agent not in app.config.agents:
            raise ValueError(f"{agent!r} is not a configured agent")
        identity = fixed_identity(app, agent, check_token=False)  # the caller checked the token, if any
    else:
        identity = agent
    handlers = _Handlers(app, identity, live if live is not None else LiveState(), on_refused)
    return _AgentServer(
        "argobox",
        version=__version__,
        title="ArgoBox",
        instructions=INSTRUCTIONS,
        on_list_tools=handlers.list_tools,
        on_call_tool=handlers.call_tool,
        on_subscriptions_listen=handlers.listen,
        get_tool_input_schema=_input_schema,
    )


@dataclass(frozen=True, slots=True)
class _Handlers:
    """The agent server's request handlers; each asks `identity` who is asking, under the configuration in force."""

    app: App
    identity: Identity
    state: LiveState
    on_refused: Callable[[str], Awaitable[None]] | None

    async def list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        with self.app.settings.pinned() as config:
            who = self.identity()
            self.state.remember(ctx, who)
            names = sorted(config.grant(who).visible) if who is not None else []
        # Deterministic order; never cached by clients, so a grant change shows at the next listing.
        return types.ListToolsResult(tools=[_tool(name, config) for name in names], ttl_ms=0, cache_scope="private")

    async def call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        app = self.app
        arguments: dict[str, Any] = dict(params.arguments or {})
        with app.settings.pinned():  # one configuration for the whole call, whatever reloads meanwhile
            who = self.identity()
            self.state.remember(ctx, who)
            if who is None:
                if self.on_refused is not None:
                    await self.on_refused(params.name)
                raise MCPError(types.INVALID_PARAMS, str(agent_calls.UnknownTool(app.redactor.text(params.name))))
            # Once admitted, a call runs to its end even if the client goes away or the server is stopping, so
            # an execution is always recorded with its outcome.
            with self.state.calls.track(), to_the_end():
                try:
                    outcome = await agent_calls.call_tool(app, who, params.name, arguments)
                except agent_calls.UnknownTool as exc:
                    raise MCPError(types.INVALID_PARAMS, app.redactor.text(str(exc))) from None
                return _result(outcome, app.redactor)
        raise AssertionError("unreachable: a shielded scope ends with its result")  # for the type checker

    async def listen(
        self, ctx: ServerRequestContext[Any], params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        who = self.identity()
        if who is None:
            raise MCPError(types.INVALID_REQUEST, "no agent identity for this request")
        return await self.state.listen(who, ctx, params)


STDIO_DRAIN_SECONDS = 30.0
"""How long a signalled stdio server waits for its calls in flight to be answered before it stops."""


async def serve_stdio(
    app: App,
    agent: str,
    token: str | None,
    *,
    background: Sequence[Background] = (),
    drain_seconds: float = STDIO_DRAIN_SECONDS,
) -> None:
    """Serve `agent` over stdio until stdin closes or SIGTERM/SIGINT; follow configuration changes meanwhile, and
    run the `background` tasks (such as notification delivery) alongside.

    On a signal, the calls in flight are given `drain_seconds` to finish and be answered, then the server stops,
    even while the client keeps stdin open; a call still running then finishes and is recorded before the exit.
    """
    from argobox.server.transport.refusals import RefusalAudit
    from argobox.server.transport.stdio import checked_stdio
    from argobox.server.transport.watch import ConfigWatcher, Reload

    live = LiveState()
    refusals = RefusalAudit(app, transport="stdio")

    async def refused(tool: str) -> None:  # one reason per cause, whatever the tool, so repeats are coalesced
        if agent not in app.config.agents:
            reason = f"agent {agent!r} is no longer configured; its calls are refused"
        else:
            reason = f"the token this server was started with no longer matches agent {agent!r}; its calls are refused"
        await refusals.refused(reason, agent)

    server = build_agent_server(app, fixed_identity(app, agent, token), live=live, on_refused=refused)

    async def on_reload(change: Reload) -> None:
        if agent in change.changed or agent in change.revoked:
            await live.tools_changed([agent])

    watcher = ConfigWatcher(app, on_reload, process=f"stdio server of agent {agent}")
    async with anyio.create_task_group() as tg:
        tg.start_soon(watcher.run)
        tg.start_soon(_cancel_on_signal, tg.cancel_scope, live.calls, drain_seconds)
        for task in background:
            tg.start_soon(task, app)
        try:
            async with checked_stdio(answered=app.store.answered) as (read, write):
                await server.run(read, write, server.create_initialization_options())
        finally:
            with anyio.CancelScope(shield=True):
                await refusals.flush()
        tg.cancel_scope.cancel()


async def _cancel_on_signal(scope: anyio.CancelScope, calls: CallTracker, drain_seconds: float) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            in_flight = calls.count
            logger.info(
                "received %s: stopping after the %d call%s in flight (at most %g s)",
                signal.Signals(signum).name,
                in_flight,
                "" if in_flight == 1 else "s",
                drain_seconds,
            )
            with anyio.move_on_after(drain_seconds) as waited:
                await calls.wait_idle()
            if waited.cancelled_caught:
                logger.warning(
                    "calls still in flight after %g s; they finish and are recorded before exit", drain_seconds
                )
            scope.cancel()
            return
