"""Container health check: ask the ArgoBox daemon running in this container for `GET /healthz`.

Where the daemon listens is read from its own command line (`argobox ... serve --http HOST:PORT`), so the check
follows whatever `command:` a compose file or `docker run` gives; ARGOBOX_HEALTH_URL overrides it. A wildcard
address (0.0.0.0, ::) is asked on loopback. Exit 0 when the daemon answers 200 with `{"status": "ok"}`, 1 otherwise
(Docker's HEALTHCHECK convention), printing one line that says why. Standard library only.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path

DEFAULT_LISTEN = "127.0.0.1:8765"  # `serve --http` without a value
HEALTH_PATH = "/healthz"
TIMEOUT_SECONDS = 4.0


def listen_address(argv: list[str]) -> str | None:
    """The `--http` address of an `argobox ... serve --http [HOST:PORT]` command line, or None if it is not one."""
    if "serve" not in argv or not any(Path(arg).name == "argobox" for arg in argv[:3]):
        return None
    for index, arg in enumerate(argv):
        if arg.startswith("--http="):
            return arg.partition("=")[2]
        if arg == "--http":
            value = argv[index + 1] if index + 1 < len(argv) else ""
            return value if value and not value.startswith("-") else DEFAULT_LISTEN
    return None


def health_url(listen: str) -> str:
    """The `/healthz` URL to ask for a daemon listening on `listen` (HOST:PORT, IPv6 in brackets)."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "localhost"):  # noqa: S104 - an address read from the command line, never bound
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}{HEALTH_PATH}"


def command_lines(proc: Path = Path("/proc")) -> Iterator[list[str]]:
    """The command line of every process visible here (this container's, in its own PID namespace)."""
    for entry in sorted(proc.glob("[0-9]*/cmdline")):
        try:
            raw = entry.read_bytes()
        except OSError:  # the process ended, or is not ours to read
            continue
        if raw:
            yield raw.rstrip(b"\0").decode(errors="replace").split("\0")


def find_url(cmdlines: Iterable[list[str]]) -> str | None:
    for argv in cmdlines:
        listen = listen_address(argv)
        if listen is not None:
            return health_url(listen)
    return None


def probe(url: str, timeout: float = TIMEOUT_SECONDS) -> tuple[bool, str]:
    """Ask `url`; (healthy, one line saying what was found). Never goes through a proxy."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            body = json.loads(response.read(4096) or b"{}")
    except urllib.error.HTTPError as exc:
        return False, f"{url} answered HTTP {exc.code}: {exc.read(512).decode(errors='replace')}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return False, f"{url} did not answer: {getattr(exc, 'reason', exc)}"
    if body.get("status") != "ok":
        return False, f"{url} answered {body!r}"
    return True, f"{url}: ok"


def main() -> int:
    url = os.environ.get("ARGOBOX_HEALTH_URL") or find_url(command_lines())
    if url is None:
        print("no `argobox serve --http` process runs here; set ARGOBOX_HEALTH_URL to ask another address")
        return 1
    healthy, line = probe(url)
    print(line)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
