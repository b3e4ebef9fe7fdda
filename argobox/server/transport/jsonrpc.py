"""Malformed JSON-RPC gets the error the specification names, never silence.

The SDK drops a frame it cannot read and answers nothing, so a client waits forever. `rejection` says what a frame
is wrong with: not JSON (or JSON nested too deeply, or a lone surrogate) is a parse error; JSON that is not a
request is an invalid request; a request whose `params` is not an object is invalid params. A notification (no
`id`) is never answered, as JSON-RPC requires; neither is a broken response from the client. A request whose `id`
is there but is not a string or an integer (an object, a boolean, a fraction, null: MCP forbids a null id) is an
invalid request answered with a null id; the SDK would take it for a notification and answer nothing.
"""

from __future__ import annotations

import json
from typing import Any, cast

import mcp_types as types
from pydantic import ValidationError

MAX_SHOWN_METHOD = 64


def rejection(frame: str | bytes) -> types.JSONRPCError | None:
    """The error to answer `frame` with, or None when the SDK can read it (or it must not be answered)."""
    try:
        message = types.jsonrpc_message_adapter.validate_json(frame, by_name=False)
    except ValidationError as exc:
        return rejection_of(frame, exc)
    if isinstance(message, types.JSONRPCNotification):  # or a request whose id the SDK could not read
        return mistaken_notification(frame)
    return None


def rejection_of(frame: str | bytes, exc: ValidationError) -> types.JSONRPCError | None:
    """The error to answer `frame` with, given why the SDK's message model refused it (`exc`); None when it must
    not be answered."""
    if any(error["type"] == "json_invalid" for error in exc.errors()):
        return _error(None, types.PARSE_ERROR, "Parse error: the message is not valid JSON")
    return _invalid(_loads(frame))


def mistaken_notification(frame: str | bytes) -> types.JSONRPCError | None:
    """The error for a frame the SDK reads as a notification although it has an `id` (of a type no request may
    have), or None for a true notification. Notifications are few, so reading the frame again costs little."""
    message = _loads(frame)
    return _invalid(message) if isinstance(message, dict) and "id" in message else None


def _loads(frame: str | bytes) -> Any:
    try:
        return json.loads(frame)
    except (ValueError, RecursionError):
        return None


def _invalid(message: Any) -> types.JSONRPCError | None:
    if not isinstance(message, dict):
        return _error(None, types.INVALID_REQUEST, "Invalid request: a JSON-RPC message is a JSON object")
    fields = cast("dict[str, Any]", message)
    if "method" not in fields and ("result" in fields or "error" in fields):
        return None  # a response from the client: nothing to answer
    if "id" not in fields:
        return None  # a notification: never answered
    request_id = fields["id"]
    answer_id = request_id if isinstance(request_id, str | int) and not isinstance(request_id, bool) else None
    method = fields.get("method")
    if answer_id is None or fields.get("jsonrpc") != "2.0" or not isinstance(method, str):
        return _error(
            answer_id,
            types.INVALID_REQUEST,
            'Invalid request: expected {"jsonrpc": "2.0", "id": <string or integer>, "method": <string>}',
        )
    params = fields.get("params")
    if params is not None and not isinstance(params, dict):
        return _error(
            answer_id,
            types.INVALID_PARAMS,
            f"Invalid params: the params of {method[:MAX_SHOWN_METHOD]!r} must be a JSON object",
        )
    return _error(answer_id, types.INVALID_REQUEST, "Invalid request")


def _error(request_id: str | int | None, code: int, message: str) -> types.JSONRPCError:
    return types.JSONRPCError(jsonrpc="2.0", id=request_id, error=types.ErrorData(code=code, message=message))
