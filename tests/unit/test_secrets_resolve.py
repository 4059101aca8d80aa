"""resolve_secrets: the values a deploy or a build needs, or one error naming every missing one."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.errors import SecretError
from shipyard.secrets.local_key import LocalKeyProvider
from shipyard.secrets.masking import forget_registered_secrets, mask
from shipyard.secrets.provider import LazyKeyProvider
from shipyard.secrets.resolve import resolve_secrets
from shipyard.secrets.store import SecretStore


@pytest.fixture(autouse=True)
def empty_registry() -> Iterator[None]:
    forget_registered_secrets()
    yield
    forget_registered_secrets()


@pytest.fixture
def store(tmp_path: Path) -> SecretStore:
    store = SecretStore(tmp_path, "production", LocalKeyProvider(secrets.token_bytes(32)))
    store.set("DATABASE_URL", "postgres://prod-db/app")
    return store


def test_names_come_from_the_store_then_the_environment(store: SecretStore) -> None:
    environ = {"DATABASE_URL": "postgres://localhost/dev", "API_TOKEN": "from-the-ci-job"}

    resolved = resolve_secrets(["DATABASE_URL", "API_TOKEN"], store, environ)

    # The store of the target env wins: a developer's exported DATABASE_URL must not reach production.
    assert resolved == {"DATABASE_URL": "postgres://prod-db/app", "API_TOKEN": "from-the-ci-job"}


def test_one_missing_name_gets_the_exact_advice(store: SecretStore) -> None:
    with pytest.raises(SecretError) as caught:
        resolve_secrets(["DATABASE_URL", "SMTP_PASSWORD"], store, {})

    assert caught.value.message == (
        "secret SMTP_PASSWORD is not set: add it with "
        "'shipyard secrets set SMTP_PASSWORD --env production' or export it."
    )
    assert caught.value.exit_code == 11


def test_every_missing_name_is_reported_at_once(store: SecretStore) -> None:
    with pytest.raises(SecretError) as caught:
        resolve_secrets(["A_KEY", "DATABASE_URL", "B_KEY", "C_KEY"], store, {})

    assert caught.value.message.startswith("secrets A_KEY, B_KEY and C_KEY are not set")
    assert "--env production" in caught.value.message
    assert caught.value.details == ["A_KEY", "B_KEY", "C_KEY"]


def test_without_a_store_only_the_environment_counts() -> None:
    assert resolve_secrets(["TOKEN"], None, {"TOKEN": "abc-123"}) == {"TOKEN": "abc-123"}
    with pytest.raises(
        SecretError, match=r"secret OTHER is not set: add it with 'shipyard secrets set OTHER'"
    ):
        resolve_secrets(["OTHER"], None, {})


def test_an_env_without_a_secrets_file_needs_no_master_key(tmp_path: Path) -> None:
    def no_key() -> LocalKeyProvider:
        raise AssertionError("the master key must not be loaded")

    store = SecretStore(tmp_path, "staging", LazyKeyProvider("local", no_key))

    assert resolve_secrets(["TOKEN"], store, {"TOKEN": "from-env-1"}) == {"TOKEN": "from-env-1"}
    assert resolve_secrets([], store, {}) == {}


def test_resolved_values_are_masked_from_then_on(store: SecretStore) -> None:
    resolve_secrets(["DATABASE_URL", "TOKEN"], store, {"TOKEN": "exported-token"})

    assert mask("db=postgres://prod-db/app token=exported-token") == "db=*** token=***"


def test_duplicate_names_resolve_once(store: SecretStore) -> None:
    assert resolve_secrets(["DATABASE_URL", "DATABASE_URL"], store, {}) == {
        "DATABASE_URL": "postgres://prod-db/app"
    }
