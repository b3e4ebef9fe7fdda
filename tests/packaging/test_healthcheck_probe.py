"""The image's health check (contrib/docker/healthcheck.py): where it looks, and what it says about a real daemon.

The container test shows Docker running it inside the image; here it runs as a process on this machine against a
real `argobox serve --http`, told the address with ARGOBOX_HEALTH_URL.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from types import ModuleType
from typing import cast

import anyio
import pytest

from tests.http_daemon import ARGOBOX, http_daemon, write_http_config

REPO = Path(__file__).resolve().parents[2]
PROBE = REPO / "contrib" / "docker" / "healthcheck.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("argobox_healthcheck", PROBE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_probe = _load()
listen_address = cast(Callable[[list[str]], "str | None"], _probe.listen_address)
health_url = cast(Callable[[str], str], _probe.health_url)


def command_lines(proc: Path) -> list[list[str]]:
    return list(_probe.command_lines(proc))


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["/opt/argobox/bin/python3", "/opt/argobox/bin/argobox", "serve", "--http", "0.0.0.0:8765"], "0.0.0.0:8765"),
        (["argobox", "--config", "/etc/a.toml", "serve", "--http=127.0.0.1:9000"], "127.0.0.1:9000"),
        (["argobox", "serve", "--http"], "127.0.0.1:8765"),
        (["argobox", "serve", "--http", "--allow-non-loopback"], "127.0.0.1:8765"),
        (["argobox", "serve", "--agent", "openclaw"], None),
        (["argobox", "approve", "abc", "--as", "alice"], None),
        (["python3", "-m", "http.server", "--http", "1"], None),
    ],
)
def test_the_listen_address_comes_from_the_daemons_command_line(argv: list[str], expected: str | None) -> None:
    assert listen_address(argv) == expected


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        ("0.0.0.0:8765", "http://127.0.0.1:8765/healthz"),
        ("[::]:8765", "http://[::1]:8765/healthz"),
        ("127.0.0.1:9000", "http://127.0.0.1:9000/healthz"),
        ("[::1]:9000", "http://[::1]:9000/healthz"),
        ("localhost:9000", "http://127.0.0.1:9000/healthz"),
        ("192.0.2.7:8765", "http://192.0.2.7:8765/healthz"),
    ],
)
def test_a_wildcard_address_is_asked_on_loopback(listen: str, url: str) -> None:
    assert health_url(listen) == url


def test_command_lines_are_read_from_proc(tmp_path: Path) -> None:
    for pid, argv in (("1", ["argobox", "serve", "--http", "0.0.0.0:8765"]), ("42", ["sh"]), ("7", [])):
        (tmp_path / pid).mkdir()
        (tmp_path / pid / "cmdline").write_bytes(b"".join(arg.encode() + b"\0" for arg in argv))
    (tmp_path / "self").mkdir()

    assert command_lines(tmp_path) == [["argobox", "serve", "--http", "0.0.0.0:8765"], ["sh"]]


def run_probe(url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ARGOBOX_HEALTH_URL": url}
    return subprocess.run(
        [sys.executable, str(PROBE)], capture_output=True, text=True, timeout=30, env=env, check=False
    )


@pytest.mark.anyio
async def test_the_probe_passes_on_a_running_daemon_fails_when_its_store_breaks_and_audits_nothing(
    tmp_path: Path,
) -> None:
    config = write_http_config(tmp_path)
    with anyio.fail_after(60):
        async with http_daemon(config) as daemon:
            url = daemon.url.removesuffix("/mcp") + "/healthz"
            healthy = await anyio.to_thread.run_sync(run_probe, url)
            with closing(sqlite3.connect(tmp_path / "argobox.db", isolation_level=None)) as db:
                db.execute("ALTER TABLE requests RENAME TO requests_gone")
                broken = await anyio.to_thread.run_sync(run_probe, url)
                db.execute("ALTER TABLE requests_gone RENAME TO requests")
            healthy_again = await anyio.to_thread.run_sync(run_probe, url)
            log = daemon.log
    trail = await anyio.run_process([str(ARGOBOX), "--config", str(config), "audit", "--json"])

    assert (healthy.returncode, healthy.stdout) == (0, f"{url}: ok\n")
    assert broken.returncode == 1 and broken.stdout.startswith(f"{url} answered HTTP 503: "), broken.stdout
    assert healthy_again.returncode == 0
    assert "health check: cannot read the store" in log
    assert [e["event"] for e in json.loads(trail.stdout.decode())] == ["daemon_started", "daemon_stopped"]


def test_the_probe_fails_when_nothing_answers() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, never listening: connections are refused
        done = run_probe(f"http://127.0.0.1:{port}/healthz")

    assert done.returncode == 1
    assert done.stdout.startswith(f"http://127.0.0.1:{port}/healthz did not answer: ")
