"""Private files: created exclusively, never through a planted symbolic link; folders others can write are caught."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from argobox.server.files import (
    UnsafeFile,
    UnsafeFolder,
    check_folder,
    create_exclusive,
    create_once,
    create_replacing,
    ensure_private_file,
    open_private,
    read_private,
)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file elsewhere that a planted link points at; nothing may ever be written to it."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    return elsewhere / "target"


def test_a_file_is_never_created_through_a_link(tmp_path: Path, outside: Path) -> None:
    planted = tmp_path / "new"
    planted.symlink_to(outside)

    with pytest.raises(FileExistsError):
        create_exclusive(planted)

    assert not outside.exists()


def test_a_link_in_the_way_of_a_replacement_is_removed_not_followed(tmp_path: Path, outside: Path) -> None:
    outside.write_text("precious")
    planted = tmp_path / ".tmp"
    planted.symlink_to(outside)

    fd = create_replacing(planted)
    with os.fdopen(fd, "w") as file:
        file.write("mine")

    assert outside.read_text() == "precious"
    assert not planted.is_symlink() and planted.read_text() == "mine"
    assert planted.stat().st_mode & 0o777 == 0o600


def test_a_shared_file_is_opened_but_never_through_a_link(tmp_path: Path, outside: Path) -> None:
    lock = tmp_path / "lock"
    os.close(open_private(lock))  # created
    os.close(open_private(lock))  # opened again
    planted = tmp_path / "planted.lock"
    planted.symlink_to(outside)

    with pytest.raises(OSError, match="Too many levels of symbolic links"):
        open_private(planted)

    assert lock.stat().st_mode & 0o777 == 0o600
    assert not outside.exists()


def test_a_link_to_nothing_is_refused_where_the_database_goes(tmp_path: Path, outside: Path) -> None:
    planted = tmp_path / "s.db"
    planted.symlink_to(outside)

    with pytest.raises(FileExistsError, match="symbolic link to nothing"):
        ensure_private_file(planted)

    assert not outside.exists()


def test_an_existing_file_or_a_link_to_one_is_left_as_it_is(tmp_path: Path) -> None:
    real = tmp_path / "real.db"
    real.write_bytes(b"x")
    link = tmp_path / "link.db"
    link.symlink_to(real)

    ensure_private_file(real)
    ensure_private_file(link)

    assert real.read_bytes() == b"x"


def test_a_folder_every_user_may_write_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o777)

    with pytest.raises(UnsafeFolder, match=r"can be written by every user \(mode 0777\).*chmod o-w"):
        check_folder(folder)


def test_a_folder_its_group_may_write_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "team"
    folder.mkdir()
    folder.chmod(0o770)

    with caplog.at_level(logging.WARNING, logger="argobox"):
        check_folder(folder)

    assert "can be written by its group (mode 0770)" in caplog.text


def test_a_private_folder_passes_quietly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "mine"
    folder.mkdir(mode=0o700)

    with caplog.at_level(logging.WARNING, logger="argobox"):
        check_folder(folder)

    assert caplog.text == ""


def test_a_file_created_once_is_whole_private_and_never_replaced(tmp_path: Path, outside: Path) -> None:
    path = tmp_path / "key"

    assert create_once(path, b"first") is True
    assert create_once(path, b"second") is False
    planted = tmp_path / "planted"
    planted.symlink_to(outside)
    assert create_once(planted, b"through") is False

    assert read_private(path, 100) == b"first" and (path.stat().st_mode & 0o777) == 0o600
    assert not outside.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "key", "planted"]


def test_a_private_read_refuses_links_fifos_and_files_others_may_read(tmp_path: Path, outside: Path) -> None:
    outside.write_bytes(b"secret")
    outside.chmod(0o600)
    link, fifo, shared = tmp_path / "link", tmp_path / "fifo", tmp_path / "shared"
    link.symlink_to(outside)
    os.mkfifo(fifo, 0o600)
    shared.write_bytes(b"x")
    shared.chmod(0o640)

    with pytest.raises(UnsafeFile, match="is a symbolic link"):
        read_private(link, 100)
    with pytest.raises(UnsafeFile, match="is not a regular file"):
        read_private(fifo, 100)
    with pytest.raises(UnsafeFile, match="chmod 600"):
        read_private(shared, 100)
    with pytest.raises(FileNotFoundError):
        read_private(tmp_path / "missing", 100)
