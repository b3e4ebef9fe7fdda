"""One SSH host that runs declared commands, through asyncssh.

The host key is checked against the configured known_hosts file and nothing else: an unknown key and a changed key
are both refused before anything runs (never trust on first use). The client key is `key_file`, or the SSH agent.
The argv is sent as one command line, each word quoted for the remote POSIX shell, behind `exec` (so the command
keeps the shell's process id, which leads its own process group: sshd starts each session with setsid). A short
marker line printed first gives that id, so that a command outliving its timeout can be killed with its whole group
over a second channel. Every asyncssh and socket error leaves this module as an `AdapterError`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from secrets import token_hex

import anyio
from cryptography.utils import CryptographyDeprecationWarning

with warnings.catch_warnings():
    # asyncssh still imports cryptography's DSA support, which cryptography marks deprecated.
    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
    import asyncssh

from argobox.adapters.base import BackendRejected, BackendUnavailable
from argobox.adapters.commands import BoundedOutput, CommandResult, remote_command_line, timed_out

MAX_PREAMBLE_BYTES = 64 * 1024
"""Output a login shell may print before the marker line (a noisy .bashrc); more and the marker is not looked for."""
KILL_TIMEOUT_SECONDS = 10


class HostKeyRefused(BackendRejected):
    """Raised when the host's key is not in known_hosts, or differs from the key recorded there."""


class SshHost:
    """Runs argvs on `user@address:port` as configured in `[hosts.NAME]`."""

    def __init__(
        self,
        name: str,
        *,
        user: str,
        address: str,
        port: int,
        known_hosts: Path,
        key_file: Path | None,
        connect_timeout: float,
        secrets: Sequence[str] = (),
    ) -> None:
        """`secrets` never show in a command's output (they are removed before the output is cut to its limit)."""
        self.name = name
        self._secrets = tuple(secrets)
        self._user, self._address, self._port = user, address, port
        self._known_hosts, self._key_file = known_hosts, key_file
        self._connect_timeout = connect_timeout
        self._where = f"host {name!r} ({user}@{address}:{port})"

    async def run(self, argv: Sequence[str], *, timeout: float, output_limit: int) -> CommandResult:
        try:
            line = remote_command_line(argv)
        except ValueError as exc:
            raise BackendRejected(f"{exc}; nothing was run on {self._where}") from None
        known = self._read_known_hosts()
        marker = f"argobox-pid-{token_hex(8)}"
        command = f"printf '%s %s\\n' {marker} \"$$\"; exec {line}"
        started = time.monotonic()
        conn = await self._connect(known)
        try:
            try:
                process = await conn.create_process(command, encoding=None)
            except (asyncssh.Error, OSError) as exc:
                raise BackendUnavailable(f"{self._where} would not start the command: {_reason(exc)}") from None
            process.stdin.write_eof()
            out = _MarkedOutput(marker, output_limit, self._secrets)
            err = BoundedOutput(output_limit, self._secrets)
            with anyio.move_on_after(timeout) as scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_drain, process.stdout, out.add)
                    tg.start_soon(_drain, process.stderr, err.add)
                await process.wait_closed()
            if scope.cancelled_caught:
                killed = await self._kill(conn, out.pid)
                process.close()
                raise timed_out(self.name, argv, timeout, killed=killed, started=started)
            exit_signal = process.exit_signal[0] if process.exit_signal else None
            status = process.exit_status
            return CommandResult(
                host=self.name,
                argv=list(argv),
                exit_status=status if exit_signal is None and status is not None and status >= 0 else None,
                exit_signal=exit_signal,
                duration_seconds=round(time.monotonic() - started, 3),
                stdout=out.text(),
                stderr=err.text(),
                stdout_truncated=out.truncated,
                stderr_truncated=err.truncated,
            )
        finally:
            conn.close()
            with anyio.move_on_after(5):
                await conn.wait_closed()

    async def aclose(self) -> None:
        """Nothing is kept open between commands (each command has its own connection)."""

    async def check(self) -> None:
        """Connect and log in without running anything (raises like `run`)."""
        conn = await self._connect(self._read_known_hosts())
        conn.close()
        await conn.wait_closed()

    def _read_known_hosts(self) -> asyncssh.SSHKnownHosts:
        try:
            return asyncssh.read_known_hosts(str(self._known_hosts))
        except OSError as exc:
            raise BackendRejected(
                f"known_hosts file {self._known_hosts} of {self._where} could not be read ({exc.strerror or exc}); "
                "nothing was run"
            ) from None
        except (ValueError, asyncssh.Error) as exc:
            raise BackendRejected(
                f"known_hosts file {self._known_hosts} of {self._where} is not valid ({exc}); nothing was run"
            ) from None

    def _client_keys(self) -> list[asyncssh.SSHKey] | None:
        if self._key_file is None:
            return None  # the SSH agent (and the user's default keys)
        try:
            return [asyncssh.read_private_key(str(self._key_file))]
        except OSError as exc:
            raise BackendRejected(
                f"key_file {self._key_file} of {self._where} could not be read ({exc.strerror or exc})"
            ) from None
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError, ValueError) as exc:
            raise BackendRejected(
                f"key_file {self._key_file} of {self._where} is not a usable unencrypted private key ({exc})"
            ) from None

    async def _connect(self, known: asyncssh.SSHKnownHosts) -> asyncssh.SSHClientConnection:
        keys = self._client_keys()
        try:
            with anyio.fail_after(self._connect_timeout + 1):
                return await asyncssh.connect(
                    self._address,
                    port=self._port,
                    username=self._user,
                    known_hosts=known,
                    config=None,
                    client_keys=keys if keys is not None else (),
                    agent_path=None if keys is not None else (),
                    password_auth=False,
                    kbdint_auth=False,
                    host_based_auth=False,
                    gss_auth=False,
                    gss_kex=False,
                    connect_timeout=self._connect_timeout,
                    login_timeout=self._connect_timeout,
                )
        except asyncssh.HostKeyNotVerifiable:
            raise self._host_key_refused(known) from None
        except asyncssh.PermissionDenied:
            how = f"key_file {self._key_file}" if self._key_file is not None else "the SSH agent's keys"
            raise BackendRejected(
                f"{self._where} refused the login of {self._user!r} with {how}; add the public key to that user's "
                "authorized_keys on the host"
            ) from None
        except TimeoutError:
            raise BackendUnavailable(
                f"{self._where} did not answer within {self._connect_timeout:g} s; check that it is up"
            ) from None
        except (asyncssh.Error, OSError) as exc:
            raise BackendUnavailable(f"{self._where} could not be reached: {_reason(exc)}") from None

    def _host_key_refused(self, known: asyncssh.SSHKnownHosts) -> HostKeyRefused:
        trusted = known.match(self._address, self._address, self._port)[0]
        if trusted:
            return HostKeyRefused(
                f"{self._where} presented a host key that differs from the one in {self._known_hosts}: the key "
                "changed, or something is in the middle; nothing was run. If the host was reinstalled, check its "
                "new key's fingerprint on its console and replace the line in that file"
            )
        return HostKeyRefused(
            f"{self._where} presented a host key that is not in {self._known_hosts}, and ArgoBox never trusts a key "
            "on first use; nothing was run. Add the host's key to that file (ssh-keyscan, checked against the "
            "fingerprint shown on the host's console)"
        )

    async def _kill(self, conn: asyncssh.SSHClientConnection, pid: int | None) -> bool:
        """Kill the timed-out command's process group on the host; True when the host confirms the signal."""
        if pid is None:
            return False
        try:
            with anyio.fail_after(KILL_TIMEOUT_SECONDS):
                done = await conn.run(f"kill -s KILL -- -{pid}", check=False)
        except (TimeoutError, asyncssh.Error, OSError):
            return False
        return done.exit_status == 0


