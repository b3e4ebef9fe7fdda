"""`argobox doctor`: a setup that checks itself. Every finding says what is wrong and what to do about it.

Checks, in order: at least one operator (and which of them can act remotely); the store's folder and files and their
permissions; the audit trail against its checkpoint; every backend answers (Home Assistant accepts the token, every
Docker host answers, every SSH host of the runbooks accepts the login with its host key known); the notification
channels; a console listening beyond loopback without https in front; with the phone's buttons on, whether a
listener hears them; then the honest surface report
(`argobox.server.mediation.surface`). Nothing is changed,
except that the store is created if it does not exist yet (as every command does).
"""

from __future__ import annotations

import ipaddress
import os
import sqlite3
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any

import anyio

from argobox.adapters.base import AdapterError
from argobox.server.app import App
from argobox.server.audit import KeyFileError, checkpoint_path
from argobox.server.config.model import Config
from argobox.server.mediation.audit_trail import verify_store
from argobox.server.mediation.notify import channels, send_test
from argobox.server.mediation.phone.codes import key_file
from argobox.server.mediation.phone.listening import LISTENER_EVENT, ListenerStatus, listener_refusal
from argobox.server.mediation.surface import surface, surface_lines
from argobox.server.store import AuditRecord, executor_alive
from argobox.server.store.sealing import key_path as sealing_key_path
from argobox.server.times import iso

BACKEND_TIMEOUT_SECONDS = 10
LISTENER_EVENTS_READ = 100
"""How many of the latest `ha_listener` events are read to find each listening process's state."""
LISTENER_FIX = (
    "run `argobox serve --http` or `argobox console`, or `argobox listen` as a service; it needs the Home Assistant "
    "token"
)


class Severity(StrEnum):
    OK = "ok"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    severity: Severity
    message: str
    fix: str | None = None
    """What to do about it (None when all is well)."""


@dataclass(slots=True)
class Report:
    findings: list[Finding] = field(default_factory=list[Finding])
    surface: dict[str, Any] = field(default_factory=dict[str, Any])

    def add(self, check: str, severity: Severity, message: str, fix: str | None = None) -> None:
        self.findings.append(Finding(check, severity, message, fix))

    def exit_code(self, *, strict: bool) -> int:
        """0 when healthy; 2 on errors; 1 on warnings only with `strict`."""
        severities = {f.severity for f in self.findings}
        if Severity.ERROR in severities:
            return 2
        return 1 if strict and Severity.WARNING in severities else 0

    def as_json(self) -> dict[str, Any]:
        return {
            "findings": [
                {"check": f.check, "severity": f.severity.value, "message": f.message, "fix": f.fix}
                for f in self.findings
            ],
            "surface": self.surface,
        }

    def lines(self) -> list[str]:
        marks = {Severity.OK: "ok  ", Severity.WARNING: "WARN", Severity.ERROR: "FAIL"}
        out = [
            f"{marks[f.severity]}  {f.check}: {f.message}" + (f"\n      -> {f.fix}" if f.fix else "")
            for f in self.findings
        ]
        if not self.surface:
            return out
        return [*out, "", "surface:", *(f"  {line}" for line in surface_lines(self.surface))]


def check_operators(config: Config, report: Report) -> None:
    if not config.operators:
        report.add(
            "operators",
            Severity.ERROR,
            "no [[operators]]: nobody can approve or deny, so every change an agent asks for will expire",
            'add [[operators]] name = "you" (argobox token new --operator you --write gives it a token)',
        )
        return
    tokenless = [op.name for op in config.operators if op.token_sha256 is None]
    deciders = [op.name for op in config.operators if op.role == "approver"]
    report.add(
        "operators", Severity.OK, f"{len(config.operators)} configured: {', '.join(op.name for op in config.operators)}"
    )
    if not deciders:
        report.add(
            "operators", Severity.ERROR, "every operator is a viewer: nobody can decide", 'set role = "approver" on one'
        )
    if tokenless:
        report.add(
            "operators",
            Severity.WARNING,
            f"without a token: {', '.join(tokenless)}; anyone who can run argobox on this host with this config can "
            "act as them, and they cannot use the web console",
            "argobox token new --operator NAME --write, then keep the token in ARGOBOX_OPERATOR_TOKEN",
        )


