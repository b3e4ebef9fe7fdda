"""The checkpoint file: what it holds, what a damaged one says, when it may be replaced, and how it is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from argobox.server.audit import (
    CHECKPOINT_FORMAT,
    Checkpoint,
    CheckpointError,
    read_checkpoint,
    replacement_problem,
    temporary_path,
    write_checkpoint,
)

HEAD = "b" * 64


def test_a_checkpoint_is_written_private_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "s.db.checkpoint"
    checkpoint = Checkpoint(seq=4, hash=HEAD, key_id="k", signature="c2ln")

    write_checkpoint(path, checkpoint)

    assert read_checkpoint(path) == checkpoint
    assert json.loads(path.read_text())["format"] == CHECKPOINT_FORMAT
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_checkpoint(tmp_path / "none") is None


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param("{not json", "damaged", id="not-json"),
        pytest.param('{"format": "other", "seq": 1, "hash": "' + HEAD + '"}', "not an ArgoBox checkpoint", id="format"),
        pytest.param(f'{{"format": "{CHECKPOINT_FORMAT}", "seq": 0, "hash": "{HEAD}"}}', "positive", id="seq"),
        pytest.param(f'{{"format": "{CHECKPOINT_FORMAT}", "seq": 1, "hash": "xyz"}}', "SHA-256", id="hash"),
        pytest.param(
            f'{{"format": "{CHECKPOINT_FORMAT}", "seq": 1, "hash": "{HEAD}", "signature": 5}}',
            "strings",
            id="signature",
        ),
    ],
)
def test_a_damaged_checkpoint_says_what_is_wrong(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "s.db.checkpoint"
    path.write_text(content)

    with pytest.raises(CheckpointError, match=problem):
        read_checkpoint(path)


@pytest.mark.parametrize(
    ("head", "hash_at_checkpoint", "pruned_through", "problem"),
    [
        pytest.param((12, HEAD), "a" * 64, None, None, id="the-trail-grew"),
        pytest.param((8, HEAD), None, None, "removed from its end", id="truncated"),
        pytest.param((12, HEAD), "c" * 64, None, "no longer has the hash", id="rewritten"),
        pytest.param((12, HEAD), None, 10, None, id="pruned-past-it"),
        pytest.param((12, HEAD), None, 9, "no longer has the hash", id="deleted-without-a-prune"),
    ],
)
def test_a_checkpoint_is_replaced_only_by_a_trail_that_still_reaches_it(
    head: tuple[int, str], hash_at_checkpoint: str | None, pruned_through: int | None, problem: str | None
) -> None:
    current = Checkpoint(seq=10, hash="a" * 64)

    found = replacement_problem(current, head[0], head[1], hash_at_checkpoint, pruned_through)

    assert (found is None) if problem is None else (found is not None and problem in found)
    assert replacement_problem(None, head[0], head[1], None, None) is None


def test_a_link_planted_where_the_temporary_file_goes_is_removed_not_followed(tmp_path: Path) -> None:
    path = tmp_path / "s.db.checkpoint"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    temporary_path(path).symlink_to(outside / "written")

    write_checkpoint(path, Checkpoint(seq=1, hash=HEAD))

    assert list(outside.iterdir()) == []
    assert read_checkpoint(path) == Checkpoint(seq=1, hash=HEAD)
    assert not temporary_path(path).exists()
