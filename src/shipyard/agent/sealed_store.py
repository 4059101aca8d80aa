"""The sealed secrets of the releases this host ran, kept as the controller sent them (ciphertext).

After a reboot the agent starts the serving release again from its own records, before it reaches the
controller; the values come from the release's envelope kept here, opened with the host's key then.
"""

from __future__ import annotations

from pathlib import Path

from shipyard.files import write_private

SEALED_DIR = "sealed-secrets"


def _path(home: Path, app: str, release: str) -> Path:
    # app and release are checked names (localize.py), safe as path parts.
    return home / SEALED_DIR / app / f"{release}.json"


def keep(home: Path, app: str, release: str, sealed: str | None) -> None:
    """Remember the release's envelope; forget any earlier one of the same release when it has none."""
    path = _path(home, app, release)
    if sealed is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(path, sealed)


def kept(home: Path, app: str, release: str | None) -> str | None:
    if release is None:
        return None
    try:
        return _path(home, app, release).read_text()
    except FileNotFoundError:
        return None
