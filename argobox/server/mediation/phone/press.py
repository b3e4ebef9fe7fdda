"""One press of an Approve or Deny button: decided exactly as the CLI decides, or refused and audited.

Who pressed is the Home Assistant user in the event's context, which Home Assistant stamps (the companion app's
registered user, or the user whose token fired the event); nothing in the event's data can name the operator. That
user must be the `ha_user_id` of a configured operator, and never ArgoBox's own Home Assistant user. The code must
be the one for this request, as it was queued, and for this decision; it must not have been used; the request must
still be pending and unexpired. Then `operator_actions.approve` or `deny` decide, as for `argobox approve` and
`deny`: the claim names the operator, proven by the Home Assistant user (`verified_by`) instead of a token, and the
operator's role is checked as on every channel (a viewer is refused, before the code is used, and the refusal is
recorded once, as the press's own); the channel and the Home Assistant user are in the audit event.

Anything else is refused and nothing runs: the refusal is audited (`phone_action_refused`, coalesced: the first of
a kind from one user in `REFUSAL_WINDOW_SECONDS` is recorded, later ones are counted into the next record) and,
when the request exists, the phone gets a short push saying why.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from argobox.adapters.ha_events import BusEvent
from argobox.policy.decide import request_digest
from argobox.server.app import App
from argobox.server.config.model import OperatorConfig
from argobox.server.mediation.operator_actions import approve, deny
from argobox.server.mediation.operators import OperatorClaim, Permission, check
from argobox.server.mediation.phone.codes import (
    ActionKey,
    KeyFileError,
    check_code,
    is_ours,
    key_file,
    load_or_create_key,
    parse_action_key,
)
from argobox.server.mediation.phone.push import push_refusal
from argobox.server.store import CodeUse, Event, Refused, RequestRecord, RequestStatus, StoreError

logger = logging.getLogger("argobox")

CHANNEL = "home-assistant"
REFUSED = "phone_action_refused"
USED = "phone_code_used"
REFUSAL_WINDOW_SECONDS = 10.0
MAX_REPLY_CHARS = 500
DENIED_FROM_THE_PHONE = "denied from the phone"
APPROVED_FROM_THE_PHONE = "approved from the phone"


class Refusal(Exception):
    """Raised when a press is refused: `kind` is a stable word for the audit, `message` one sentence for people;
    `record` and `operator` are the request and the operator, when they were found."""

    def __init__(
        self, kind: str, message: str, record: RequestRecord | None = None, operator: OperatorConfig | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.record = record
        self.operator = operator


@dataclass(frozen=True, slots=True, kw_only=True)
class Press:
    user_id: str | None
    context_id: str | None
    action: str
    reply: str | None


def press_of(event: BusEvent) -> Press | None:
    """The press in a `mobile_app_notification_action` event, or None when the button is not ArgoBox's."""
    action = event.data.get("action")
    if not isinstance(action, str) or not is_ours(action):
        return None
    reply = event.data.get("reply_text")
    reply = reply.strip()[:MAX_REPLY_CHARS] if isinstance(reply, str) and reply.strip() else None
    return Press(user_id=event.user_id, context_id=event.context_id, action=action[:200], reply=reply)


def operator_for(app: App, user_id: str) -> OperatorConfig | None:
    """The configured operator whose `ha_user_id` is `user_id`."""
    return next((op for op in app.config.operators if op.ha_user_id == user_id), None)


def phone_claim(operator: str, ha_user_id: str) -> OperatorClaim:
    """Acting as `operator` from the phone: proven by the Home Assistant user that Home Assistant stamped on the
    press (mapped to that operator by `ha_user_id`) together with the one-time code, not by a token."""
    return OperatorClaim(operator, channel=CHANNEL, verified_by=f"home assistant user {ha_user_id}")


