"""The fuzzer's oracle can fail: a planted server run through the fuzzer's own harness (`run_examples`, `InMemory.ask`,
the captured logs) that leaks a secret cut short, answers with a traceback or raises is reported for each, and the
test's final check fails; the same server on harmless input is reported for nothing. No backend is needed."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator
from typing import cast

import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import strategies as st
from mcp import types
from mcp.server import MCPServer

from argobox.server.app import App
from argobox.server.redact import Redactor
from tests.fuzz.calls import CapturedLogs, InMemory, assert_clean, check_wire_answer, run_examples
from tests.fuzz.hostile import ARG_SECRET_MARK
from tests.fuzz.oracle import Oracle

SEEDED = secrets.token_urlsafe(32)
PLANTED = ("leak", "mark", "trace", "crash")
"""Inputs on which the planted server misbehaves: a seeded secret cut short, a drawn argument secret, a traceback in
its answer, an exception nothing handled."""
HARMLESS = st.text(st.characters(codec="ascii", categories=["Ll", "Nd"]), max_size=12).filter(
    lambda text: not text.startswith(PLANTED)
)


def planted_server() -> MCPServer:
    server = MCPServer("planted")

    @server.tool()
    def echo(text: str) -> str:
        """Echo `text`, except on the planted inputs."""
        if text.startswith("leak"):
            return f"cut: {SEEDED[3:19]}"  # 16 characters of the secret, neither its start nor its end
        if text.startswith("mark"):
            return f"stored as {ARG_SECRET_MARK}0123abcd"
        if text.startswith("trace"):
            return 'Traceback (most recent call last):\n  File "planted.py", line 1, in echo'
        if text.startswith("crash"):
            raise RuntimeError("planted")
        return text

    return server


@pytest.fixture(scope="module")
def harness() -> Iterator[InMemory]:
    """The fuzzer's in-memory harness around the planted server (which needs no App), its log records captured."""
    root = logging.getLogger()
    with start_blocking_portal(backend="asyncio") as portal:
        logs = CapturedLogs(Redactor())
        root.addHandler(logs)
        try:
            yield InMemory(portal, cast(App, None), logs)
        finally:
            root.removeHandler(logs)


def fuzz_planted(harness: InMemory, strategy: st.SearchStrategy[str], seeds: list[str]) -> Oracle:
    oracle = Oracle()
    oracle.seed("the planted secret", SEEDED)
    with harness.client(planted_server(), "legacy") as client:

        def one(text: str) -> None:
            oracle.count("planted")
            harness.ask(oracle, "planted", client, "echo", {"text": text})

        run_examples(strategy, 40, one, seeds)
    harness.check_logs(oracle, "planted")
    return oracle


def test_a_planted_leak_traceback_and_crash_are_each_found_and_fail_the_run(harness: InMemory) -> None:
    drawn = st.one_of(HARMLESS, st.tuples(st.sampled_from(PLANTED), HARMLESS).map("".join))

    oracle = fuzz_planted(harness, drawn, list(PLANTED))

    kinds = {finding.kind for finding in oracle.findings}
    leaked = {finding.what.split(" in ")[0] for finding in oracle.findings if finding.kind == "leak"}
    assert kinds == {"leak", "traceback", "crash"}, oracle.findings
    assert leaked >= {
        "the secret from the planted secret",
        f"the secret from a secret-looking argument ({ARG_SECRET_MARK}0123abcd...)",
    }
    assert any("a log record with a traceback" in finding.what for finding in oracle.findings)
    figures = oracle.figures()
    assert figures["leaks"] >= 2 and figures["crashes"] >= 2 and figures["inputs"] >= 40, figures
    with pytest.raises(AssertionError, match="finding"):
        assert_clean(oracle, "planted")


def test_the_same_server_on_harmless_input_is_found_clean(harness: InMemory) -> None:
    oracle = fuzz_planted(harness, HARMLESS, ["", "plain"])

    assert oracle.findings == [] and oracle.figures()["inputs"] >= 40
    assert_clean(oracle, "planted")


def test_an_internal_error_on_the_wire_is_a_crash() -> None:
    oracle = Oracle()
    error = {"jsonrpc": "2.0", "id": 1, "error": {"code": types.INTERNAL_ERROR, "message": "internal error"}}
    fine = {"jsonrpc": "2.0", "id": 2, "error": {"code": types.INVALID_PARAMS, "message": "bad arguments"}}

    check_wire_answer(oracle, "wire", b"data: " + json.dumps(error).encode(), "planted")
    check_wire_answer(oracle, "wire", json.dumps(fine).encode(), "planted")

    assert [finding.kind for finding in oracle.findings] == ["crash"]