def check_store_files(config: Config, report: Report) -> None:
    path = config.storage.path
    folder = path.parent
    try:
        mode = folder.stat().st_mode
    except OSError as exc:
        report.add(
            "store", Severity.ERROR, f"cannot read the folder {str(folder)!r}: {exc.strerror}", f"mkdir -p {folder}"
        )
        return
    if mode & stat.S_IWOTH:
        report.add(
            "store",
            Severity.ERROR,
            f"the folder {str(folder)!r} is writable by every user: anyone could replace the store or its checkpoint",
            f"chmod o-w {folder} (0700 is best)",
        )
    for file in (path, checkpoint_path(path), key_file(path), sealing_key_path(path)):
        try:
            file_mode = file.stat().st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:
            report.add("store", Severity.ERROR, f"cannot read {str(file)!r}: {exc.strerror}")
            continue
        if file_mode & (stat.S_IRWXG | stat.S_IRWXO):
            report.add(
                "store",
                Severity.WARNING,
                f"{str(file)!r} is readable or writable by others (mode {stat.S_IMODE(file_mode):o})",
                f"chmod 600 {file}",
            )
    if os.access(folder, os.W_OK):
        report.add("store", Severity.OK, f"{path} (folder writable by this user)")
    else:
        report.add(
            "store", Severity.ERROR, f"this user cannot write {str(folder)!r}", "run as the user that owns the store"
        )


def check_audit(config: Config, report: Report) -> None:
    try:
        key = config.audit.verify_key()
    except KeyFileError as exc:
        report.add(
            "audit", Severity.ERROR, f"the audit verify key cannot be read: {exc}", "fix [audit] verify_key_file"
        )
        return
    try:
        verified = verify_store(config.storage.path, key=key)
    except sqlite3.Error as exc:
        report.add("audit", Severity.ERROR, f"the audit trail cannot be read: {exc}", "check the [storage] path")
        return
    if verified.ok:
        signed = " (signed checkpoint)" if key is not None else ""
        report.add("audit", Severity.OK, f"{verified.events} events verify against the checkpoint{signed}")
    else:
        report.add(
            "audit",
            Severity.ERROR,
            f"the audit trail does not verify: {verified.text().splitlines()[0]}",
            "run argobox audit verify for details; export the trail before anything else",
        )


async def check_backends(app: App, report: Report) -> None:
    checks: list[tuple[str, Callable[[], Awaitable[str]]]] = [("docker", app.backends.docker.describe)]
    checks += [(f"docker.hosts.{name}", engine.describe) for name, engine in sorted(app.backends.docker_hosts.items())]
    if app.backends.homeassistant is not None:
        checks.append(("homeassistant", app.backends.homeassistant.describe))
    if app.backends.commands is not None:
        runner = app.backends.commands
        checks += [(f"hosts.{name}", partial(runner.check, name)) for name in sorted(app.config.hosts)]
    for name, describe in checks:
        try:
            with anyio.fail_after(BACKEND_TIMEOUT_SECONDS):
                report.add(name, Severity.OK, await describe())
        except AdapterError as exc:
            report.add(name, Severity.ERROR, app.redactor.text(str(exc)), _backend_fix(app.config, name))
        except TimeoutError:
            report.add(
                name,
                Severity.ERROR,
                f"did not answer within {BACKEND_TIMEOUT_SECONDS} s",
                _backend_fix(app.config, name),
            )


def _backend_fix(config: Config, name: str) -> str:
    if name == "docker":
        return f"check [docker] base_url ({config.docker.base_url}) and that this user may use that socket"
    if name.startswith("docker.hosts."):
        return f"check [{name}] base_url, and for ssh:// its known_hosts and key (see the message)"
    if name.startswith("hosts."):
        return f"check [{name}] ssh, known_hosts and key_file, and the user's authorized_keys on that host"
    assert config.homeassistant is not None  # noqa: S101 - only checked when configured
    return (
        f"check [homeassistant] url and that {config.homeassistant.token_env} holds a long-lived access token "
        "in this process's environment"
    )


def check_notifications(config: Config, report: Report) -> None:
    n = config.notifications
    count = len(n.webhooks) + len(n.ntfy) + (1 if n.homeassistant is not None else 0)
    if count == 0:
        report.add(
            "notifications",
            Severity.WARNING,
            "none configured: nobody is told when a request waits (it expires unless someone looks)",
            "add [notifications] webhooks, ntfy or homeassistant (a phone push)",
        )
        return
    plain = [c.url for c in (*n.webhooks, *n.ntfy) if c.url.startswith("http://") and not _loopback_url(c.url)]
    report.add("notifications", Severity.OK, f"{count} channel{'s' if count > 1 else ''} configured")
    if plain:
        report.add(
            "notifications",
            Severity.WARNING,
            f"{len(plain)} channel(s) send over plain http to another machine: what each request is crosses the "
            "network in clear text",
            "use https:// URLs",
        )


