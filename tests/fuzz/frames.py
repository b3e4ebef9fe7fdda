"""Raw JSON-RPC frames for the wire paths (stdio and HTTP): well-formed requests carrying hostile arguments, and
frames that are wrong at every level (not UTF-8, not JSON, nested thousands deep, the wrong types, batches).

A strategy draws a frame's shape; `render` turns it into bytes with a fresh id. A frame is `tracked` when it is a
JSON-RPC request the server can read the id of, so it must be answered with that id (the stdio test checks every
tracked frame was).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import count
from typing import Any, cast

from hypothesis import strategies as st

from tests.fuzz.hostile import HOSTILE, Lab, Pools, agent_calls, deep_values, json_values, resolve, wrong_types

MODERN_META: dict[str, Any] = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}
METHODS = (
    "tools/call",
    "tools/call",
    "tools/call",
    "tools/call",
    "tools/list",
    "initialize",
    "ping",
    "server/discover",
    "resources/list",
    "resources/read",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "tasks/get",
    "notifications/initialized",
)
JUNK = (
    b"{",
    b"[" * 3_000 + b"]" * 3_000,
    b'{"a":' * 3_000 + b"1" + b"}" * 3_000,
    b'{"jsonrpc":"2.0","id":1,"method":"tools/list"',
    b"\xff\xfe\xfd",
    b'{"jsonrpc":"2.0","id":"\xed\xa0\x80","method":"ping"}',
    b'\xef\xbb\xbf{"jsonrpc":"2.0","id":"bom","method":"ping"}',
    b"null",
    b"[]",
    b"{}",
    b"[1,2,3]",
    b"1e999999",
    b'"\\ud800"',
    b'{"jsonrpc":"2.0","id":1e400,"method":"ping"}',
    b'{"jsonrpc":"2.0","id":{"$ne":1},"method":"ping"}',
    b'{"jsonrpc":"2.0","method":"tools/call","params":{"name":"docker_list_containers"}}',
    b'{"jsonrpc":"2.0","id":null,"result":{}}',
    b'{"jsonrpc":"2.0","id":7,"error":{"code":1,"message":"x"}}',
    b'"' + b"A" * 100_000 + b'"',
    b"\x00" * 64,
)
TRACKABLE_DEPTH = 100
"""Deeper than this, a parser may give up before it reads the id (a parse error is then answered with id null)."""


@dataclass(frozen=True, slots=True)
class Frame:
    body: bytes
    tracked: str | int | None
    """The id the server must answer with, or None when it need not (or cannot) answer with one."""
    method: str | None
    name: str | None
    """The tool a tools/call names, when it is a string."""


_ABSENT = object()


def _ids() -> st.SearchStrategy[Any]:
    odd = st.one_of(
        st.none(),
        st.booleans(),
        st.floats(),
        st.sampled_from([2**64, -(2**63) - 1, 10**30]),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=1),
        st.sampled_from(HOSTILE),
    )
    return st.one_of(st.just("tracked"), st.just("tracked"), st.just("tracked"), st.just(_ABSENT), odd)


def _params(lab: Lab) -> st.SearchStrategy[Any]:
    call = agent_calls(lab).map(lambda c: {"name": c[0], "arguments": c[1]})
    odd_call = st.fixed_dictionaries(
        {}, optional={"name": st.one_of(st.sampled_from(HOSTILE), wrong_types()), "arguments": wrong_types()}
    )
    return st.one_of(call, call, call, odd_call, json_values(), deep_values(), st.just(_ABSENT))


def frame_shapes(lab: Lab) -> st.SearchStrategy[dict[str, Any]]:
    """The shape of one frame: a request (whose parts may each be wrong), junk bytes, or a batch."""
    request = st.fixed_dictionaries(
        {
            "jsonrpc": st.sampled_from(["2.0", "2.0", "2.0", "2.0", "1.0", 2.0, None, _ABSENT]),
            "id": _ids(),
            "method": st.one_of(*[st.sampled_from(METHODS)] * 5, st.sampled_from(HOSTILE), wrong_types()),
            "params": _params(lab),
            "meta": st.sampled_from([True, True, True, False]),
            "ascii": st.booleans(),
        }
    )
    junk = st.one_of(st.sampled_from(JUNK), st.binary(max_size=200)).map(lambda b: {"junk": b})
    batch = st.lists(request, min_size=1, max_size=3).map(lambda r: {"batch": r})
    return st.one_of(*[request] * 6, junk, batch)


_fresh = count(1)


def render(shape: dict[str, Any], pools: Pools) -> Frame:
    """The bytes of a frame shape; a tracked id is fresh, so an answer names the frame it answers."""
    if "junk" in shape:
        return Frame(body=shape["junk"], tracked=None, method=None, name=None)
    if "batch" in shape:
        members = [_message(s, pools) for s in shape["batch"]]
        return Frame(body=_dumps([m for m, _ in members], ascii=True), tracked=None, method=None, name=None)
    message, tracked = _message(shape, pools)
    method = message.get("method")
    params: Any = message.get("params")
    name: Any = cast("dict[str, Any]", params).get("name") if isinstance(params, dict) else None
    return Frame(
        body=_dumps(message, ascii=shape["ascii"]),
        tracked=tracked,
        method=method if isinstance(method, str) else None,
        name=name if isinstance(name, str) else None,
    )


def _message(shape: dict[str, Any], pools: Pools) -> tuple[dict[str, Any], str | int | None]:
    message: dict[str, Any] = {}
    if shape["jsonrpc"] is not _ABSENT:
        message["jsonrpc"] = shape["jsonrpc"]
    tracked: str | int | None = None
    if shape["id"] == "tracked":
        n = next(_fresh)
        tracked = f"fz-{n}" if n % 2 else 1_000_000 + n
        message["id"] = tracked
    elif shape["id"] is not _ABSENT:
        message["id"] = shape["id"]
    message["method"] = shape["method"]
    params: Any = resolve(shape["params"], pools)
    if isinstance(params, dict) and shape["meta"]:
        params = {**cast("dict[str, Any]", params), "_meta": MODERN_META}
    if params is not _ABSENT:
        message["params"] = params
    readable = (
        tracked is not None
        and isinstance(message["method"], str)
        and _depth(message) <= TRACKABLE_DEPTH
        and _strict(message)
    )
    return message, tracked if readable else None


def _depth(value: Any) -> int:
    """How deep `value` nests (iteratively: it may nest thousands deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
    return deepest


def _strict(message: dict[str, Any]) -> bool:
    """Whether `message` is plain JSON in UTF-8: no NaN or infinity, no lone surrogate (which no UTF-8 can carry)."""
    try:
        text = json.dumps(message, allow_nan=False, ensure_ascii=False)
        text.encode("utf-8")
    except (ValueError, RecursionError):
        return False
    return True


@contextmanager
def _deep_enough() -> Generator[None]:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


def _dumps(value: Any, *, ascii: bool) -> bytes:
    """JSON as a hostile client writes it: NaN allowed; lone surrogates escaped (`ascii`) or written raw."""
    with _deep_enough():
        text = json.dumps(value, ensure_ascii=ascii)
    return text.encode("utf-8", errors="surrogatepass")
