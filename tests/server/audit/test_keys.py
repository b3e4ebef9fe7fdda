"""Ed25519 keys: a signed checkpoint verifies, a wrong, forged or missing signature fails; keys are never
overwritten and never written through a planted link."""

from __future__ import annotations

from pathlib import Path

import pytest

from argobox.server.audit import (
    Checkpoint,
    KeyFileError,
    checkpoint_path,
    load_signer,
    load_verify_key,
    read_checkpoint,
    write_checkpoint,
    write_keypair,
)
from argobox.server.mediation.audit_trail import verify_store
from tests.server.audit.trails import broken, make_trail

pytestmark = pytest.mark.anyio


async def test_signed_checkpoint_verifies_and_a_bad_or_missing_signature_fails(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    public, _ = write_keypair(tmp_path / "audit.pem")
    other, _ = write_keypair(tmp_path / "other.pem")
    await make_trail(path, 3, signer=load_signer(tmp_path / "audit.pem"))
    key = load_verify_key(public)
    signed = read_checkpoint(checkpoint_path(path))
    assert signed is not None and signed.signature is not None

    good = verify_store(path, key=key)
    wrong_key = verify_store(path, key=load_verify_key(other))
    write_checkpoint(
        checkpoint_path(path),
        Checkpoint(
            seq=signed.seq, hash=signed.hash, key_id=signed.key_id, signature=signed.signature[:-8] + "AAAAAAA="
        ),
    )
    forged = verify_store(path, key=key)
    write_checkpoint(checkpoint_path(path), Checkpoint(seq=signed.seq, hash=signed.hash))
    missing = verify_store(path, key=key)

    assert good.ok and "signature verified" in good.text(), good.text()
    assert broken(wrong_key) == (3, "signature")
    assert broken(forged) == (3, "signature")
    assert broken(missing) == (3, "signature") and "not signed" in missing.text()


def test_keypair_is_never_overwritten_and_the_private_key_is_private(tmp_path: Path) -> None:
    public, key_id = write_keypair(tmp_path / "k.pem")

    assert (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600
    assert load_signer(tmp_path / "k.pem").key_id == load_verify_key(public).key_id == key_id
    with pytest.raises(KeyFileError, match="already exists"):
        write_keypair(tmp_path / "k.pem")


def test_a_key_is_never_written_through_a_planted_link(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    (tmp_path / "k.pem").symlink_to(outside)

    with pytest.raises(KeyFileError, match="already exists"):
        write_keypair(tmp_path / "k.pem")

    assert not outside.exists()
    assert not (tmp_path / "k.pem.pub").exists()
