"""One-time codes for the Approve and Deny buttons, under a key only ArgoBox holds.

A button's action key is `ARGOBOX_APPROVE_<request id>_<code>` (or `ARGOBOX_DENY_...`). The code is HMAC-SHA256,
keyed with the secret in the key file beside the store, over the request id, the request's binding digest (agent,
tool and canonical arguments: `request_digest`) and the decision, truncated to 128 bits and written in base32. So a
code works for one request, as it was queued, and for one decision; whoever has not seen the push cannot make one.
Codes are compared in constant time. That a code was used is recorded in the store (`phone_codes_used`), not here.

The key file (`<database>.action-key`, 32 random bytes in hex) is created mode 0600, exclusively and whole
(`argobox.server.files.create_once`: never replacing a file or following a link, the first of racing processes
wins), and is read without following a link (`read_private`); one other users may read is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from argobox.server.files import UnsafeFile, create_once, read_private

Decision = Literal["approve", "deny"]
DECISIONS: tuple[Decision, Decision] = ("approve", "deny")
PREFIX = "ARGOBOX_"
"""Every ArgoBox action key starts with this; other keys belong to other notifications and are ignored."""
_CONTEXT = b"argobox phone action v1"
_CODE_BYTES = 16
KEY_BYTES = 32
_KEY = re.compile(r"ARGOBOX_(APPROVE|DENY)_([a-z0-9]{1,64})_([a-z2-7]{26})")
_KEY_FILE_TEXT = re.compile(r"[0-9a-f]{64}\n?")


class KeyFileError(Exception):
    """Raised when the action key file cannot be created or read, or is not safe to use."""


@dataclass(frozen=True, slots=True)
class ActionKey:
    decision: Decision
    request_id: str
    code: str


def key_file(database: Path) -> Path:
    """Where the action key of the store at `database` lives: beside it."""
    return database.with_name(database.name + ".action-key")


def action_code(key: bytes, request_id: str, digest: str, decision: Decision) -> str:
    """The code of `decision` on request `request_id` whose binding digest is `digest`."""
    message = b"\n".join((_CONTEXT, request_id.encode(), digest.encode(), decision.encode()))
    mac = hmac.new(key, message, hashlib.sha256).digest()[:_CODE_BYTES]
    return base64.b32encode(mac).decode().rstrip("=").lower()


def action_key(key: bytes, request_id: str, digest: str, decision: Decision) -> str:
    """The action key of a button: what the companion app sends back in the event's `data.action`."""
    return f"{PREFIX}{decision.upper()}_{request_id}_{action_code(key, request_id, digest, decision)}"


def is_ours(action: str) -> bool:
    """Whether `action` claims to be an ArgoBox button (then it is checked, and refused if malformed)."""
    return action.startswith(PREFIX)


def parse_action_key(action: str) -> ActionKey | None:
    """The parts of an ArgoBox action key, or None when it is malformed."""
    match = _KEY.fullmatch(action)
    if match is None:
        return None
    decision: Decision = "approve" if match[1] == "APPROVE" else "deny"
    return ActionKey(decision=decision, request_id=match[2], code=match[3])


def check_code(key: bytes, digest: str, pressed: ActionKey) -> Literal["ok", "other_decision", "wrong"]:
    """Whether the pressed code is the one for its request and decision (constant time). `other_decision`: it is
    the code of the other button of the same request (an approve code sent as a deny, or the reverse)."""
    results = {
        decision: hmac.compare_digest(pressed.code, action_code(key, pressed.request_id, digest, decision))
        for decision in DECISIONS
    }
    if results[pressed.decision]:
        return "ok"
    return "other_decision" if any(results.values()) else "wrong"


def load_or_create_key(path: Path) -> bytes:
    """The action key in `path`, created first if there is none. Raises KeyFileError."""
    for _ in range(2):  # removed between creating and reading it: look once more
        try:
            return _read_key(path)
        except FileNotFoundError:
            pass
        try:
            create_once(path, (secrets.token_hex(KEY_BYTES) + "\n").encode("ascii"))
        except OSError as exc:
            raise KeyFileError(f"{path}: cannot create the action key: {exc.strerror or exc}") from None
    raise KeyFileError(f"{path}: was removed while it was being created; try again")


def _read_key(path: Path) -> bytes:
    """The key in `path`. Raises FileNotFoundError, KeyFileError."""
    try:
        text = read_private(path, 100).decode("ascii", "replace")
    except FileNotFoundError:
        raise
    except UnsafeFile as exc:
        raise KeyFileError(f"cannot use the action key: {exc}") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the action key: {exc.strerror or exc}") from None
    if not _KEY_FILE_TEXT.fullmatch(text):
        raise KeyFileError(f"{path}: is not an ArgoBox action key (64 hex characters); remove it to make a new one")
    return bytes.fromhex(text.strip())
