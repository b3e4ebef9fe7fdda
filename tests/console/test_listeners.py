"""The agents' listener and the console's: a configuration that would give both one address is refused before
anything binds, and a listener that cannot bind or listen is one clear line and exit status 2, never a traceback.

The real `argobox` command on the simulated lab (no backend is needed: nothing here gets as far as a call)."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest

from argobox.server.app import open_app
from argobox.server.config.model import ConfigError, load_config
from argobox.server.console.serve import prepare_console, shared_listener
from argobox.server.transport.http import serve_http
from tests.console_support import run_argobox

CONFIG = """\
[storage]
path = "argobox.db"

[docker]
simulated_lab = "lab.json"

[console]
listen = "{listen}"

[[operators]]
name = "alice"

[agents.openclaw]
token_sha256 = "{zeros}"
"""


def write(tmp_path: Path, console_listen: str) -> Path:
    path = tmp_path / "argobox.toml"
    path.write_text(CONFIG.format(listen=console_listen, zeros="0" * 64))
    return path


@contextmanager
def held_port() -> Generator[int]:
    """A loopback port another program is listening on, for as long as the block runs."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held.getsockname()[1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def assert_one_clear_line(done: subprocess.CompletedProcess[str], *wanted: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "ExceptionGroup" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("argobox: ") and last.split()[1] not in ("INFO", "WARNING", "ERROR"), done.stderr
    assert all(w in last for w in wanted), done.stderr


def test_serve_http_refuses_a_console_on_the_agents_address_before_binding(tmp_path: Path) -> None:
    port = free_port()
    config = write(tmp_path, f"127.0.0.1:{port}")
    done = run_argobox(config, "serve", "--http", f"127.0.0.1:{port}")

    assert_one_clear_line(done, f"--http 127.0.0.1:{port}", f"[console] listen 127.0.0.1:{port}")
    assert "serving" not in done.stderr  # refused before either listener was bound


@pytest.mark.parametrize(
    ("command", "console_listen", "wanted"),
    [
        pytest.param(
            ("serve", "--http", "127.0.0.1:{port}"), "127.0.0.1:0", "cannot listen on 127.0.0.1:{port}", id="agents"
        ),
        pytest.param(
            ("serve", "--http", "127.0.0.1:0"),
            "127.0.0.1:{port}",
            "console cannot listen on 127.0.0.1:{port}",
            id="console",
        ),
        pytest.param(("console",), "127.0.0.1:{port}", "console cannot listen on 127.0.0.1:{port}", id="console-alone"),
    ],
)
def test_a_port_in_use_is_one_clear_line_for_either_listener(
    tmp_path: Path, command: tuple[str, ...], console_listen: str, wanted: str
) -> None:
    with held_port() as port:
        config = write(tmp_path, console_listen.format(port=port))
        done = run_argobox(config, *(part.format(port=port) for part in command))

    assert_one_clear_line(done, wanted.format(port=port), "in use")


async def test_a_listener_is_listening_once_bound_so_a_clash_in_one_process_is_a_clear_error(tmp_path: Path) -> None:
    """Both listeners set SO_REUSEADDR: two sockets of one process bound to one address both bind, and only the
    second listen() fails. Each listener listens as soon as it is bound, so the clash is found there."""
    async with open_app(load_config(write(tmp_path, "127.0.0.1:0"))) as app:
        console = prepare_console(app, None, allow_non_loopback=False)
        port = console.sock.getsockname()[1]
        try:
            with pytest.raises(ConfigError, match=rf"console cannot listen on 127\.0\.0\.1:{port}: .*in use"):
                prepare_console(app, f"127.0.0.1:{port}", allow_non_loopback=False)
            with anyio.fail_after(30), pytest.raises(ConfigError, match=rf"cannot listen on 127\.0\.0\.1:{port}: "):
                await serve_http(app, f"127.0.0.1:{port}")
        finally:
            console.sock.close()


@pytest.mark.parametrize(
    ("agents", "console", "clash"),
    [
        ("127.0.0.1:8765", "127.0.0.1:8765", True),
        ("LOCALHOST:8765", "localhost:8765", True),
        ("[::1]:8765", "[0:0::1]:8765", True),
        ("0.0.0.0:8765", "127.0.0.1:8765", True),
        ("127.0.0.1:8765", "[::]:8765", True),  # IPv6's wildcard covers IPv4 too
        ("127.0.0.1:8765", "127.0.0.1:8766", False),
        ("127.0.0.1:0", "127.0.0.1:0", False),  # each gets a port of its own
        ("[::1]:8765", "127.0.0.1:8765", False),
        ("0.0.0.0:8765", "[::1]:8765", False),
        ("127.0.0.1:8765", "nonsense", False),  # left to the binding, which says what is wrong
    ],
)
def test_which_addresses_the_two_listeners_cannot_share(agents: str, console: str, clash: bool) -> None:
    assert (shared_listener(agents, console) is not None) is clash
