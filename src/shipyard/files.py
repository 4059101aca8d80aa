"""Files that hold a token or a key: readable by their owner only (0600), whatever was there before.

`write_private` never writes through an existing file: opening one with O_CREAT keeps its old mode
(0644 stays 0644) and follows a symlink planted in its place. It writes a new file created with
O_EXCL in the same directory, sets 0600 on the open descriptor (the umask cannot loosen it), syncs
it and renames it over the path.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

PRIVATE_MODE = 0o600


def write_private(path: Path, data: str | bytes, *, replace: bool = True) -> None:
    """Write `data` to `path` with mode 0600, atomically.

    With ``replace=False`` an existing `path` is left alone and FileExistsError raised, even when
    another process creates it meanwhile.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, draft = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(descriptor, PRIVATE_MODE)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(draft, path)
        else:
            # link() fails when the path exists, so a concurrent writer cannot be overwritten.
            os.link(draft, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(draft)


def create_private(path: Path) -> None:
    """Make sure `path` exists with mode 0600, keeping its content when it exists (a database file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_MODE)
    try:
        os.fchmod(descriptor, PRIVATE_MODE)
    finally:
        os.close(descriptor)


def restrict(path: Path) -> bool:
    """Tighten an existing file readable by others to 0600; False when there is no such file."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISREG(mode) and stat.S_IMODE(mode) & 0o077:
        os.chmod(path, stat.S_IMODE(mode) & 0o700)
    return True
