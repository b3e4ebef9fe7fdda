"""The stdio transport's two ends, read and written from the event loop: no thread hand-off per line.

A pipe or a socket (what an agent's client gives its server) is made non-blocking and waited on by the loop, as a
network connection is; anything else (a file, a terminal) is read and written in a worker thread, as the SDK does.
Each hand-off to a thread costs a wake-up and the interpreter lock passed back and forth: three of them per call
(the request's line, the answer's write and its flush) were a good part of what a read call cost.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable, Generator
from contextlib import contextmanager
from typing import TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel

CHUNK_BYTES = 64 * 1024

T = TypeVar("T")


def _pollable(fd: int, shared_with: tuple[int, ...]) -> bool:
    found = os.fstat(fd)
    if not (stat.S_ISFIFO(found.st_mode) or stat.S_ISSOCK(found.st_mode)):
        return False
    for other_fd in shared_with:
        try:
            other = os.fstat(other_fd)
        except OSError:
            continue
        if (found.st_dev, found.st_ino) == (other.st_dev, other.st_ino):
            return False
    return True


@contextmanager
def non_blocking(fd: int, *, shared_with: tuple[int, ...] = ()) -> Generator[bool]:
    """Make `fd` non-blocking while the context lasts, if it is a pipe or a socket; whether it was.

    Not when one of `shared_with` is the same pipe or socket (stdin, stdout and stderr all one socket under inetd,
    stdin and stdout one under a socket-activated unit): the flag belongs to the open file, which those descriptors
    may share, and their users (logging, a blocking read or write) expect calls that block rather than fail."""
    if not _pollable(fd, shared_with):
        yield False
        return
    was = os.get_blocking(fd)
    os.set_blocking(fd, False)
    try:
        yield True
    finally:
        os.set_blocking(fd, was)


async def read_in_daemon_thread(read: Callable[[], T]) -> T:
    """`read()` in a daemon thread: abandoned if the caller is cancelled, and never waited for at exit (a worker
    thread is joined at exit, and a read of stdin that a client keeps open never returns)."""
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


class LineReader:
    """Lines from `fd` (its own descriptor, which nothing else reads); `polled`: made non-blocking for the loop."""

    def __init__(self, fd: int, *, polled: bool) -> None:
        self._fd = fd
        self._polled = polled
        self._buffer = bytearray()
        self._eof = False

    async def readline(self, limit: int) -> bytes:
        """The next line with its newline, as `file.readline(limit)` gives it: at most `limit` bytes of a longer
        line (the rest comes next), the last line without a newline, and b"" at the end."""
        while True:
            end = self._buffer.find(b"\n", 0, limit)
            if end >= 0 or len(self._buffer) >= limit or (self._eof and self._buffer):
                size = end + 1 if end >= 0 else min(limit, len(self._buffer))
                line = bytes(self._buffer[:size])
                del self._buffer[:size]
                return line
            if self._eof:
                return b""
            chunk = await self._read()
            if chunk:
                self._buffer += chunk
            else:
                self._eof = True

    async def _read(self) -> bytes:
        if not self._polled:
            # Abandoned, not awaited, when the server stops: a read of a terminal may never return.
            return await read_in_daemon_thread(lambda: os.read(self._fd, CHUNK_BYTES))
        while True:
            try:
                return os.read(self._fd, CHUNK_BYTES)
            except BlockingIOError:
                await anyio.wait_readable(self._fd)


class Writer:
    """The SDK's view of stdout (`write`, then `flush`): each flush writes the whole answer to `fd`, then calls
    `flushed()` (the answer is on its way)."""

    def __init__(self, fd: int, *, polled: bool, flushed: Callable[[], None] | None = None) -> None:
        self._fd = fd
        self._polled = polled
        self._flushed = flushed
        self._pending: list[str] = []

    async def write(self, text: str) -> None:
        self._pending.append(text)

    async def flush(self) -> None:
        data = memoryview("".join(self._pending).encode("utf-8"))
        self._pending.clear()
        # An answer is written whole, even by a server that is stopping: half a line would corrupt the wire.
        with anyio.CancelScope(shield=True):
            if self._polled:
                while data:
                    try:
                        data = data[os.write(self._fd, data) :]
                    except BlockingIOError:
                        await anyio.wait_writable(self._fd)
            else:
                await anyio.to_thread.run_sync(self._write_all, data)
        if self._flushed is not None:
            self._flushed()

    def _write_all(self, data: memoryview) -> None:
        while data:
            data = data[os.write(self._fd, data) :]
