"""A preview's own database: cloned from a template in PostgreSQL, or made by the app's own commands.

`preview_databases(spec, secret)` turns an app's `previews.database` into the PreviewDatabases port
the controller calls when a preview opens (create -> its DATABASE_URL) and when it is torn down
(destroy). Both strategies are idempotent and name the database of PR N of APP `APP_pr_N` (dashes
as underscores), a name built here from a validated app name and an integer, and quoted as an
identifier all the same.

postgres: the admin URL, read from the preview environment's secret store on every call (so a
rotated one is picked up and none is kept in memory), connects to a database other than the
template; `CREATE DATABASE APP_pr_N TEMPLATE <template>` copies the template's schema and rows. The
preview gets the admin URL's server and credentials with the new database's name: PostgreSQL copies
the template's objects with their owners, so a separate role would not own the tables its migrations
change. PostgreSQL refuses to copy a database others are connected to; that is reported as one error
naming how many sessions are in the way, rather than ending sessions of a database this adapter
does not own. `DROP DATABASE ... WITH (FORCE)` (PostgreSQL 13 and later) ends the preview's own
sessions; older servers get their sessions ended first, with new connections refused meanwhile.

hooks: the app's create and destroy argv, run without a shell, with only PREVIEW_APP, PREVIEW_PR and
PATH in their environment, stdin closed and a timeout that stops their whole process group. The last
line create prints on stdout is the DATABASE_URL: it is a secret, registered for masking and cut
from the output logged for the job.

The admin URL, its password and every DATABASE_URL are registered with shipyard.secrets.masking and
never enter an error message: connection failures are reported with the server's reason only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import psycopg
import structlog
from psycopg import sql

from shipyard.adapters.process_groups import command_name
from shipyard.domain import names
from shipyard.domain.previews import PreviewDatabases
from shipyard.domain.spec import PreviewDatabaseHooksSpec, PreviewDatabaseSpec, PreviewPostgresSpec
from shipyard.errors import ConfigError, ExternalError, NotFoundError
from shipyard.secrets.masking import MASK, mask, register_secret

log = structlog.get_logger("shipyard.previews.database")

MAX_PR = 99_999_999
POSTGRES_SCHEMES = frozenset({"postgres", "postgresql"})
CONNECT_TIMEOUT_S = 10
# `DROP DATABASE ... WITH (FORCE)` exists from PostgreSQL 13 (server_version 130000) on.
FORCE_DROP_VERSION = 130_000
# Older servers: sessions are ended, then the drop is tried again while a straggler reconnects.
DROP_ATTEMPTS = 5
DROP_RETRY_S = 0.2
HOOK_TIMEOUT_S = 300.0
# After a timeout's SIGKILL, how long to wait for the pipes of a process that escaped its group.
HOOK_REAP_S = 5.0
STDERR_TAIL_LINES = 5
MAX_REASON = 300


def preview_database_name(app: str, pr: int) -> str:
    """`APP_pr_N`, dashes as underscores: a lowercase PostgreSQL identifier of at most 49 characters."""
    _check_preview(app, pr)
    return f"{app.replace('-', '_')}_pr_{pr}"


def _check_preview(app: str, pr: int) -> None:
    if not isinstance(app, str) or not names.is_name(names.APP_NAME, app):
        raise ConfigError(
            f"{app!r} is not an app name: use lowercase letters, digits and dashes, starting with a letter."
        )
    if isinstance(pr, bool) or not isinstance(pr, int) or not 1 <= pr <= MAX_PR:
        raise ConfigError(f"{pr!r} is not a pull request number: give a whole number from 1 to {MAX_PR}.")


def _register(value: str | None) -> None:
    if value:
        register_secret(value)
        register_secret(unquote(value))


def _scrub(text: str, secrets: Sequence[str | None]) -> str:
    """`text` without any of `secrets` (registered or not) in it."""
    for value in sorted((v for v in secrets if v), key=len, reverse=True):
        text = text.replace(value, MASK).replace(unquote(value), MASK)
    return mask(text)


@dataclass(frozen=True)
class AdminUrl:
    """The parts of a postgres:// admin URL; the URL itself never appears in its repr."""

    secret_name: str
    scheme: str
    netloc: str = field(repr=False)
    query: str = field(repr=False)
    path: str = field(repr=False)
    password: str | None = field(repr=False)

    @classmethod
    def parse(cls, value: str, secret_name: str) -> AdminUrl:
        _register(value.strip())  # masked even when it turns out not to be a PostgreSQL URL
        try:
            parts = urlsplit(value.strip())
            password = parts.password
        except ValueError:
            parts = None
            password = None
        _register(password)
        if parts is None or parts.scheme.split("+", 1)[0].lower() not in POSTGRES_SCHEMES:
            raise ConfigError(
                f"the secret {secret_name} is not a PostgreSQL URL: store one like "
                "postgresql://USER:PASSWORD@HOST:5432/postgres in the preview environment."
            )
        return cls(secret_name, parts.scheme, parts.netloc, parts.query, parts.path, password)

    @property
    def conninfo(self) -> str:
        """The URL as libpq takes it: a SQLAlchemy-style `postgresql+psycopg://` loses its driver."""
        return _url("postgresql", self.netloc, self.path, self.query)

    def database_url(self, database: str) -> str:
        """The same server, credentials and options, on `database`; in the admin URL's own scheme."""
        url = _url(self.scheme, self.netloc, "/" + database, self.query)
        _register(url)
        return url

    def scrub(self, text: str) -> str:
        return _scrub(text, [self.conninfo, self.netloc, self.password])


