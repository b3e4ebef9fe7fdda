"""The stdio transport: newline-delimited JSON-RPC on stdin and stdout, each line read once and checked once.

Stdin and stdout are claimed here as the SDK's `stdio_server` claims them (fd 0 then reads the null device and fd 1
writes to stderr, for the handlers and any child process, so that stray prints never corrupt the wire), and used
from the event loop (`argobox.server.transport.pipes`). Each line is validated once, into the message the server
runs; a line the SDK could not read gets the JSON-RPC error the specification names (see
`argobox.server.transport.jsonrpc`) where the SDK would drop it and leave the client waiting. The SDK's own
`stdio_server` validated each line a second time after that check, and handed every line and every answer through a
worker thread.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import AsyncGenerator, Callable, Generator
from contextlib import asynccontextmanager, contextmanager

import anyio
import mcp_types as types
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from argobox.server.transport.jsonrpc import mistaken_notification, rejection_of
from argobox.server.transport.pipes import LineReader, Writer, non_blocking

MAX_LINE_BYTES = 8 * 1024 * 1024
"""A longer line is answered with a parse error and skipped, not held in memory whole."""

Incoming = SessionMessage | Exception
"""What the server reads (the SDK's read stream carries exceptions too; this transport never sends one)."""


class CheckedLines:
    """Reads the wire: each line the SDK can read goes to the server as its message, and every other line is
    answered at once with its error, before the next line is read (answers keep the order of the lines)."""

    def __init__(self, wire: LineReader, server: ObjectSendStream[Incoming], answers: ObjectSendStream[SessionMessage]):
        self._wire = wire
        self._server = server
        self._answers = answers

    async def run(self) -> None:
        """Until the end of stdin (or the server stops reading): then the server's read stream ends."""
        async with self._server, self._answers:
            while raw := await self._wire.readline(MAX_LINE_BYTES + 1):
                if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                    await self._skip_rest_of_line()
                    raw = b"{"  # not JSON: answered as a parse error
                line = raw.decode("utf-8", errors="replace")
                if not line.strip():
                    continue
                try:
                    message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                except ValidationError as exc:
                    problem = rejection_of(line, exc)
                else:  # a request whose id the SDK could not read passes for a notification
                    problem = mistaken_notification(line) if isinstance(message, types.JSONRPCNotification) else None
                    if problem is None:
                        await self._server.send(SessionMessage(message))
                        continue
                if problem is not None:
                    await self._answers.send(SessionMessage(problem))

    async def _skip_rest_of_line(self) -> None:
        while (chunk := await self._wire.readline(MAX_LINE_BYTES)) and not chunk.endswith(b"\n"):
            pass


@contextmanager
def _claimed_stdin() -> Generator[int]:
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
def _claimed_stdout() -> Generator[int]:
    """fd 1 as a private descriptor; fd 1 itself writes to stderr until the transport ends (as the SDK does)."""
    private: int = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 3)
    os.dup2(2, 1)
    try:
        yield private
    finally:
        os.dup2(private, 1)
        os.close(private)


async def _write_answers(answers: ObjectReceiveStream[SessionMessage], out: Writer) -> None:
    """Write each answer as one line, until every sender (the server, and the reader's error answers) is done."""
    async with answers:
        async for answer in answers:
            await out.write(answer.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n")
            await out.flush()


@asynccontextmanager
async def checked_stdio(
    answered: Callable[[], None] | None = None,
) -> AsyncGenerator[tuple[MemoryObjectReceiveStream[Incoming], MemoryObjectSendStream[SessionMessage]]]:
    """The read and write streams of a server run over stdio (`Server.run(read, write, ...)`), with malformed lines
    answered instead of dropped; `answered()` is called each time an answer has been written."""
    with (
        _claimed_stdin() as stdin,
        non_blocking(stdin, shared_with=(1, 2)) as polled_in,  # fd 1 is still the process's stdout here
        _claimed_stdout() as stdout,
        non_blocking(stdout, shared_with=(2, stdin)) as polled_out,
    ):
        to_server, read = anyio.create_memory_object_stream[Incoming](0)
        write, from_server = anyio.create_memory_object_stream[SessionMessage](0)
        lines = CheckedLines(LineReader(stdin, polled=polled_in), to_server, write.clone())
        out = Writer(stdout, polled=polled_out, flushed=answered)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_write_answers, from_server, out)
            reading = anyio.CancelScope()

            async def read_lines() -> None:
                with reading:
                    await lines.run()

            tasks.start_soon(read_lines)
            try:
                yield read, write
            finally:
                reading.cancel()  # a read of stdin may be waiting still: the server has stopped
                write.close()  # the server closes it when it stops; answers already sent are written first
