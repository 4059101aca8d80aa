"""shipyard.secrets: per-environment secrets, encrypted in the app's repository.

    store = open_store(spec.secrets, repo_root, "production")
    env = resolve_secrets(spec.env.secret, store, os.environ)   # values registered for masking
    print(mask(command_line))

The aws-kms provider lives in shipyard.secrets.kms, imported only when used (boto3 is slow to load).
"""

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