@dataclass(slots=True)
class PressHandler:
    """Handles the presses one ArgoBox process hears. `own_user` gives ArgoBox's own Home Assistant user id (learnt
    by the listener when it connects)."""

    app: App
    own_user: Callable[[], str | None]
    clock: Callable[[], float] = time.monotonic
    _opened: dict[tuple[str, str], float] = field(default_factory=dict[tuple[str, str], float])
    _counted: dict[tuple[str, str], int] = field(default_factory=dict[tuple[str, str], int])

    async def handle(self, event: BusEvent) -> None:
        """Decide or refuse the press in `event` (ignoring buttons that are not ArgoBox's)."""
        press = press_of(event)
        if press is None:
            return
        if press.context_id is not None and not await self.app.store.take_phone_event(press.context_id):
            return  # another ArgoBox process has it
        try:
            operator, record, pressed = await self._check(press)
            with anyio.CancelScope(shield=True):  # once the code is taken, the decision is made and recorded
                await self._decide(press, operator, record, pressed)
        except Refusal as refusal:
            await self._refuse(press, refusal)

    async def _check(self, press: Press) -> tuple[OperatorConfig, RequestRecord, ActionKey]:
        pressed = parse_action_key(press.action)
        if pressed is None:
            raise Refusal("malformed", "the button's action key is not one ArgoBox made")
        record = await self.app.store.get(pressed.request_id)  # found first, so that the phone hears of a refusal
        user = press.user_id
        if user is None:
            raise Refusal("no_user", "the event names no Home Assistant user", record)
        if user == self.own_user():
            raise Refusal("argobox_user", "the press came from ArgoBox's own Home Assistant user", record)
        operator = operator_for(self.app, user)
        if operator is None:
            raise Refusal("unmapped_user", f"Home Assistant user {user} is not the ha_user_id of any operator", record)
        claim = phone_claim(operator.name, user)
        try:  # before the code is used: a viewer's press must not use up the button; recorded once, in `_refuse`
            check(self.app.config, claim, Permission.DECIDE)
        except Refused as exc:
            raise Refusal(exc.code, str(exc), record, operator) from None
        if record is None:
            raise Refusal("no_request", f"there is no request {pressed.request_id}", operator=operator)
        self._check_code(pressed, record, operator)
        if await self.app.store.phone_code_used(record.id, pressed.decision):
            raise Refusal("reused", "this button was already used", record, operator)
        self._check_pending(record, operator)
        return operator, record, pressed

    def _check_code(self, pressed: ActionKey, record: RequestRecord, operator: OperatorConfig) -> None:
        try:
            key = load_or_create_key(key_file(self.app.config.storage.path))
        except KeyFileError as exc:
            logger.error("cannot check a button press: %s", exc)
            raise Refusal("no_key", "ArgoBox cannot read its action key (see its log)", record, operator) from None
        verdict = check_code(key, request_digest(record.agent, record.tool, record.arguments), pressed)
        if verdict == "other_decision":
            other = "deny" if pressed.decision == "approve" else "approve"
            raise Refusal("wrong_decision", f"that is the {other} code, sent as {pressed.decision}", record, operator)
        if verdict == "wrong":
            raise Refusal("wrong_code", f"the code does not belong to request {record.id}", record, operator)

    def _check_pending(self, record: RequestRecord, operator: OperatorConfig) -> None:
        expires = record.expires_at
        if record.status is RequestStatus.EXPIRED or (
            record.status is RequestStatus.PENDING and expires is not None and expires <= self.app.clock()
        ):
            raise Refusal("expired", f"request {record.id} has expired", record, operator)
        if record.status is not RequestStatus.PENDING:
            by = f" by {record.decided_by}" if record.decided_by else ""
            raise Refusal("decided", f"request {record.id} is already {record.status.value}{by}", record, operator)

    async def _decide(self, press: Press, operator: OperatorConfig, record: RequestRecord, pressed: ActionKey) -> None:
        user = press.user_id or ""
        claim = phone_claim(operator.name, user)
        via = {"channel": claim.channel, "ha_user_id": user}
        use = CodeUse(
            request_id=record.id,
            decision=pressed.decision,
            context_id=press.context_id,
            ha_user_id=user,
            operator=operator.name,
        )
        used = Event(event=USED, actor=claim.actor, detail={**via, "decision": pressed.decision})
        if not await self.app.store.use_phone_code(use, used, agent=record.agent, tool=record.tool):
            raise Refusal("reused", "this button was already used", record, operator)
        logger.info(
            "request %s: %s pressed on the phone by %s (Home Assistant user %s)",
            record.id,
            pressed.decision,
            operator.name,
            user,
        )
        try:
            if pressed.decision == "approve":
                done = await approve(self.app, record.id, operator=claim, note=APPROVED_FROM_THE_PHONE, via=via)
            else:
                reason = press.reply or DENIED_FROM_THE_PHONE
                done = await deny(self.app, record.id, operator=claim, reason=reason, via=via)
        except Refused as exc:
            raise Refusal(exc.code, str(exc), await self.app.store.get(record.id), operator) from None
        logger.info("request %s is %s (decided from the phone by %s)", record.id, done.status.value, operator.name)

    async def _refuse(self, press: Press, refusal: Refusal) -> None:
        """Audit (coalesced), log and tell the phone why, when the request exists."""
        user = press.user_id or "unknown"
        key = (refusal.kind, user)
        now = self.clock()
        opened = self._opened.get(key)
        if opened is not None and now - opened < REFUSAL_WINDOW_SECONDS:
            self._counted[key] = self._counted.get(key, 0) + 1
            return
        self._opened[key] = now
        earlier = self._counted.pop(key, 0)
        logger.warning(
            "refused a phone button from Home Assistant user %s: %s%s",
            user,
            refusal.message,
            f" (and {earlier} more like it before)" if earlier else "",
        )
        detail: dict[str, Any] = {
            "channel": CHANNEL,
            "ha_user_id": user,
            "refusal": refusal.kind,
            "reason": refusal.message,
        }
        pressed = parse_action_key(press.action)
        if pressed is not None:
            detail["decision"] = pressed.decision
            if refusal.record is None:
                detail["request_id_given"] = pressed.request_id
        if earlier:
            detail["earlier_refusals_counted_not_recorded_singly"] = earlier
        actor = f"operator:{refusal.operator.name}" if refusal.operator is not None else f"homeassistant:{user}"
        await self._audit(actor, detail, refusal.record)
        if refusal.record is not None:
            try:
                await push_refusal(self.app, refusal.record, _refusal_text(refusal.record, refusal))
            except StoreError as exc:
                logger.error("could not queue the push about a refused phone button: %s", exc)

    async def flush(self) -> None:
        """Record the refusals still only counted (call it when the listener stops)."""
        for (kind, user), count in list(self._counted.items()):
            detail = {"channel": CHANNEL, "ha_user_id": user, "refusal": kind, "refusals_counted": count}
            await self._audit(f"homeassistant:{user}", detail, None)
        self._counted.clear()

    async def _audit(self, actor: str, detail: dict[str, Any], record: RequestRecord | None) -> None:
        try:
            await self.app.store.audit(
                [Event(event=REFUSED, actor=actor, detail=detail)],
                request_id=record.id if record else None,
                agent=record.agent if record else None,
                tool=record.tool if record else None,
            )
        except StoreError as exc:
            logger.error("could not record a refused phone button: %s", exc)


def _refusal_text(record: RequestRecord, refusal: Refusal) -> str:
    by = f" by {record.decided_by}" if record.decided_by else ""
    now = "" if record.status is RequestStatus.PENDING else f"; the request is {record.status.value}{by}"
    return f"ArgoBox refused a button for request {record.id}: {refusal.message}{now}."