def _url(scheme: str, netloc: str, path: str, query: str) -> str:
    # urlunsplit drops the `//` of a URL without a host (`postgresql:///db?host=/run/postgresql`, a
    # unix socket) for schemes it does not know, which libpq would no longer read as a URL.
    return f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "")


def _reason(exc: BaseException, admin: AdminUrl) -> str:
    """The server's one-line reason for `exc`, with nothing of the admin URL in it."""
    primary = getattr(getattr(exc, "diag", None), "message_primary", None)
    lines = [line.strip() for line in str(primary or exc).splitlines() if line.strip()]
    text = admin.scrub(lines[0] if lines else type(exc).__name__).rstrip(".")
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."


class PostgresTemplateDatabases:
    """PreviewDatabases by `CREATE DATABASE APP_pr_N TEMPLATE <template>` on the admin URL's server."""

    def __init__(self, spec: PreviewPostgresSpec, secret: Callable[[str], str]) -> None:
        self._spec = spec
        self._secret = secret

    def __repr__(self) -> str:
        return (
            f"PostgresTemplateDatabases(template={self._spec.template!r}, "
            f"admin_url_secret={self._spec.admin_url_secret!r})"
        )

    @contextmanager
    def _admin(self) -> Iterator[tuple[psycopg.Connection[tuple[object, ...]], AdminUrl]]:
        name = self._spec.admin_url_secret
        admin = AdminUrl.parse(self._secret(name), name)
        try:
            connection = psycopg.connect(admin.conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            # Not chained: libpq may quote pieces of the connection string in its message.
            raise ExternalError(
                f"cannot connect to the PostgreSQL server of the secret {name} ({_reason(exc, admin)}); "
                "check that the server is up and that the URL's host, port and credentials are right."
            ) from None
        with connection:
            yield connection, admin

    def create(self, app: str, pr: int) -> str:
        database = preview_database_name(app, pr)
        template = self._spec.template
        with self._admin() as (connection, admin):
            url = admin.database_url(database)
            current = _one(connection, "SELECT current_database()")
            if current == template:
                raise ConfigError(
                    f"the secret {admin.secret_name} connects to the template database {template} itself, "
                    "which PostgreSQL cannot copy while it is in use: point it at another database such "
                    "as postgres."
                )
            if _exists(connection, database):
                return url
            statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(database), sql.Identifier(template)
            )
            started = time.monotonic()
            try:
                connection.execute(statement)
            except psycopg.errors.DuplicateDatabase:
                return url  # created meanwhile by a concurrent call: the same database
            except psycopg.errors.InvalidCatalogName as exc:
                raise NotFoundError(
                    f"the template database {template} does not exist on the server of the secret "
                    f"{admin.secret_name}: create it, or fix previews.database.postgres.template."
                ) from exc
            except psycopg.errors.ObjectInUse as exc:
                sessions = _sessions(connection, template)
                raise ExternalError(
                    f"PostgreSQL cannot copy the template database {template} while {sessions} other "
                    f"session(s) are connected to it: close them (a psql, a migration, an app's pool) "
                    "and open the preview again."
                ) from exc
            except psycopg.errors.InsufficientPrivilege as exc:
                raise ExternalError(
                    f"the role of the secret {admin.secret_name} may not create {database} from "
                    f"{template} ({_reason(exc, admin)}): give it CREATEDB and make it the owner of the "
                    "template, or mark the template as one (ALTER DATABASE ... IS_TEMPLATE true)."
                ) from exc
            except psycopg.Error as exc:
                raise ExternalError(
                    f"creating the preview database {database} from {template} failed "
                    f"({_reason(exc, admin)}); see the PostgreSQL server's log."
                ) from exc
            log.info(
                "preview database created",
                database=database,
                template=template,
                seconds=round(time.monotonic() - started, 3),
            )
        return url

    def destroy(self, app: str, pr: int) -> None:
        database = preview_database_name(app, pr)
        if database == self._spec.template:
            raise ConfigError(
                f"the preview database {database} is the template itself; rename the template "
                "(previews.database.postgres.template) so that dropping a preview cannot drop it."
            )
        with self._admin() as (connection, admin):
            try:
                if connection.info.server_version >= FORCE_DROP_VERSION:
                    connection.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
                    )
                else:
                    drop_ending_sessions(connection, database)
            except psycopg.errors.InsufficientPrivilege as exc:
                raise ExternalError(
                    f"the role of the secret {admin.secret_name} may not drop {database} "
                    f"({_reason(exc, admin)}): use the role that created it (its owner) or a superuser."
                ) from exc
            except psycopg.Error as exc:
                raise ExternalError(
                    f"dropping the preview database {database} failed ({_reason(exc, admin)}); "
                    "see the PostgreSQL server's log."
                ) from exc
            log.info("preview database dropped", database=database)


