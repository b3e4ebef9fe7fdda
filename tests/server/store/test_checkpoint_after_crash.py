"""A store opened after a writer died between a commit and its checkpoint brings the checkpoint up to the head.

The checkpoint is written just after each commit, by a thread; a process killed in between leaves the checkpoint
behind the head (tests/e2e/test_crash.py kills real ones there). Behind the head is fine for `verify`, except in the
two cases below, where it failed until some later commit happened to write the checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from argobox.server.audit import checkpoint_path, read_checkpoint
from argobox.server.mediation.audit_trail import verify_store
from argobox.server.store import Store
from tests.server.audit.trails import Clock, broken, make_trail

pytestmark = pytest.mark.anyio


async def test_a_new_store_whose_first_writer_died_before_its_first_checkpoint_verifies_once_opened_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    await make_trail(path, 3)
    checkpoint_path(path).unlink()  # as the first process left it: killed before its checkpoint thread wrote
    before = verify_store(path, key=None)

    async with Store.open(path, clock=Clock()):
        pass  # e.g. `argobox requests`: opens the store, writes nothing
    after = verify_store(path, key=None)

    assert broken(before) == (None, "checkpoint")
    assert after.ok, after.text()
    checkpoint = read_checkpoint(checkpoint_path(path))
    assert checkpoint is not None and checkpoint.seq == 3


async def test_a_prune_whose_checkpoint_was_never_written_verifies_once_the_store_is_opened_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    await make_trail(path, 5)
    old = checkpoint_path(path).read_bytes()
    clock = Clock()
    async with Store.open(path, clock=clock) as store:
        await store.prune(before=clock.now + 3600, operator="alice")  # after every event of the trail
    checkpoint_path(path).write_bytes(old)  # as a process killed after the prune's commit left it
    before = verify_store(path, key=None)

    async with Store.open(path, clock=Clock()):
        pass
    after = verify_store(path, key=None)

    assert broken(before) == (6, "unverified")
    assert after.ok, after.text()
