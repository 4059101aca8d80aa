"""The secrets file format: an AES-256-GCM envelope around a JSON map of names to values.

    {
      "format": "shipyard-secrets",
      "version": 1,
      "env": "production",
      "provider": "local",
      "key_id": "local:3f9a0c...",
      "wrapped_key": "<base64: the data key, wrapped by the provider>",
      "nonce": "<base64: 96 random bits>",
      "ciphertext": "<base64: the encrypted JSON map, names included, with its GCM tag>"
    }

The header (format, version, env, provider, key_id) is the associated data of the payload, so
a file moved to another environment, or any edited header field, fails to decrypt.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shipyard.errors import SecretError
from shipyard.secrets.provider import DATA_KEY_BYTES, DecryptionError

FORMAT = "shipyard-secrets"
VERSION = 1
NONCE_BYTES = 12
_BINARY_FIELDS = ("wrapped_key", "nonce", "ciphertext")
_TEXT_FIELDS = ("env", "provider", "key_id")


def new_data_key() -> bytes:
    return secrets.token_bytes(DATA_KEY_BYTES)


@dataclass(frozen=True)
class Envelope:
    env: str
    provider: str
    key_id: str
    wrapped_key: bytes
    nonce: bytes
    ciphertext: bytes

    def associated_data(self) -> bytes:
        header = {
            "format": FORMAT,
            "version": VERSION,
            "env": self.env,
            "provider": self.provider,
            "key_id": self.key_id,
        }
        return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()

    def open(self, data_key: bytes) -> dict[str, str]:
        """The decrypted map; DecryptionError if the key is wrong or any field was changed."""
        try:
            plaintext = AESGCM(data_key).decrypt(self.nonce, self.ciphertext, self.associated_data())
        except (InvalidTag, ValueError) as exc:
            raise DecryptionError(
                "the payload cannot be decrypted: wrong key or the file was modified."
            ) from exc
        values: dict[str, str] = json.loads(plaintext)
        return values

    def to_json(self) -> str:
        document: dict[str, Any] = {"format": FORMAT, "version": VERSION}
        document.update({name: getattr(self, name) for name in _TEXT_FIELDS})
        document.update({name: base64.b64encode(getattr(self, name)).decode() for name in _BINARY_FIELDS})
        return json.dumps(document, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: str) -> Envelope:
        try:
            document = json.loads(text)
        except ValueError:
            document = None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise _invalid(source, 'it is not JSON with "format": "shipyard-secrets"')
        if document.get("version") != VERSION:
            raise SecretError(
                f"{source} has format version {document.get('version')!r} but this shipyard reads "
                f"version {VERSION}; upgrade shipyard or restore the file from git."
            )
        fields: dict[str, Any] = {}
        for name in _TEXT_FIELDS:
            if not isinstance(document.get(name), str):
                raise _invalid(source, f"'{name}' is missing")
            fields[name] = document[name]
        for name in _BINARY_FIELDS:
            fields[name] = _decode_base64(document.get(name), name, source)
        if len(fields["nonce"]) != NONCE_BYTES:
            raise _invalid(source, f"'nonce' must be {NONCE_BYTES} bytes")
        return cls(**fields)


def seal(
    values: Mapping[str, str], *, env: str, provider: str, key_id: str, wrapped_key: bytes, data_key: bytes
) -> Envelope:
    """Encrypt ``values`` under ``data_key`` with a fresh nonce; ``wrapped_key`` is stored beside it."""
    header = Envelope(
        env, provider, key_id, wrapped_key, nonce=secrets.token_bytes(NONCE_BYTES), ciphertext=b""
    )
    plaintext = json.dumps(dict(values), sort_keys=True, separators=(",", ":")).encode()
    ciphertext = AESGCM(data_key).encrypt(header.nonce, plaintext, header.associated_data())
    return dataclasses.replace(header, ciphertext=ciphertext)


def _decode_base64(value: Any, name: str, source: str) -> bytes:
    if not isinstance(value, str):
        raise _invalid(source, f"'{name}' is missing")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _invalid(source, f"'{name}' is not valid base64") from exc


def _invalid(source: str, problem: str) -> SecretError:
    return SecretError(f"{source} is not a valid shipyard secrets file ({problem}); restore it from git.")
