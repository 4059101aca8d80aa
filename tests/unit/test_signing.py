"""Release signatures: what is covered, and every way a release is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shipyard.errors import ConfigError, SignatureError
from shipyard.signing import (
    TrustedKeys,
    generate_private_key,
    load_private_key,
    load_public_key,
    public_key_pem,
    release_payload,
    sign,
    write_private_key,
)

DIGEST = "sha256:" + "a" * 64
SPEC: dict[str, Any] = {"app": "web", "image": "reg:5000/web", "port": 3000, "env": {"clear": {"A": "1"}}}


def payload(**changes: Any) -> bytes:
    values: dict[str, Any] = {"app": "web", "image": "reg:5000/web", "digest": DIGEST, "spec": SPEC}
    values.update(changes)
    return release_payload(values["app"], values["image"], values["digest"], values["spec"])


def test_a_signed_release_verifies_whatever_the_key_order_of_its_spec() -> None:
    key = generate_private_key()
    signature = sign(key, payload())
    reordered = dict(reversed(list(SPEC.items())))
    TrustedKeys.of([key.public_key()]).verify(payload(spec=reordered), signature, what="release r1")


@pytest.mark.parametrize(
    "change",
    [
        {"image": "evil:5000/web"},
        {"digest": "sha256:" + "b" * 64},
        {"app": "api"},
        {"spec": {**SPEC, "volumes": ["/:/host"]}},
    ],
)
def test_any_change_after_signing_is_refused(change: dict[str, Any]) -> None:
    key = generate_private_key()
    signature = sign(key, payload())
    with pytest.raises(SignatureError, match="altered after signing"):
        TrustedKeys.of([key.public_key()]).verify(payload(**change), signature, what="release r1")


def test_unsigned_untrusted_and_malformed_signatures_are_refused() -> None:
    trusted = TrustedKeys.of([generate_private_key().public_key()])
    with pytest.raises(SignatureError, match="not signed"):
        trusted.verify(payload(), None, what="release r1")
    with pytest.raises(SignatureError, match="does not trust"):
        trusted.verify(payload(), sign(generate_private_key(), payload()), what="release r1")
    with pytest.raises(SignatureError, match="malformed"):
        trusted.verify(payload(), "rsa:abc", what="release r1")
    good = sign(generate_private_key(), payload())
    scheme, signer, _ = good.split(":")
    known = TrustedKeys.of([])
    with pytest.raises(SignatureError):
        known.verify(payload(), f"{scheme}:{signer}:!!!", what="release r1")


def test_during_a_rotation_both_keys_are_trusted() -> None:
    old, new = generate_private_key(), generate_private_key()
    trusted = TrustedKeys.of([old.public_key(), new.public_key()])
    trusted.verify(payload(), sign(old, payload()), what="release r1")
    trusted.verify(payload(), sign(new, payload()), what="release r2")


def test_key_files_round_trip_and_bad_files_are_one_sentence(tmp_path: Path) -> None:
    key = generate_private_key()
    private, public = tmp_path / "release.key", tmp_path / "release.key.pub"
    private.write_text("loose")
    private.chmod(0o644)
    write_private_key(private, key)
    public.write_bytes(public_key_pem(key.public_key()))
    assert private.stat().st_mode & 0o777 == 0o600
    signature = sign(load_private_key(private), payload())
    TrustedKeys.of([load_public_key(public)]).verify(payload(), signature, what="release r1")
    with pytest.raises(ConfigError, match="not a PEM public key"):
        load_public_key(private)
    with pytest.raises(ConfigError, match="cannot read"):
        load_private_key(tmp_path / "missing.key")
