"""Private files: created exclusively, never through a symbolic link, in folders that only their owner can write.

A local user who can write the store's folder could otherwise plant a symbolic link where ArgoBox is about to
create a file (the audit checkpoint's temporary file, a key, the database) and have ArgoBox write through it. So
every file ArgoBox creates is opened with O_CREAT | O_EXCL | O_NOFOLLOW, and the store's folder is checked when the
store opens (`check_folder`).
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

logger = logging.getLogger("argobox")

_CREATE = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
FOLDER_MODE = 0o700
"""The mode of a folder ArgoBox creates for its files."""


class UnsafeFolder(Exception):
    """Raised when a folder ArgoBox keeps its files in can be written by other users."""


class UnsafeFile(Exception):
    """Raised when a private file ArgoBox reads is a symbolic link, not a regular file, or open to other users."""


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


def create_once(path: Path, data: bytes, mode: int = 0o600) -> bool:
    """Create `path` holding `data`, whole, unless something is already there; whether it was created here.

    `data` is written to a temporary file beside `path` (created exclusively) and synced, then hard-linked into
    place: a reader never sees it half-written, and the link never replaces what is at `path` nor follows a link
    there, so when processes race the first one's file stays. Raises OSError."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}")
    with open(create_exclusive(temporary, mode), "wb") as out:
        try:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
            os.link(temporary, path)
        except FileExistsError:
            return False
        finally:
            temporary.unlink(missing_ok=True)
    return True


def read_private(path: Path, limit: int) -> bytes:
    """Up to `limit` bytes of the file at `path`, which must be a regular file that only its owner may read or
    write; opened without following a symbolic link (and without waiting on a planted FIFO).

    Raises FileNotFoundError when nothing is there, UnsafeFile, OSError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError:
        if path.is_symlink():
            raise UnsafeFile(f"{str(path)!r} is a symbolic link; remove it") from None
        raise
    with open(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFile(f"{str(path)!r} is not a regular file; remove it")
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise UnsafeFile(
                f"{str(path)!r} can be read or written by other users (mode {stat.S_IMODE(info.st_mode):04o}); "
                f"run `chmod 600 {path}`, or remove it"
            )
        return handle.read(limit)


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
