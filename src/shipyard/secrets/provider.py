"""The key provider contract: what wraps and unwraps the data key of a secrets file.

A secrets file is encrypted with its own random data key; a provider protects that data key
with a master key it holds (a local key file, or a key inside AWS KMS).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from shipyard.errors import SecretError

DATA_KEY_BYTES = 32


@runtime_checkable
class KeyProvider(Protocol):
    """Wraps data keys with a master key; ``name`` and ``key_id`` are recorded in each file."""

    @property
    def name(self) -> str:
        """The provider kind as written in shipyard.yml: ``local`` or ``aws-kms``."""
        ...

    @property
    def key_id(self) -> str:
        """Identifies the master key without revealing it."""
        ...

    def wrap(self, data_key: bytes) -> bytes: ...

    def unwrap(self, blob: bytes) -> bytes: ...


class DecryptionError(SecretError):
    """Authenticated decryption failed: a wrong key, or data modified since it was sealed."""


class LazyKeyProvider:
    """A provider built on first use.

    Reading an environment that has no secrets file, or whose names all come from the
    environment, must not require a master key or AWS credentials.
    """

    def __init__(self, name: str, build: Callable[[], KeyProvider]) -> None:
        self._name = name
        self._build = build
        self._provider: KeyProvider | None = None

    def _target(self) -> KeyProvider:
        if self._provider is None:
            self._provider = self._build()
        return self._provider

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> str:
        return self._target().key_id

    def wrap(self, data_key: bytes) -> bytes:
        return self._target().wrap(data_key)

    def unwrap(self, blob: bytes) -> bytes:
        return self._target().unwrap(blob)

    def __repr__(self) -> str:
        return f"LazyKeyProvider({self._name!r}, loaded={self._provider is not None})"
