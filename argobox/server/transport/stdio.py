"""The stdio transport: the SDK's, with every line checked first so that a malformed one gets its JSON-RPC error.

The SDK claims stdout (so that stray prints never corrupt the wire); stdin is claimed here the same way (fd 0 then
reads the null device, for the handlers and any child process), and read through `CheckedLines`, which passes on
what the SDK can read and answers the rest itself (see `argobox.server.transport.jsonrpc`).

Each read of the wire runs in a daemon thread of its own: a read that never returns (a client that keeps stdin open)
is abandoned when the server stops, and never holds up the process's exit, as a worker thread (joined at exit) did.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, BinaryIO, TypeVar, cast

import anyio
import mcp_types as types
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage

from argobox.server.transport.jsonrpc import rejection

MAX_LINE_BYTES = 8 * 1024 * 1024
"""A longer line is answered with a parse error and skipped, not held in memory whole."""


Rejection = tuple[types.JSONRPCError, anyio.Event]
"""An error to answer, and the event set once it is on its way (so answers keep the order of the lines)."""

T = TypeVar("T")


async def read_in_daemon_thread(read: Callable[[], T]) -> T:
    """`read()` in a daemon thread: abandoned if the caller is cancelled, and never waited for at exit."""
    token = anyio.lowlevel.current_token()
    done = anyio.Event()
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(read())
        except BaseException as exc:  # noqa: BLE001 - handed to the task that awaits the read
            failure.append(exc)
        try:
            anyio.from_thread.run_sync(done.set, token=token)
        except RuntimeError:  # the event loop has ended: nobody waits for this read any more
            return

    threading.Thread(target=run, name="argobox-stdin", daemon=True).start()
    await done.wait()
    if failure:
        raise failure[0]
    return outcome[0]


class CheckedLines:
    """The lines of the wire that the SDK can read; every other line is answered through `rejections`."""

    def __init__(self, wire: BinaryIO, rejections: ObjectSendStream[Rejection]) -> None:
        self._wire = wire
        self._rejections = rejections

    def __aiter__(self) -> AsyncIterator[str]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[str]:
        async with self._rejections:
            while True:
                # Abandoned, not awaited, when the server stops: a read of stdin may never return.
                raw = await read_in_daemon_thread(lambda: self._wire.readline(MAX_LINE_BYTES + 1))
                if not raw:
                    return
                if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                    await read_in_daemon_thread(self._skip_rest_of_line)
                    raw = b"{"  # not JSON: answered as a parse error
                line = raw.decode("utf-8", errors="replace")
                if not line.strip():
                    continue
                problem = rejection(line)
                if problem is None:
                    yield line
                else:
                    sent = anyio.Event()
                    await self._rejections.send((problem, sent))
                    await sent.wait()

    def _skip_rest_of_line(self) -> None:
        while (chunk := self._wire.readline(MAX_LINE_BYTES)) and not chunk.endswith(b"\n"):
            pass


@contextmanager
def _claimed_stdin() -> Generator[BinaryIO]:
    """fd 0 as a private file; fd 0 itself reads the null device until the transport ends.

    The private descriptor is never closed: an abandoned read may still be blocked on it, and a closed descriptor
    could be reused by another file under that read."""
    private = os.dup(0)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
    finally:
        os.close(null)
    try:
        yield os.fdopen(private, "rb", closefd=False)
    finally:
        os.dup2(private, 0)


async def _answer(rejections: ObjectReceiveStream[Rejection], write: Any) -> None:
    async with rejections:
        async for error, sent in rejections:
            try:
                await write.send(SessionMessage(error))
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return  # the server has stopped: nobody is left to answer
            finally:
                sent.set()


@asynccontextmanager
async def checked_stdio() -> AsyncGenerator[tuple[Any, Any]]:
    """`stdio_server()`'s read and write streams, with malformed lines answered instead of dropped."""
    send, receive = anyio.create_memory_object_stream[Rejection]()
    with _claimed_stdin() as wire:
        lines = CheckedLines(wire, send)
        async with stdio_server(stdin=cast(Any, lines)) as (read, write), anyio.create_task_group() as tasks:
            tasks.start_soon(_answer, receive, write)
            yield read, write
            tasks.cancel_scope.cancel()
