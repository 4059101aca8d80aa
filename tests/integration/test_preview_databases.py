"""The postgres strategy of preview databases, against the suite's shared PostgreSQL.

Each test has an admin role of its own (with a password in its URL: the server trusts local
connections, so the password is never checked, but it travels through every code path) that owns a
template holding a table with one row, and an app name of its own, so tests never share a database.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg
import pytest
from controller_fixtures import shared_postgres
from pydantic import ValidationError
from structlog.testing import capture_logs

from shipyard.adapters.preview_databases import (
    PostgresTemplateDatabases,
    drop_ending_sessions,
    preview_database_name,
    preview_databases,
)
from shipyard.domain.spec import PreviewDatabaseSpec, PreviewPostgresSpec
from shipyard.errors import ConfigError, ExternalError, NotFoundError, ShipyardError
from shipyard.lab.ports import free_port
from shipyard.lab.postgres import PostgresServer

pytestmark = pytest.mark.integration

ADMIN_SECRET = "PREVIEW_DB_ADMIN_URL"
ROW = "hello from the template"


@dataclass
class Setup:
    server: PostgresServer
    role: str
    password: str
    template: str
    app: str

    def admin_url(self, database: str = "postgres", port: int | None = None) -> str:
        return (
            f"postgresql://{self.role}:{self.password}@127.0.0.1:{port or self.server.port}/{database}"
            "?application_name=previews"
        )

    def databases(
        self, admin_url: str | None = None, template: str | None = None
    ) -> PostgresTemplateDatabases:
        spec = PreviewDatabaseSpec(
            postgres=PreviewPostgresSpec(template=template or self.template, admin_url_secret=ADMIN_SECRET)
        )
        adapter = preview_databases(spec, secret_store({ADMIN_SECRET: admin_url or self.admin_url()}))
        assert isinstance(adapter, PostgresTemplateDatabases)
        return adapter


def secret_store(values: dict[str, str]) -> Callable[[str], str]:
    def secret(name: str) -> str:
        if name not in values:
            raise NotFoundError(f"the preview environment has no secret {name}.")
        return values[name]

    return secret


def superuser(server: PostgresServer) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        host="127.0.0.1", port=server.port, user="postgres", dbname="postgres", autocommit=True
    )


def database_names(server: PostgresServer) -> set[str]:
    with superuser(server) as connection:
        return {str(row[0]) for row in connection.execute("SELECT datname FROM pg_database")}


@pytest.fixture
def setup() -> Iterator[Setup]:
    server = shared_postgres()
    suffix = uuid.uuid4().hex[:8]
    found = Setup(server, f"previews_{suffix}", f"pw-{uuid.uuid4().hex}", f"tmpl_{suffix}", f"pv-{suffix}")
    with superuser(server) as connection:
        connection.execute(f"CREATE ROLE {found.role} LOGIN CREATEDB PASSWORD '{found.password}'")
        connection.execute(f"CREATE DATABASE {found.template} OWNER {found.role}")
    with psycopg.connect(found.admin_url(found.template), autocommit=True) as connection:
        connection.execute("CREATE TABLE greeting (id int PRIMARY KEY, text text NOT NULL)")
        connection.execute("INSERT INTO greeting VALUES (1, %s)", (ROW,))
    yield found
    with superuser(server) as connection:
        for (name,) in connection.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s OR datname = %s",
            (found.app.replace("-", "_") + "_pr_%", found.template),
        ).fetchall():
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f"DROP ROLE IF EXISTS {found.role}")


def read_row(url: str) -> str:
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT text FROM greeting WHERE id = 1").fetchone()
    assert row is not None
    return str(row[0])


def test_the_database_name_is_the_app_and_pr_with_dashes_as_underscores() -> None:
    assert preview_database_name("my-shop", 12) == "my_shop_pr_12"
    assert preview_database_name("a" * 28, 99_999_999) == "a" * 28 + "_pr_99999999"


def test_create_clones_the_template_and_destroy_drops_it_checked_in_postgresql(setup: Setup) -> None:
    databases = setup.databases()
    name = preview_database_name(setup.app, 7)

    url = databases.create(setup.app, 7)

    assert url == setup.admin_url(name)  # same server, role and options, the preview's own database
    assert name in database_names(setup.server)
    assert read_row(url) == ROW
    with psycopg.connect(url, autocommit=True) as connection:  # the preview's own change...
        connection.execute("INSERT INTO greeting VALUES (2, 'written by the preview')")
    assert databases.create(setup.app, 7) == url  # ...survives a second create: it found the database
    with psycopg.connect(url) as connection:
        assert connection.execute("SELECT count(*) FROM greeting").fetchone() == (2,)
    with psycopg.connect(setup.admin_url(setup.template)) as connection:  # the template is untouched
        assert connection.execute("SELECT count(*) FROM greeting").fetchone() == (1,)

    databases.destroy(setup.app, 7)
    assert name not in database_names(setup.server)
    databases.destroy(setup.app, 7)  # a database already gone is no error
    assert setup.template in database_names(setup.server)


def test_destroy_drops_a_database_the_preview_still_has_connections_to(setup: Setup) -> None:
    databases = setup.databases()
    url = databases.create(setup.app, 8)
    held = psycopg.connect(url, autocommit=True)
    try:
        databases.destroy(setup.app, 8)
        assert preview_database_name(setup.app, 8) not in database_names(setup.server)
        with pytest.raises(psycopg.OperationalError):
            held.execute("SELECT 1")
    finally:
        held.close()


def test_the_drop_of_servers_before_13_ends_the_sessions_first(setup: Setup) -> None:
    url = setup.databases().create(setup.app, 9)
    name = preview_database_name(setup.app, 9)
    held = psycopg.connect(url, autocommit=True)
    try:
        with psycopg.connect(setup.admin_url(), autocommit=True) as admin:
            drop_ending_sessions(admin, name)
            drop_ending_sessions(admin, name)  # already gone: nothing to do
        assert name not in database_names(setup.server)
    finally:
        held.close()


def test_a_missing_template_is_one_clear_error_and_creates_nothing(setup: Setup) -> None:
    databases = setup.databases(template="no_such_template")
    with pytest.raises(NotFoundError) as raised:
        databases.create(setup.app, 3)
    assert str(raised.value) == (
        f"the template database no_such_template does not exist on the server of the secret {ADMIN_SECRET}: "
        "create it, or fix previews.database.postgres.template."
    )
    assert preview_database_name(setup.app, 3) not in database_names(setup.server)


def test_a_template_others_are_connected_to_is_one_clear_error(setup: Setup) -> None:
    databases = setup.databases()
    with psycopg.connect(setup.admin_url(setup.template)), pytest.raises(ExternalError) as raised:
        databases.create(setup.app, 4)
    # At least our session: a backend of an earlier test may still be on its way out.
    assert re.match(
        rf"PostgreSQL cannot copy the template database {setup.template} while [1-9][0-9]* other "
        r"session\(s\) are connected to it: close them",
        str(raised.value),
    ), str(raised.value)
    assert preview_database_name(setup.app, 4) not in database_names(setup.server)
    assert databases.create(setup.app, 4)  # once they are gone, it works


def test_an_admin_url_on_the_template_itself_is_refused(setup: Setup) -> None:
    databases = setup.databases(admin_url=setup.admin_url(setup.template))
    with pytest.raises(ConfigError, match="connects to the template database"):
        databases.create(setup.app, 5)


@pytest.mark.parametrize(
    ("app", "pr"),
    [
        ('x"; DROP DATABASE postgres; --', 1),
        ("shop", "1; DROP DATABASE postgres"),
        ("Shop", 1),
        ("shop", True),
        ("shop", 0),
        ("shop", 100_000_000),
    ],
)
def test_names_that_would_be_sql_are_refused_before_any_statement(setup: Setup, app: str, pr: int) -> None:
    before = database_names(setup.server)
    databases = setup.databases()
    with pytest.raises(ConfigError):
        databases.create(app, pr)
    with pytest.raises(ConfigError):
        databases.destroy(app, pr)
    assert database_names(setup.server) == before


def test_a_template_name_that_is_not_an_identifier_is_refused_by_the_spec() -> None:
    with pytest.raises(ValidationError):
        PreviewPostgresSpec(template='tmpl" OWNER postgres --', admin_url_secret=ADMIN_SECRET)


def test_the_password_appears_in_no_error_log_or_repr(setup: Setup) -> None:
    unreachable = setup.databases(admin_url=setup.admin_url(port=free_port()))
    missing_template = setup.databases(template="absent_template")
    not_postgres = setup.databases(admin_url=f"mysql://root:{setup.password}@127.0.0.1/shop")
    errors: list[ShipyardError] = []
    with capture_logs() as logs:
        for databases, action in [
            (unreachable, "create"),
            (unreachable, "destroy"),
            (missing_template, "create"),
            (not_postgres, "create"),
        ]:
            with pytest.raises(ShipyardError) as raised:
                getattr(databases, action)(setup.app, 6)
            errors.append(raised.value)
        url = setup.databases().create(setup.app, 6)
        setup.databases().destroy(setup.app, 6)
    assert setup.password in url  # the preview's own URL carries it, for the preview only
    assert "cannot connect to the PostgreSQL server of the secret" in str(errors[0])
    for error in errors:
        assert setup.password not in str(error)
        assert setup.password not in repr(error)
        assert error.__cause__ is None or setup.password not in str(error.__cause__)
    assert logs
    assert setup.password not in repr(logs)
    assert setup.password not in repr(setup.databases())


def test_a_missing_admin_url_secret_is_the_stores_not_found_error(setup: Setup) -> None:
    spec = PreviewDatabaseSpec(
        postgres=PreviewPostgresSpec(template=setup.template, admin_url_secret=ADMIN_SECRET)
    )
    with pytest.raises(NotFoundError, match=ADMIN_SECRET):
        preview_databases(spec, secret_store({})).create(setup.app, 1)


def test_an_admin_url_through_the_unix_socket_gives_a_url_through_it_too(setup: Setup) -> None:
    socket_url = f"postgresql:///postgres?host={setup.server.root}&port={setup.server.port}&user={setup.role}"
    databases = setup.databases(admin_url=socket_url)
    url = databases.create(setup.app, 10)
    assert url.startswith(f"postgresql:///{preview_database_name(setup.app, 10)}?host=")
    assert read_row(url) == ROW
    databases.destroy(setup.app, 10)
    assert preview_database_name(setup.app, 10) not in database_names(setup.server)
