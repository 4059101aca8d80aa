"""Build secrets and registry logins: resolved before a build, kept in files only their owner reads."""

from __future__ import annotations

import base64
import secrets
import stat
import tempfile
from pathlib import Path

import pytest

from shipyard.adapters.registry import Credentials, registry_credentials
from shipyard.domain.spec import BuildSecretSpec, RegistrySpec, SecretsSpec
from shipyard.errors import BuildError, ConfigError, SecretError
from shipyard.imaging.build_secrets import (
    available_build_secrets,
    known_secret_values,
    resolve_build_secrets,
    secret_files,
)
from shipyard.secrets.factory import open_store
from shipyard.secrets.masking import forget_registered_secrets, mask
from shipyard.secrets.store import SecretStore

NPM_TOKEN = "npm_4f9c2b7e1d0a"
DB_URL = "postgres://app:hunter2@db/app"


@pytest.fixture(autouse=True)
def _forget_masks() -> None:
    forget_registered_secrets()


@pytest.fixture
def store(tmp_path: Path) -> SecretStore:
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    return open_store(SecretsSpec(), tmp_path, "production", environ={"SHIPYARD_MASTER_KEY": key})


def test_values_come_from_env_file_and_store(store: SecretStore, tmp_path: Path) -> None:
    store.set("NPM_TOKEN", NPM_TOKEN)
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "deploy").write_text("-----key-----\n")
    specs = [
        BuildSecretSpec(id="npm", secret="NPM_TOKEN"),
        BuildSecretSpec(id="deploy_key", file="keys/deploy"),
        BuildSecretSpec(id="db", env="BUILD_DB_URL"),
    ]

    values = resolve_build_secrets(specs, store, tmp_path, environ={"BUILD_DB_URL": DB_URL})

    assert values == {"npm": NPM_TOKEN, "deploy_key": "-----key-----\n", "db": DB_URL}
    assert mask(f"token {NPM_TOKEN}") == "token ***"


def test_a_plain_name_reads_the_store_entry_of_that_name(store: SecretStore, tmp_path: Path) -> None:
    store.set("NPM_TOKEN", NPM_TOKEN)
    specs = [BuildSecretSpec.model_validate("NPM_TOKEN")]

    values = resolve_build_secrets(specs, store, tmp_path, environ={})

    assert values == {"NPM_TOKEN": NPM_TOKEN}


def test_the_store_wins_over_the_environment(store: SecretStore, tmp_path: Path) -> None:
    store.set("NPM_TOKEN", NPM_TOKEN)
    specs = [BuildSecretSpec(id="npm", secret="NPM_TOKEN")]

    values = resolve_build_secrets(specs, store, tmp_path, environ={"NPM_TOKEN": "stray-shell-value"})

    assert values == {"npm": NPM_TOKEN}


def test_every_missing_secret_is_named_at_once_without_any_value(store: SecretStore, tmp_path: Path) -> None:
    store.set("OTHER", "other-value-123")
    specs = [
        BuildSecretSpec(id="npm", secret="NPM_TOKEN"),
        BuildSecretSpec(id="key", file="nowhere/id_rsa"),
        BuildSecretSpec(id="db", env="BUILD_DB_URL"),
        BuildSecretSpec(id="ok", env="PRESENT"),
    ]

    with pytest.raises(SecretError) as caught:
        resolve_build_secrets(specs, store, tmp_path, environ={"PRESENT": "present-value-1"})

    message = caught.value.message
    assert "needs 3 secrets" in message
    assert "secret NPM_TOKEN" in message and "shipyard secrets set NPM_TOKEN --env production" in message
    assert "file nowhere/id_rsa" in message and "environment variable BUILD_DB_URL" in message
    assert "present-value-1" not in message and "other-value-123" not in message
    assert len(caught.value.details) == 3


def test_available_build_secrets_skips_the_missing_ones(store: SecretStore, tmp_path: Path) -> None:
    specs = [BuildSecretSpec(id="npm", secret="NPM_TOKEN"), BuildSecretSpec(id="db", env="BUILD_DB_URL")]

    assert available_build_secrets(specs, store, tmp_path, environ={"BUILD_DB_URL": DB_URL}) == {"db": DB_URL}


def test_secret_files_are_private_and_deleted_afterwards(tmp_path: Path) -> None:
    with secret_files({"npm": NPM_TOKEN, "db": DB_URL}, outside=tmp_path / "context") as files:
        folder = files["npm"].parent
        assert files["npm"].read_text() == NPM_TOKEN and files["db"].read_text() == DB_URL
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert {stat.S_IMODE(path.stat().st_mode) for path in files.values()} == {0o600}
        assert NPM_TOKEN not in str(files["npm"]) and "npm" not in files["npm"].name

    assert not folder.exists()


def test_secret_files_are_deleted_when_the_build_fails(tmp_path: Path) -> None:
    with pytest.raises(BuildError), secret_files({"npm": NPM_TOKEN}) as files:
        folder = files["npm"].parent
        raise BuildError("the build failed")

    assert not folder.exists()


def test_secret_files_never_land_inside_the_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)

    with (
        pytest.raises(BuildError, match="inside the build context"),
        secret_files({"a": "b"}, outside=tmp_path),
    ):
        pass
    assert not list(tmp_path.glob("shipyard-build-secrets-*"))


def test_registry_login_reads_the_store_then_the_environment(store: SecretStore, tmp_path: Path) -> None:
    store.set("REG_PASS", "store-password-1")
    spec = RegistrySpec(username_env="REG_USER", password_env="REG_PASS")

    credentials = registry_credentials(spec, store, tmp_path, {"REG_USER": "ci", "REG_PASS": "env-password"})

    assert credentials is not None
    assert (credentials.username, credentials.password) == ("ci", "store-password-1")
    assert mask("store-password-1") == "***"


def test_registry_login_from_files(store: SecretStore, tmp_path: Path) -> None:
    (tmp_path / "user").write_text("ci\n")
    (tmp_path / "pass").write_text("file-password\n")
    spec = RegistrySpec(username_file="user", password_file="pass")

    credentials = registry_credentials(spec, store, tmp_path, {})

    assert credentials is not None and credentials.password == "file-password"


def test_registry_login_is_optional_without_push_and_named_with_push(
    store: SecretStore, tmp_path: Path
) -> None:
    spec = RegistrySpec(username_env="REG_USER", password_env="REG_PASS")

    assert registry_credentials(spec, store, tmp_path, {"REG_USER": "ci"}) is None
    with pytest.raises(SecretError, match="REG_PASS is not set"):
        registry_credentials(spec, store, tmp_path, {"REG_USER": "ci"}, required=True)


def test_no_registry_config_means_an_anonymous_push(store: SecretStore, tmp_path: Path) -> None:
    assert registry_credentials(RegistrySpec(), store, tmp_path, {}, required=True) is None


def test_an_unreadable_credential_file_is_a_config_error(store: SecretStore, tmp_path: Path) -> None:
    spec = RegistrySpec(username_file="missing-user", password_env="REG_PASS")

    with pytest.raises(ConfigError, match="missing-user"):
        registry_credentials(spec, store, tmp_path, {"REG_PASS": "x"})


def test_known_values_include_the_store_build_secrets_and_registry_password(store: SecretStore) -> None:
    store.set("DATABASE_URL", DB_URL)
    known = known_secret_values(store, {"npm": NPM_TOKEN}, Credentials("ci", "reg-password"))

    assert known == {"DATABASE_URL": DB_URL, "npm": NPM_TOKEN, "registry password": "reg-password"}
