# pyright: basic, reportAttributeAccessIssue=false, reportOptionalMemberAccess=false, reportIndexIssue=false
# (This module subclasses the Docker SDK's SSH transport, whose internals the SDK's type stubs do not describe.)
"""Docker engines on other hosts: `ssh://user@host[:port]` through the Docker SDK's own SSH transport, and
`tcp://host:2376` with mutual TLS.

Over SSH the SDK runs `docker system dial-stdio` on the host (so the remote user needs the docker CLI and access to
the engine). The SDK's paramiko transport is used because it can check the host key strictly: only the keys in the
configured known_hosts file (or, without one, the ArgoBox user's own ~/.ssh/known_hosts) are trusted, and an
unknown key is refused (paramiko's RejectPolicy), never added. The `ssh` binary transport of the SDK cannot be given
a known_hosts file or a key. Errors leave as `AdapterError`s, like those of the local engine.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import docker.tls
import paramiko
import urllib3.connection
import urllib3.connectionpool
from docker.transport.sshconn import SSHHTTPAdapter

from argobox.adapters.base import BackendRejected, BackendUnavailable
from argobox.adapters.docker_engine import DockerEngine

T = TypeVar("T")
BRIDGE_URL = "http+docker://remote"
MIN_API_VERSION = "1.24"
"""Only used to build the client before the engine is asked for its real API version over the strict transport."""


class HostKeyRefused(BackendRejected):
    """Raised when a Docker host's SSH key is not in known_hosts, or differs from the key recorded there."""


class StrictSshAdapter(SSHHTTPAdapter):
    """The SDK's paramiko transport with the host key checked against `known_hosts` only, and `key_file` as the key.

    Without `known_hosts` the ArgoBox user's own known_hosts is used (as the SDK does); in both cases a key that is not
    there is refused. Without `key_file` the user's SSH configuration and agent are used (as the SDK does).

    Each HTTP connection is one SSH channel running `docker system dial-stdio`, bridged to a local socket pair: the
    HTTP client then reads and writes a real socket (the channel itself lacks parts of the socket API that some
    urllib3 builds call), and the SDK treats it like its unix-socket transport.
    """

    def __init__(self, base_url: str, *, known_hosts: Path | None, key_file: Path | None, timeout: float) -> None:
        self._known_hosts_file = known_hosts
        self._key_file = key_file
        self._connect_timeout = timeout
        self._reconnect = threading.Lock()
        super().__init__(base_url, timeout=int(max(1, timeout)))

    def _create_paramiko_client(self, base_url: str) -> None:
        super()._create_paramiko_client(base_url)  # reads ~/.ssh/config (host name, port, user, identity file)
        client = paramiko.SSHClient()
        if self._known_hosts_file is not None:
            client.load_host_keys(str(self._known_hosts_file))
        else:
            client.load_system_host_keys()
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        self.ssh_client = client
        params: dict[str, Any] = self.ssh_params
        timeout = self._connect_timeout
        params.update(timeout=timeout, banner_timeout=timeout, auth_timeout=timeout, channel_timeout=timeout)
        if params.get("port") is None:
            params["port"] = 22
        if self._key_file is not None:
            params.update(key_filename=str(self._key_file), look_for_keys=False, allow_agent=False)

    def get_connection(self, url: str | bytes, proxies: Any = None) -> _BridgedPool:
        with self.pools.lock:
            pool = self.pools.get(url)
            if pool is None:
                pool = _BridgedPool(self._open_channel, timeout=self.timeout, maxsize=self.max_pool_size)
                self.pools[url] = pool
            return pool

    def _open_channel(self) -> paramiko.Channel:
        with self._reconnect:
            transport = self.ssh_client.get_transport()
            if transport is None or not transport.is_active():
                self._connect()
                transport = self.ssh_client.get_transport()
        if transport is None:
            raise paramiko.SSHException("the SSH connection closed before a channel could be opened")
        channel = transport.open_session(timeout=self._connect_timeout)
        channel.exec_command("docker system dial-stdio")
        return channel