class _MarkedOutput(BoundedOutput):
    """stdout, with the marker line that gives the remote process id taken out of it."""

    __slots__ = ("_marker", "_preamble", "pid")

    def __init__(self, marker: str, limit: int, secrets: Sequence[str]) -> None:
        super().__init__(limit, secrets)
        self._marker = marker.encode()
        self._preamble: bytearray | None = bytearray()
        self.pid: int | None = None

    def add(self, chunk: bytes) -> None:
        if self._preamble is None:
            super().add(chunk)
            return
        self._preamble += chunk
        start = self._preamble.find(self._marker + b" ")
        end = self._preamble.find(b"\n", start) if start >= 0 else -1
        if end < 0:
            if len(self._preamble) > MAX_PREAMBLE_BYTES:
                pending, self._preamble = bytes(self._preamble), None
                super().add(pending)
            return
        digits = bytes(self._preamble[start + len(self._marker) + 1 : end]).strip()
        self.pid = int(digits) if digits.isdigit() else None
        before, after = bytes(self._preamble[:start]), bytes(self._preamble[end + 1 :])
        self._preamble = None
        super().add(before + after)

    def text(self) -> str:
        if self._preamble is not None:  # the command ended before the marker was complete
            pending, self._preamble = bytes(self._preamble), None
            super().add(pending)
        return super().text()


async def _drain(stream: asyncssh.SSHReader[bytes], add: Callable[[bytes], None]) -> None:
    while chunk := await stream.read(65536):
        add(chunk)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    text = str(exc).strip().splitlines()
    return (text[0][:200] if text else "") or type(exc).__name__
