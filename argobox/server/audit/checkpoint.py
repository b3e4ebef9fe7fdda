"""The audit checkpoint: the chain head (seq and hash) kept in a file beside the database, optionally signed.

The hash chain alone shows an edited, removed or moved event, but not events removed at the end: the trail would
just look shorter. So after every committed transaction that appended audit events, the writer records the head
in `<database>.checkpoint` (JSON, mode 0600, written to a temporary file and renamed over the old one) and
`argobox audit verify` checks the trail still reaches it with the same hash.

Rules every writer follows, under an exclusive lock on `<database>.checkpoint.lock` (several processes write):
the checkpoint never goes backwards (only a higher seq replaces it), and it is never replaced while the trail no
longer matches it (the event at its seq must still have its hash, or have been removed by a recorded prune): a
truncated or rewritten trail is logged and the old checkpoint kept as evidence for `verify`. Writes happen in a
background thread, 20 ms after the commit that asked (at most twice a second while commits keep coming), and
coalesce (one write covers every commit before it), so the decision path does not wait for the file system;
closing the store waits for the last write.

Signing: with an Ed25519 private key (`[audit] signing_key_file`) the checkpoint carries a signature over
`argobox-audit-checkpoint/1`, its seq and its hash, and `verify` checks it with the public key. The crypto is
pyca/cryptography (OpenSSL underneath): the well-kept, audited standard for Python.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:  # the crypto library is imported only where keys are used (it costs ~40 ms at start-up)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

logger = logging.getLogger("argobox.audit")

CHECKPOINT_FORMAT: Final = "argobox-audit-checkpoint/1"
FLUSH_TIMEOUT_S: Final = 10.0
DELAY_S: Final = 0.02
"""A checkpoint is written this long after the commit that asked for it, covering every commit in between: the
writes of one call (its decision, then its outcome) get one checkpoint, written after the call has answered.
flush() (and so closing the store) writes at once."""
MIN_INTERVAL_S: Final = 0.5
"""Under a steady stream of commits, a checkpoint is written at most this often. Each write is a file read, a query,
a signature and an fsync on a thread of the serving process; at 50 a second they were the slowest 1% of agent calls
(the call that coincided with one waited for it), at 2 a second they are lost in the noise. The checkpoint then
trails the head by at most this long while the store is busy; `verify` reports the events after it as not yet
checkpointed, not as missing."""


WAL_CHECKPOINT_BYTES: Final = 4 * 1024 * 1024
"""Once the store's WAL holds this much, the checkpointer thread copies it into the database (a PASSIVE checkpoint:
it never blocks a writer). SQLite would otherwise do it inside whichever commit crosses its threshold, with an
fsync, adding tens of milliseconds to that one call."""


def write_delay(last_write: float, now: float) -> float:
    """How long the checkpoint thread waits, from `now`, before the write a commit asked for: DELAY_S after a quiet
    spell, and no sooner than MIN_INTERVAL_S after the last write (`last_write`) while commits keep coming."""
    return max(DELAY_S, last_write + MIN_INTERVAL_S - now)


def checkpoint_path(db_path: Path) -> Path:
    """Where the checkpoint of the store at `db_path` lives: beside it."""
    return db_path.with_name(db_path.name + ".checkpoint")


class CheckpointError(Exception):
    """Raised when a checkpoint file exists but cannot be read or is not a checkpoint."""


class KeyFileError(Exception):
    """Raised when a key file cannot be read or does not hold an Ed25519 key of the expected kind."""


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


def _key_id(public: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class VerifyKey:
    """An Ed25519 public key that checks checkpoint signatures."""

    def __init__(self, public: Ed25519PublicKey) -> None:
        self._public = public
        self.key_id = _key_id(public)

    def problem(self, checkpoint: Checkpoint) -> str | None:
        """What is wrong with the checkpoint's signature, or None when it verifies."""
        from cryptography.exceptions import InvalidSignature

        if checkpoint.signature is None:
            return "the checkpoint is not signed, but a verification key is configured"
        try:
            signature = base64.b64decode(checkpoint.signature, validate=True)
            self._public.verify(signature, signed_message(checkpoint.seq, checkpoint.hash))
        except (InvalidSignature, ValueError):
            named = f" (it names key {checkpoint.key_id})" if checkpoint.key_id != self.key_id else ""
            return f"the checkpoint's signature does not verify with the configured key {self.key_id}{named}"
        return None


