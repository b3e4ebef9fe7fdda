"""The stdio transport's two ends read and written from the event loop: lines as `file.readline` gives them, whole
answers, the descriptor's blocking mode put back, and a pipe shared with stderr left alone."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from argobox.server.transport.pipes import LineReader, Writer, non_blocking

pytestmark = pytest.mark.anyio


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read, write = os.pipe()
    yield read, write
    for fd in (read, write):
        with contextlib.suppress(OSError):
            os.close(fd)


async def test_lines_come_whole_cut_at_the_limit_and_end_with_an_empty_read(pipe: tuple[int, int]) -> None:
    read, write = pipe
    os.write(write, b'{"id":1}\n' + b"x" * 10 + b"\nlast")
    os.close(write)
    with non_blocking(read) as polled:
        assert polled is True and os.get_blocking(read) is False
        reader = LineReader(read, polled=polled)
        with anyio.fail_after(5):
            lines = [await reader.readline(8) for _ in range(6)]
    assert lines == [b'{"id":1}', b"\n", b"xxxxxxxx", b"xx\n", b"last", b""]
    assert os.get_blocking(read) is True  # put back as it was


async def test_a_line_written_later_is_waited_for_on_the_loop(pipe: tuple[int, int]) -> None:
    read, write = pipe
    with non_blocking(read) as polled:
        reader = LineReader(read, polled=polled)
        async with anyio.create_task_group() as tg:

            async def later() -> None:
                await anyio.wait_all_tasks_blocked()
                os.write(write, b'{"id":2}\n')

            tg.start_soon(later)
            with anyio.fail_after(5):
                assert await reader.readline(1024) == b'{"id":2}\n'


async def test_a_file_that_cannot_be_polled_is_read_in_a_thread(tmp_path: Path) -> None:
    path = tmp_path / "lines"
    path.write_bytes(b"one\ntwo\n")
    fd = os.open(path, os.O_RDONLY)
    try:
        with non_blocking(fd) as polled:
            assert polled is False
            reader = LineReader(fd, polled=polled)
            with anyio.fail_after(5):
                assert [await reader.readline(64) for _ in range(3)] == [b"one\n", b"two\n", b""]
    finally:
        os.close(fd)


async def test_an_answer_is_written_whole_then_told(pipe: tuple[int, int]) -> None:
    read, write = pipe
    told: list[int] = []
    answer = "é" * 100_000  # more than a pipe holds at once: the writer waits for the reader
    with non_blocking(write) as polled:
        writer = Writer(write, polled=polled, flushed=lambda: told.append(1))
        received = bytearray()

        async def drain() -> None:
            while len(received) < len(answer.encode()) + 1:
                await anyio.wait_readable(read)
                received.extend(os.read(read, 65536))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(drain)
                await writer.write(answer)
                await writer.write("\n")
                await writer.flush()
    assert received.decode() == answer + "\n" and told == [1]


def test_a_pipe_shared_with_stderr_stays_blocking(pipe: tuple[int, int]) -> None:
    _, write = pipe
    shared = os.dup(write)
    try:
        with non_blocking(write, shared_with=(shared,)) as polled:
            assert polled is False and os.get_blocking(write) is True
    finally:
        os.close(shared)


def test_one_socket_for_stdin_stdout_and_stderr_stays_blocking() -> None:
    """Under inetd (or a socket-activated unit) the three descriptors are one socket: making one non-blocking would
    make the others fail their blocking reads and writes."""
    ours, theirs = socket.socketpair()
    try:
        stdin, stdout, stderr = (os.dup(ours.fileno()) for _ in range(3))
        try:
            with (
                non_blocking(stdin, shared_with=(stdout, stderr)) as polled_in,
                non_blocking(stdout, shared_with=(stderr, stdin)) as polled_out,
            ):
                blocking = [os.get_blocking(fd) for fd in (stdin, stdout, stderr)]
            assert (polled_in, polled_out, blocking) == (False, False, [True, True, True])
            with non_blocking(stdin, shared_with=(theirs.fileno(),)) as polled:  # another socket: polled
                assert polled is True
        finally:
            for fd in (stdin, stdout, stderr):
                os.close(fd)
    finally:
        ours.close()
        theirs.close()
