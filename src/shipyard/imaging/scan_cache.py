"""Which layers a build's scan already found clean, so a rebuild that changed nothing reads no layer.

A layer is named by its diff id (the sha256 of its content), and a clean verdict holds only for
the rules it was reached with, known secret values included. Verdicts are kept under a
fingerprint of those rules made with PBKDF2 and a random salt of the cache directory: the cache
holds no value, nor anything quicker to test a guessed value against than PBKDF2. Only clean
verdicts are kept; a layer with findings is read again by every scan.

`shipyard scan` never uses the cache: asked explicitly, it reads every byte.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path

from shipyard.imaging.detectors import Rule

FINGERPRINT_ITERATIONS = 100_000
SALT_BYTES = 32
DIFF_ID = re.compile(r"sha256:([0-9a-f]{64})")


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "shipyard" / "scan"


class CleanLayers:
    def __init__(self, directory: Path, rules: tuple[Rule, ...]) -> None:
        self.directory = directory
        self.folder = directory / _fingerprint(rules, _salt(directory))

    def all_clean(self, diff_ids: list[str]) -> bool:
        return bool(diff_ids) and all(self._marker(diff_id).is_file() for diff_id in diff_ids)

    def remember(self, diff_ids: list[str]) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for diff_id in diff_ids:
            self._marker(diff_id).touch()

    def _marker(self, diff_id: str) -> Path:
        found = DIFF_ID.fullmatch(diff_id)
        if found is None:
            raise ValueError(f"{diff_id!r} is not a layer diff id")
        return self.folder / found.group(1)


def _salt(directory: Path) -> bytes:
    """The directory's salt, created once; linked into place whole, so no reader sees it half-written."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / "salt"
    if not path.is_file():
        draft = directory / f".salt-{secrets.token_hex(8)}"
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(secrets.token_bytes(SALT_BYTES))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another build made it first; use theirs
        finally:
            draft.unlink()
    return path.read_bytes()


def _fingerprint(rules: tuple[Rule, ...], salt: bytes) -> str:
    material = b"\0".join(
        b"\1".join((rule.kind.encode(), rule.pattern.pattern if rule.pattern else rule.literal))
        for rule in rules
    )
    return hashlib.pbkdf2_hmac("sha256", material, salt, FINGERPRINT_ITERATIONS).hex()[:32]
