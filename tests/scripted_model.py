"""A scripted OpenAI-compatible model on 127.0.0.1, for driving real agents (Hermes Agent) in end-to-end tests.

It answers `POST /v1/chat/completions`, streamed or not, the way a small tool-using model would: while the test has
planned tool calls, each request that offers tools and ends with the user's message or a tool result gets the next
planned call; once none is left, a request that ends with a tool result gets text that quotes that result, verbatim;
anything else gets a short text. It records every request
body, so a test can assert on what the model was sent (the tools offered, the tool results that reached it).
`GET /v1/models` lists the one model. Nothing here decides anything for ArgoBox: it stands in for the LLM only.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

MODEL = "scripted"
QUOTE = "The tool answered: "
"""How the scripted model's final text starts; the quoted tool result follows it verbatim."""


@dataclass(frozen=True)
class ToolCall:
    """A tool call the model makes on the next turn that offers tools."""

    name: str
    arguments: dict[str, Any]


class ScriptedModel:
    """The model server; use as a context manager, `plan()` each turn's tool call, read `requests` afterwards."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plans: deque[ToolCall] = deque()
        self._requests: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="scripted-model", daemon=True)

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (numeric loopback address and the port the OS chose)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def plan(self, name: str, arguments: dict[str, Any] | None = None) -> None:
        """Queue a tool call: the next request that offers tools calls `name` with `arguments`."""
        with self._lock:
            self._plans.append(ToolCall(name, arguments or {}))

    def forget_plans(self) -> None:
        """Drop the planned tool calls not made yet."""
        with self._lock:
            self._plans.clear()

    @property
    def planned(self) -> int:
        """How many planned tool calls have not been made yet."""
        with self._lock:
            return len(self._plans)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every chat-completion request body received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        """Record `body` and return the assistant message for it (with `tool_calls` or `content`)."""
        messages: list[dict[str, Any]] = body.get("messages") or []
        last = messages[-1] if messages else {}
        with self._lock:
            self._requests.append(body)
            ready = last.get("role") in ("user", "tool") and body.get("tools") and self._plans
            planned = self._plans.popleft() if ready else None
            call_id = f"call_{next(self._ids)}"
        if planned is not None:
            call = {
                "id": call_id,
                "type": "function",
                "function": {"name": planned.name, "arguments": json.dumps(planned.arguments)},
            }
            return {"role": "assistant", "content": None, "tool_calls": [call]}
        if last.get("role") == "tool":
            return {"role": "assistant", "content": QUOTE + content_text(last.get("content"))}
        return {"role": "assistant", "content": "Nothing to do."}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        model = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._json(200, {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "test"}]})
                else:
                    self._json(404, {"error": {"message": f"no route {self.path!r}"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    self._json(400, {"error": {"message": "the body is not JSON"}})
                    return
                if not self.path.rstrip("/").endswith("/chat/completions") or not isinstance(body, dict):
                    self._json(404, {"error": {"message": f"no route {self.path!r}"}})
                    return
                message = model.answer(body)  # pyright: ignore[reportUnknownArgumentType]
                finish = "tool_calls" if message.get("tool_calls") else "stop"
                if body.get("stream"):  # pyright: ignore[reportUnknownMemberType]
                    self._stream(message, finish)
                else:
                    self._json(200, _completion(message, finish))

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, message: dict[str, Any], finish: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                for chunk in _chunks(message, finish):
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                return  # keep the test output clean

        return Handler


def content_text(content: Any) -> str:
    """A message's content as text: a string as is, a list of parts joined by their text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) if isinstance(part, dict) else str(part) for part in content)  # pyright: ignore[reportUnknownVariableType, reportUnknownMemberType, reportUnknownArgumentType]
    return "" if content is None else json.dumps(content)


_USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}


def _completion(message: dict[str, Any], finish: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": _USAGE,
    }


def _chunks(message: dict[str, Any], finish: str) -> list[dict[str, Any]]:
    """The streamed form of `message`: one delta with all of it, then the finish reason and the usage."""
    delta: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    if message.get("tool_calls"):
        delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
    base = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": int(time.time()), "model": MODEL}
    return [
        {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}], "usage": _USAGE},
    ]