def _loopback_url(url: str) -> bool:
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def check_console_listen(config: Config, report: Report) -> None:
    """A console listening beyond loopback must be reached through TLS: its `public_url` is https (a proxy in front),
    or operators' passwords and session cookies cross the network in clear text."""
    console = config.console
    if console is None:
        return
    host = console.listen.rpartition(":")[0].removeprefix("[").removesuffix("]")
    if _loopback_host(host):
        report.add("console", Severity.OK, f"listens on loopback ({console.listen})")
    elif console.public_url is not None and console.public_url.startswith("https://"):
        report.add("console", Severity.OK, f"listens on {console.listen}, reached through {console.public_url}")
    else:
        report.add(
            "console",
            Severity.WARNING,
            f"[console] listen = {console.listen!r} is not a loopback address and public_url is not https: "
            "operators' passwords and session cookies would cross the network in clear text",
            'put a TLS-terminating proxy in front and set [console] public_url = "https://...", '
            'or listen on "127.0.0.1:8766"',
        )


def _loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


async def check_phone_listener(app: App, report: Report) -> None:
    """With the phone's buttons on (`actions = true`): whether a listening process is connected to Home Assistant,
    from the latest `ha_listener` event of each process that still runs (state, process, error)."""
    settings = app.config.notifications.homeassistant
    if settings is None or not settings.actions:
        return
    refusal = listener_refusal(app.config)
    if refusal is not None:
        report.add("phone", Severity.ERROR, f"{refusal}: the Approve and Deny buttons are not heard", LISTENER_FIX)
        return
    events = await app.store.audit_trail(event=LISTENER_EVENT, limit=LISTENER_EVENTS_READ)
    latest = {str(e.detail.get("process")): e for e in events}  # oldest first: each process's last one stays
    running = {process: e for process, e in latest.items() if executor_alive(process)}
    connected = [e for e in running.values() if e.detail.get("state") == ListenerStatus.CONNECTED]
    failing = [e for e in running.values() if e.detail.get("state") == ListenerStatus.DISCONNECTED]
    if connected:
        shown = ", ".join(f"{e.detail.get('process')} since {iso(e.at)}" for e in connected)
        report.add("phone", Severity.OK, f"the Home Assistant listener is connected ({shown})")
    elif failing:
        last = failing[-1]
        error = app.redactor.text(str(last.detail.get("error") or "no reason recorded"))
        report.add(
            "phone",
            Severity.ERROR,
            f"the Home Assistant listener is not connected: {error} (process {last.detail.get('process')}, "
            f"since {iso(last.at)}; it keeps retrying)",
            "check [homeassistant] url, and that its token belongs to an administrator of Home Assistant",
        )
    else:
        report.add("phone", Severity.WARNING, _no_listener(events), LISTENER_FIX)


def _no_listener(events: list[AuditRecord]) -> str:
    message = "no ArgoBox process is listening to Home Assistant: the Approve and Deny buttons are not heard"
    if not events:
        return message
    last = events[-1]
    process, state = last.detail.get("process"), last.detail.get("state")
    return f"{message} (the last record: process {process}, {state} at {iso(last.at)})"


async def send_tests(app: App, report: Report) -> None:
    """A test notification through every configured channel, now."""
    for channel in channels(app.config):
        problem = await send_test(app, channel)
        if problem is None:
            report.add("notifications", Severity.OK, f"{channel}: test notification accepted")
        else:
            report.add("notifications", Severity.ERROR, f"{channel}: {problem}", "check the channel's URL or service")


async def diagnose(app: App, *, send: bool = False) -> Report:
    """Every check, and the surface report, for the configuration in force in `app`; with `send`, a test
    notification through every channel."""
    report = Report()
    config = app.config
    report.add("config", Severity.OK, f"{config.source} loads")
    check_operators(config, report)
    check_store_files(config, report)
    check_audit(config, report)
    await check_backends(app, report)
    check_notifications(config, report)
    check_console_listen(config, report)
    if send:
        await send_tests(app, report)
    await check_phone_listener(app, report)
    report.surface = surface(config)
    return report
