"""A `ContainerRuntime` backed by a real Docker Engine through the `docker` SDK (7.x).

The SDK is synchronous, so every call runs in a worker thread. Every backend failure leaves this module as an
`AdapterError` with a short message that names the target and never carries credentials or a traceback.
Environment variable values never leave the engine: only their names are returned.
"""

from __future__ import annotations

import socket
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Sequence
from contextlib import contextmanager
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import anyio.to_thread
import docker
import docker.errors
import docker.utils
import requests.exceptions
import urllib3.exceptions

from argobox.adapters.base import (
    MAX_LOG_BYTES,
    MAX_LOG_LINES,
    BackendRejected,
    BackendUnavailable,
    ContainerAction,
    ContainerDetail,
    ContainerLogs,
    ContainerSummary,
    TargetNotFound,
    replace_secrets,
    secret_fragments,
)
from argobox.adapters.docker_answers import (
    action_report,
    container_rows,
    detail,
    engine_name,
    inspect,
    json_array,
    json_object,
    resolve,
    summary,
)

T = TypeVar("T")

STOP_TIMEOUT_S = 10
"""Seconds the engine waits after the stop signal before it kills (the engine's own default)."""
MAX_LINE_CHARS = 4096
"""A longer log line is cut to this many characters (and the logs marked truncated)."""
_MAX_LINE_BYTES = MAX_LINE_CHARS * 8
"""Bytes kept of one line as read: room for MAX_LINE_CHARS characters of UTF-8 and for a secret that starts before
the cut and ends after it, so that it is recognised (and removed) whole before the line is cut."""
_MAX_REASON_CHARS = 200


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def safe_url(url: str) -> str:
    """Return `url` without any password it carries (`tcp://user:pw@host` -> `tcp://user@host`)."""
    if not _password(url):
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    port = f":{parts.port}" if parts.port is not None else ""
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}{host}{port}"))


def _short(text: str, secrets: Iterable[str]) -> str:
    """The first line of `text` with every secret masked, cut to a readable length."""
    for secret in secrets:
        text = text.replace(secret, "***")
    line = next(iter(text.strip().splitlines()), "")
    return line if len(line) <= _MAX_REASON_CHARS else line[: _MAX_REASON_CHARS - 1] + "…"


def _check_unix_socket(base_url: str, timeout: float) -> None:
    """Connect once to a `unix://` engine's socket, and close it. Raises OSError (or DockerException for a bad URL).

    The SDK's own connection to a missing or dead socket is never closed: it stays open until the garbage collector
    finds it, so such a failure is met here first, with a socket that is closed whatever happens.
    """
    if not base_url.startswith("unix://"):
        return
    path = str(docker.utils.parse_host(base_url)).removeprefix("http+unix://")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout)
        probe.connect(path)


def _root_os_error(exc: BaseException, depth: int = 0) -> OSError | None:
    """The innermost OSError with an errno (requests and urllib3 nest it in args, not only in __cause__)."""
    if depth > 6:
        return None
    nested = [a for a in exc.args if isinstance(a, BaseException)]
    for inner in (*nested, exc.__cause__, exc.__context__):
        if inner is not None and (found := _root_os_error(inner, depth + 1)) is not None:
            return found
    return exc if isinstance(exc, OSError) and exc.errno is not None else None


def _unavailable_reason(exc: BaseException) -> str:
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    root = _root_os_error(exc)
    reasons: dict[type[OSError], str] = {
        FileNotFoundError: "socket not found",
        ConnectionRefusedError: "connection refused",
    }
    if root is not None:
        return reasons.get(type(root)) or root.strerror or type(root).__name__
    return str(exc) or type(exc).__name__


def _explanation(exc: docker.errors.APIError) -> str:
    explanation = exc.explanation
    if isinstance(explanation, bytes):
        explanation = explanation.decode("utf-8", errors="replace")
    if not explanation and exc.response is not None:
        explanation = f"HTTP {exc.response.status_code} {exc.response.reason or ''}"
    return str(explanation or type(exc).__name__)


