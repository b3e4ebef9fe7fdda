"""Who is signing in, and as whom a console request acts: the claims the console hands to ArgoBox's one
authorization (`ops.authorize`), and the sign-in rate limit.

The console decides nothing about permissions itself. Signing in is `authorize` of the operator's name and the
token typed in (Permission.VIEW, channel `console`); every later request of the session is `authorize` again, with
the hash of the token that signed in as its proof, so a reload that removes the operator, replaces its token or
changes its role takes effect on the very next request; a decision is authorized once more where it is taken
(`operator_actions`). At `/mcp` the bearer token is the proof (channel `mcp-http`). `authorize` audits each refusal
as `operator_refused` (never with the token).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from argobox.server.console import ops


@dataclass(frozen=True, slots=True)
class Operator:
    """The operator a request acts as, as the configuration in force has it."""

    name: str
    role: str
    token_sha256: str

    @property
    def can_decide(self) -> bool:
        return self.role != "viewer"


def session_claim(name: str, token_sha256: str, remote: str) -> ops.OperatorClaim:
    """What a console session shows: the operator and the hash of the token it signed in with."""
    return ops.OperatorClaim(name, channel="console", token_sha256=token_sha256, remote=remote)


async def check(
    app: ops.App, claim: ops.OperatorClaim, permission: ops.Permission, *, request_id: str | None = None
) -> Operator:
    """`claim`'s operator, if ArgoBox's authorization lets it do `permission` now (on the agent request
    `request_id`, if any: a refusal is recorded with it). Raises `ops.Refused` (audited)."""
    entry = await ops.authorize(app, claim, permission, request_id=request_id)
    if entry.token_sha256 is None:  # authorize refuses the console's channels for an operator without a token
        raise ops.Refused("no_token", f"operator {entry.name!r} has no token_sha256")
    return Operator(name=entry.name, role=entry.role, token_sha256=entry.token_sha256)


async def sign_in(app: ops.App, name: str, token: str, remote: str) -> Operator:
    """The operator `name`, if `token` is its token. Raises `ops.Refused` (audited by `authorize`)."""
    claim = ops.OperatorClaim(name, token=token, channel="console", remote=remote)
    return await check(app, claim, ops.Permission.VIEW)


def operator_for_token(config: ops.Config, token: str) -> str | None:
    """The operator whose `token_sha256` `token` matches (every hash compared, in constant time), or None. This
    only names who the bearer claims to be; `authorize` then checks the claim."""
    return ops.agent_for_token(token, {op.name: op.token_sha256 for op in config.operators})


def is_agent_token(config: ops.Config, token: str) -> bool:
    """Whether `token` is an agent's (so that a refusal can say so in the audit trail)."""
    return ops.agent_for_token(token, {name: agent.token_sha256 for name, agent in config.agents.items()}) is not None


def may_decide(config: ops.Config, name: str) -> bool:
    """Whether the operator's role lets it decide, for what a page or a tool list shows; not an authorization:
    every decision is authorized where it is taken."""
    entry = config.operator(name)
    return entry is not None and entry.role != "viewer"


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
