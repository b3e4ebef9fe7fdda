"""One-time codes for the Approve and Deny buttons, under a key only ArgoBox holds.

A button's action key is `ARGOBOX_APPROVE_<request id>_<code>` (or `ARGOBOX_DENY_...`). The code is HMAC-SHA256,
keyed with the secret in the key file beside the store, over the request id, the request's binding digest (agent,
tool and canonical arguments: `request_digest`) and the decision, truncated to 128 bits and written in base32. So a
code works for one request, as it was queued, and for one decision; whoever has not seen the push cannot make one.
Codes are compared in constant time. That a code was used is recorded in the store (`ledger`), not here.

The key file (`<database>.action-key`, 32 random bytes in hex) is created mode 0600, exclusively and atomically
(written under a temporary name, then hard-linked into place, which never replaces a file or follows a symlink), and
is read without following a symlink; one readable by other users is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Decision = Literal["approve", "deny"]
DECISIONS: tuple[Decision, Decision] = ("approve", "deny")
PREFIX = "ARGOBOX_"
"""Every ArgoBox action key starts with this; other keys belong to other notifications and are ignored."""
_CONTEXT = b"argobox phone action v1"
_CODE_BYTES = 16
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
    try:
        return _read_key(path)
    except FileNotFoundError:
        _create_key(path)
    try:
        return _read_key(path)
    except FileNotFoundError:
        raise KeyFileError(f"{path}: was removed while it was being created; try again") from None


def _read_key(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        hint = "it is a symlink; remove it" if os.path.islink(path) else exc.strerror
        raise KeyFileError(f"{path}: cannot open the action key ({hint})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"{path}: the action key is not a regular file; remove it")
        if info.st_mode & 0o077:
            raise KeyFileError(f"{path}: the action key can be read by other users; chmod 600 it (or remove it)")
        text = handle.read(100).decode("ascii", "replace")
    if not _KEY_FILE_TEXT.fullmatch(text):
        raise KeyFileError(f"{path}: is not an ArgoBox action key (64 hex characters); remove it to make a new one")
    return bytes.fromhex(text.strip())


def _create_key(path: Path) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot create the action key: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)  # atomic; never replaces an existing file or follows a symlink at `path`
        except FileExistsError:
            pass  # another process made it first: its key is the one
        except OSError as exc:
            raise KeyFileError(f"{path}: cannot create the action key: {exc.strerror}") from None
    finally:
        temporary.unlink(missing_ok=True)
