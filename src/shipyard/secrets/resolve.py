"""Resolving the secret names an app needs (env.secret, build secrets) to their values.

The encrypted store of the target environment wins over the process environment: a stray
``DATABASE_URL`` exported in a developer's shell must never reach production. The process
environment fills the names the store lacks (a CI job that injects its own secrets).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from shipyard.errors import SecretError
from shipyard.secrets.masking import register_secret
from shipyard.secrets.store import SecretStore


def resolve_secrets(
    names: Sequence[str], store: SecretStore | None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The value of every name; SecretError naming every missing one at once."""
    environ = os.environ if environ is None else environ
    # Without a secrets file nothing is decrypted, so exported values work without a master key.
    stored = store.items() if store is not None and store.exists() and names else {}
    resolved: dict[str, str] = {}
    missing: list[str] = []
    for name in dict.fromkeys(names):
        if name in stored:
            resolved[name] = stored[name]
        elif name in environ:
            resolved[name] = environ[name]
        else:
            missing.append(name)
    if missing:
        raise SecretError(_missing_message(missing, store), details=missing)
    for value in resolved.values():
        register_secret(value)
    return resolved


def _missing_message(missing: list[str], store: SecretStore | None) -> str:
    env = f" --env {store.env}" if store is not None else ""
    if len(missing) == 1:
        name = missing[0]
        return f"secret {name} is not set: add it with 'shipyard secrets set {name}{env}' or export it."
    listed = ", ".join(missing[:-1]) + f" and {missing[-1]}"
    return f"secrets {listed} are not set: add each with 'shipyard secrets set NAME{env}' or export them."
