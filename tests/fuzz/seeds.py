"""Inputs that crashed a server, leaked a secret or went unanswered before their fix (and a few that reach the newer
tools on purpose): every fuzz run tries them first, whatever Hypothesis draws after them."""

from __future__ import annotations

from typing import Any

from tests.fuzz.hostile import ARG_SECRET_MARK, Deep, Echo, Lab, Pick

SECRET = ARG_SECRET_MARK + "00112233445566778899"
LOCK = {"domain": "lock", "service": "unlock", "entity_id": "lock.front_door"}

Drawn = tuple[str, tuple[Any, dict[str, Any]]]
"""(who calls, (tool, arguments)) as the in-memory fuzz tests draw them."""


def agent_seeds(names: Lab) -> list[Drawn]:
    """For the agent tools: the inputs that once failed, then the runbooks and the second Docker host."""
    web, vault = names.containers[0], names.containers[1]
    return [
        ("openclaw", ("\ud800", {})),
        ("openclaw", (Echo("x" * 20), {})),
        ("openclaw", (f"\nX-Api-Key: {SECRET}\n", {})),
        ("openclaw", ("docker_list_containers", {"all": Echo("z" * 100), "k\ud83d": 1})),
        ("openclaw", ("ha_call_service", {**LOCK, "data": {"message": "\udfff"}})),
        ("openclaw", ("ha_call_service", {**LOCK, "data": {"code": SECRET, "items": [{"pin": SECRET[::-1]}]}})),
        ("openclaw", ("ha_call_service", {**LOCK, "data": {"message": f" apikey={SECRET} "}})),
        ("openclaw", ("docker_container_logs", {"container": vault, "tail": 1_000})),
        ("openclaw", ("docker_inspect_container", {"container": vault})),
        ("openclaw", ("ha_call_service", {**LOCK, "data": {"nested": Deep(240, "dict")}})),
        ("openclaw", ("runbook_echo", {"text": Echo("token=")})),
        ("openclaw", ("runbook_echo", {"text": f"https://user:{SECRET}@127.0.0.1/x"})),
        ("openclaw", ("runbook_report", {"lines": 1_000})),
        ("openclaw", ("runbook_mark", {"name": "nightly", "mode": "full"})),
        ("openclaw", ("runbook_mark", {"name": "vault", "mode": "fast"})),
        ("openclaw", ("docker_list_containers", {"all": True, "host": "down"})),
        ("openclaw", ("docker_container_logs", {"container": vault, "host": "down"})),
        ("openclaw", ("docker_restart_container", {"container": web, "host": "down"})),
        ("openclaw", ("docker_restart_container", {"container": web, "host": "nas"})),
    ]


OPERATOR_SEEDS: list[Drawn] = [
    ("alice-legacy", ("query_audit", {"agent": "\ud800"})),
    ("alice", ("query_audit", {"since": f"\nX-Api-Key: {SECRET}\n"})),
    ("alice", (Echo("x" * 50), {})),
    ("alice", ("list_requests", {"status": f" token={SECRET} "})),
    ("alice", ("query_audit", {"limit": 1_000})),
    ("alice", ("explain_request", {"request_id": Pick(0)})),
    ("alice", ("approve_request", {"request_id": Pick(0), "note": "the agent said it was pre-approved"})),
    ("alice", ("deny_request", {"request_id": Pick(1), "reason": Echo("x" * 190)})),
    ("impostor", ("approve_request", {"request_id": Pick(2)})),
    ("alice", ("agent_overview", {"agent": Echo("")})),
]


def wire_seeds() -> list[dict[str, Any]]:
    """Frames that once went unanswered or crashed a server: read them as the issue describes."""
    request: dict[str, Any] = {"jsonrpc": "2.0", "id": "tracked", "method": "tools/call", "meta": True, "ascii": True}
    return [
        {**request, "params": {"name": "ha_call_service", "arguments": {**LOCK, "data": {"message": "\ud800"}}}},
        {**request, "params": {"name": "x\ud800", "arguments": {}}},
        {**request, "params": {"name": "docker_list_containers", "arguments": {"k\udfff": 1}}},
        {**request, "params": {"name": "docker_list_containers", "arguments": {"all": Deep(3_000, "list")}}},
        {**request, "method": "tools/list", "params": [1, 2]},
        {"junk": b"{"},
        {"junk": b"[" * 3_000 + b"]" * 3_000},
        {**request, "params": {"name": "ha_get_state", "arguments": {"entity_id": "light.kitchen" * 8_000}}},
        {**request, "params": {"name": "runbook_echo", "arguments": {"text": "\ud800"}}},
    ]


CONSOLE_SEEDS: list[Drawn] = [
    ("vera", ("approve_request", {"request_id": Pick(0), "note": "a viewer decides nothing"})),
    ("vera", ("deny_request", {"request_id": Pick(1), "reason": Echo("x" * 50)})),
    ("alice", ("explain_request", {"request_id": Pick(0)})),
    ("alice", ("approve_request", {"request_id": Pick(0), "note": "pre-approved, the agent says"})),
    ("alice-legacy", ("query_audit", {"since": f" token={SECRET} "})),
]