class _BridgedConnection(urllib3.connection.HTTPConnection):
    def __init__(self, open_channel: Callable[[], paramiko.Channel], *, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._open_channel = open_channel
        self._bridge_timeout = timeout

    def connect(self) -> None:
        channel = self._open_channel()
        ours, theirs = socket.socketpair()
        threading.Thread(target=_pump, args=(theirs, channel), name="argobox-docker-ssh", daemon=True).start()
        ours.settimeout(self._bridge_timeout)
        self.sock = ours


class _BridgedPool(urllib3.connectionpool.HTTPConnectionPool):
    def __init__(self, open_channel: Callable[[], paramiko.Channel], *, timeout: float, maxsize: int) -> None:
        super().__init__("localhost", timeout=timeout, maxsize=maxsize)
        self._open_channel = open_channel
        self._bridge_timeout = timeout

    def _new_conn(self) -> _BridgedConnection:
        return _BridgedConnection(self._open_channel, timeout=self._bridge_timeout)


def _pump(sock: socket.socket, channel: paramiko.Channel) -> None:
    """Copy bytes both ways between the local socket and the SSH channel until either side ends."""
    try:
        while True:
            ready, _, _ = select.select([sock, channel], [], [])
            if sock in ready:
                data = sock.recv(65536)
                if not data:
                    return
                channel.sendall(data)
            if channel in ready:
                data = channel.recv(65536)
                if not data:
                    return
                sock.sendall(data)
    except (OSError, paramiko.SSHException):
        return
    finally:
        channel.close()
        sock.close()


class RemoteDockerEngine(DockerEngine):
    """A `DockerEngine` on another host; the client is made on first use, over the strict transport."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        timeout: float,
        connect: Callable[[], docker.APIClient],
        secrets: Iterable[str] = (),
    ) -> None:
        super().__init__(base_url, timeout=timeout, secrets=secrets)
        self.name = name
        self._connect = connect
        self._remote: docker.APIClient | None = None

    def _api(self) -> docker.APIClient:
        with self._lock:
            if self._remote is None:
                self._remote = self._translated(self._connect)
            return self._remote

    def _translated(self, fn: Callable[[], T]) -> T:
        where = f"Docker host {self.name!r} ({self._display_url})"
        try:
            return fn()
        except paramiko.BadHostKeyException:
            raise HostKeyRefused(
                f"{where} presented an SSH host key that differs from the one in its known_hosts: the key changed, or "
                "something is in the middle; nothing was done"
            ) from None
        except paramiko.AuthenticationException:
            raise BackendRejected(
                f"{where} refused the SSH login; check key_file and the user's authorized_keys"
            ) from None
        except paramiko.SSHException as exc:
            if "not found in known_hosts" in str(exc):
                raise HostKeyRefused(
                    f"{where} presented an SSH host key that is not in its known_hosts, and ArgoBox never trusts a key "
                    "on first use; nothing was done. Add the host's key to that file"
                ) from None
            raise BackendUnavailable(f"{where} did not answer over SSH: {_first_line(exc)}") from None
        except (OSError, EOFError) as exc:
            reason = "connection refused" if isinstance(exc, ConnectionRefusedError) else _first_line(exc)
            raise BackendUnavailable(f"{where} could not be reached: {reason}") from None
        except docker.errors.DockerException as exc:
            raise self._unavailable(exc) from None

    async def _run(self, target: str | None, action: str, fn: Callable[[docker.APIClient], T]) -> T:
        return await super()._run(target, action, lambda api: self._translated(lambda: fn(api)))

    async def aclose(self) -> None:
        with self._lock:
            remote, self._remote = self._remote, None
        if remote is not None:
            remote.close()


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0][:200] if lines else "") or type(exc).__name__


def ssh_client(base_url: str, *, known_hosts: Path | None, key_file: Path | None, timeout: float) -> docker.APIClient:
    """A low-level client for an ssh:// engine over `StrictSshAdapter` (connects, and asks the engine's API version)."""
    logging.getLogger("paramiko").setLevel(logging.WARNING)
    adapter = StrictSshAdapter(base_url, known_hosts=known_hosts, key_file=key_file, timeout=timeout)
    # Built with the SDK's ssh-binary transport, which connects to nothing until used, then given the strict one.
    api = docker.APIClient(base_url=base_url, version=MIN_API_VERSION, timeout=int(timeout), use_ssh_client=True)
    api.mount(BRIDGE_URL, adapter)
    api.base_url = BRIDGE_URL  # not http+docker://ssh: the SDK then reads streams from the socket, as over unix sockets
    api._custom_adapter = adapter  # pyright: ignore[reportAttributeAccessIssue] - what the SDK closes
    api._version = api._retrieve_server_version()  # pyright: ignore[reportPrivateUsage]
    return api


def tls_client(base_url: str, *, ca: Path, cert: Path, key: Path, timeout: float) -> docker.APIClient:
    """A low-level client for a tcp:// engine with mutual TLS (the engine's certificate checked against `ca`)."""
    tls = docker.tls.TLSConfig(client_cert=(str(cert), str(key)), ca_cert=str(ca), verify=True)
    return docker.APIClient(base_url=base_url, tls=tls, timeout=int(timeout), version="auto")