class Signer:
    """An Ed25519 private key that signs checkpoints."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.verify_key = VerifyKey(private.public_key())
        self.key_id = self.verify_key.key_id

    def sign(self, seq: int, hash_: str) -> Checkpoint:
        signature = base64.b64encode(self._private.sign(signed_message(seq, hash_))).decode()
        return Checkpoint(seq=seq, hash=hash_, key_id=self.key_id, signature=signature)


def _read_key_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None


def load_signer(path: Path) -> Signer:
    """The Ed25519 private key in PEM (PKCS#8, unencrypted) at `path`. Raises KeyFileError."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(_read_key_file(path), password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{str(path)!r} is not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{str(path)!r} is not an Ed25519 private key")
    return Signer(key)


def load_verify_key(path: Path) -> VerifyKey:
    """The Ed25519 public key in PEM (SubjectPublicKeyInfo) at `path`. Raises KeyFileError."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(_read_key_file(path))
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{str(path)!r} is not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{str(path)!r} is not an Ed25519 public key")
    return VerifyKey(key)


def write_keypair(private_path: Path) -> tuple[Path, str]:
    """Create a new Ed25519 key: `private_path` (mode 0600) and `<private_path>.pub`; never overwrites.

    Returns the public key's path and the key id. Raises KeyFileError.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_path = private_path.with_name(private_path.name + ".pub")
    for path, data, mode in ((private_path, private_pem, 0o600), (public_path, public_pem, 0o644)):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            raise KeyFileError(f"{str(path)!r} already exists; not overwriting a key") from None
        except OSError as exc:
            raise KeyFileError(f"cannot create {str(path)!r}: {exc.strerror or exc}") from None
        with os.fdopen(fd, "wb") as file:
            file.write(data)
    return public_path, _key_id(key.public_key())


def write_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Replace the checkpoint at `path` atomically (temporary file, fsync, rename); mode 0600."""
    data = (json.dumps(checkpoint.to_json(), sort_keys=True, indent=2) + "\n").encode()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)


_HEAD_SQL = (
    "SELECT seq, hash, (SELECT hash FROM audit WHERE seq = ?), (SELECT MAX(through_seq) FROM audit_prunes)"
    " FROM audit ORDER BY seq DESC LIMIT 1"
)


class Checkpointer:
    """Keeps `<database>.checkpoint` at the head of the chain; `notify()` after each commit that appended events.

    Writes happen in a background thread, one at a time, each covering everything committed before it.
    """

    def __init__(self, db_path: Path, *, signer: Signer | None = None, busy_timeout_ms: int = 5000) -> None:
        self._db_path = db_path
        self.path = checkpoint_path(db_path)
        self._lock_path = db_path.with_name(db_path.name + ".checkpoint.lock")
        self._signer = signer
        self._timeout_s = busy_timeout_ms / 1000
        self._cond = threading.Condition()
        self._requested = self._done = 0
        self._closing = self._urgent = self._idle = False
        self._thread: threading.Thread | None = None
        self._io = threading.Lock()
        self._db: sqlite3.Connection | None = None
        resolved = db_path.resolve()  # SQLite keeps the WAL beside the real file, not beside a symlink
        self._wal_path = resolved.with_name(resolved.name + "-wal")
        self._closed = False
        self._wal_db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._reported: str | None = None
        self._wal_reported: str | None = None

    def notify(self) -> None:
        """Ask for the checkpoint to be brought up to the head (returns at once)."""
        with self._cond:
            self._requested += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="argobox-checkpoint", daemon=True)
                self._thread.start()
            if self._idle:  # a thread pausing between writes is not woken for every commit
                self._cond.notify_all()

    def flush(self, timeout: float = FLUSH_TIMEOUT_S) -> bool:
        """Wait until every commit notified so far is covered by a written checkpoint (or was refused)."""
        with self._cond:
            target = self._requested
            self._urgent = True
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._done >= target, timeout)

    def close(self) -> None:
        """Flush, stop the thread and release the files."""
        if not self.flush():
            logger.error(
                "the audit checkpoint was not written within %.0f s; `argobox audit verify` will show "
                "the last events as not yet checkpointed",
                FLUSH_TIMEOUT_S,
            )
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=FLUSH_TIMEOUT_S)
        with self._io:
            for db in (self._db, self._wal_db):
                if db is not None:
                    db.close()
            self._db = self._wal_db = None
            self._closed = True
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def _run(self) -> None:
        last_write = -MIN_INTERVAL_S
        while True:
            with self._cond:
                self._idle = True
                self._cond.wait_for(lambda: self._done < self._requested or self._closing)
                self._idle = False
                if self._done >= self._requested:
                    return
                # coalesce the commits of the next moment (and, when busy, of the interval) into one write
                delay = write_delay(last_write, time.monotonic())
                self._cond.wait_for(lambda: self._urgent or self._closing, timeout=delay)
                self._urgent = False
                target = self._requested
            try:
                self.advance()
            except Exception:
                logger.exception("could not write the audit checkpoint %s", self.path)
            try:
                self.checkpoint_wal()
            except Exception:  # noqa: BLE001 - SQLite's own checkpoint remains as the safety net
                self._report_wal(f"could not checkpoint the WAL of {str(self._db_path)!r}", exc_info=True)
            last_write = time.monotonic()
            with self._cond:
                self._done = max(self._done, target)
                self._cond.notify_all()

    def advance(self) -> Checkpoint | None:
        """Bring the checkpoint up to the current head, if it may be. Returns what was written, if anything."""
        with self._io:
            if self._closed:
                return None
            return self._advance()

    def _advance(self) -> Checkpoint | None:
        with self._file_lock():
            try:
                current = read_checkpoint(self.path)
            except CheckpointError as exc:
                self._report(f"{exc}; it is kept as evidence and not replaced")
                return None
            try:
                head = self._head(current.seq if current is not None else None)
            except sqlite3.Error as exc:
                self._report(f"cannot read the audit trail to checkpoint it: {exc}")
                return None
            if head is None:
                if current is not None:
                    self._report(f"the checkpoint records seq {current.seq} but the audit trail is empty")
                return None
            problem = _replacement_problem(current, *head)
            if problem is not None:
                self._report(problem)
                return None
            if current is not None and (current.seq, current.hash) == head[:2]:
                return None
            seq, hash_ = head[0], head[1]
            checkpoint = self._signer.sign(seq, hash_) if self._signer else Checkpoint(seq=seq, hash=hash_)
            try:
                write_checkpoint(self.path, checkpoint)
            except OSError as exc:
                self._report(f"cannot write the audit checkpoint {str(self.path)!r}: {exc.strerror or exc}")
                return None
            self._reported = None
            return checkpoint

    def checkpoint_wal(self, *, threshold: int = WAL_CHECKPOINT_BYTES) -> bool:
        """Copy the WAL into the database when it holds at least `threshold` bytes; whether all of it was copied.

        The store truncates its WAL when it restarts after a checkpoint, so the file's size is what is waiting.
        """
        try:
            if os.stat(self._wal_path).st_size < threshold:
                return False
        except FileNotFoundError:
            return False
        with self._io:
            if self._closed:
                return False
            try:
                if self._wal_db is None:
                    uri = self._db_path.resolve().as_uri() + "?mode=rw"  # never creates a database
                    self._wal_db = sqlite3.connect(
                        uri, uri=True, timeout=self._timeout_s, isolation_level=None, check_same_thread=False
                    )
                busy, _, _ = self._wal_db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error as exc:
                if self._wal_db is not None:
                    self._wal_db.close()
                    self._wal_db = None
                self._report_wal(
                    f"cannot checkpoint the WAL of {str(self._db_path)!r} (SQLite will, in a commit, "
                    f"past its own limit): {exc}"
                )
                return False
        self._wal_reported = None
        return not busy

    def _head(self, checkpoint_seq: int | None) -> tuple[int, str, str | None, int | None] | None:
        if self._db is None:
            uri = self._db_path.resolve().as_uri() + "?mode=ro"
            self._db = sqlite3.connect(
                uri, uri=True, timeout=self._timeout_s, isolation_level=None, check_same_thread=False
            )
        row = self._db.execute(_HEAD_SQL, (checkpoint_seq,)).fetchone()
        return None if row is None else (int(row[0]), str(row[1]), row[2], row[3])

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        if self._lock_fd is None:
            self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _report_wal(self, problem: str, *, exc_info: bool = False) -> None:
        """Log a WAL problem once (until it changes or a checkpoint of the WAL succeeds)."""
        if problem != self._wal_reported:
            logger.error("%s", problem, exc_info=exc_info)
            self._wal_reported = problem

    def _report(self, problem: str) -> None:
        """Log a problem once (until it changes or a checkpoint is written again)."""
        if problem != self._reported:
            logger.error("audit checkpoint not updated: %s (run `argobox audit verify`)", problem)
            self._reported = problem


def _replacement_problem(
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
