"""Live configuration: grant changes take effect without a restart.

A `ConfigWatcher` polls the configuration file (size, mtime, inode, then a SHA-256 of the content) about once a
second and, in the HTTP daemon, also reloads on SIGHUP. A new file is loaded and validated exactly as at startup;
an invalid one is rejected with a log line and an audit record, and the configuration in force stays in force.

What a reload applies: `[agents]` (grants and tokens), `[limits]`, `[approvals]` and `[[operators]]`. Every other
section (`[storage]`, `[docker]`, `[homeassistant]`, `[notifications]`, and any section added later) is bound to
resources opened or tasks started at startup: a change there is logged as "restart required" and the running value
is kept, while the rest of the new file still takes effect (so a revoked grant never waits for a restart). Which
tools exist follows the backends in force, so a newly configured backend's tools appear only after a restart.
"""

from __future__ import annotations

import hashlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskStatus

from argobox.server.app import App
from argobox.server.config.model import ConfigError, load_config
from argobox.server.config.reload import Reload, plan_reload
from argobox.server.store import Event, StoreError

logger = logging.getLogger("argobox")

POLL_INTERVAL_SECONDS = 1.0
SETTLE_SECONDS = 0.1


@dataclass(slots=True)
class _Seen:
    fingerprint: tuple[int, int, int] | None = None
    digest: str | None = None
    notes: list[str] = field(default_factory=list[str])


OnReload = Callable[[Reload], Awaitable[None]]


class ConfigWatcher:
    """Reloads `app`'s configuration when its file changes (and on SIGHUP when `sighup` is set)."""

    def __init__(
        self,
        app: App,
        on_reload: OnReload,
        *,
        process: str,
        sighup: bool = False,
        interval: float = POLL_INTERVAL_SECONDS,
    ) -> None:
        source = app.config.source
        if source is None:
            raise ValueError("the configuration was not read from a file; there is nothing to watch")
        self.path: Path = source
        self._app = app
        self._on_reload = on_reload
        self._process = process
        self._sighup = sighup
        self._interval = interval
        self._seen = _Seen(fingerprint=self._fingerprint(), digest=self._digest())
        self._lock = anyio.Lock()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with anyio.create_task_group() as tg:
            if self._sighup:
                await tg.start(self._on_sighup)
            task_status.started()
            while True:
                await anyio.sleep(self._interval)
                await self.check()

    async def check(self) -> None:
        """Reload if the file's content changed since it was last read."""
        fingerprint = self._fingerprint()
        if fingerprint == self._seen.fingerprint:
            return
        await anyio.sleep(SETTLE_SECONDS)  # let a writer finish before reading
        if self._fingerprint() != fingerprint:
            return  # still changing: look again at the next poll
        digest = self._digest()
        self._seen.fingerprint = fingerprint
        if digest == self._seen.digest:
            return
        self._seen.digest = digest
        await self.reload("the file changed")

    async def reload(self, trigger: str) -> Reload | None:
        """Load the file now; put it in force if it is valid. Returns what changed, or None if it was rejected."""
        async with self._lock:
            try:
                loaded = await anyio.to_thread.run_sync(load_config, self.path)
            except ConfigError as exc:
                logger.error(
                    "configuration reload (%s) rejected; the configuration in force stays in force: %s", trigger, exc
                )
                await self._audit("config_rejected", {"trigger": trigger, "error": str(exc)[:2000]})
                return None
            old = self._app.settings.current
            result = plan_reload(old, loaded)
            self._app.settings.replace(result.config)
        for section in result.restart_required:
            logger.warning(
                "configuration reload: [%s] changed, restart required: ArgoBox keeps using the running value "
                "until it restarts; the rest of the new configuration is in force",
                section,
            )
        logger.info(
            "configuration reloaded (%s): tools changed for %s%s",
            trigger,
            ", ".join(sorted(result.changed)) or "no agent",
            f"; credentials revoked for {', '.join(sorted(result.revoked))}" if result.revoked else "",
        )
        await self._audit(
            "config_reloaded",
            {
                "trigger": trigger,
                "changed_agents": sorted(result.changed),
                "revoked_agents": sorted(result.revoked),
                "restart_required": list(result.restart_required),
            },
        )
        try:
            await self._on_reload(result)
        except Exception:
            logger.exception("could not deliver the tools-changed notifications after a reload")
        return result

    async def _on_sighup(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        with anyio.open_signal_receiver(signal.SIGHUP) as signals:
            task_status.started()
            async for _ in signals:
                self._seen.fingerprint = self._fingerprint()
                self._seen.digest = self._digest()
                await self.reload("SIGHUP")

    async def _audit(self, event: str, detail: dict[str, Any]) -> None:
        try:
            await self._app.store.audit(
                [Event(event=event, actor="argobox", detail={"process": self._process, **detail})]
            )
        except StoreError as exc:
            logger.error("could not audit %s: %s", event, exc)

    def _fingerprint(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _digest(self) -> str | None:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return None
