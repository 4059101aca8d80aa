"""shipyard.secrets: per-environment secrets, encrypted in the app's repository.

    store = open_store(spec.secrets, repo_root, "production")
    env = resolve_secrets(spec.env.secret, store, os.environ)   # values registered for masking
    print(mask(command_line))

The aws-kms provider lives in shipyard.secrets.kms, imported only when used (boto3 is slow to load).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.secrets.factory import key_file_path, kms_provider, local_provider, open_store, provider_for
    from shipyard.secrets.local_key import DEFAULT_KEY_FILE, MASTER_KEY_ENV, LocalKeyProvider, create_key_file
    from shipyard.secrets.masking import (
        forget_registered_secrets,
        mask,
        mask_credentials,
        mask_processor,
        register_secret,
    )
    from shipyard.secrets.provider import KeyProvider
    from shipyard.secrets.resolve import resolve_secrets
    from shipyard.secrets.store import SecretStore, list_envs

# The package's names load on first use: `shipyard.secrets.masking`, which every command's output
# goes through, must not pull in the store, its cipher and the config model.
_HOMES = {
    "key_file_path": "factory",
    "kms_provider": "factory",
    "local_provider": "factory",
    "open_store": "factory",
    "provider_for": "factory",
    "DEFAULT_KEY_FILE": "local_key",
    "MASTER_KEY_ENV": "local_key",
    "LocalKeyProvider": "local_key",
    "create_key_file": "local_key",
    "forget_registered_secrets": "masking",
    "mask": "masking",
    "mask_credentials": "masking",
    "mask_processor": "masking",
    "register_secret": "masking",
    "KeyProvider": "provider",
    "resolve_secrets": "resolve",
    "SecretStore": "store",
    "list_envs": "store",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'shipyard.secrets' has no attribute {name!r}")
    return getattr(importlib.import_module(f"shipyard.secrets.{home}"), name)


__all__ = [
    "DEFAULT_KEY_FILE",
    "MASTER_KEY_ENV",
    "KeyProvider",
    "LocalKeyProvider",
    "SecretStore",
    "create_key_file",
    "forget_registered_secrets",
    "key_file_path",
    "kms_provider",
    "list_envs",
    "local_provider",
    "mask",
    "mask_credentials",
    "mask_processor",
    "open_store",
    "provider_for",
    "register_secret",
    "resolve_secrets",
]
