"""Secret-looking argument values, sealed while they wait in the store.

A request keeps the arguments it was approved for, to run exactly them later, possibly from another process: a lock
code the agent sent with `lock.unlock` must still be there when an operator approves. Stored as sent, it would sit in
the database, its WAL and every copy of them. So before a request is written, each value under a secret-looking key
(the keys the redactor masks: `code`, `password`, `token`, ...) and each text the redactor would change when shown
(a configured secret, `apikey=...`) is sealed with AES-GCM under a key kept beside the database
(`<store>.sealing-key`, mode 0600, created once, exclusively, never through a link), bound to its request and its
place in the arguments; it is opened again when the request is read. The database alone, or a copy of it, then holds
no such value; the key file stays with the store's folder (back it up with it).

A value that cannot be opened (the key file was lost or replaced) reads as `UNREADABLE`: the request no longer matches
its binding, so it is never executed, and it is shown masked like any secret.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from argobox.server.files import create_exclusive
from argobox.server.redact import Redactor, secret_key
from argobox.server.store.records import RequestRecord

SEALED = "argobox-sealed:v1:"
UNREADABLE = "<sealed: its key is missing>"
KEY_BYTES = 32
NONCE_BYTES = 12
KEY_SUFFIX = ".sealing-key"


class SealingKeyError(Exception):
    """Raised when the sealing key beside the store cannot be created or read."""


class Sealer:
    """Seals and opens the values a store's request arguments must not hold in clear: those under secret-looking
    keys, and text that `redactor` would change when it is shown (a configured secret, `apikey=...`, credentials in
    a URL)."""

    def __init__(self, key: bytes, redactor: Redactor | None = None) -> None:
        if len(key) != KEY_BYTES:
            raise SealingKeyError(f"a sealing key has {KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)
        self._redactor = redactor or Redactor()

    @classmethod
    def for_store(cls, database: Path, redactor: Redactor | None = None) -> Sealer:
        """The sealer of the store at `database`, with its key file created if there is none. Raises
        SealingKeyError."""
        return cls(_key(key_path(database)), redactor)

    def seal(self, arguments: dict[str, Any], request_id: str) -> dict[str, Any]:
        """`arguments` with every value that must not be stored in clear sealed, nested ones included."""
        return self._walk(arguments, f"{request_id}/", sealing=True)

    def open(self, arguments: dict[str, Any], request_id: str) -> dict[str, Any]:
        """`arguments` as they were before `seal`; a value that cannot be opened reads as UNREADABLE."""
        return self._walk(arguments, f"{request_id}/", sealing=False)

    def _walk(self, value: Any, where: str, *, sealing: bool, secret: bool = False) -> Any:
        if sealing and (
            (secret and value not in (None, ""))
            or (isinstance(value, str) and (value.startswith(SEALED) or self._redactor.text(value) != value))
        ):
            return self._seal(value, where)
        if not sealing and isinstance(value, str) and value.startswith(SEALED):
            return self._open(value, where)
        if isinstance(value, dict):
            items: dict[Any, Any] = value  # pyright: ignore[reportUnknownVariableType]
            return {
                key: self._walk(item, f"{where}.{key}", sealing=sealing, secret=secret_key(str(key)))
                for key, item in items.items()
            }
        if isinstance(value, list):
            listed: list[Any] = value  # pyright: ignore[reportUnknownVariableType]
            return [self._walk(item, f"{where}[{i}]", sealing=sealing) for i, item in enumerate(listed)]
        return value

    def _seal(self, value: Any, bound_to: str) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, json.dumps(value).encode(), bound_to.encode())
        return SEALED + base64.urlsafe_b64encode(nonce + sealed).decode()

    def _open(self, value: str, bound_to: str) -> Any:
        try:
            raw = base64.urlsafe_b64decode(value.removeprefix(SEALED))
            opened = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], bound_to.encode())
            return json.loads(opened)
        except (InvalidTag, ValueError):
            return UNREADABLE


def key_path(database: Path) -> Path:
    """Where the sealing key of the store at `database` is kept."""
    return database.with_name(database.name + KEY_SUFFIX)


def opened(record: RequestRecord, sealer: Sealer) -> RequestRecord:
    """`record` as read from the store, with its sealed values opened."""
    return replace(record, arguments=sealer.open(record.arguments, record.id))


def _key(path: Path) -> bytes:
    """The key in `path`, made first if there is none: written under a temporary name, then linked into place, so
    that a process never reads half a key and two processes never make two keys."""
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    temporary = path.with_name(f"{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        fd = create_exclusive(temporary)
        try:
            os.write(fd, secrets.token_bytes(KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            os.link(temporary, path)
    except OSError as exc:
        raise SealingKeyError(f"cannot create the sealing key {str(path)!r}: {exc.strerror or exc}") from None
    finally:
        temporary.unlink(missing_ok=True)
    return _read(path)


def _read(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SealingKeyError(f"cannot read the sealing key {str(path)!r}: {exc.strerror or exc}") from None
    try:
        key = os.read(fd, KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(key) != KEY_BYTES:
        raise SealingKeyError(
            f"the sealing key {str(path)!r} has {len(key)} bytes, not {KEY_BYTES}; restore it from the store's backup"
        )
    return key
