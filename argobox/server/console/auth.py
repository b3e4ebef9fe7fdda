"""Who may do what in the console: the one authorization check, and the sign-in rate limit.

Every console action, pages, decisions and the operator MCP tools at `/mcp` alike, goes through `authorize`: the
operator must be configured (and not be an agent's name), must have a `token_sha256`, must show that token (at
sign-in or as a bearer token) or the hash it matched at sign-in (a session), compared in constant time, and must
have the role the action needs. It reads the configuration in force, so a reload that removes an operator, changes
its token or its role takes effect on the very next action.
"""

from __future__ import annotations

import hmac
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from argobox.server.console import ops


class Role(StrEnum):
    APPROVER = "approver"
    VIEWER = "viewer"


class Need(StrEnum):
    """What an action needs: to read, or to decide (approve, deny, reset a budget)."""

    VIEW = "view"
    DECIDE = "decide"


@dataclass(frozen=True, slots=True)
class Presented:
    """A token shown now (the sign-in form, a bearer token); never stored."""

    token: str


@dataclass(frozen=True, slots=True)
class Proven:
    """The hash of the token a session signed in with: still valid while the configuration holds the same hash."""

    token_sha256: str


Credential = Presented | Proven


@dataclass(frozen=True, slots=True)
class Operator:
    name: str
    role: Role
    token_sha256: str

    @property
    def can_decide(self) -> bool:
        return self.role is Role.APPROVER


class NotAuthorized(Exception):
    """Raised by `authorize`; `code` says which check failed, the message says it in words (for the audit trail:
    what the browser is told about a failed sign-in is deliberately vaguer)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _shown(name: str) -> str:
    return repr(name[:64])


def authorize(config: ops.Config, name: str, credential: Credential, need: Need) -> Operator:
    """The configured operator `name`, if `credential` proves it and its role allows `need`. Raises `NotAuthorized`."""
    if name in config.agents:
        raise NotAuthorized("agent", f"{_shown(name)} is an agent; an agent can never act as an operator")
    entry = config.operator(name)
    if entry is None:
        raise NotAuthorized("unknown_operator", f"{_shown(name)} is not a configured operator")
    if entry.token_sha256 is None:
        raise NotAuthorized(
            "no_token",
            f"operator {_shown(name)} has no token_sha256; make one with `argobox token new --operator {name} --write`",
        )
    if isinstance(credential, Presented):
        if not ops.token_matches(credential.token, entry.token_sha256):
            raise NotAuthorized("wrong_token", f"the token does not match operator {_shown(name)}")
    elif not hmac.compare_digest(credential.token_sha256, entry.token_sha256):
        raise NotAuthorized("token_changed", f"the token of operator {_shown(name)} changed; sign in again")
    operator = Operator(name=entry.name, role=Role(entry.role), token_sha256=entry.token_sha256)
    if need is Need.DECIDE and not operator.can_decide:
        raise NotAuthorized("viewer", f"operator {_shown(name)} is a viewer: a viewer can read but never decide")
    return operator


def operator_for_token(config: ops.Config, token: str) -> str | None:
    """The operator whose `token_sha256` `token` matches (every hash compared, in constant time), or None."""
    return ops.agent_for_token(token, {op.name: op.token_sha256 for op in config.operators})


def is_agent_token(config: ops.Config, token: str) -> bool:
    """Whether `token` is an agent's (so that a refusal can say so in the audit trail)."""
    return ops.agent_for_token(token, {name: agent.token_sha256 for name, agent in config.agents.items()}) is not None


SIGN_IN_FAILURES = 5
SIGN_IN_WINDOW_SECONDS = 300.0
_TRACKED_ADDRESSES = 10_000


class SignInLimiter:
    """Per client address: after `failures` failed sign-ins within `window` seconds, every attempt from that address
    (a right token included) is refused until the oldest of them is `window` seconds old.

    Memory is bounded: past `_TRACKED_ADDRESSES` addresses, the least recently seen is forgotten.
    """

    def __init__(
        self, clock: Callable[[], float], *, failures: int = SIGN_IN_FAILURES, window: float = SIGN_IN_WINDOW_SECONDS
    ) -> None:
        self._clock = clock
        self._failures = failures
        self._window = window
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str) -> deque[float]:
        now = self._clock()
        times = self._seen.pop(address, None) or deque[float]()
        while times and times[0] <= now - self._window:
            times.popleft()
        self._seen[address] = times
        if len(self._seen) > _TRACKED_ADDRESSES:
            self._seen.popitem(last=False)
        return times

    def retry_after(self, address: str) -> float | None:
        """None when `address` may try to sign in now, else the seconds until it may."""
        times = self._recent(address)
        if len(times) < self._failures:
            return None
        return max(1.0, times[0] + self._window - self._clock())

    def failed(self, address: str) -> None:
        self._recent(address).append(self._clock())
