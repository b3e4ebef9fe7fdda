"""The console's own audit records: sign-ins, sign-outs and exports, and the refusals made before there is an operator
to authorize (no live session, a request from another site, a missing CSRF token, too many failed sign-ins from one
address, a bearer token that is no operator's). Every other refusal is made, and recorded (coalesced the same way,
by `App.refusals`), by ArgoBox's `authorize`; the sign-in limit bounds how many failed sign-ins of one address reach
it.

Refusals recorded here are coalesced so that a client that keeps trying cannot flood the trail: per (channel, actor,
reason), the first in each window is recorded at once and the rest of that window are counted into the next record
(or into the one `flush` writes when the console stops). They are `operator_refused` events with the channel
(`console`, `mcp-http`) and the action refused, like those of `authorize`. Tokens are never recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from argobox.server.console import ops

logger = logging.getLogger("argobox")

WINDOW_SECONDS = 10.0
_MAX_KEYS = 10_000


@dataclass(slots=True)
class _Pending:
    opened: float
    counted: int = 0
    detail: dict[str, Any] = field(default_factory=dict[str, Any])


class ConsoleAudit:
    """Audit writer for the console; failures to write are logged, never raised (the refusal stands anyway)."""

    def __init__(self, app: ops.App, clock: Callable[[], float], *, window: float = WINDOW_SECONDS) -> None:
        self._app = app
        self._clock = clock
        self._window = window
        self._open: dict[tuple[str, str, str], _Pending] = {}

    async def record(self, event: str, actor: str, detail: dict[str, Any], *, request_id: str | None = None) -> None:
        """Record one event as it is (sign-ins, sign-outs, exports)."""
        try:
            await ops.audit(self._app, event, actor, detail, request_id=request_id)
        except ops.StoreError as exc:
            logger.error("could not audit %s by %s: %s", event, actor, exc)

    async def refused(
        self, actor: str, reason: str, *, channel: str, action: str, detail: dict[str, Any] | None = None
    ) -> None:
        """Record an `operator_refused` event (every operator refusal has that name), coalesced by channel, actor
        and reason."""
        key = (channel, actor, reason)
        now = self._clock()
        full = {"channel": channel, "action": action, **(detail or {})}
        pending = self._open.get(key)
        if pending is not None and now - pending.opened < self._window:
            pending.counted += 1
            pending.detail = full
            return
        earlier = pending.counted if pending is not None else 0
        self._open[key] = _Pending(opened=now)
        if len(self._open) > _MAX_KEYS:
            await self.flush()
        logger.warning("%s: refused %s (%s): %s", channel, actor, action, reason)
        extra = {"refusals_counted_not_recorded_singly": earlier} if earlier else {}
        await self.record("operator_refused", actor, {"reason": reason, **full, **extra})

    async def flush(self) -> None:
        """Record what is still only counted (when stopping, or when too many keys are open)."""
        for (_, actor, reason), pending in list(self._open.items()):
            if pending.counted:
                await self.record(
                    "operator_refused",
                    actor,
                    {
                        "reason": reason,
                        **pending.detail,
                        "refusals_counted_not_recorded_singly": pending.counted,
                        "includes_this_refusal": False,
                    },
                )
        self._open.clear()
