"""SecretStore: per-env files in the repository, atomic writes, rotation, clear errors."""

from __future__ import annotations

import json
import os
import secrets
import threading
from pathlib import Path

import pytest

from shipyard.errors import ConfigError, SecretError
from shipyard.secrets.local_key import LocalKeyProvider
from shipyard.secrets.masking import forget_registered_secrets, mask
from shipyard.secrets.store import SecretStore, list_envs

DB_URL = "postgres://app:hunter2@db/app"


@pytest.fixture
def provider() -> LocalKeyProvider:
    return LocalKeyProvider(secrets.token_bytes(32))


@pytest.fixture
def store(tmp_path: Path, provider: LocalKeyProvider) -> SecretStore:
    return SecretStore(tmp_path, "production", provider)


def file_document(store: SecretStore) -> dict[str, str]:
    document: dict[str, str] = json.loads(store.path.read_text())
    return document


def test_set_then_get_from_a_fresh_store_object(store: SecretStore, provider: LocalKeyProvider) -> None:
    store.set("DATABASE_URL", DB_URL)
    store.set("API_TOKEN", "tok-123456")

    reopened = SecretStore(store.repo_root, "production", provider)
    assert reopened.get("DATABASE_URL") == DB_URL
    assert reopened.names() == ["API_TOKEN", "DATABASE_URL"]
    assert reopened.items() == {"API_TOKEN": "tok-123456", "DATABASE_URL": DB_URL}
    assert store.path == store.repo_root / ".shipyard" / "secrets" / "production.enc"


def test_the_file_on_disk_holds_no_name_and_no_value(store: SecretStore) -> None:
    store.set("DATABASE_URL", DB_URL)

    text = store.path.read_text()
    assert "DATABASE_URL" not in text
    assert "hunter2" not in text


def test_set_overwrites_and_remove_deletes(store: SecretStore) -> None:
    store.set("TOKEN", "first-value")
    store.set("TOKEN", "second-value")
    store.set("OTHER", "other-value")
    store.remove("TOKEN")

    assert store.items() == {"OTHER": "other-value"}


def test_remove_of_an_unknown_name_is_an_error_and_changes_nothing(store: SecretStore) -> None:
    store.set("OTHER", "other-value")
    before = store.path.read_bytes()

    with pytest.raises(SecretError, match="secret TOKEN is not set in env production"):
        store.remove("TOKEN")
    assert store.path.read_bytes() == before


def test_get_without_a_file_says_how_to_add_one(store: SecretStore) -> None:
    with pytest.raises(SecretError) as caught:
        store.get("DATABASE_URL")

    assert "production.enc does not exist" in caught.value.message
    assert "shipyard secrets set DATABASE_URL --env production" in caught.value.message
    assert store.names() == []


def test_get_of_an_unknown_name_says_how_to_add_it(store: SecretStore) -> None:
    store.set("OTHER", "other-value")

    with pytest.raises(SecretError, match="secret DATABASE_URL is not set in env production; add it with"):
        store.get("DATABASE_URL")


def test_wrong_master_key_is_one_clear_sentence_without_values(store: SecretStore) -> None:
    store.set("DATABASE_URL", DB_URL)
    stranger = SecretStore(store.repo_root, "production", LocalKeyProvider(secrets.token_bytes(32)))

    with pytest.raises(SecretError) as caught:
        stranger.items()

    message = caught.value.message
    assert message.startswith(
        ".shipyard/secrets/production.enc cannot be decrypted: wrong master key or the file was modified"
    )
    assert message.endswith(".") and message.count(". ") == 0
    assert "hunter2" not in message


def test_a_tampered_file_is_reported_and_never_rewritten(store: SecretStore) -> None:
    store.set("DATABASE_URL", DB_URL)
    document = file_document(store)
    document["ciphertext"] = document["ciphertext"][:-6] + "AAAA=="
    store.path.write_text(json.dumps(document))

    with pytest.raises(SecretError, match="cannot be decrypted: wrong master key or the file was modified"):
        store.set("OTHER", "other-value")
    assert json.loads(store.path.read_text()) == document


def test_a_file_copied_from_another_env_is_refused(tmp_path: Path, provider: LocalKeyProvider) -> None:
    staging = SecretStore(tmp_path, "staging", provider)
    staging.set("DATABASE_URL", "postgres://staging-db/app")
    production = SecretStore(tmp_path, "production", provider)
    production.path.write_bytes(staging.path.read_bytes())

    with pytest.raises(SecretError, match="holds the secrets of env staging, not production"):
        production.get("DATABASE_URL")


