"""The Ed25519 keys that sign audit checkpoints (`[audit] signing_key_file`) and verify them.

The crypto is pyca/cryptography (OpenSSL underneath): the well-kept, audited standard for Python. It is imported
only where keys are used (it costs about 40 ms at start-up).
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from argobox.server.audit.checkpoint import Checkpoint, signed_message
from argobox.server.files import create_exclusive

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class KeyFileError(Exception):
    """Raised when a key file cannot be read or does not hold an Ed25519 key of the expected kind."""


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
    """Create a new Ed25519 key: `private_path` (mode 0600) and `<private_path>.pub`; never overwrites, and never
    writes through a symbolic link. Returns the public key's path and the key id. Raises KeyFileError."""
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
            fd = create_exclusive(path, mode)
        except FileExistsError:
            raise KeyFileError(f"{str(path)!r} already exists; not overwriting a key") from None
        except OSError as exc:
            raise KeyFileError(f"cannot create {str(path)!r}: {exc.strerror or exc}") from None
        with os.fdopen(fd, "wb") as file:
            file.write(data)
    return public_path, _key_id(key.public_key())
