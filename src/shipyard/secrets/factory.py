"""Building key providers and stores from the ``secrets`` section of shipyard.yml."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from shipyard.domain.spec import SecretsSpec
from shipyard.errors import ConfigError
from shipyard.secrets.local_key import DEFAULT_KEY_FILE, LocalKeyProvider, load_master_key
from shipyard.secrets.provider import KeyProvider, LazyKeyProvider
from shipyard.secrets.store import SecretStore


def key_file_path(spec: SecretsSpec, repo_root: Path) -> Path:
    """``secrets.key_file`` (relative to the repository) or ~/.config/shipyard/master.key."""
    return repo_root / Path(spec.key_file or DEFAULT_KEY_FILE).expanduser()


def local_provider(key_file: Path, environ: Mapping[str, str] | None = None) -> KeyProvider:
    """The local provider, reading its master key only when first used."""
    source = os.environ if environ is None else environ
    return LazyKeyProvider("local", lambda: LocalKeyProvider(load_master_key(key_file, source)))


def kms_provider(spec: SecretsSpec, kms_key_id: str | None = None) -> KeyProvider:
    """The aws-kms provider for ``kms_key_id`` (default ``secrets.kms_key_id``)."""
    key_id = kms_key_id or spec.kms_key_id
    if not key_id:
        raise ConfigError(
            "secrets.kms_key_id is required when secrets.provider is aws-kms; set it in shipyard.yml."
        )

    def build() -> KeyProvider:
        # Imported here: boto3 takes longer to import than every other secrets command takes to run.
        from shipyard.secrets.kms import KmsKeyProvider

        return KmsKeyProvider(key_id, region=spec.region, endpoint_url=spec.kms_endpoint)

    return LazyKeyProvider("aws-kms", build)


def provider_for(spec: SecretsSpec, repo_root: Path, environ: Mapping[str, str] | None = None) -> KeyProvider:
    if spec.provider == "aws-kms":
        return kms_provider(spec)
    return local_provider(key_file_path(spec, repo_root), environ)


def open_store(
    spec: SecretsSpec, repo_root: Path, env: str, *, environ: Mapping[str, str] | None = None
) -> SecretStore:
    """The store of ``env`` in ``repo_root``; nothing is read or decrypted until it is used."""
    return SecretStore(repo_root, env, provider_for(spec, repo_root, environ))
