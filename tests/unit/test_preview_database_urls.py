"""The admin URL of the postgres strategy of preview databases: what a preview's URL keeps, what never
shows."""

from __future__ import annotations

import pytest

from shipyard.adapters.preview_databases import AdminUrl
from shipyard.errors import ConfigError
from shipyard.secrets.masking import mask


def test_the_preview_url_keeps_server_credentials_and_options_on_its_own_database() -> None:
    admin = AdminUrl.parse("postgres://previews:p%40ss@db.internal:6432/postgres?sslmode=require", "ADMIN")
    assert (
        admin.database_url("shop_pr_3")
        == "postgres://previews:p%40ss@db.internal:6432/shop_pr_3?sslmode=require"
    )
    assert admin.conninfo == "postgresql://previews:p%40ss@db.internal:6432/postgres?sslmode=require"


def test_a_sqlalchemy_url_is_connected_to_without_its_driver_and_handed_on_as_given() -> None:
    admin = AdminUrl.parse("postgresql+psycopg://previews:pw-1234@db/postgres", "ADMIN")
    assert admin.conninfo == "postgresql://previews:pw-1234@db/postgres"
    assert admin.database_url("shop_pr_1") == "postgresql+psycopg://previews:pw-1234@db/shop_pr_1"


def test_a_unix_socket_url_keeps_its_empty_host() -> None:
    admin = AdminUrl.parse("postgresql:///postgres?host=/run/postgresql&user=previews", "ADMIN")
    assert admin.conninfo == "postgresql:///postgres?host=/run/postgresql&user=previews"
    assert admin.database_url("shop_pr_2") == "postgresql:///shop_pr_2?host=/run/postgresql&user=previews"


@pytest.mark.parametrize(
    "value", ["mysql://root:hunter2-pw@db/shop", "previews:hunter2-pw@db", "postgresql://u:hunter2-pw@[::1/x"]
)
def test_an_admin_url_that_is_not_postgresql_is_refused_without_being_quoted(value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        AdminUrl.parse(value, "PREVIEW_DB_ADMIN_URL")
    assert str(raised.value) == (
        "the secret PREVIEW_DB_ADMIN_URL is not a PostgreSQL URL: store one like "
        "postgresql://USER:PASSWORD@HOST:5432/postgres in the preview environment."
    )
    assert "hunter2" not in str(raised.value)


def test_the_admin_url_and_its_password_are_masked_and_kept_out_of_reprs_and_reasons() -> None:
    admin = AdminUrl.parse("postgresql://previews:s3cret-pass-%2F@db:5432/postgres", "ADMIN")
    assert "s3cret" not in repr(admin)
    assert mask("login s3cret-pass-/ failed") == "login *** failed"
    assert mask("url postgresql://previews:s3cret-pass-%2F@db:5432/postgres") == "url ***"
    assert (
        admin.scrub('role "previews" with s3cret-pass-%2F at db:5432')
        == 'role "previews" with *** at db:5432'
    )
