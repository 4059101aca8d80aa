"""The one registry access module: the plain-http rule, https by default, one credentials rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.adapters.registry import RegistryClient, registry_credentials, registry_is_insecure
from shipyard.domain.spec import RegistrySpec


@pytest.mark.parametrize(
    ("server", "insecure"),
    [
        ("127.0.0.1:5000", True),
        ("127.0.1.7:5000", True),
        ("localhost:5000", True),
        ("localhost", True),
        ("[::1]:5000", True),
        ("registry.example:5000", False),
        ("10.0.0.5:5000", False),
        # Looks like loopback to a prefix test, but is a name that resolves anywhere.
        ("127.example.com:5000", False),
        ("localhost.example.com:5000", False),
    ],
)
def test_plain_http_only_to_a_loopback_registry(server: str, insecure: bool) -> None:
    assert registry_is_insecure(RegistrySpec(), server) is insecure


def test_registry_insecure_setting_allows_plain_http_to_any_registry() -> None:
    assert registry_is_insecure(RegistrySpec(insecure=True), "registry.internal:5000") is True


def test_the_client_speaks_https_unless_told_otherwise() -> None:
    secure = RegistryClient("registry.example:5000", None)
    plain = RegistryClient("127.0.0.1:5000", None, insecure=True)
    try:
        assert secure.base == "https://registry.example:5000"
        assert plain.base == "http://127.0.0.1:5000"
    finally:
        secure.close()
        plain.close()


def test_credential_files_are_relative_to_the_given_directory_without_a_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir = tmp_path / "app"
    config_dir.mkdir()
    (config_dir / "user").write_text("ci\n")
    (config_dir / "password").write_text("s3cret-registry-pass\n")
    monkeypatch.chdir(tmp_path)  # the working directory plays no part
    spec = RegistrySpec(username_file="user", password_file="password")

    credentials = registry_credentials(spec, None, config_dir, {})

    assert credentials is not None
    assert (credentials.username, credentials.password) == ("ci", "s3cret-registry-pass")


def test_names_come_from_the_environment_without_a_store() -> None:
    spec = RegistrySpec(username_env="REG_USER", password_env="REG_PASS")

    credentials = registry_credentials(spec, None, Path("."), {"REG_USER": "ci", "REG_PASS": "pw-123456"})

    assert credentials is not None and credentials.username == "ci"
    assert registry_credentials(spec, None, Path("."), {"REG_USER": "ci"}) is None
