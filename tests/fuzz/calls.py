"""How the fuzz tests call the servers and read what comes back: in memory through the SDK's own `Client` (run in a
blocking portal, so that Hypothesis drives plain functions), and as raw answers from the wire paths.

Every answer is handed to the oracle: it must have come (no hang), be ArgoBox's own words (not the SDK's "internal
error" or "Error executing tool" that stands for an exception nothing handled), and show no traceback or secret.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from anyio.from_thread import BlockingPortal
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from mcp import Client, types
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import encode_header_value

from argobox.server.app import App
from argobox.server.redact import RedactingFormatter, Redactor
from tests.fuzz.oracle import Oracle, describe, failures

CALL_TIMEOUT_S = 20
MAX_HEADER_VALUE = 8 * 1024
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    phases=(Phase.explicit, Phase.generate),  # no shrinking: findings are collected with their input, not raised
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)
"""Repeatable (derandomized, no example database) and bounded (no deadline per example, no shrinking)."""
CLIENT_LOGGERS = ("client", "mcp.client")


def run_examples(
    strategy: st.SearchStrategy[Any], examples: int, one: Callable[[Any], None], seeds: Sequence[Any] = ()
) -> None:
    """Call `one` with `examples` values drawn from `strategy`, after each of `seeds` (inputs that once failed)."""

    @settings(FUZZ, max_examples=examples)
    @given(strategy)
    def fuzz(drawn: Any) -> None:
        one(drawn)

    for seed in reversed(seeds):
        fuzz = example(seed)(fuzz)
    fuzz()


class CapturedLogs(logging.Handler):
    """Every log record of the in-process servers, formatted as ArgoBox formats its own (redacted)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(RedactingFormatter(redactor, "%(name)s %(levelname)s %(message)s"))
        self.lines: list[tuple[str, bool]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(CLIENT_LOGGERS):  # the servers' records, not the test's own clients'
            self.lines.append((self.format(record), record.exc_info is not None))


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    structured: dict[str, Any] | None
    crashed: str | None
    is_error: bool = False


@dataclass
class InMemory:
    """The lab's App, open in the portal's event loop, and the log records of the servers built on it."""

    portal: BlockingPortal
    app: App
    logs: CapturedLogs

    @contextmanager
    def client(self, server: Any, mode: str = "auto") -> Generator[Client]:
        with self.portal.wrap_async_context_manager(Client(server, mode=mode)) as opened:
            self.portal.call(opened.list_tools)  # so that the client checks each answer against the tool's schema
            yield opened

    def ask(self, oracle: Oracle, surface: str, client: Client, tool: str, arguments: Any) -> Answer:
        """Call, and report what the answer shows: a crash, a hang, a traceback or a secret."""
        shown_input = (tool, arguments)
        try:
            answer = self.portal.call(call, client, tool, arguments)
        except TimeoutError:
            oracle.report("hang", surface, f"no answer within {CALL_TIMEOUT_S} s", shown_input)
            return Answer("", None, "hang")
        except Exception as exc:  # noqa: BLE001 - whatever the server raised is the finding
            oracle.report("crash", surface, f"{type(exc).__name__}: {describe(str(exc))}", shown_input)
            return Answer("", None, type(exc).__name__)
        if answer.crashed is not None:
            oracle.report("crash", surface, answer.crashed, shown_input)
        oracle.check(surface, answer.text, shown_input)
        return answer

    def check_logs(self, oracle: Oracle, surface: str) -> None:
        """Report a secret in any log line, and any record with a traceback (an exception nothing handled)."""
        for line, traced in self.logs.lines:
            oracle.check(f"{surface} log", line, "", shown=False)
            if traced:
                last = line.strip().splitlines()[-1]
                oracle.report("crash", surface, f"a log record with a traceback: {describe(line[:200])}: {last}", "")
        self.logs.lines.clear()


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> Answer:
    """One tools/call (or a resource read, for the pseudo-tool `@read`), as the text a client would see."""
    with anyio.fail_after(CALL_TIMEOUT_S):
        try:
            if tool == "@read":
                read = await client.read_resource(str(arguments.get("uri")))
                return Answer(repr(read.model_dump()), None, None)
            result = await client.call_tool(tool, arguments)
        except MCPError as exc:
            crashed = "an internal error" if exc.code == types.INTERNAL_ERROR else None
            return Answer(f"{exc.code} {exc.message} {exc.data!r}", None, crashed, is_error=True)
    text = "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))
    crashed = text if result.is_error and text.startswith("Error executing tool") and ":" not in text else None
    return Answer(f"{text}\n{result.structured_content!r}", result.structured_content, crashed, result.is_error)


def sendable(tool: str, arguments: dict[str, Any]) -> bool:
    """Whether the SDK's client can put this call on its wire at all (it cannot serialise a lone surrogate in a
    mapping key); what it cannot send, only the raw frames of the wire tests can."""
    request = types.CallToolRequest(params=types.CallToolRequestParams(name=tool, arguments=arguments))
    try:
        request.model_dump(by_alias=True, mode="json", exclude_none=True)
    except (UnicodeEncodeError, ValueError):
        return False
    return True


def over_http(value: Any) -> Any:
    """`value` as an HTTP client can send it: it writes JSON as UTF-8, so a lone surrogate (in a key or a value)
    becomes "?". The raw frames of the wire tests send them as drawn."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode()
    if isinstance(value, dict):
        return {over_http(k): over_http(v) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, list):
        return [over_http(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
    return value


def sendable_as_header(name: str) -> bool:
    """Whether a client of the 2026 era can send `name`: it copies the name into a header (as UTF-8, base64 when not
    plain ASCII), and an HTTP server refuses a request whose headers pass its limit (uvicorn: 16 KiB) before any
    MCP code sees it. Other names go through a client of the handshake era, which sends them in the body only."""
    try:
        return len(encode_header_value(name)) <= MAX_HEADER_VALUE
    except UnicodeEncodeError:
        return False


def check_wire_answer(oracle: Oracle, surface: str, body: bytes, shown_input: Any) -> None:
    """A raw answer: checked as text, and as JSON-RPC when it is one (an internal error is a crash)."""
    text = body.decode("utf-8", "replace")
    oracle.check(surface, text, shown_input)
    for line in text.splitlines():
        message = _json_object(line.removeprefix("data: "))
        error = message.get("error") if message is not None else None
        if isinstance(error, dict) and error.get("code") == types.INTERNAL_ERROR:  # pyright: ignore[reportUnknownMemberType]
            oracle.report("crash", surface, f"an internal error: {describe(line)}", shown_input)


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None  # pyright: ignore[reportUnknownVariableType]


def check_process_log(oracle: Oracle, surface: str, log: Path) -> None:
    """A server's own log: no seeded secret, and no traceback (an exception nothing handled)."""
    text = log.read_text(errors="replace")
    oracle.check(f"{surface} log", text, "", shown=False)
    if (at := text.find("Traceback")) >= 0:
        oracle.report("crash", surface, f"a traceback in the server log: {describe(text[at : at + 3000])}", "")


def assert_clean(oracle: Oracle, surface: str) -> None:
    found = [f for f in oracle.findings if f.surface.startswith(surface)]
    assert not found, failures(found)
