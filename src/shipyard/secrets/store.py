"""The per-environment secret store: ``.shipyard/secrets/<env>.enc`` inside the app's repository.

Each file keeps its data key across writes (a new nonce every time), so a ``set`` re-encrypts
the payload without calling the key provider to wrap; ``rotate`` replaces the data key.
Writes are atomic (temporary file, fsync, rename) and serialised by a lock on the directory,
so neither a crash nor two concurrent writers lose a secret.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from shipyard.domain.names import ENV_NAME, SECRETS_ENV, is_name
from shipyard.errors import ConfigError, SecretError
from shipyard.secrets.envelope import Envelope, new_data_key, seal
from shipyard.secrets.masking import register_secret
from shipyard.secrets.provider import DecryptionError, KeyProvider

SECRETS_DIR = Path(".shipyard") / "secrets"
SUFFIX = ".enc"


def validate_env(env: str) -> str:
    if not is_name(SECRETS_ENV, env):
        raise ConfigError(f"{env!r} is not a valid environment name: use letters, digits, '-' and '_'.")
    return env


def validate_secret(name: str, value: str) -> None:
    if not is_name(ENV_NAME, name):
        raise ConfigError(
            f"{name!r} is not a valid secret name: use letters, digits and '_', not starting with a digit."
        )
    if "\0" in value:
        raise ConfigError(f"the value of {name} contains a NUL byte, which no environment variable can hold.")


def list_envs(repo_root: Path) -> list[str]:
    """The environments that have a secrets file in ``repo_root``."""
    folder = repo_root / SECRETS_DIR
    return sorted(path.stem for path in folder.glob(f"*{SUFFIX}") if is_name(SECRETS_ENV, path.stem))


@dataclass(frozen=True)
class _Opened:
    envelope: Envelope
    data_key: bytes
    values: dict[str, str]


class SecretStore:
    def __init__(self, repo_root: Path, env: str, provider: KeyProvider) -> None:
        self.repo_root = repo_root
        self.env = validate_env(env)
        self.provider = provider
        self.path = repo_root / SECRETS_DIR / f"{env}{SUFFIX}"
        self.shown_path = (SECRETS_DIR / self.path.name).as_posix()

    def __repr__(self) -> str:
        return f"SecretStore(path={str(self.path)!r}, provider={self.provider.name!r})"

    def exists(self) -> bool:
        return self.path.is_file()

    def names(self) -> list[str]:
        """Secret names, sorted; empty if the environment has no secrets file yet."""
        return sorted(self.items())

    def items(self) -> dict[str, str]:
        """Every secret of the environment, name to value; empty if there is no file yet."""
        opened = self._open()
        return dict(opened.values) if opened else {}

    def get(self, name: str) -> str:
        opened = self._open()
        if opened is None:
            raise SecretError(
                f"env {self.env} has no secrets yet ({self.shown_path} does not exist); "
                f"add one with 'shipyard secrets set {name} --env {self.env}'."
            )
        if name not in opened.values:
            raise SecretError(
                f"secret {name} is not set in env {self.env}; add it with "
                f"'shipyard secrets set {name} --env {self.env}'."
            )
        return opened.values[name]

    def set(self, name: str, value: str) -> None:
        validate_secret(name, value)
        self.update(lambda values: {**values, name: value})

    def remove(self, name: str) -> None:
        def without(values: dict[str, str]) -> dict[str, str]:
            if name not in values:
                raise SecretError(
                    f"secret {name} is not set in env {self.env}, so there is nothing to remove."
                )
            return {key: value for key, value in values.items() if key != name}

        self.update(without)

    def update(self, change: Callable[[dict[str, str]], Mapping[str, str]]) -> bool:
        """Replace the secrets with ``change(current)`` under the lock; False if nothing changed."""
        with self._locked():
            opened = self._open()
            current = dict(opened.values) if opened else {}
            wanted = dict(change(dict(current)))
            for name, value in wanted.items():
                validate_secret(name, value)
            if wanted == current:
                return False
            if opened is None:
                data_key = new_data_key()
                envelope = self._seal(wanted, data_key, self.provider.wrap(data_key), self.provider)
            else:
                envelope = seal(
                    wanted,
                    env=self.env,
                    provider=opened.envelope.provider,
                    key_id=opened.envelope.key_id,
                    wrapped_key=opened.envelope.wrapped_key,
                    data_key=opened.data_key,
                )
            self._write(envelope)
            return True

    def rotate(self, new_provider: KeyProvider | None = None) -> str:
        """Re-encrypt every value under a new data key, wrapped by ``new_provider`` if given.

        Returns the key id the file is now sealed with.
        """
        provider = new_provider or self.provider
        with self._locked():
            opened = self._open()
            if opened is None:
                raise SecretError(
                    f"env {self.env} has no secrets file ({self.shown_path}), so nothing to rotate."
                )
            data_key = new_data_key()
            self._write(self._seal(opened.values, data_key, provider.wrap(data_key), provider))
        self.provider = provider
        return provider.key_id

    def _seal(self, values: Mapping[str, str], data_key: bytes, wrapped: bytes, by: KeyProvider) -> Envelope:
        return seal(
            values, env=self.env, provider=by.name, key_id=by.key_id, wrapped_key=wrapped, data_key=data_key
        )

    def _open(self) -> _Opened | None:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        envelope = Envelope.from_json(text, source=self.shown_path)
        self._check_header(envelope)
        try:
            data_key = self.provider.unwrap(envelope.wrapped_key)
            values = envelope.open(data_key)
        except DecryptionError as exc:
            raise SecretError(self._undecryptable(envelope)) from exc
        for value in values.values():
            register_secret(value)
        return _Opened(envelope, data_key, values)

    def _check_header(self, envelope: Envelope) -> None:
        if envelope.env != self.env:
            raise SecretError(
                f"{self.shown_path} holds the secrets of env {envelope.env}, not {self.env}; "
                "restore the right file from git."
            )
        if envelope.provider != self.provider.name:
            raise SecretError(
                f"{self.shown_path} was sealed by the {envelope.provider} key provider but secrets.provider "
                f"is {self.provider.name}; set secrets.provider: {envelope.provider} in shipyard.yml."
            )

    def _undecryptable(self, envelope: Envelope) -> str:
        message = f"{self.shown_path} cannot be decrypted: wrong master key or the file was modified"
        if envelope.key_id != self.provider.key_id:
            message += (
                f" (it was sealed with key {envelope.key_id}, the configured key is {self.provider.key_id})"
            )
        return message + "."

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path.parent, os.O_RDONLY)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)

    def _write(self, envelope: Envelope) -> None:
        folder = self.path.parent
        descriptor, draft = tempfile.mkstemp(dir=folder, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            # Ciphertext is made to be committed and read by every deployer, like any repo file.
            os.fchmod(descriptor, 0o644)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(envelope.to_json())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(draft, self.path)
        except BaseException:
            Path(draft).unlink(missing_ok=True)
            raise
        _fsync_directory(folder)


def _fsync_directory(folder: Path) -> None:
    # Makes the rename itself durable: without it a crash can bring back the old file.
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