def test_a_file_of_another_provider_names_the_setting_to_change(store: SecretStore) -> None:
    store.set("DATABASE_URL", DB_URL)
    document = file_document(store)
    document["provider"] = "aws-kms"
    store.path.write_text(json.dumps(document))

    with pytest.raises(SecretError, match=r"set secrets\.provider: aws-kms in shipyard\.yml"):
        store.names()


def test_rotate_keeps_values_and_replaces_data_key_and_nonce(store: SecretStore) -> None:
    store.set("DATABASE_URL", DB_URL)
    before = file_document(store)

    key_id = store.rotate()

    after = file_document(store)
    assert store.items() == {"DATABASE_URL": DB_URL}
    assert after["wrapped_key"] != before["wrapped_key"]
    assert after["nonce"] != before["nonce"]
    assert after["key_id"] == before["key_id"] == key_id


def test_rotate_to_a_new_master_key_retires_the_old_one(
    store: SecretStore, provider: LocalKeyProvider
) -> None:
    store.set("DATABASE_URL", DB_URL)
    new_provider = LocalKeyProvider(secrets.token_bytes(32))

    assert store.rotate(new_provider) == new_provider.key_id

    assert file_document(store)["key_id"] == new_provider.key_id
    assert SecretStore(store.repo_root, "production", new_provider).get("DATABASE_URL") == DB_URL
    with pytest.raises(SecretError, match="wrong master key"):
        SecretStore(store.repo_root, "production", provider).get("DATABASE_URL")


def test_set_keeps_the_wrapped_data_key_but_changes_the_nonce(store: SecretStore) -> None:
    store.set("A_SECRET", "value-one")
    before = file_document(store)
    store.set("B_SECRET", "value-two")
    after = file_document(store)

    assert after["wrapped_key"] == before["wrapped_key"]
    assert after["nonce"] != before["nonce"]


def test_rotate_without_a_file_is_an_error(store: SecretStore) -> None:
    with pytest.raises(SecretError, match="nothing to rotate"):
        store.rotate()


def test_a_crash_while_writing_leaves_the_old_file_intact(
    store: SecretStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.set("DATABASE_URL", DB_URL)
    before = store.path.read_bytes()

    def crash(source: str, target: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        store.set("OTHER", "other-value")
    monkeypatch.undo()

    assert store.path.read_bytes() == before
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["production.enc"]
    assert store.items() == {"DATABASE_URL": DB_URL}


def test_concurrent_writers_lose_nothing(store: SecretStore, provider: LocalKeyProvider) -> None:
    names = [f"SECRET_{i}" for i in range(12)]
    writers = [
        threading.Thread(
            target=SecretStore(store.repo_root, "production", provider).set, args=(n, f"value-{n}")
        )
        for n in names
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()

    assert store.names() == sorted(names)


def test_decrypted_values_are_registered_for_masking(store: SecretStore, provider: LocalKeyProvider) -> None:
    store.set("DATABASE_URL", DB_URL)
    forget_registered_secrets()

    SecretStore(store.repo_root, "production", provider).get("DATABASE_URL")

    assert mask(f"connecting to {DB_URL}") == "connecting to ***"
    forget_registered_secrets()


def test_repr_shows_no_value_and_no_key(store: SecretStore, provider: LocalKeyProvider) -> None:
    store.set("DATABASE_URL", DB_URL)

    assert "hunter2" not in repr(store)
    assert repr(provider) == f"LocalKeyProvider(key_id={provider.key_id!r})"


@pytest.mark.parametrize("name", ["lower-case", "1STARTS_WITH_DIGIT", "HAS SPACE", ""])
def test_invalid_secret_names_are_config_errors(store: SecretStore, name: str) -> None:
    with pytest.raises(ConfigError, match="is not a valid secret name"):
        store.set(name, "some-value")
    assert not store.exists()


@pytest.mark.parametrize("env", ["../escape", "prod/eu", "", ".hidden"])
def test_env_names_cannot_escape_the_secrets_directory(
    tmp_path: Path, provider: LocalKeyProvider, env: str
) -> None:
    with pytest.raises(ConfigError, match="is not a valid environment name"):
        SecretStore(tmp_path, env, provider)


def test_list_envs_finds_every_env_file(tmp_path: Path, provider: LocalKeyProvider) -> None:
    for env in ("staging", "production"):
        SecretStore(tmp_path, env, provider).set("TOKEN", f"token-{env}")

    assert list_envs(tmp_path) == ["production", "staging"]
    assert list_envs(tmp_path / "elsewhere") == []
