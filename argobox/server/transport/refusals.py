"""Audit of refused callers (an unknown bearer token, an agent whose identity is no longer configured) without
letting a caller that keeps trying flood the trail."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from argobox.server.app import App
from argobox.server.store import Event, StoreError

logger = logging.getLogger("argobox")

REFUSAL_AUDIT_WINDOW_SECONDS = 10.0


@dataclass(slots=True)
class RefusalAudit:
    """Per reason, the first refusal in each window is recorded at once (`agent_refused`) and the rest of that
    window are counted into the next record; `flush` records what is still counted (call it when stopping).

    `source` is who was refused: the remote address over HTTP, the agent the server was started for over stdio.
    `agent`, over HTTP, is the agent a valid token named (for a refusal that is not about the token).
    """

    app: App
    transport: Literal["http", "stdio"]
    window: float = REFUSAL_AUDIT_WINDOW_SECONDS
    _opened: dict[str, float] = field(default_factory=dict[str, float])
    _suppressed: dict[str, int] = field(default_factory=dict[str, int])
    _last_source: dict[str, str] = field(default_factory=dict[str, str])
    _agent: dict[str, str] = field(default_factory=dict[str, str])

    async def refused(self, reason: str, source: str, *, agent: str | None = None) -> None:
        if agent is not None:
            reason = f"agent {agent!r}: {reason}"
            self._agent[reason] = agent
        now = time.monotonic()
        opened = self._opened.get(reason)
        if opened is not None and now - opened < self.window:
            self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
            self._last_source[reason] = source
            return
        self._opened[reason] = now
        suppressed = self._suppressed.pop(reason, 0)
        logger.warning(
            "refused a %s request from %s: %s%s",
            self.transport.upper(),
            source,
            reason,
            f" (and {suppressed} more like it before)" if suppressed else "",
        )
        await self._write(reason, source, suppressed)

    async def flush(self) -> None:
        for reason, count in list(self._suppressed.items()):
            if count:
                await self._write(reason, self._last_source.get(reason, "unknown"), count, single=False)
        self._suppressed.clear()

    async def _write(self, reason: str, source: str, earlier: int, *, single: bool = True) -> None:
        if self.transport == "http":
            actor, detail = f"http:{source}", {"reason": reason, "transport": "http", "remote": source}
            agent = self._agent.get(reason)
            if agent is not None:
                actor = f"agent:{agent}"
        else:
            actor, detail = f"agent:{source}", {"reason": reason, "transport": "stdio"}
        if earlier:
            # `single`: this record is one refusal plus a count of earlier ones; otherwise it is only the count.
            extra: dict[str, Any] = {"refusals_counted_not_recorded_singly": earlier, "includes_this_refusal": single}
            detail.update(extra)
        try:
            event = Event(event="agent_refused", actor=actor, detail=detail)
            await self.app.store.audit([event], agent=self._agent.get(reason))
        except StoreError as exc:
            logger.error("could not audit a refused %s request: %s", self.transport.upper(), exc)
