"""The audit checkpoint: the chain head (seq and hash) kept in a file beside the database, optionally signed.

The hash chain alone shows an edited, removed or moved event, but not events removed at the end: the trail would
just look shorter. So after every committed transaction that appended audit events, the store's checkpointer
(`argobox.server.store.checkpointer`) records the head in `<database>.checkpoint` (JSON, mode 0600, written to a
temporary file and renamed over the old one) and `argobox audit verify` checks the trail still reaches it with the
same hash.

This module is the file and its rules: the checkpoint never goes backwards (only a higher seq replaces it), and it
is never replaced while the trail no longer matches it (the event at its seq must still have its hash, or have been
removed by a recorded prune), so a truncated or rewritten trail keeps the old checkpoint as evidence for `verify`.

Signing (see `keys`): the checkpoint carries an Ed25519 signature over `argobox-audit-checkpoint/1`, its seq and its
hash.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from argobox.server.files import create_replacing

CHECKPOINT_FORMAT: Final = "argobox-audit-checkpoint/1"


def checkpoint_path(db_path: Path) -> Path:
    """Where the checkpoint of the store at `db_path` lives: beside it."""
    return db_path.with_name(db_path.name + ".checkpoint")


class CheckpointError(Exception):
    """Raised when a checkpoint file exists but cannot be read or is not a checkpoint."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int
    hash: str
    key_id: str | None = None
    signature: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "seq": self.seq,
            "hash": self.hash,
            "key_id": self.key_id,
            "signature": self.signature,
        }

    @classmethod
    def from_json(cls, data: Any) -> Checkpoint:
        """Raises CheckpointError when `data` is not a checkpoint object."""
        fields: dict[str, Any] = data if isinstance(data, dict) else {}  # pyright: ignore[reportUnknownVariableType]
        if fields.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"not an ArgoBox checkpoint (expected format {CHECKPOINT_FORMAT!r})")
        seq, hash_ = fields.get("seq"), fields.get("hash")
        key_id, signature = fields.get("key_id"), fields.get("signature")
        if type(seq) is not int or seq < 1:
            raise CheckpointError("its seq is not a positive integer")
        if not isinstance(hash_, str) or len(hash_) != 64 or any(c not in "0123456789abcdef" for c in hash_):
            raise CheckpointError("its hash is not a SHA-256 hex digest")
        if not (key_id is None or isinstance(key_id, str)) or not (signature is None or isinstance(signature, str)):
            raise CheckpointError("its key_id and signature must be strings or null")
        return cls(seq=seq, hash=hash_, key_id=key_id, signature=signature)


def read_checkpoint(path: Path) -> Checkpoint | None:
    """The checkpoint at `path`, or None when there is none. Raises CheckpointError when it is unreadable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CheckpointError(f"cannot read the checkpoint {str(path)!r}: {exc.strerror or exc}") from None
    try:
        return Checkpoint.from_json(json.loads(raw))
    except (ValueError, CheckpointError) as exc:
        raise CheckpointError(f"the checkpoint {str(path)!r} is damaged: {exc}") from None


def signed_message(seq: int, hash_: str) -> bytes:
    """What a checkpoint signature covers."""
    return f"{CHECKPOINT_FORMAT}\nseq={seq}\nhash={hash_}\n".encode()


def write_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Replace the checkpoint at `path` atomically (temporary file, fsync, rename); mode 0600.

    The temporary file is created exclusively and never through a symbolic link (one left there is removed, not
    followed). Raises OSError."""
    data = (json.dumps(checkpoint.to_json(), sort_keys=True, indent=2) + "\n").encode()
    fd = create_replacing(temporary_path(path))
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary_path(path), path)


def temporary_path(path: Path) -> Path:
    """Where this thread writes the next checkpoint before renaming it over `path`."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def replacement_problem(
    current: Checkpoint | None,
    head_seq: int,
    head_hash: str,
    hash_at_checkpoint: str | None,
    pruned_through: int | None,
) -> str | None:
    """Why the checkpoint `current` must not be replaced by the head (head_seq, head_hash), or None."""
    if current is None:
        return None
    if current.seq > head_seq:
        return (
            f"the checkpoint records seq {current.seq} but the trail ends at seq {head_seq}: events were "
            "removed from its end"
        )
    if hash_at_checkpoint == current.hash:
        return None
    if hash_at_checkpoint is None and pruned_through is not None and current.seq <= pruned_through:
        return None
    return (
        f"the event at seq {current.seq} no longer has the hash the checkpoint records: the trail was "
        "changed or events were removed"
    )
