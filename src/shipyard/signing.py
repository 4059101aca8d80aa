"""Signed releases: an Ed25519 signature over what a host will run, made where the release is made.

The signed payload is the release's app, image, digest and spec snapshot as canonical JSON, so an
agent that trusts the key can tell a release made by the controller (or by CI) from one written
into the controller's database or altered on the wire. A signature reads
`ed25519:<key id>:<base64 signature>`; the key id is the first 16 hex digits of the SHA-256 of
the raw public key, so an agent trusting several keys (a rotation) knows which one to try.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shipyard.errors import ConfigError, SignatureError
from shipyard.files import write_private

SCHEME = "ed25519"


def release_payload(app: str, image: str, digest: str, spec: Mapping[str, Any]) -> bytes:
    """The bytes a release signature covers: canonical JSON, independent of key order."""
    content = {"app": app, "image": image, "digest": digest, "spec": spec}
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign(private_key: Ed25519PrivateKey, payload: bytes) -> str:
    signature = base64.b64encode(private_key.sign(payload)).decode()
    return f"{SCHEME}:{key_id(private_key.public_key())}:{signature}"


@dataclass(frozen=True)
class TrustedKeys:
    """The public keys an agent accepts release signatures from, by key id."""

    keys: Mapping[str, Ed25519PublicKey]

    @classmethod
    def of(cls, public_keys: Iterable[Ed25519PublicKey]) -> TrustedKeys:
        return cls({key_id(key): key for key in public_keys})

    def verify(self, payload: bytes, signature: str | None, *, what: str) -> None:
        """Raise SignatureError unless `signature` is a valid signature of `payload` by a trusted key."""
        if not signature:
            raise SignatureError(f"{what} is not signed, and this host accepts only signed releases.")
        scheme, _, rest = signature.partition(":")
        signer, _, encoded = rest.partition(":")
        if scheme != SCHEME or not signer or not encoded:
            raise SignatureError(f"{what} has a malformed signature; expected {SCHEME}:<key id>:<base64>.")
        key = self.keys.get(signer)
        if key is None:
            raise SignatureError(f"{what} is signed by key {signer}, which this host does not trust.")
        try:
            key.verify(base64.b64decode(encoded, validate=True), payload)
        except (InvalidSignature, binascii.Error, ValueError) as exc:
            raise SignatureError(
                f"{what} does not match its signature; it was altered after signing."
            ) from exc


def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    data = _read(path, "signing key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not a PEM private key; make one with 'shipyard signing-key'.") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 key; make one with 'shipyard signing-key'.")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    data = _read(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{path} is not a PEM public key; use the .pub file 'shipyard signing-key' wrote."
        ) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(
            f"{path} is not an Ed25519 public key; use the .pub file 'shipyard signing-key' wrote."
        )
    return key


def write_private_key(path: Path, key: Ed25519PrivateKey) -> None:
    """The key as PEM in a new 0600 file, whatever mode an older file had."""
    try:
        write_private(path, private_key_pem(key))
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}.") from exc


def load_trusted_keys(paths: Iterable[Path]) -> TrustedKeys:
    return TrustedKeys.of(load_public_key(path) for path in paths)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc.strerror or exc}.") from exc
