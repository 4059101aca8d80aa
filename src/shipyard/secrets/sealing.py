"""Secrets sealed for one release in one environment: what a fleet host's agent opens.

Whoever creates a deployment of a release to environment E resolves the values of the release's
`env.secret` names from E's store and seals exactly those names into a new envelope (the format of
the store's files, with a fresh data key, wrapped by E's key provider). The controller keeps that
ciphertext beside the release and hands it only to hosts of E; it can check the envelope's header but
holds no key to open it. The agent opens it with the host's key: the environment's master key file
(`local`) or the KMS key named in the header, reached with the host's own AWS credentials (`aws-kms`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from shipyard.errors import ConfigError, SecretError
from shipyard.secrets.envelope import Envelope, new_data_key, seal
from shipyard.secrets.masking import register_secret
from shipyard.secrets.provider import DecryptionError, KeyProvider
from shipyard.secrets.resolve import resolve_secrets
from shipyard.secrets.store import SecretStore

# Far above what a few hundred secret values take, far below what a database row should carry.
MAX_SEALED_CHARS = 256 * 1024
SEALED_SOURCE = "the release's sealed secrets"


def seal_secrets(
    names: Sequence[str], store: SecretStore, environ: Mapping[str, str] | None = None
) -> str | None:
    """The envelope (JSON text) of exactly `names`, sealed for the store's environment; None without names.

    Values come from the store, then the process environment, as `resolve_secrets` allows; every
    call seals under a new data key, so two releases never share one.
    """
    if not names:
        return None
    values = resolve_secrets(names, store, environ)
    provider = store.provider
    data_key = new_data_key()
    wrapped = provider.wrap(data_key)
    envelope = seal(
        values,
        env=store.env,
        provider=provider.name,
        key_id=provider.key_id,
        wrapped_key=wrapped,
        data_key=data_key,
    )
    return envelope.to_json()


def check_sealed(text: str, env: str) -> Envelope:
    """The envelope's header, checked without opening it: ConfigError saying what is wrong."""
    if len(text) > MAX_SEALED_CHARS:
        raise ConfigError(
            f"the sealed secrets are {len(text)} characters, more than the {MAX_SEALED_CHARS} accepted; "
            "keep only the names the release needs in env.secret."
        )
    try:
        envelope = Envelope.from_json(text, source=SEALED_SOURCE)
    except SecretError as exc:
        raise ConfigError(
            "the sealed secrets are not a shipyard secrets envelope; seal them with the shipyard CLI."
        ) from exc
    if envelope.env != env:
        raise ConfigError(
            f"the sealed secrets are sealed for env {envelope.env}, not {env}; "
            f"seal them from the store of {env}."
        )
    return envelope


ProviderFor = Callable[[Envelope], KeyProvider]


def open_sealed(
    text: str | None, *, env: str | None, names: Sequence[str], provider_for: ProviderFor
) -> dict[str, str]:
    """The values of `names` from the envelope, registered for masking; SecretError in one sentence.

    `env`, when given, must be the envelope's environment; an agent passes None, since the controller
    hands a host only its environment's envelopes and the host's key opens no other environment's.
    No message names or shows a value: only the names and what to do.
    """
    names = list(dict.fromkeys(names))
    if not names:
        return {}
    if text is None:
        where = f" for env {env}" if env else ""
        raise SecretError(
            f"the release names secrets ({', '.join(names)}) but came with no sealed values{where}; "
            "deploy it with 'shipyard deploy --env ENV' from a checkout whose secret store holds them."
        )
    try:
        envelope = check_sealed(text, env) if env else Envelope.from_json(text, source=SEALED_SOURCE)
    except (ConfigError, SecretError) as exc:
        raise SecretError(exc.message) from exc
    provider = provider_for(envelope)
    try:
        values = envelope.open(provider.unwrap(envelope.wrapped_key))
    except DecryptionError as exc:
        raise SecretError(
            f"the release's sealed secrets for env {envelope.env} do not open with this host's key "
            f"({provider.key_id}; they were sealed with {envelope.key_id}): give the agent the master key "
            f"of env {envelope.env}, or deploy again so they are sealed with the current one."
        ) from exc
    missing = [name for name in names if name not in values]
    if missing:
        raise SecretError(
            f"the release's sealed secrets for env {envelope.env} lack {', '.join(missing)}; add them with "
            f"'shipyard secrets set NAME --env {envelope.env}' and deploy again."
        )
    opened = {name: values[name] for name in names}
    for value in opened.values():
        register_secret(value)
    return opened


def host_provider(key_file: Path | None) -> ProviderFor:
    """The host's way to unwrap a data key, chosen by the envelope's header.

    `local`: the environment's master key from `key_file` (the agent's --secrets-key-file).
    `aws-kms`: the KMS key named in the header, with boto3's default credentials and region
    (instance role, AWS_REGION; AWS_ENDPOINT_URL for another endpoint).
    """

    def provider_for(envelope: Envelope) -> KeyProvider:
        if envelope.provider == "local":
            if key_file is None:
                raise SecretError(
                    f"the release's secrets are sealed with a local master key ({envelope.key_id}) but the "
                    f"agent has none; restart it with --secrets-key-file holding env {envelope.env}'s key."
                )
            from shipyard.secrets.local_key import LocalKeyProvider, read_key_file

            return LocalKeyProvider(read_key_file(key_file))
        if envelope.provider == "aws-kms":
            # Imported here: boto3 is slow to load, and hosts with local keys never need it.
            from shipyard.secrets.kms import KmsKeyProvider

            return KmsKeyProvider(envelope.key_id, region=None)
        raise SecretError(
            f"the release's secrets are sealed by key provider {envelope.provider!r}, which this agent "
            "does not know; upgrade shipyard on this host."
        )

    return provider_for
