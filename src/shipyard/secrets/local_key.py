"""The ``local`` key provider: a 256-bit master key from SHIPYARD_MASTER_KEY or a key file.

The master key wraps each file's data key with AES-256-GCM. The key file holds the key in
base64 on one line, so the same text can be pasted into a CI variable as SHIPYARD_MASTER_KEY.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shipyard.errors import SecretError
from shipyard.files import write_private
from shipyard.secrets.provider import DecryptionError

MASTER_KEY_ENV = "SHIPYARD_MASTER_KEY"
DEFAULT_KEY_FILE = "~/.config/shipyard/master.key"
MASTER_KEY_BYTES = 32
NONCE_BYTES = 12
# Binds a wrapped blob to its purpose, so it can never be confused with another GCM ciphertext.
WRAP_ASSOCIATED_DATA = b"shipyard data key v1"


class LocalKeyProvider:
    name = "local"

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != MASTER_KEY_BYTES:
            raise SecretError(
                f"the master key must be {MASTER_KEY_BYTES} bytes; "
                "create one with 'shipyard secrets init-key'."
            )
        self._aead = AESGCM(master_key)
        # A hash of a random 256-bit key reveals nothing about it, and tells keys apart.
        self._key_id = "local:" + hashlib.sha256(b"shipyard key id\0" + master_key).hexdigest()[:16]

    @property
    def key_id(self) -> str:
        return self._key_id

    def wrap(self, data_key: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data_key, WRAP_ASSOCIATED_DATA)

    def unwrap(self, blob: bytes) -> bytes:
        nonce, sealed = blob[:NONCE_BYTES], blob[NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, sealed, WRAP_ASSOCIATED_DATA)
        except (InvalidTag, ValueError) as exc:
            raise DecryptionError(
                "the data key cannot be unwrapped: wrong master key or the file was modified."
            ) from exc

    def __repr__(self) -> str:
        return f"LocalKeyProvider(key_id={self._key_id!r})"


def decode_master_key(text: str, *, source: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != MASTER_KEY_BYTES:
        raise SecretError(
            f"{source} is not a valid master key: it must be the base64 of {MASTER_KEY_BYTES} random bytes "
            "(create one with 'shipyard secrets init-key')."
        )
    return key


def read_key_file(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise SecretError(
            f"no master key: {path} does not exist; create it with 'shipyard secrets init-key' "
            f"or export {MASTER_KEY_ENV}."
        ) from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretError(
            f"{path} can be read by other users; protect the master key with 'chmod 600 {path}'."
        )
    return decode_master_key(path.read_text(), source=str(path))


def load_master_key(key_file: Path, environ: Mapping[str, str]) -> bytes:
    """The master key from SHIPYARD_MASTER_KEY if set (CI, deploy hosts), else from ``key_file``."""
    from_env = environ.get(MASTER_KEY_ENV)
    if from_env:
        return decode_master_key(from_env, source=MASTER_KEY_ENV)
    return read_key_file(key_file)


def create_key_file(path: Path) -> LocalKeyProvider:
    """Write a new random master key to ``path`` (mode 0600); never overwrites an existing key."""
    if path.exists():
        raise SecretError(
            f"{path} already exists; overwriting it would make the files sealed with it unreadable, "
            "so pass another --key-file."
        )
    key = secrets.token_bytes(MASTER_KEY_BYTES)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        # Never replaces: a concurrent init-key that wrote first keeps its key.
        write_private(path, base64.b64encode(key).decode() + "\n", replace=False)
    except FileExistsError as exc:
        raise SecretError(f"{path} already exists; pass another --key-file.") from exc
    return LocalKeyProvider(key)