def drop_ending_sessions(connection: psycopg.Connection[tuple[object, ...]], database: str) -> None:
    """DROP DATABASE on servers before 13 (no FORCE): refuse new connections, end the open ones, drop.

    A session that connected between the end and the drop makes the drop fail; it is tried again."""
    identifier = sql.Identifier(database)
    for attempt in range(DROP_ATTEMPTS):
        if not _exists(connection, database):
            return
        connection.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(identifier))
        connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )
        try:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(identifier))
            return
        except psycopg.errors.ObjectInUse:
            if attempt == DROP_ATTEMPTS - 1:
                raise
            time.sleep(DROP_RETRY_S)


def _one(connection: psycopg.Connection[tuple[object, ...]], query: str) -> object:
    row = connection.execute(query).fetchone()
    return row[0] if row else None


def _exists(connection: psycopg.Connection[tuple[object, ...]], database: str) -> bool:
    found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
    return found is not None


def _sessions(connection: psycopg.Connection[tuple[object, ...]], database: str) -> int:
    row = connection.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (database,)
    ).fetchone()
    return int(str(row[0])) if row else 0


@dataclass(frozen=True)
class HookRun:
    """One hook's outcome, as logged for the job (the DATABASE_URL already cut out)."""

    hook: str
    command: str
    status: int
    stdout: str
    stderr: str
    seconds: float


