"""The envelope format: AES-256-GCM round trip, and every field bound to the ciphertext."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from typing import Any

import pytest

from shipyard.errors import SecretError
from shipyard.secrets.envelope import Envelope, new_data_key, seal
from shipyard.secrets.local_key import LocalKeyProvider
from shipyard.secrets.provider import DecryptionError

VALUES = {"DATABASE_URL": "postgres://app:hunter2@db/app", "API_TOKEN": "tok-9f8e7d6c"}


def sealed(provider: LocalKeyProvider, env: str = "production") -> tuple[Envelope, bytes]:
    data_key = new_data_key()
    envelope = seal(
        VALUES,
        env=env,
        provider=provider.name,
        key_id=provider.key_id,
        wrapped_key=provider.wrap(data_key),
        data_key=data_key,
    )
    return envelope, data_key


def reopen(text: str, provider: LocalKeyProvider) -> dict[str, str]:
    envelope = Envelope.from_json(text, source="production.enc")
    return envelope.open(provider.unwrap(envelope.wrapped_key))


def flip_last_byte(encoded: str) -> str:
    raw = bytearray(base64.b64decode(encoded))
    raw[-1] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


@pytest.fixture
def provider() -> LocalKeyProvider:
    return LocalKeyProvider(secrets.token_bytes(32))


def test_round_trip_through_the_json_file(provider: LocalKeyProvider) -> None:
    envelope, _ = sealed(provider)

    assert reopen(envelope.to_json(), provider) == VALUES


def test_file_holds_neither_values_nor_names(provider: LocalKeyProvider) -> None:
    text = sealed(provider)[0].to_json()

    for secret_text in [*VALUES, *VALUES.values(), "hunter2"]:
        assert secret_text not in text
    document = json.loads(text)
    assert set(document) == {
        "format",
        "version",
        "env",
        "provider",
        "key_id",
        "wrapped_key",
        "nonce",
        "ciphertext",
    }
    assert len(base64.b64decode(document["nonce"])) == 12


def test_every_seal_uses_a_fresh_nonce(provider: LocalKeyProvider) -> None:
    data_key = new_data_key()
    wrapped = provider.wrap(data_key)
    first, second = (
        seal(VALUES, env="production", provider="local", key_id="k", wrapped_key=wrapped, data_key=data_key)
        for _ in range(2)
    )

    assert first.nonce != second.nonce
    assert first.ciphertext != second.ciphertext


@pytest.mark.parametrize("field", ["wrapped_key", "nonce", "ciphertext"])
def test_a_flipped_bit_in_any_binary_field_is_detected(provider: LocalKeyProvider, field: str) -> None:
    document = json.loads(sealed(provider)[0].to_json())
    document[field] = flip_last_byte(document[field])

    with pytest.raises(DecryptionError):
        reopen(json.dumps(document), provider)


@pytest.mark.parametrize(
    ("field", "forged"), [("env", "staging"), ("provider", "aws-kms"), ("key_id", "local:0")]
)
def test_an_edited_header_field_is_detected(provider: LocalKeyProvider, field: str, forged: str) -> None:
    document = json.loads(sealed(provider)[0].to_json())
    document[field] = forged

    with pytest.raises(DecryptionError):
        reopen(json.dumps(document), provider)


def test_a_file_sealed_for_one_env_does_not_open_as_another(provider: LocalKeyProvider) -> None:
    staging, data_key = sealed(provider, env="staging")
    # Everything but the env label kept: only the associated data can tell the difference.
    relabelled = Envelope(
        "production", "local", staging.key_id, staging.wrapped_key, staging.nonce, staging.ciphertext
    )

    with pytest.raises(DecryptionError):
        relabelled.open(data_key)


def test_a_wrong_master_key_cannot_unwrap_the_data_key(provider: LocalKeyProvider) -> None:
    envelope, _ = sealed(provider)
    stranger = LocalKeyProvider(secrets.token_bytes(32))

    assert stranger.key_id != provider.key_id
    with pytest.raises(DecryptionError, match="wrong master key or the file was modified"):
        stranger.unwrap(envelope.wrapped_key)


def test_a_wrong_data_key_cannot_open_the_payload(provider: LocalKeyProvider) -> None:
    envelope, _ = sealed(provider)

    with pytest.raises(DecryptionError):
        envelope.open(new_data_key())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("ciphertext"), "'ciphertext' is missing"),
        (lambda d: d.update(nonce="not base64!"), "'nonce' is not valid base64"),
        (lambda d: d.update(nonce=base64.b64encode(b"short").decode()), "'nonce' must be 12 bytes"),
        (lambda d: d.update(format="other"), "not a valid shipyard secrets file"),
        (lambda d: d.update(version=2), "format version 2"),
    ],
)
def test_a_malformed_file_is_a_clear_error(
    provider: LocalKeyProvider, mutate: Callable[[dict[str, Any]], object], message: str
) -> None:
    document = json.loads(sealed(provider)[0].to_json())
    mutate(document)

    with pytest.raises(SecretError, match=message):
        Envelope.from_json(json.dumps(document), source="production.enc")


def test_text_that_is_not_json_is_a_clear_error() -> None:
    with pytest.raises(SecretError, match=r"production\.enc is not a valid shipyard secrets file"):
        Envelope.from_json("<<<<<<< HEAD\n", source="production.enc")
