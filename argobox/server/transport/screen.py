"""What the HTTP gate checks in a POST to `/mcp` (after the bearer token) before the SDK reads it.

Malformed JSON-RPC is answered with HTTP 400 and the error the specification names, from the same `rejection` the
stdio server uses: not JSON, nested too deeply or a lone surrogate is a parse error, JSON that is not a request
(a JSON array among them) an invalid request, `params` that is not an object invalid params. The SDK would answer
some of these with pydantic's own text, and the wrong code for an array, and would take a request whose `id` is not
a string or an integer for a notification (HTTP 202, no answer). A broken notification or response, which JSON-RPC
never answers, still needs an HTTP answer: an invalid request without an id.

A request that opens a handshake-era session (`initialize`) is checked against the agent's session cap and
request budget here (see `argobox.server.transport.sessions`).
"""

from __future__ import annotations

import mcp_types as types
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

from argobox.server.app import App
from argobox.server.transport.jsonrpc import mistaken_notification, rejection
from argobox.server.transport.refusals import RefusalAudit
from argobox.server.transport.sessions import AgentSessionManager, admit_handshake, opens_session, send_rpc_error

BAD_REQUEST = 400
PAYLOAD_TOO_LARGE = 413


def screen_frame(body: bytes) -> tuple[types.JSONRPCMessage | None, types.JSONRPCError | None]:
    """The message `body` holds, or the error to answer it with over HTTP."""
    try:
        message = types.jsonrpc_message_adapter.validate_json(body, by_name=False)
    except ValidationError:
        error = rejection(body)
    else:
        error = mistaken_notification(body) if isinstance(message, types.JSONRPCNotification) else None
        if error is None:
            return message, None
    if error is None:  # a broken notification or response: JSON-RPC answers nothing, HTTP must answer something
        message = "Invalid request: not a JSON-RPC request, notification or response"
        error = types.JSONRPCError(
            jsonrpc="2.0", id=None, error=types.ErrorData(code=types.INVALID_REQUEST, message=message)
        )
    return None, error


class PostScreen:
    """Reads a POST body (within the SDK's size limit), answers what must not reach the SDK, and replays the rest."""

    def __init__(
        self,
        app: App,
        refusals: RefusalAudit,
        sessions: AgentSessionManager | None,
        *,
        max_body: int = DEFAULT_MAX_REQUEST_BODY_SIZE,
    ) -> None:
        self._app = app
        self._refusals = refusals
        self._sessions = sessions
        self._max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send, agent: str) -> Receive | None:
        """A `receive` that replays the body for the SDK, or None when the request was answered (or abandoned)."""
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_body:
            return receive  # the SDK answers 413 without reading it
        body = await self._read(receive, send)
        if body is None:
            return None
        message, error = screen_frame(body)
        if error is not None:
            await send_rpc_error(send, BAD_REQUEST, error)
            return None
        if (
            self._sessions is not None
            and isinstance(message, types.JSONRPCRequest)
            and message.method == "initialize"
            and opens_session(scope)
        ):
            admitted = await admit_handshake(
                self._app, self._sessions, self._refusals, scope, send, agent=agent, request_id=message.id
            )
            if not admitted:
                return None
        return _replay(body, receive)

    async def _read(self, receive: Receive, send: Send) -> bytes | None:
        chunks = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None  # the client went away
            chunks += message.get("body", b"")
            if len(chunks) > self._max_body:
                text = f"Invalid request: the body is over {self._max_body} bytes"
                error = types.ErrorData(code=types.INVALID_REQUEST, message=text)
                await send_rpc_error(send, PAYLOAD_TOO_LARGE, types.JSONRPCError(jsonrpc="2.0", id=None, error=error))
                return None
            if not message.get("more_body", False):
                return bytes(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
