"""A stdio server ends on SIGTERM or SIGINT while its client keeps stdin open: after the calls in flight, promptly,
with exit status 0. The real `argobox serve` process; its stdin is a pipe the test never closes until the end."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import WriteConfig

ARGOBOX = str(Path(sys.executable).with_name("argobox"))
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}
EXIT_DEADLINE_S = 30  # far above a prompt exit (about a second), far below the 90 s the server once stayed alive


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_ends_the_stdio_server_while_its_stdin_stays_open(write_config: WriteConfig, signum: int) -> None:
    with subprocess.Popen(
        [ARGOBOX, "--config", str(write_config()), "serve", "--agent", "openclaw"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as server:
        assert server.stdin is not None and server.stdout is not None and server.stderr is not None
        watchdog = threading.Timer(2 * EXIT_DEADLINE_S, server.kill)  # a server that never answers fails, never hangs
        watchdog.start()
        try:
            server.stdin.write(json.dumps(INITIALIZE).encode() + b"\n")
            server.stdin.flush()
            answer = json.loads(server.stdout.readline())  # serving: the handshake is answered
            server.send_signal(signum)
            try:
                returncode = server.wait(timeout=EXIT_DEADLINE_S)
            except subprocess.TimeoutExpired:
                returncode = None
        finally:
            watchdog.cancel()
            server.kill()  # stdin was open until now, and is closed as the process is reaped
        stderr = server.stderr.read().decode()

    assert answer["result"]["serverInfo"]["name"] == "argobox"
    assert returncode == 0, f"still running {EXIT_DEADLINE_S} s after {signal.Signals(signum).name}: {stderr}"
    assert "stopping after" in stderr and "Traceback" not in stderr
