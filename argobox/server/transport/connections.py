"""Slow and greedy clients, stopped at the socket before they can starve the agents.

uvicorn bounds idle keep-alive connections but not the time a client takes to send a request: a connection that
never finishes its headers (slowloris), or its body, is held for ever, and about a thousand of them exhaust the
process's file descriptors. `guarded_protocol` returns uvicorn's h11 protocol with:

- a deadline for the headers, from the connection (or the first byte of a later request on a kept-alive one) to
  the end of the headers: past it the client gets 408 and the connection is closed;
- a deadline for the body, from the end of the headers: past it the connection is closed (the request sees a
  disconnect);
- a cap on open connections per client address (429) and in total (503), answered and closed as they are
  accepted, so that one address cannot take every slot and the total stays under the file-descriptor limit
  (`fit_to_descriptors` lowers it, with a warning, when the limit is too low).

Each kind of refusal is logged once, in one line, then counted (`CoalescedLog`).
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from argobox.server.config.http import HttpConfig
from argobox.server.transport.quiet import CoalescedLog

logger = logging.getLogger("argobox")

DESCRIPTORS_RESERVED = 64
"""File descriptors kept for everything but client connections (the store, backends, the listening socket...)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    reason: str
    kind: str
    text: str


@dataclass(slots=True)
class ConnectionGuard:
    """The open connections, by client address, and the limits they are held to."""

    limits: HttpConfig
    log: CoalescedLog = field(default_factory=CoalescedLog)
    _open: Counter[str] = field(default_factory=Counter[str])
    _total: int = 0

    def admit(self, address: str) -> Refusal | None:
        """Count a new connection from `address`, or say why it is refused (then it is not counted)."""
        per_address, total = self.limits.max_connections_per_address, self.limits.max_connections
        if self._open[address] >= per_address:
            text = (
                f"too many connections from {address} ({per_address} open, the most [http] "
                "max_connections_per_address allows); close some and retry"
            )
            return Refusal(429, "Too Many Requests", "connection cap per address", text)
        if self._total >= total:
            text = f"too many connections ({total} open, the most [http] max_connections allows); retry shortly"
            return Refusal(503, "Service Unavailable", "total connection cap", text)
        self._open[address] += 1
        self._total += 1
        return None

    def release(self, address: str) -> None:
        self._total -= 1
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]


def fit_to_descriptors(limits: HttpConfig) -> HttpConfig:
    """`limits`, with `max_connections` lowered (and a warning) when the file-descriptor limit cannot hold it; the
    soft limit is raised towards the hard one first."""
    needed = limits.max_connections + DESCRIPTORS_RESERVED
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        if raised > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
                logger.info("raised the file-descriptor limit from %d to %d for [http] max_connections", soft, raised)
                soft = raised
            except (ValueError, OSError) as exc:
                logger.warning("could not raise the file-descriptor limit from %d to %d: %s", soft, raised, exc)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return limits
    fitted = max(1, soft - DESCRIPTORS_RESERVED)
    logger.warning(
        "the file-descriptor limit (%d) leaves room for %d connections: [http] max_connections = %d is lowered to %d "
        "(raise the limit, e.g. LimitNOFILE= in a systemd unit or ulimit -n, to keep it)",
        soft,
        fitted,
        limits.max_connections,
        fitted,
    )
    return limits.model_copy(update={"max_connections": fitted})


def _raw_response(status: int, reason: str, text: str) -> bytes:
    body = f"{text}\n".encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


class _GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol under a `ConnectionGuard`: caps at accept, deadlines for headers and body."""

    guard: ClassVar[ConnectionGuard]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._address: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._phase: str | None = None  # "headers", "body", "idle" (kept alive between requests) or None

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)
        address = self.client[0] if self.client else "unknown"
        refusal = self.guard.admit(address)
        if refusal is not None:
            self.guard.log.note(refusal.kind, f"refused a connection from {address}: {refusal.text}")
            transport.write(_raw_response(refusal.status, refusal.reason, refusal.text))
            transport.close()
            return
        self._address = address
        self._arm("headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._address is not None:
            self.guard.release(self._address)
            self._address = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._address is None:
            return  # refused: closing
        if self._phase == "idle":
            self._arm("headers")  # the first byte of the next request on a kept-alive connection
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def _follow(self) -> None:
        """Move the deadline along with the request the client is sending."""
        theirs = self.conn.their_state
        if theirs is h11.IDLE:
            if self._phase != "headers":
                self._disarm()
                self._phase = "idle"  # uvicorn's keep-alive timeout governs an idle connection
        elif theirs is h11.SEND_BODY:
            if self._phase != "body":
                self._arm("body")
        else:
            self._disarm()
            self._phase = None

    def _arm(self, phase: str) -> None:
        self._disarm()
        self._phase = phase
        limits = self.guard.limits
        seconds = limits.header_timeout_seconds if phase == "headers" else limits.body_timeout_seconds
        self._timer = self.loop.call_later(seconds, self._expired, phase, seconds)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self, phase: str, seconds: float) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        address = self._address or "unknown"
        what = "headers" if phase == "headers" else "body"
        text = f"the request {what} did not arrive within {seconds:g} s"
        self.guard.log.note(f"{what} timeout", f"dropped a connection from {address}: {text}")
        if phase == "headers" and self.conn.our_state is h11.IDLE:
            self.transport.write(_raw_response(408, "Request Timeout", text))
        self.transport.close()


def guarded_protocol(limits: HttpConfig) -> tuple[type[asyncio.Protocol], ConnectionGuard]:
    """uvicorn's h11 protocol class held to `limits` (fitted to the file-descriptor limit), and its guard."""
    guard = ConnectionGuard(fit_to_descriptors(limits))
    protocol = type("GuardedH11Protocol", (_GuardedH11Protocol,), {"guard": guard})
    return protocol, guard
