"""Pytest fixtures for tests against a real OpenSSH server (start one with `scripts/sshd.sh start`).

Without a reachable server, tests using these fixtures are skipped loudly, or fail when the environment variable CI
is "true".
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STATE = REPO / ".state" / "sshd"


@dataclass(frozen=True)
class SshServer:
    """The private sshd of scripts/sshd.sh: where it listens, who logs in, with which key, and its known_hosts."""

    address: str
    port: int
    user: str
    key_file: Path
    known_hosts: Path

    @property
    def target(self) -> str:
        return f"{self.user}@{self.address}:{self.port}"

    def host_section(self, name: str, *, known_hosts: Path | None = None, key_file: Path | None = None) -> str:
        """A `[hosts.NAME]` section reaching this server."""
        return (
            f'\n[hosts.{name}]\nssh = "{self.target}"\nknown_hosts = "{known_hosts or self.known_hosts}"\n'
            f'key_file = "{key_file or self.key_file}"\nconnect_timeout_seconds = 10\n'
        )


def _no_sshd(reason: str) -> None:
    message = f"no sshd: run scripts/sshd.sh start ({reason})"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _from_state() -> dict[str, str]:
    """What scripts/sshd.sh would export, read from its state directory (when the variables are not set)."""
    port_file = STATE / "port"
    if not port_file.is_file():
        return {}
    return {
        "ARGOBOX_TEST_SSH_HOST": "127.0.0.1",
        "ARGOBOX_TEST_SSH_PORT": port_file.read_text().strip(),
        "ARGOBOX_TEST_SSH_USER": os.environ.get("USER") or "root",
        "ARGOBOX_TEST_SSH_KEY": str(STATE / "client_ed25519_key"),
        "ARGOBOX_TEST_SSH_KNOWN_HOSTS": str(STATE / "known_hosts"),
    }


@pytest.fixture(scope="session")
def ssh_server() -> SshServer:
    """The test sshd, from the ARGOBOX_TEST_SSH_* variables of `scripts/sshd.sh start` (or its state directory)."""
    env = {**_from_state(), **{k: v for k, v in os.environ.items() if k.startswith("ARGOBOX_TEST_SSH_")}}
    if "ARGOBOX_TEST_SSH_PORT" not in env:
        _no_sshd("ARGOBOX_TEST_SSH_PORT is unset and .state/sshd/port does not exist")
    server = SshServer(
        address=env["ARGOBOX_TEST_SSH_HOST"],
        port=int(env["ARGOBOX_TEST_SSH_PORT"]),
        user=env["ARGOBOX_TEST_SSH_USER"],
        key_file=Path(env["ARGOBOX_TEST_SSH_KEY"]),
        known_hosts=Path(env["ARGOBOX_TEST_SSH_KNOWN_HOSTS"]),
    )
    try:
        with socket.create_connection((server.address, server.port), timeout=5):
            pass
    except OSError as exc:
        _no_sshd(f"{server.address}:{server.port} did not answer: {exc.strerror or exc}")
    return server
