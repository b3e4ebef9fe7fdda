"""Who may act as an operator: the one check every operator action passes, whatever channel it comes from.

An operator action (approve, deny, reset a budget, prune the audit trail, and viewing through a remote channel)
names the operator it is taken as and shows what proves it. `authorize` checks, in this order: the name is not an
agent's (an agent can never act as an operator); the operator is configured; when the operator has a
`token_sha256`, the token shown matches it (one constant-time comparison), unless the channel proved the operator
by other means (a Home Assistant user bound to a one-time code); a remote channel always needs a token; the
operator's role allows the action. A refusal is audited (never with the token) and raised as `Refused`; repeats
(one channel, operator, client address and reason) are coalesced by `App.refusals`, so that a client that keeps
trying (a viewer's approve button, a stale session) cannot flood the trail.

A channel that checked the token once and keeps a session (the web console) shows, instead of the token, the
`token_sha256` it matched then: compared in constant time with the one configured now, so that a token replaced or
removed since ends what the session may do at its next action.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from enum import StrEnum

from argobox.server.app import App
from argobox.server.config.model import Config, OperatorConfig
from argobox.server.config.tokens import token_matches
from argobox.server.store import Event, Refused, StoreError
from argobox.server.text import shorten

logger = logging.getLogger("argobox")


class Permission(StrEnum):
    """What an operator action needs. A viewer may only VIEW."""

    VIEW = "view"
    DECIDE = "decide"
    RESET_BUDGET = "reset_budget"
    PRUNE_AUDIT = "prune_audit"


REMOTE_CHANNELS = frozenset({"console", "mcp-http"})
"""Channels reachable from other machines: an operator without a token can never act through them."""


@dataclass(frozen=True, slots=True)
class OperatorClaim:
    """Someone acting as operator `name`, through `channel`, showing `token` (or the `token_sha256` a session
    matched at sign-in, or proven by `verified_by`)."""

    name: str
    token: str | None = None
    channel: str = "cli"
    verified_by: str | None = None
    """Set by a channel that proved the operator by other means (e.g. "home-assistant user 1a2b..."); the token
    is then not asked for."""
    token_sha256: str | None = None
    """The hash of the token this channel checked at sign-in (a console session): proof while the configuration
    still holds that hash. Never taken from a client: only from a session the channel keeps itself."""
    remote: str | None = None
    """The client address the claim came from (over HTTP), recorded with a refusal."""

    @property
    def actor(self) -> str:
        return f"operator:{shorten(self.name, 64)}"


async def authorize(
    app: App, claim: OperatorClaim, permission: Permission, *, request_id: str | None = None
) -> OperatorConfig:
    """The configured operator `claim` names, if it may do `permission` now. Raises `Refused` (audited)."""
    try:
        return check(app.config, claim, permission)
    except Refused as exc:
        await _audit_refusal(app, claim, permission, str(exc), request_id)
        raise


def check(config: Config, claim: OperatorClaim, permission: Permission) -> OperatorConfig:
    """What `authorize` checks, without recording a refusal: only for a channel that records its refusals itself,
    once, with what only it knows (a phone's press: `phone_action_refused`, with the Home Assistant user). Every
    other caller uses `authorize`. Raises `Refused`."""
    entry = config.operator(claim.name)
    reason, code = _refusal(claim, entry, permission, is_agent=claim.name in config.agents)
    if reason is None and entry is not None:
        return entry
    raise Refused(code, reason or "refused")


def _refusal(
    claim: OperatorClaim, entry: OperatorConfig | None, permission: Permission, *, is_agent: bool
) -> tuple[str | None, str]:
    name = repr(shorten(claim.name, 64))
    if is_agent:
        return f"{name} is an agent; agents can never act as operators", "not_an_operator"
    if entry is None:
        return f"{name} is not a configured operator", "unknown_operator"
    if claim.verified_by is None:
        if entry.token_sha256 is None and claim.channel in REMOTE_CHANNELS:
            return f"operator {name} has no token_sha256, so cannot act through the {claim.channel}", "no_token"
        if entry.token_sha256 is not None:
            if claim.token:
                if not token_matches(claim.token, entry.token_sha256):
                    return f"the token shown does not match operator {name}", "token_mismatch"
            elif claim.token_sha256:
                if not hmac.compare_digest(claim.token_sha256.encode(), entry.token_sha256.encode()):
                    return f"the token of operator {name} changed since this session signed in", "token_changed"
            else:
                return f"operator {name} requires a token", "token_required"
    if entry.role == "viewer" and permission is not Permission.VIEW:
        return f"operator {name} is a viewer and cannot {permission.value.replace('_', ' ')}", "viewer"
    return None, ""


async def _audit_refusal(
    app: App, claim: OperatorClaim, permission: Permission, reason: str, request_id: str | None
) -> None:
    detail = {"reason": reason, "channel": claim.channel, "action": permission.value}
    if claim.remote is not None:
        detail["remote"] = shorten(claim.remote, 64)
    key = (claim.channel, claim.actor, claim.remote, reason)  # a client that keeps trying is counted, not recorded
    try:
        await app.refusals.record(
            key,
            Event(event="operator_refused", actor=claim.actor, detail=detail),
            request_id=shorten(request_id, 64) if request_id is not None else None,
        )
    except StoreError as exc:  # the refusal stands whether or not it could be recorded
        logger.error("could not audit a refused operator action: %s", exc)
