"""Running one declared command (an argv, never a shell line) on a host: the local machine or an SSH host.

This is what runbooks stand on. The argv comes from a runbook's template with validated parameter values filled in;
this layer adds no meaning to it. On the local host the argv is executed directly (no shell at all); on an SSH host
it is quoted word by word for the remote POSIX shell (`remote_command_line`), so that every value stays one
argument. Output is bounded (the newest bytes of each stream are kept, with the server's secrets removed before the
cut, so that no cut leaves part of one), a command that outlives its timeout is killed (its whole process group),
and every failure leaves as an `AdapterError`.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

import anyio
from anyio.abc import ByteReceiveStream, Process
from pydantic import BaseModel, ConfigDict

from argobox.adapters.base import (
    AdapterError,
    BackendRejected,
    BackendUnavailable,
    TargetNotFound,
    replace_secrets,
    secret_fragments,
)

LOCAL_HOST = "local"
"""The built-in host: the machine ArgoBox runs on, where an argv is executed without any shell."""
STDERR_TAIL_CHARS = 500
"""How much of the end of stderr a failure message quotes."""
LOCAL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""PATH of every local command (and where its program is looked up), whatever ArgoBox's own PATH is."""


class CommandResult(BaseModel):
    """One command that ran to its end (whatever its exit status): what ran, where, how it ended, its output."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str
    argv: list[str]
    """Exactly the words that ran (on an SSH host: each quoted for the remote shell, see `remote_command_line`)."""
    exit_status: int | None
    """The command's exit status; None when it was ended by a signal."""
    exit_signal: str | None = None
    duration_seconds: float
    stdout: str
    stderr: str
    stdout_truncated: bool
    """True when older output was dropped to stay within the output limit (the newest bytes are kept)."""
    stderr_truncated: bool

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def audit_detail(self) -> dict[str, object]:
        """What the audit trail records of a run: host, exact argv, exit status and duration (no output)."""
        detail: dict[str, object] = {
            "host": self.host,
            "argv": self.argv,
            "exit_status": self.exit_status,
            "duration_seconds": self.duration_seconds,
        }
        if self.exit_signal is not None:
            detail["exit_signal"] = self.exit_signal
        return detail


class CommandFailed(BackendRejected):
    """Raised when a command ran and ended with a non-zero exit status (or a signal); `result` says how."""

    def __init__(self, message: str, *, result: CommandResult) -> None:
        super().__init__(message, detail={**result.audit_detail(), "stderr_tail": tail(result.stderr)})
        self.result = result


class CommandTimedOut(AdapterError):
    """Raised when a command outlived its timeout; it was killed on its host."""


class CommandRunner(Protocol):
    """Runs argvs on the configured hosts (the built-in `local` one and the SSH hosts)."""

    async def run(self, host: str, argv: Sequence[str], *, timeout: float, output_limit: int) -> CommandResult:
        """Run `argv` on `host` once; never retried. Raises CommandFailed for a non-zero exit, CommandTimedOut,
        BackendUnavailable when the host cannot be reached and BackendRejected when it refuses."""
        ...

    async def check(self, host: str) -> str:
        """Reach `host` and log in without running anything; says what answered (raises like `run`)."""
        ...

    async def aclose(self) -> None: ...


def remote_command_line(argv: Sequence[str]) -> str:
    """The argv as one command line for a POSIX shell: every word single-quoted where needed (`shlex.quote`), so
    the shell sees exactly these words and nothing else: no command separator, substitution, glob, redirection or
    variable in a value is ever interpreted. NUL cannot be passed through a command line and is refused."""
    if not argv:
        raise ValueError("an empty argv cannot be run")
    for word in argv:
        if "\0" in word:
            raise ValueError("a word of the command contains a NUL character, which no command line can carry")
    return shlex.join(argv)


def tail(text: str, limit: int = STDERR_TAIL_CHARS) -> str:
    """The end of `text`, at most `limit` characters, without surrounding blank space."""
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


class BoundedOutput:
    """Collects a byte stream, keeping its newest `limit` bytes; reports whether anything was dropped.

    `secrets` never show in the text: a little more than `limit` is kept (room for the longest secret), the secrets
    are replaced in it, and only then is it cut to `limit`, so that a cut cannot keep the end of a secret.
    """

    __slots__ = ("_buffer", "_dropped", "_limit", "_margin", "_secrets")

    def __init__(self, limit: int, secrets: Sequence[str] = ()) -> None:
        self._buffer = bytearray()
        self._limit = limit
        self._secrets = secret_fragments(secrets)
        self._margin = max((len(s.encode()) for s in self._secrets), default=0)
        self._dropped = False

    def add(self, chunk: bytes) -> None:
        self._buffer += chunk
        keep = self._limit + self._margin
        if len(self._buffer) > keep:
            del self._buffer[: len(self._buffer) - keep]
            self._dropped = True

    def _redacted(self) -> bytes:
        return replace_secrets(self._buffer.decode("utf-8", errors="replace"), self._secrets).encode()

    @property
    def truncated(self) -> bool:
        """True when older output was dropped to stay within the limit."""
        return self._dropped or len(self._redacted()) > self._limit

    def text(self) -> str:
        return self._redacted()[-self._limit :].decode("utf-8", errors="replace")


def failure_message(where: str, result: CommandResult) -> str:
    """One sentence saying how a command ended, with the tail of its stderr."""
    how = (
        f"exited with status {result.exit_status}"
        if result.exit_status is not None
        else f"was ended by signal {result.exit_signal or 'unknown'}"
    )
    stderr = tail(result.stderr)
    return f"{shlex.join(result.argv)[:200]} on {where} {how}" + (f": {stderr}" if stderr else " (no stderr)")