class DockerEngine:
    """`ContainerRuntime` over a Docker-API engine at `base_url` (e.g. ``unix:///var/run/docker.sock``)."""

    def __init__(self, base_url: str, *, timeout: float = 30.0, secrets: Iterable[str] = ()) -> None:
        """`secrets` are values that must never show in what the engine returns (the server's configured secrets):
        they are removed from log lines before the lines are cut to size."""
        self._base_url = base_url
        self._display_url = safe_url(base_url)
        self._secrets = tuple(s for s in (_password(base_url),) if s)
        self._log_secrets = (*self._secrets, *secrets)
        self._timeout = timeout
        self._client: docker.DockerClient | None = None
        self._lock = threading.Lock()

    async def describe(self) -> str:
        def version(api: docker.APIClient) -> str:
            info = api.version()
            return f"Docker Engine {info.get('Version', '?')} (API {info.get('ApiVersion', '?')})"

        return await self._run(None, "report its version", version)

    async def list_containers(self, *, all: bool) -> list[ContainerSummary]:
        return await self._run(
            None, "list containers", lambda api: [summary(row) for row in container_rows(api, everything=all)]
        )

    async def inspect_container(self, container: str) -> ContainerDetail:
        return await self._run(container, "inspect", lambda api: detail(resolve(api, container)[1]))

    async def container_logs(self, container: str, *, tail: int) -> ContainerLogs:
        return await self._run(
            container, "read the logs of", lambda api: _logs(api, container, tail, self._log_secrets)
        )

    async def start_container(self, container: str) -> ContainerAction:
        return await self._act(container, "start", lambda api, cid: api.start(cid))

    async def stop_container(self, container: str) -> ContainerAction:
        return await self._act(container, "stop", lambda api, cid: api.stop(cid, timeout=STOP_TIMEOUT_S))

    async def restart_container(self, container: str) -> ContainerAction:
        return await self._act(container, "restart", lambda api, cid: api.restart(cid, timeout=STOP_TIMEOUT_S))

    async def aclose(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            await anyio.to_thread.run_sync(client.close)

    async def _act(self, container: str, action: str, fn: Callable[[docker.APIClient, str], object]) -> ContainerAction:
        def act_and_reload(api: docker.APIClient) -> ContainerAction:
            container_id, _ = resolve(api, container)
            fn(api, container_id)
            return action_report(inspect(api, container_id), container, action)

        return await self._run(container, action, act_and_reload)

    async def _run(self, target: str | None, action: str, fn: Callable[[docker.APIClient], T]) -> T:
        """Run `fn` with the low-level client in a worker thread, translating every backend failure."""

        def call() -> T:
            with self._docker_errors(target, action):
                return fn(self._api())

        return await anyio.to_thread.run_sync(call)

    def _api(self) -> docker.APIClient:
        """The low-level client, created on first use: constructing it asks the engine for its API version."""
        with self._lock:
            if self._client is None:
                try:
                    _check_unix_socket(self._base_url, self._timeout)
                    self._client = docker.DockerClient(base_url=self._base_url, timeout=self._timeout)
                except (docker.errors.DockerException, OSError) as exc:
                    raise self._unavailable(exc) from None
            return self._client.api

    def _unavailable(self, exc: BaseException) -> BackendUnavailable:
        reason = _short(_unavailable_reason(exc).replace(self._base_url, self._display_url), self._secrets)
        return BackendUnavailable(f"Docker engine at {self._display_url} did not answer: {reason}")

    @contextmanager
    def _docker_errors(self, target: str | None, action: str) -> Generator[None]:
        """Translate SDK and transport exceptions into AdapterErrors that are safe to show the agent."""
        what = f"{action} '{target}'" if target else action
        try:
            yield
        except docker.errors.NotFound:
            if target is None:
                raise BackendRejected(f"Docker engine could not {what}: not found.") from None
            raise TargetNotFound(f"No container named '{target}'.") from None
        except docker.errors.APIError as exc:
            reason = _short(_explanation(exc), self._secrets)
            raise BackendRejected(f"Docker engine refused to {what}: {reason}") from None
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unavailable(exc) from None
        except docker.errors.DockerException as exc:  # InvalidArgument, InvalidVersion, StreamParseError...
            raise BackendRejected(f"Docker client could not {what}: {_short(str(exc), self._secrets)}") from None
        except (KeyError, TypeError, ValueError) as exc:  # an answer of an unexpected shape
            kind = type(exc).__name__
            raise BackendRejected(f"Docker engine gave an unexpected answer to {what} ({kind}).") from None


def _logs(api: docker.APIClient, container: str, tail: int, secrets: Sequence[str]) -> ContainerLogs:
    """The newest `tail` lines (clamped to 1..MAX_LOG_LINES) of stdout and stderr, within MAX_LOG_BYTES.

    The container's environment values and `secrets` are removed from each line (every line of a multi-line value
    too) before the line is cut to MAX_LINE_CHARS, so that no cut leaves the first characters of a secret."""
    wanted = max(1, min(tail, MAX_LOG_LINES))
    fetch = wanted + 1 if tail > MAX_LOG_LINES else wanted  # one more line tells whether the clamp dropped any
    container, attrs = resolve(api, container)
    # follow=False: the SDK follows a streamed log by default, which never ends for a running container.
    # Read whole: the engine bounds the answer to `fetch` log entries of at most 16 KiB each. (The SDK streams TTY
    # logs one byte per iteration, and a finished stream of the SDK is never closed: its socket is left to the
    # garbage collector, a ResourceWarning.)
    log = api.logs(container, stdout=True, stderr=True, stream=False, timestamps=False, tail=fetch, follow=False)
    lines, cut = _collect_lines([log], keep=fetch)
    clamped = len(lines) > wanted
    env_values = [str(entry).partition("=")[2] for entry in json_array(json_object(attrs.get("Config")).get("Env"))]
    fragments = secret_fragments([*env_values, *secrets])
    lines = [replace_secrets(line, fragments) for line in lines[-wanted:]]
    long = any(len(line) > MAX_LINE_CHARS for line in lines)
    lines, dropped = _fit_bytes([line[:MAX_LINE_CHARS] for line in lines], MAX_LOG_BYTES)
    name = engine_name(attrs.get("Name") or container)
    truncated = cut or long or clamped or dropped
    return ContainerLogs(container=name, lines=lines, truncated=truncated).carrying_secrets(env_values)


def _collect_lines(chunks: Iterable[bytes], *, keep: int) -> tuple[list[str], bool]:
    """The last `keep` lines of a byte stream, each kept to _MAX_LINE_BYTES (the caller cuts them to
    MAX_LINE_CHARS once secrets are removed); True if any line was longer than that."""
    lines: deque[str] = deque(maxlen=keep)
    current = bytearray()
    overflow = cut = False

    def finish() -> None:
        nonlocal overflow, cut
        text = current.decode("utf-8", errors="replace").removesuffix("\r")
        cut = cut or overflow
        lines.append(text)
        current.clear()
        overflow = False

    for chunk in chunks:
        start = 0
        while start < len(chunk):
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end < 0 else chunk[start:end]
            room = _MAX_LINE_BYTES - len(current)
            if len(piece) > room:
                piece, overflow = piece[:room], True
            current += piece
            if end < 0:
                break
            finish()
            start = end + 1
    if current or overflow:
        finish()
    return list(lines), cut


def _fit_bytes(lines: list[str], budget: int) -> tuple[list[str], bool]:
    """The newest lines whose UTF-8 size (plus a newline each) fits `budget`; True if older ones were dropped."""
    used = 0
    for index in range(len(lines) - 1, -1, -1):
        used += len(lines[index].encode("utf-8")) + 1
        if used > budget:
            return lines[index + 1 :], True
    return lines, False