class HookDatabases:
    """PreviewDatabases by the app's own create and destroy commands."""

    def __init__(
        self, spec: PreviewDatabaseHooksSpec, *, timeout: float = HOOK_TIMEOUT_S, path: str | None = None
    ) -> None:
        self._spec = spec
        self._timeout = timeout
        self._path = path if path is not None else os.environ.get("PATH", os.defpath)

    def __repr__(self) -> str:
        return (
            f"HookDatabases(create={command_name(self._spec.create)!r}, "
            f"destroy={command_name(self._spec.destroy)!r})"
        )

    def create(self, app: str, pr: int) -> str:
        run, stdout = self._run("create", self._spec.create, app, pr)
        lines = [line for line in stdout.splitlines() if line.strip()]
        if not lines:
            _log_run(run)
            raise ExternalError(
                f"the create hook ({run.command}) printed no DATABASE_URL: make its last line of stdout "
                "the preview's database URL."
            )
        url = lines[-1].strip()
        _register(url)
        with contextlib.suppress(ValueError):
            _register(urlsplit(url).password)
        logged = _scrub("\n".join(lines[:-1]), [url])
        _log_run(HookRun(run.hook, run.command, run.status, logged, _scrub(run.stderr, [url]), run.seconds))
        return url

    def destroy(self, app: str, pr: int) -> None:
        run, stdout = self._run("destroy", self._spec.destroy, app, pr)
        _log_run(HookRun(run.hook, run.command, run.status, mask(stdout), run.stderr, run.seconds))

    def _run(self, hook: str, argv: Sequence[str], app: str, pr: int) -> tuple[HookRun, str]:
        """Runs one hook; returns its run (stdout not yet logged) and its raw stdout."""
        _check_preview(app, pr)
        name = command_name(argv)
        # Only these: the controller's own environment holds its database URL and tokens.
        env = {"PREVIEW_APP": app, "PREVIEW_PR": str(pr), "PATH": self._path}
        started = time.monotonic()
        try:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                text=True,
                errors="replace",
                start_new_session=True,
            )
        except OSError as exc:
            raise ConfigError(
                f"the {hook} hook's program {argv[0]!r} cannot be run ({exc.strerror or exc}); give the "
                f"path of an executable file in previews.database.hooks.{hook}."
            ) from exc
        with process:
            try:
                stdout, stderr = process.communicate(timeout=self._timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.communicate(timeout=HOOK_REAP_S)
                raise ExternalError(
                    f"the {hook} hook ({name}) did not finish within {self._timeout:g} s and was stopped; "
                    "make it faster or find what it waits for."
                ) from None
        run = HookRun(hook, name, process.returncode, "", mask(stderr), round(time.monotonic() - started, 3))
        if run.status != 0:
            _log_run(HookRun(hook, name, run.status, mask(stdout), run.stderr, run.seconds))
            how = f"was killed by signal {-run.status}" if run.status < 0 else f"exited with {run.status}"
            raise ExternalError(f"the {hook} hook ({name}) {how}: {_tail(run.stderr)}.")
        return run, stdout


def _tail(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return "it wrote nothing on stderr"
    text = " | ".join(lines[-STDERR_TAIL_LINES:]).rstrip(".")
    return text if len(text) <= MAX_REASON else "..." + text[-(MAX_REASON - 3) :]


def _log_run(run: HookRun) -> None:
    log.info(
        "preview database hook",
        hook=run.hook,
        command=run.command,
        status=run.status,
        seconds=run.seconds,
        stdout=run.stdout.rstrip(),
        stderr=run.stderr.rstrip(),
    )


def preview_databases(spec: PreviewDatabaseSpec, secret: Callable[[str], str]) -> PreviewDatabases:
    """The strategy an app's `previews.database` names; `secret(name)` reads the preview environment's
    secret store (shipyard.errors.NotFoundError when the name is absent)."""
    if spec.postgres is not None:
        return PostgresTemplateDatabases(spec.postgres, secret)
    if spec.hooks is not None:
        return HookDatabases(spec.hooks)
    raise ConfigError("previews.database names no strategy: give postgres or hooks.")
