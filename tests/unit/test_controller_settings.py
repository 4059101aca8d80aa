"""Settings are values; load_settings gathers them, writing the bootstrap token file when asked."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from shipyard.controller.server.settings import ControllerSettings, load_settings
from shipyard.errors import ConfigError


def test_default_database_lives_under_shipyard_home(tmp_path: Path) -> None:
    settings = load_settings(environ={"SHIPYARD_HOME": str(tmp_path / "home")})
    assert settings.database_url == f"sqlite:///{tmp_path / 'home' / 'shipyard-controller.db'}"
    assert (tmp_path / "home").is_dir()


def test_admin_token_from_the_environment_is_kept_out_of_repr(tmp_path: Path) -> None:
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path}/c.db", environ={"SHIPYARD_ADMIN_TOKEN": "s3cret"}
    )
    assert settings.bootstrap_admin_token == "s3cret"
    assert "s3cret" not in repr(settings)


def test_bootstrap_file_is_created_private_and_then_reused(tmp_path: Path) -> None:
    token_file = tmp_path / "admin.token"
    first = load_settings(database_url="sqlite:///x.db", bootstrap_token_file=token_file, environ={})
    assert first.bootstrap_admin_token and token_file.read_text().strip() == first.bootstrap_admin_token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    again = load_settings(database_url="sqlite:///x.db", bootstrap_token_file=token_file, environ={})
    assert again.bootstrap_admin_token == first.bootstrap_admin_token


@pytest.mark.parametrize("url", ["mysql://x/y", "http://nope"])
def test_unsupported_databases_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        load_settings(database_url=url, environ={})


def test_settings_is_a_plain_value() -> None:
    assert ControllerSettings(database_url="sqlite://").lost_after == 30.0


@pytest.mark.parametrize(
    ("text", "size"), [("1048576", 1 << 20), ("1MiB", 1 << 20), ("512KiB", 512 << 10), ("2MB", 2_000_000)]
)
def test_max_body_takes_bytes_or_a_unit(tmp_path: Path, text: str, size: int) -> None:
    settings = load_settings(database_url=f"sqlite:///{tmp_path}/c.db", environ={}, max_body=text)
    assert settings.max_body == size


def test_max_body_defaults_to_one_mebibyte(tmp_path: Path) -> None:
    assert load_settings(database_url=f"sqlite:///{tmp_path}/c.db", environ={}).max_body == 1 << 20


@pytest.mark.parametrize("text", ["0", "-1", "1.5MiB", "2GiB", "1TB", "lots", "", "\u0663"])
def test_a_max_body_that_is_not_a_sane_size_is_refused_in_one_sentence(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match=r"^--max-body .* is not a size from 1 byte to 1GiB; .*\.$"):
        load_settings(database_url=f"sqlite:///{tmp_path}/c.db", environ={}, max_body=text)


def test_the_job_lease_defaults_to_thirty_seconds_and_can_be_shortened(tmp_path: Path) -> None:
    assert load_settings(database_url=f"sqlite:///{tmp_path}/c.db", environ={}).job_lease == 30.0
    assert load_settings(database_url=f"sqlite:///{tmp_path}/c.db", environ={}, job_lease=10).job_lease == 10


@pytest.mark.parametrize("seconds", [0, 2.9, -5, 3601, float("nan"), float("inf")])
def test_a_job_lease_out_of_range_is_refused_in_one_sentence(tmp_path: Path, seconds: float) -> None:
    with pytest.raises(ConfigError, match=r"^--job-lease .* is out of range; give 3 to 3600 seconds .*\.$"):
        load_settings(database_url=f"sqlite:///{tmp_path}/c.db", environ={}, job_lease=seconds)