def check_result(where: str, result: CommandResult) -> CommandResult:
    """`result` if the command succeeded; CommandFailed (with the tail of stderr) otherwise."""
    if result.ok:
        return result
    raise CommandFailed(failure_message(where, result), result=result)


def timed_out(host: str, argv: Sequence[str], timeout: float, *, killed: bool, started: float) -> CommandTimedOut:
    what = shlex.join(argv)[:200]
    ending = "it was killed on the host" if killed else "ArgoBox could not confirm that it was killed: check the host"
    return CommandTimedOut(
        f"{what} on host {host!r} did not finish within {timeout:g} s; {ending}",
        detail={
            "host": host,
            "argv": list(argv),
            "timed_out": True,
            "killed": killed,
            "duration_seconds": round(time.monotonic() - started, 3),
        },
    )


async def _drain(stream: ByteReceiveStream | None, sink: BoundedOutput) -> None:
    if stream is None:
        return
    async for chunk in stream:
        sink.add(chunk)


def _local_env() -> dict[str, str]:
    """A small, fixed environment: a local command never sees ArgoBox's own (tokens live there), and its program is
    found on a fixed PATH (use an absolute path in argv for anything else)."""
    return {"PATH": LOCAL_PATH, "LANG": "C.UTF-8", "HOME": os.environ.get("HOME", "/")}


class LocalCommands:
    """Runs an argv on the ArgoBox machine itself, directly (no shell), in a session of its own so that a timeout
    kills the command and everything it started. `secrets` never show in its output."""

    def __init__(self, secrets: Sequence[str] = ()) -> None:
        self._secrets = tuple(secrets)

    async def run(self, argv: Sequence[str], *, timeout: float, output_limit: int) -> CommandResult:
        if not argv:
            raise BackendRejected("an empty argv cannot be run")
        if any("\0" in word for word in argv):
            raise BackendRejected("a word of the command contains a NUL character, which no argv can carry")
        started = time.monotonic()
        try:
            process = await anyio.open_process(
                list(argv), stdin=subprocess.DEVNULL, env=_local_env(), cwd="/", start_new_session=True
            )
        except FileNotFoundError:
            raise TargetNotFound(f"the local host has no program {argv[0]!r}; check the runbook's argv") from None
        except PermissionError:
            raise BackendRejected(f"the local host may not run {argv[0]!r} (permission denied)") from None
        except OSError as exc:
            raise BackendUnavailable(f"the local host could not start {argv[0]!r}: {exc.strerror or exc}") from None
        async with process:
            out, err = BoundedOutput(output_limit, self._secrets), BoundedOutput(output_limit, self._secrets)
            with anyio.move_on_after(timeout) as scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_drain, process.stdout, out)
                    tg.start_soon(_drain, process.stderr, err)
                await process.wait()
            if scope.cancelled_caught:
                killed = await _kill_group(process)
                raise timed_out(LOCAL_HOST, argv, timeout, killed=killed, started=started)
        code = process.returncode
        return CommandResult(
            host=LOCAL_HOST,
            argv=list(argv),
            exit_status=code if code is not None and code >= 0 else None,
            exit_signal=_signal_name(-code) if code is not None and code < 0 else None,
            duration_seconds=round(time.monotonic() - started, 3),
            stdout=out.text(),
            stderr=err.text(),
            stdout_truncated=out.truncated,
            stderr_truncated=err.truncated,
        )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name.removeprefix("SIG")
    except ValueError:
        return str(number)


async def _kill_group(process: Process) -> bool:
    """Kill the process and its group (it leads its own session); True once it is gone."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:
        process.kill()
    with anyio.move_on_after(5):
        await process.wait()
        return True
    return False


class RemoteHost(Protocol):
    """One SSH host (see `argobox.adapters.ssh_host`)."""

    name: str

    async def run(self, argv: Sequence[str], *, timeout: float, output_limit: int) -> CommandResult: ...

    async def check(self) -> None:
        """Connect and log in without running anything."""
        ...

    async def aclose(self) -> None: ...


class HostCommands:
    """`CommandRunner` over the built-in `local` host and the configured SSH hosts (`secrets`: see LocalCommands;
    give the SSH hosts the same)."""

    def __init__(self, remotes: Mapping[str, RemoteHost], secrets: Sequence[str] = ()) -> None:
        self._local = LocalCommands(secrets)
        self._remotes = dict(remotes)

    async def run(self, host: str, argv: Sequence[str], *, timeout: float, output_limit: int) -> CommandResult:
        if host == LOCAL_HOST:
            result = await self._local.run(argv, timeout=timeout, output_limit=output_limit)
            return check_result(f"host {LOCAL_HOST!r}", result)
        remote = self._remotes.get(host)
        if remote is None:
            raise BackendUnavailable(f"host {host!r} is not configured here; the operator must add [hosts.{host}]")
        result = await remote.run(argv, timeout=timeout, output_limit=output_limit)
        return check_result(f"host {host!r}", result)

    async def check(self, host: str) -> str:
        if host == LOCAL_HOST:
            return "the ArgoBox machine itself (argvs run without a shell)"
        remote = self._remotes.get(host)
        if remote is None:
            raise BackendUnavailable(f"host {host!r} is not configured here; the operator must add [hosts.{host}]")
        await remote.check()
        return f"host {host!r}: its host key is in known_hosts and it accepts ArgoBox's login"

    async def aclose(self) -> None:
        for remote in self._remotes.values():
            await remote.aclose()
