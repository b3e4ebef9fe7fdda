"""Private files: created exclusively, never through a symbolic link, in folders that only their owner can write.

A local user who can write the store's folder could otherwise plant a symbolic link where ArgoBox is about to
create a file (the audit checkpoint's temporary file, a key, the database) and have ArgoBox write through it. So
every file ArgoBox creates is opened with O_CREAT | O_EXCL | O_NOFOLLOW, and the store's folder is checked when the
store opens (`check_folder`).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

logger = logging.getLogger("argobox")

_CREATE = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
FOLDER_MODE = 0o700
"""The mode of a folder ArgoBox creates for its files."""


class UnsafeFolder(Exception):
    """Raised when a folder ArgoBox keeps its files in can be written by other users."""


def create_exclusive(path: Path, mode: int = 0o600, *, flags: int = os.O_WRONLY) -> int:
    """Create `path` and return its descriptor; it must not exist, not even as a symbolic link.

    Raises FileExistsError when something is there, OSError when it cannot be created."""
    return os.open(path, flags | _CREATE, mode)


def create_replacing(path: Path, mode: int = 0o600) -> int:
    """Create `path` exclusively for writing; whatever is left there (the temporary file of a writer that died, or a
    planted link) is removed first, never followed. Raises OSError."""
    try:
        return create_exclusive(path, mode)
    except FileExistsError:
        os.unlink(path)  # removes a link itself, never what it points to
    return create_exclusive(path, mode)


def open_private(path: Path, mode: int = 0o600) -> int:
    """Open `path` for reading and writing, creating it exclusively when it is missing; never through a symbolic
    link (a lock file that several processes share). Raises OSError."""
    for _ in range(3):  # created or removed by another process between the two calls: look again
        try:
            return create_exclusive(path, mode, flags=os.O_RDWR)
        except FileExistsError:
            pass
        try:
            return os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
    raise FileExistsError(f"{str(path)!r} keeps appearing and disappearing; check what else writes that folder")


def private_folder(folder: Path) -> None:
    """Create `folder` (mode 0700) when it is missing, and check it (`check_folder`). Raises UnsafeFolder, OSError."""
    folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    check_folder(folder)


def ensure_private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 unless something is already there.

    An existing file, or a link to one, is left for its owner to have chosen; a link to nothing is refused, since
    whatever then opened the path would create a file where the link points. Raises OSError."""
    try:
        os.close(create_exclusive(path))
    except FileExistsError:
        if not path.exists():
            raise FileExistsError(
                f"{str(path)!r} is a symbolic link to nothing; remove it or point it at a file"
            ) from None


def check_folder(folder: Path) -> None:
    """Refuse a folder that every user may write; warn about one that its group, or another user, may write.

    Someone who can write the folder can plant links where ArgoBox creates files (SQLite's own `-wal` and `-shm`
    files among them). Raises UnsafeFolder, OSError."""
    info = folder.stat()
    shown = str(folder)
    if info.st_mode & stat.S_IWOTH:
        raise UnsafeFolder(
            f"the folder {shown!r} can be written by every user (mode {stat.S_IMODE(info.st_mode):04o}), so anyone "
            f"could plant links where ArgoBox writes its files; run `chmod o-w {shown}` or keep the store elsewhere"
        )
    if info.st_mode & stat.S_IWGRP:
        logger.warning(
            "the folder %r can be written by its group (mode %04o): any member could plant links where ArgoBox "
            "writes its files; consider `chmod g-w %s`",
            shown,
            stat.S_IMODE(info.st_mode),
            shown,
        )
    if info.st_uid not in (os.geteuid(), 0):
        logger.warning(
            "the folder %r belongs to another user (uid %d), who could plant links where ArgoBox writes its files",
            shown,
            info.st_uid,
        )
