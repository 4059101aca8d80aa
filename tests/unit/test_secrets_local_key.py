"""The local master key: its sources, the key file, and stores built from shipyard.yml settings."""

from __future__ import annotations

import base64
import secrets
import stat
from pathlib import Path

import pytest

from shipyard.domain.spec import SecretsSpec
from shipyard.errors import ConfigError, SecretError
from shipyard.secrets.factory import key_file_path, open_store
from shipyard.secrets.local_key import (
    MASTER_KEY_ENV,
    LocalKeyProvider,
    create_key_file,
    load_master_key,
)


def encoded(key: bytes) -> str:
    return base64.b64encode(key).decode()


def test_create_key_file_writes_a_private_random_key(tmp_path: Path) -> None:
    path = tmp_path / "config" / "shipyard" / "master.key"

    provider = create_key_file(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = base64.b64decode(path.read_text().strip())
    assert len(key) == 32
    assert LocalKeyProvider(key).key_id == provider.key_id
    assert [p.name for p in path.parent.iterdir()] == ["master.key"]


def test_create_key_file_never_overwrites_a_key(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    create_key_file(path)
    original = path.read_text()

    with pytest.raises(SecretError, match="already exists"):
        create_key_file(path)
    assert path.read_text() == original


def test_two_keys_have_different_ids(tmp_path: Path) -> None:
    assert create_key_file(tmp_path / "a.key").key_id != create_key_file(tmp_path / "b.key").key_id


def test_the_environment_variable_wins_over_the_key_file(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    create_key_file(path)
    from_env = secrets.token_bytes(32)

    assert load_master_key(path, {MASTER_KEY_ENV: encoded(from_env)}) == from_env
    assert load_master_key(path, {}) == base64.b64decode(path.read_text())


@pytest.mark.parametrize("text", ["not base64 at all!", encoded(b"too short"), ""])
def test_an_invalid_key_in_the_environment_is_a_clear_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "missing.key"
    environ = {MASTER_KEY_ENV: text} if text else {}
    expected = "is not a valid master key" if text else "does not exist"

    with pytest.raises(SecretError, match=expected) as caught:
        load_master_key(path, environ)
    if text:
        assert text not in caught.value.message


def test_a_missing_key_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="shipyard secrets init-key") as caught:
        load_master_key(tmp_path / "master.key", {})

    assert MASTER_KEY_ENV in caught.value.message


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    create_key_file(path)
    path.chmod(0o644)

    with pytest.raises(SecretError, match="chmod 600"):
        load_master_key(path, {})


def test_key_file_path_defaults_to_the_user_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

    assert key_file_path(SecretsSpec(), tmp_path / "repo") == tmp_path / "home/.config/shipyard/master.key"
    assert (
        key_file_path(SecretsSpec(key_file="keys/m.key"), tmp_path / "repo") == tmp_path / "repo/keys/m.key"
    )
    assert key_file_path(SecretsSpec(key_file="/etc/m.key"), tmp_path / "repo") == Path("/etc/m.key")


def test_open_store_reads_no_key_until_a_file_must_be_decrypted(tmp_path: Path) -> None:
    spec = SecretsSpec(key_file=str(tmp_path / "absent.key"))
    store = open_store(spec, tmp_path, "production", environ={})

    assert store.names() == []
    with pytest.raises(SecretError, match=r"absent\.key does not exist"):
        store.set("TOKEN", "some-value")


def test_open_store_uses_the_key_file_of_the_spec(tmp_path: Path) -> None:
    key_file = tmp_path / "master.key"
    create_key_file(key_file)
    spec = SecretsSpec(key_file=str(key_file))

    open_store(spec, tmp_path, "staging", environ={}).set("TOKEN", "value-1234")

    assert open_store(spec, tmp_path, "staging", environ={}).get("TOKEN") == "value-1234"
    other_key = {MASTER_KEY_ENV: encoded(secrets.token_bytes(32))}
    with pytest.raises(SecretError, match="wrong master key"):
        open_store(spec, tmp_path, "staging", environ=other_key).get("TOKEN")


def test_aws_kms_without_a_key_id_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"secrets\.kms_key_id is required"):
        open_store(SecretsSpec(provider="aws-kms"), tmp_path, "production")
