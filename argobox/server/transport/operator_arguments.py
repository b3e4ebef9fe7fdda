"""Clear answers to operator-tool calls whose arguments do not fit: which argument, and what is expected.

The SDK validates a call's arguments against the tool's input schema before the tool runs, and answers a mismatch with
pydantic's own text ("1 validation error for deny_requestArguments ... visit https://errors.pydantic.dev/...").
`ArgumentCheckedServer` catches that at the tool boundary and answers in the operator's terms instead, built from the
tool's published input schema, so the message and the schema cannot disagree. The rejected values are not echoed.
An argument the tool does not take is refused before the tool runs (the SDK's argument models would drop it
silently, so `approve_request` with a misspelled `note` would approve without it), and every published input schema
says `additionalProperties: false`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from mcp import types
from mcp.server import MCPServer
from mcp.server.mcpserver.context import Context
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from argobox.server.redact import valid_text

MAX_NAMED = 3
"""At most this many unknown arguments are named in one answer."""


class ArgumentCheckedServer(MCPServer[Any]):
    """An `MCPServer` whose argument errors name the argument and what it takes, never the validator's text, and
    whose error messages pass through `redact` (they may quote what the client sent: an unknown tool's name)."""

    def __init__(self, *args: Any, redact: Callable[[str], str] = str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._redact = redact

    async def list_tools(self) -> list[types.Tool]:
        """The tools, each input schema closed to arguments it does not name."""
        tools = await super().list_tools()
        return [t.model_copy(update={"input_schema": {**t.input_schema, "additionalProperties": False}}) for t in tools]

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> types.CallToolResult | types.InputRequiredResult:
        if (invalid := _invalid_text(arguments)) is not None:
            raise ToolError(
                f"{self._redact(name)}: argument {self._redact(invalid)!r} is not valid text: it holds a lone "
                "surrogate, which no UTF-8 text can carry."
            )
        schemas = {tool.name: tool.input_schema for tool in await super().list_tools()}
        properties: dict[str, Any] = (schemas.get(name) or {}).get("properties") or {}
        unknown = [key for key in arguments if key not in properties]
        if name in schemas and unknown:
            more = f"; and {len(unknown) - MAX_NAMED} more" if len(unknown) > MAX_NAMED else ""
            named = "; ".join(unknown_argument(key, properties) for key in unknown[:MAX_NAMED])
            raise ToolError(self._redact(f"{name}: {named}{more}."))
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(exc, UnexpectedToolError):
                raise
            if not isinstance(cause, ValidationError):
                raise ToolError(self._redact(str(exc))) from cause
            schemas = {tool.name: tool.input_schema for tool in await self.list_tools()}
            schema: dict[str, Any] = schemas.get(name) or {}
            raise ToolError(argument_errors(name, cause, schema)) from cause


def _invalid_text(arguments: dict[str, Any]) -> str | None:
    """The first argument holding text that is not valid Unicode (a lone surrogate), anywhere within it."""
    for name, value in arguments.items():
        pending: list[Any] = [name, value]
        while pending:
            item = pending.pop()
            if isinstance(item, str) and valid_text(item) != item:
                return valid_text(name)
            if isinstance(item, dict):
                pending.extend(item.items())  # pyright: ignore[reportUnknownArgumentType]
            elif isinstance(item, list | tuple):
                pending.extend(item)  # pyright: ignore[reportUnknownArgumentType]
    return None


def argument_errors(tool: str, error: ValidationError, schema: dict[str, Any]) -> str:
    """One sentence per wrong argument of `tool`: which one, what is wrong, and what the schema expects."""
    properties: dict[str, Any] = schema.get("properties") or {}
    problems = [_problem(e, properties) for e in error.errors()]
    return f"{tool}: " + "; ".join(dict.fromkeys(problems)) + "."


def _problem(error: ErrorDetails, properties: dict[str, Any]) -> str:
    name = str(error["loc"][0]) if error["loc"] else ""
    if not name:
        return "the arguments must be an object of named arguments"
    if error["type"] == "missing":
        what = "is required"
    elif error["type"] == "extra_forbidden" or name not in properties:
        return unknown_argument(name, properties)
    else:
        what = "is not valid"
    expected = expectation(properties.get(name) or {})
    return f"argument {name!r} {what}" + (f": expected {expected}" if expected else "")


def unknown_argument(name: str, properties: dict[str, Any]) -> str:
    """An argument the tool does not take, the one probably meant, and the ones it takes."""
    meant = difflib.get_close_matches(name, list(properties), n=1, cutoff=0.6)
    hint = f"; did you mean {meant[0]!r}?" if meant else ""
    return f"{name[:64]!r} is not one of its arguments{hint} (it takes: {', '.join(properties) or 'none'})"


def expectation(schema: dict[str, Any]) -> str:
    """What a JSON Schema accepts, in words: "a text of 1 to 1000 characters (why the request is denied)"."""
    options: list[dict[str, Any]] = schema.get("anyOf") or [schema]
    kinds = [_kind(option) for option in options if option.get("type") != "null"]
    words = " or ".join(kind for kind in kinds if kind) or "a value"
    if any(option.get("type") == "null" for option in options):
        words += ", or null"
    description = schema.get("description")
    return f"{words} ({description})" if description else words


def _kind(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if "enum" in schema:
        return "one of " + ", ".join(repr(value) for value in schema["enum"])
    if kind == "string":
        return "a text" + _bounds(schema.get("minLength"), schema.get("maxLength"), "characters")
    if kind == "integer":
        return "a whole number" + _range(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        return "a number" + _range(schema.get("minimum"), schema.get("maximum"))
    if kind == "boolean":
        return "true or false"
    return str(kind) if kind else ""


def _bounds(low: int | None, high: int | None, unit: str) -> str:
    if low and high:
        return f" of {low} to {high} {unit}"
    if high:
        return f" of at most {high} {unit}"
    if low:
        return f" of at least {low} {unit}"
    return ""


def _range(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f" from {low} to {high}"
    if low is not None:
        return f" of at least {low}"
    if high is not None:
        return f" of at most {high}"
    return ""
