"""SshHost against a real OpenSSH server (scripts/sshd.sh): exact argv, host keys, login, timeouts, output bounds."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest

from argobox.adapters.base import BackendRejected, BackendUnavailable
from argobox.adapters.commands import CommandFailed, CommandTimedOut, HostCommands
from argobox.adapters.ssh_host import HostKeyRefused, SshHost
from tests.adapters.test_commands import SHOW_ARGV, nasty_values, random_words, wait_until_gone
from tests.fixtures_sshd import SshServer

pytestmark = [pytest.mark.sshd, pytest.mark.anyio]


def host(
    server: SshServer, *, known_hosts: Path | None = None, key_file: Path | None = None, port: int | None = None
) -> SshHost:
    return SshHost(
        "lab",
        user=server.user,
        address=server.address,
        port=port or server.port,
        known_hosts=known_hosts or server.known_hosts,
        key_file=key_file or server.key_file,
        connect_timeout=5,
    )


def other_key(tmp_path: Path, name: str) -> Path:
    key = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30)
    return key


async def test_every_value_arrives_as_exactly_one_argument_and_nothing_else_runs(
    ssh_server: SshServer, tmp_path: Path
) -> None:
    sentinel = tmp_path / "pwned"
    words = nasty_values(sentinel) + random_words(200)

    result = await host(ssh_server).run([*SHOW_ARGV, *words], timeout=60, output_limit=1 << 20)

    assert result.exit_status == 0, result.stderr
    assert json.loads(result.stdout) == words
    assert not sentinel.exists()
    assert result.host == "lab" and result.argv == [*SHOW_ARGV, *words]


async def test_a_nul_is_refused_before_connecting(ssh_server: SshServer) -> None:
    with pytest.raises(BackendRejected, match="NUL"):
        await host(ssh_server, port=1).run(["echo", "a\0b"], timeout=5, output_limit=1024)


async def test_an_unknown_host_key_is_refused_and_nothing_runs(ssh_server: SshServer, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    marker = tmp_path / "ran"

    with pytest.raises(HostKeyRefused, match=r"not in .*never trusts a key on first use"):
        await host(ssh_server, known_hosts=empty).run(["touch", str(marker)], timeout=10, output_limit=1024)

    assert not marker.exists()


async def test_a_changed_host_key_is_refused_and_nothing_runs(ssh_server: SshServer, tmp_path: Path) -> None:
    impostor = other_key(tmp_path, "impostor")
    known = tmp_path / "known_hosts"
    key_type, key_data = impostor.with_suffix(".pub").read_text().split()[:2]
    known.write_text(f"[{ssh_server.address}]:{ssh_server.port} {key_type} {key_data}\n")
    marker = tmp_path / "ran"

    with pytest.raises(HostKeyRefused, match="differs from the one in"):
        await host(ssh_server, known_hosts=known).run(["touch", str(marker)], timeout=10, output_limit=1024)

    assert not marker.exists()


async def test_a_key_the_host_does_not_accept_is_a_clear_refusal(ssh_server: SshServer, tmp_path: Path) -> None:
    stranger = other_key(tmp_path, "stranger")

    with pytest.raises(BackendRejected, match=r"refused the login .* authorized_keys"):
        await host(ssh_server, key_file=stranger).run(["true"], timeout=10, output_limit=1024)


async def test_a_missing_known_hosts_file_is_a_clear_refusal(ssh_server: SshServer, tmp_path: Path) -> None:
    with pytest.raises(BackendRejected, match=r"known_hosts file .* could not be read"):
        await host(ssh_server, known_hosts=tmp_path / "absent").run(["true"], timeout=10, output_limit=1024)


async def test_a_host_that_does_not_listen_is_unavailable(ssh_server: SshServer) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        with pytest.raises(BackendUnavailable, match="could not be reached: connection refused"):
            await host(ssh_server, port=port).run(["true"], timeout=10, output_limit=1024)


async def test_exit_status_and_stderr_tail_decide_failure(ssh_server: SshServer) -> None:
    runner = HostCommands({"lab": host(ssh_server)})

    with pytest.raises(CommandFailed, match="exited with status 4: no pool named tank") as caught:
        await runner.run("lab", ["sh", "-c", "echo 'no pool named tank' >&2; exit 4"], timeout=30, output_limit=1024)

    assert caught.value.detail["host"] == "lab" and caught.value.detail["exit_status"] == 4
    assert caught.value.detail["duration_seconds"] >= 0


async def test_a_remote_command_that_outlives_its_timeout_is_killed_on_the_host(ssh_server: SshServer) -> None:
    marker = str(random.randrange(10**6, 10**7))
    sleeper = ["sleep", marker]

    with pytest.raises(CommandTimedOut, match="did not finish within 1 s; it was killed on the host") as caught:
        await host(ssh_server).run(["sh", "-c", f"sleep {marker} & exec sleep {marker}"], timeout=1, output_limit=1024)

    assert caught.value.detail["killed"] is True
    assert await wait_until_gone(sleeper) == []  # the remote side is this machine: its process table says so


async def test_huge_remote_output_is_bounded(ssh_server: SshServer) -> None:
    result = await host(ssh_server).run(["seq", "1", "300000"], timeout=60, output_limit=8192)

    assert result.stdout_truncated is True
    assert len(result.stdout.encode()) == 8192
    assert result.stdout.endswith("300000\n") and "argobox-pid" not in result.stdout
