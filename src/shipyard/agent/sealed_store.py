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


def keep(home: Path, app: str, release: str, sealed: str | None, *, serving: str | None = None) -> None:
    """Remember the release's envelope (or that it has none), forgetting those of releases other than it
    and `serving`: only the release serving here can need its envelope before the controller answers."""
    path = _path(home, app, release)
    folder = path.parent
    if folder.is_dir():
        for old in folder.glob("*.json"):
            if old.stem not in (release, serving):
                old.unlink(missing_ok=True)
    if sealed is None:
        path.unlink(missing_ok=True)
        return
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(path, sealed)


def kept(home: Path, app: str, release: str | None) -> str | None:
    if release is None:
        return None
    try:
        return _path(home, app, release).read_text()
    except FileNotFoundError:
        return None


def forget(home: Path, app: str) -> None:
    """Every envelope kept for the app (a preview torn down: the secrets handed to it go with it)."""
    folder = home / SEALED_DIR / app
    if folder.is_dir():
        for old in folder.glob("*.json"):
            old.unlink(missing_ok=True)
        folder.rmdir()
