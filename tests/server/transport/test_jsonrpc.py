"""Malformed JSON-RPC is answered with the error the specification names, over stdio as over HTTP, and the server
keeps serving. The stdio test drives the real `argobox serve` with raw bytes on its stdin."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from argobox.server.transport.jsonrpc import rejection
from tests.conftest import WriteConfig

ARGOBOX = str(Path(sys.executable).with_name("argobox"))
DEEP = "[" * 3000 + "]" * 3000
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 100,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}


def error_of(frame: str) -> tuple[Any, int] | None:
    found = rejection(frame)
    return None if found is None else (found.id, found.error.code)


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        pytest.param("not json", (None, -32700), id="not-json"),
        pytest.param(
            '{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"x":' + DEEP + "}}", (None, -32700), id="deep"
        ),
        pytest.param(
            '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"\\ud800"}}',
            (None, -32700),
            id="lone-surrogate",
        ),
        pytest.param('{"jsonrpc":"2.0","id":1,"method":"tools/list","params":[1,2]}', (1, -32602), id="params-array"),
        pytest.param("[1,2]", (None, -32600), id="array"),
        pytest.param('{"jsonrpc":"1.0","id":"a","method":"tools/list"}', ("a", -32600), id="wrong-version"),
        pytest.param('{"jsonrpc":"2.0","id":5,"method":7}', (5, -32600), id="method-not-a-string"),
        *(
            pytest.param(f'{{"jsonrpc":"2.0","id":{bad},"method":"tools/list"}}', (None, -32600), id=f"id-{bad}")
            for bad in ('{"a":1}', "true", "[1]", "1.5", "null", "1.0")
        ),
        pytest.param('{"jsonrpc":"2.0","method":"notifications/x","params":[1]}', None, id="notification-unanswered"),
        pytest.param('{"jsonrpc":"2.0","id":9,"result":[]}', None, id="client-response-unanswered"),
        pytest.param('{"jsonrpc":"2.0","id":6,"method":"tools/list","params":{}}', None, id="valid"),
    ],
)
def test_each_malformed_frame_gets_the_error_the_specification_names(frame: str, expected: Any) -> None:
    assert error_of(frame) == expected


def test_the_stdio_server_answers_malformed_lines_and_keeps_serving(write_config: WriteConfig) -> None:
    config = write_config()
    lines = [
        b"not json",
        b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":[1,2]}',
        ('{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"x":' + DEEP + "}}").encode(),
        b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"\\ud800","arguments":{}}}',
        b"[1,2]",
        b"\xff\xfe{",
        b'{"jsonrpc":"2.0","id":{"a":1},"method":"tools/list"}',
        b'{"jsonrpc":"2.0","id":true,"method":"tools/list"}',
        b'{"jsonrpc":"2.0","id":null,"method":"tools/list"}',
        json.dumps(INITIALIZE).encode(),
        b'{"jsonrpc":"2.0","method":"notifications/initialized"}',
        b'{"jsonrpc":"2.0","id":101,"method":"tools/list","params":{}}',
    ]
    with subprocess.Popen(  # the context closes the pipes, each a ResourceWarning otherwise
        [ARGOBOX, "--config", str(config), "serve", "--agent", "openclaw"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as server:
        assert server.stdin is not None and server.stdout is not None and server.stderr is not None
        watchdog = threading.Timer(60, server.kill)  # a server that stops answering fails the test, never hangs it
        watchdog.start()
        server.stdin.write(b"\n".join(lines) + b"\n")
        server.stdin.flush()
        answers: list[dict[str, Any]] = []
        for _ in range(11):  # nine errors and two results; stdin stays open until all are in, then the server ends
            line = server.stdout.readline()
            assert line, "the server stopped answering"
            answers.append(json.loads(line))
        server.stdin.close()
        returncode = server.wait(timeout=60)
        watchdog.cancel()
        stderr = server.stderr.read()
    errors = [(a["id"], a["error"]["code"]) for a in answers if "error" in a]
    by_id = {a["id"]: a for a in answers if "result" in a}

    assert returncode == 0, stderr
    assert (
        errors
        == [(None, -32700), (1, -32602), (None, -32700), (None, -32700), (None, -32600), (None, -32700)]
        + [(None, -32600)] * 3
    )
    assert by_id[100]["result"]["serverInfo"]["name"] == "argobox"
    assert "docker_list_containers" in [t["name"] for t in by_id[101]["result"]["tools"]]
    assert b"Traceback" not in stderr
