"""The stdio transport: the SDK's, with every line checked first so that a malformed one gets its JSON-RPC error.

Stdin and stdout are claimed here as the SDK claims them (fd 0 then reads the null device and fd 1 writes to stderr,
for the handlers and any child process, so that stray prints never corrupt the wire), and used from the event loop
(`argobox.server.transport.pipes`). Stdin is read through `CheckedLines`, which passes on what the SDK can read and
answers the rest itself (see `argobox.server.transport.jsonrpc`).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, cast

import anyio
import mcp_types as types
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage

from argobox.server.transport.jsonrpc import rejection
from argobox.server.transport.pipes import LineReader, Writer, non_blocking

MAX_LINE_BYTES = 8 * 1024 * 1024
"""A longer line is answered with a parse error and skipped, not held in memory whole."""


Rejection = tuple[types.JSONRPCError, anyio.Event]
"""An error to answer, and the event set once it is on its way (so answers keep the order of the lines)."""


class CheckedLines:
    """The lines of the wire that the SDK can read; every other line is answered through `rejections`."""

    def __init__(self, wire: LineReader, rejections: ObjectSendStream[Rejection]) -> None:
        self._wire = wire
        self._rejections = rejections

    def __aiter__(self) -> AsyncIterator[str]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[str]:
        async with self._rejections:
            while True:
                raw = await self._wire.readline(MAX_LINE_BYTES + 1)
                if not raw:
                    return
                if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                    await self._skip_rest_of_line()
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

    async def _skip_rest_of_line(self) -> None:
        while (chunk := await self._wire.readline(MAX_LINE_BYTES)) and not chunk.endswith(b"\n"):
            pass


@contextmanager
def _claimed_stdin() -> Iterator[int]:
    """fd 0 as a private descriptor; fd 0 itself reads the null device until the transport ends.

    The private descriptor is never closed: an abandoned read may still be blocked on it, and a closed descriptor
    could be reused by another file under that read."""
    private = os.dup(0)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
    finally:
        os.close(null)
    try:
        yield private
    finally:
        os.dup2(private, 0)


@contextmanager
def _claimed_stdout() -> Iterator[int]:
    """fd 1 as a private descriptor; fd 1 itself writes to stderr until the transport ends (as the SDK does)."""
    private: int = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 3)
    os.dup2(2, 1)
    try:
        yield private
    finally:
        os.dup2(private, 1)
        os.close(private)


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
async def checked_stdio(answered: Callable[[], None] | None = None) -> AsyncIterator[tuple[Any, Any]]:
    """`stdio_server()`'s read and write streams, with malformed lines answered instead of dropped; `answered()` is
    called each time an answer has been written."""
    send, receive = anyio.create_memory_object_stream[Rejection]()
    with (
        _claimed_stdin() as stdin,
        non_blocking(stdin) as polled_in,
        _claimed_stdout() as stdout,
        non_blocking(stdout, shared_with=2) as polled_out,
    ):
        lines = CheckedLines(LineReader(stdin, polled=polled_in), send)
        out = Writer(stdout, polled=polled_out, flushed=answered)
        async with (
            stdio_server(stdin=cast(Any, lines), stdout=cast(Any, out)) as (read, write),
            anyio.create_task_group() as tasks,
        ):
            tasks.start_soon(_answer, receive, write)
            yield read, write
            tasks.cancel_scope.cancel()
