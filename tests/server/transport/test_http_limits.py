"""The HTTP daemon's own limits without a server: what a POST body is answered with, the connection caps, the fit to
the file-descriptor limit, and logging that repeats itself once per window (the daemon tests drive the real thing)."""

from __future__ import annotations

import logging
import sys

import mcp_types as types
import pytest

from argobox.server.config.http import HttpConfig
from argobox.server.transport import connections
from argobox.server.transport.connections import DESCRIPTORS_RESERVED, ConnectionGuard, fit_to_descriptors
from argobox.server.transport.quiet import CoalescedLog, QuietRepeats
from argobox.server.transport.screen import screen_frame


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("body", "code", "request_id"),
    [
        pytest.param(b"{", types.PARSE_ERROR, None, id="not-json"),
        pytest.param(b"[" * 3000 + b"]" * 3000, types.PARSE_ERROR, None, id="deep"),
        pytest.param(b'{"jsonrpc":"2.0","id":3,"method":"m","params":[1]}', types.INVALID_PARAMS, 3, id="params-array"),
        pytest.param(b'[{"jsonrpc":"2.0","id":4,"method":"m"}]', types.INVALID_REQUEST, None, id="array"),
        pytest.param(b'{"jsonrpc":"2.0","method":5}', types.INVALID_REQUEST, None, id="broken-notification"),
        pytest.param(b'{"jsonrpc":"2.0","result":{}}', types.INVALID_REQUEST, None, id="response-without-id"),
        pytest.param(b'{"jsonrpc":"2.0","id":{"a":1},"method":"m"}', types.INVALID_REQUEST, None, id="id-an-object"),
        pytest.param(b'{"jsonrpc":"2.0","id":true,"method":"m"}', types.INVALID_REQUEST, None, id="id-a-boolean"),
        pytest.param(b'{"jsonrpc":"2.0","id":null,"method":"m"}', types.INVALID_REQUEST, None, id="id-null"),
    ],
)
def test_a_malformed_body_gets_the_named_error_and_no_message(body: bytes, code: int, request_id: int | None) -> None:
    message, error = screen_frame(body)
    assert message is None and error is not None
    assert (error.id, error.error.code) == (request_id, code)


def test_a_well_formed_body_is_read_once_and_handed_on() -> None:
    message, error = screen_frame(b'{"jsonrpc":"2.0","id":"a","method":"initialize","params":{}}')
    assert error is None and isinstance(message, types.JSONRPCRequest)
    assert (message.id, message.method) == ("a", "initialize")


def test_connections_are_capped_per_address_then_in_total_and_released() -> None:
    guard = ConnectionGuard(HttpConfig(max_connections=3, max_connections_per_address=2))
    assert guard.admit("127.0.0.1") is None and guard.admit("127.0.0.1") is None
    per_address = guard.admit("127.0.0.1")
    assert guard.admit("127.0.0.2") is None
    total = guard.admit("127.0.0.3")
    guard.release("127.0.0.1")
    again = guard.admit("127.0.0.3")

    assert per_address is not None and per_address.status == 429 and "127.0.0.1 (2 open" in per_address.text
    assert total is not None and total.status == 503 and "(3 open" in total.text
    assert again is None


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX resource limits")
def test_max_connections_is_lowered_to_what_the_descriptor_limit_holds(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def few(_: int) -> tuple[int, int]:
        return (200, 200)

    monkeypatch.setattr(connections.resource, "getrlimit", few)
    fitted = fit_to_descriptors(HttpConfig(max_connections=512))
    assert fitted.max_connections == 200 - DESCRIPTORS_RESERVED
    assert "max_connections = 512 is lowered to 136" in caplog.text


def test_a_flood_of_one_refusal_is_one_line_then_a_count(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    log = CoalescedLog(clock=clock)
    with caplog.at_level(logging.WARNING, logger="argobox"):
        for _ in range(100):
            log.note("headers timeout", "dropped a connection from 127.0.0.1")
        clock.now += log.window
        log.note("headers timeout", "dropped a connection from 127.0.0.9")
        log.note("body timeout", "dropped a connection from 127.0.0.1")
        log.flush()
    assert [r.getMessage() for r in caplog.records] == [
        "dropped a connection from 127.0.0.1",
        "dropped a connection from 127.0.0.9 (and 99 more like it before)",
        "dropped a connection from 127.0.0.1",
    ]


def test_a_library_repeating_a_traceback_shows_it_once_then_counts() -> None:
    clock = Clock()
    quiet = QuietRepeats(window=10, clock=clock)

    def record() -> logging.LogRecord:
        try:
            raise OSError(24, "Too many open files")
        except OSError:
            info = sys.exc_info()
        return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "socket.accept() failed\nfd=%d", (9,), info)

    first = record()
    passed = [quiet.filter(first)] + [quiet.filter(record()) for _ in range(50)]
    clock.now += 10
    later = record()
    passed.append(quiet.filter(later))

    assert passed == [True] + [False] * 50 + [True]
    assert first.exc_info is not None and first.getMessage() == "socket.accept() failed\nfd=9"
    assert later.exc_info is None
    assert later.getMessage().endswith("OSError: [Errno 24] Too many open files\n(and 50 more like it before)")
