"""The registry login of a build: from registry.username_env/password_env or _file settings.

Names in ``*_env`` are looked up in the env's encrypted secret store first, then in the process
environment, like every other secret; the password is registered for masking at once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from shipyard.adapters.registry import Credentials
from shipyard.domain.spec import RegistrySpec
from shipyard.errors import ConfigError, SecretError, ShipyardError
from shipyard.secrets.masking import register_secret
from shipyard.secrets.store import SecretStore


def registry_credentials(
    spec: RegistrySpec,
    store: SecretStore,
    base_dir: Path,
    environ: Mapping[str, str] | None = None,
    *,
    required: bool = False,
) -> Credentials | None:
    """Credentials from registry.username_env/password_env (the secret store first, then the
    environment) or username_file/password_file. None when none are configured, or when they are
    not all set and not ``required`` (a local build without --push needs no login)."""
    environ = os.environ if environ is None else environ
    names = [name for name in (spec.username_env, spec.password_env) if name]
    stored = store.items() if names and store.exists() else {}
    username = _credential(spec.username_env, spec.username_file, stored, environ, base_dir)
    password = _credential(spec.password_env, spec.password_file, stored, environ, base_dir)
    if username is not None and password is not None:
        register_secret(password)
        return Credentials(username, password)
    if not required or not any(
        (spec.username_env, spec.username_file, spec.password_env, spec.password_file)
    ):
        return None
    raise _missing_login(spec, username, password, store.env)


def _missing_login(spec: RegistrySpec, username: str | None, password: str | None, env: str) -> ShipyardError:
    missing = [
        name
        for name, value in ((spec.username_env, username), (spec.password_env, password))
        if name and not value
    ]
    if not missing:
        return ConfigError("registry: set both a username (_env or _file) and a password (_env or _file).")
    them, are = ("them", "are") if len(missing) > 1 else ("it", "is")
    return SecretError(
        f"pushing needs a registry login, but {' and '.join(missing)} {are} not set; "
        f"export {them} or add {them} with 'shipyard secrets set NAME --env {env}'.",
        details=missing,
    )


def _credential(
    env_name: str | None,
    file_name: str | None,
    stored: Mapping[str, str],
    environ: Mapping[str, str],
    base: Path,
) -> str | None:
    if env_name:
        return stored.get(env_name, environ.get(env_name)) or None
    if file_name:
        path = base / Path(file_name).expanduser()
        try:
            return path.read_text().strip() or None
        except OSError as exc:
            raise ConfigError(
                f"cannot read the registry credential file {path} ({type(exc).__name__})."
            ) from exc
    return None
