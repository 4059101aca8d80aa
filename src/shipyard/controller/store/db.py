"""Engine, sessions and schema upgrades for SQLite and PostgreSQL.

SQLite has one writer at a time. Write transactions of this process are serialized by an in-process
lock, so threads queue in Python instead of spinning in SQLite's busy handler; each still starts with
BEGIN IMMEDIATE, which keeps another process sharing the file (or a deferred upgrade) from failing at
once. WAL mode lets readers proceed while a write runs; synchronous=NORMAL is durable across process
crashes in WAL mode and saves an fsync per commit.

The connection pool is sized to the worker threads that may touch the database at once, so a request
never queues for a connection behind long waits (long-polls hold no connection while they wait).

A SQLite database holds token hashes and release specs: its file is made 0600 before SQLite opens it,
and SQLite gives its -wal and -shm files the database file's mode.
"""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from shipyard.errors import ControllerError
from shipyard.files import create_private, restrict

SQLITE_BUSY_TIMEOUT_S = 30
# Worker threads of the app (anyio's threadpool, set at startup) and the pool that serves them; a few
# extra connections for the rollout loop and the scrape-time metrics collector.
WORKER_THREADS = 40
POOL_SIZE = WORKER_THREADS + 4
POOL_OVERFLOW = 8


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, issue BEGIN so the write lock can be taken up front.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for an in-memory database."""
    database = make_url(url).database
    if not url.startswith("sqlite") or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def make_private(path: Path) -> None:
    """The database file (created empty when absent) and any -wal/-shm/-journal left beside it, 0600."""
    try:
        create_private(path)
        for suffix in ("-wal", "-shm", "-journal"):
            restrict(path.with_name(path.name + suffix))
    except OSError as exc:
        raise ControllerError(
            f"cannot open the controller database {path}: {exc.strerror}; "
            "check --db and the directory's owner."
        ) from exc


def claim_sqlite_file(url: str) -> IO[bytes] | None:
    """For a SQLite file, an exclusive lock on DB.controller-lock held while the returned file stays
    open (the process's lifetime); ControllerError when another controller holds it. Replicas need
    PostgreSQL: two controllers on one SQLite file would both run the rollout loop."""
    database_file = sqlite_file(url)
    if database_file is None:
        return None
    lock_path = database_file.with_name(database_file.name + ".controller-lock")
    try:
        handle = lock_path.open("ab")
    except OSError as exc:
        raise ControllerError(f"cannot open {lock_path}: {exc.strerror}; check --db.") from exc
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.close()
        raise ControllerError(
            f"another controller already runs on {database_file}; run one controller per SQLite file, "
            "or run replicas on PostgreSQL (docs/replicas.md)."
        ) from exc
    return handle


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        pool: dict[str, Any] = {}
        if ":memory:" not in url and url.rstrip("/") != "sqlite:":
            pool = {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW}
        database_file = sqlite_file(url)
        if database_file is not None:
            make_private(database_file)
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}, **pool
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW)


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._reader = sessionmaker(self.engine, expire_on_commit=False)
        self._immediate = self.engine.execution_options(sqlite_immediate=True)
        self._writer = sessionmaker(self._immediate, expire_on_commit=False)
        # SQLite: one write transaction at a time in this process (reentrant for nested helpers).
        self._write_lock: threading.RLock | None = threading.RLock() if self.is_sqlite else None

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write transaction: committed when the block ends, rolled back when it raises."""
        if self._write_lock is None:
            with self._writer() as session, session.begin():
                yield session
            return
        with self._write_lock, self._writer() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._reader() as session, session.begin():
            yield session

    @contextmanager
    def core_transaction(self) -> Iterator[Connection]:
        """A write transaction on a plain connection, for hot paths that skip the ORM's unit of work."""
        if self._write_lock is None:
            with self._immediate.begin() as connection:
                yield connection
            return
        with self._write_lock, self._immediate.begin() as connection:
            yield connection

    @contextmanager
    def core_read(self) -> Iterator[Connection]:
        with self.engine.connect() as connection:
            yield connection

    def migrate(self) -> None:
        from shipyard.controller.store.migrate import upgrade_to_head

        try:
            upgrade_to_head(self.engine)
        except OperationalError as exc:
            raise ControllerError(
                f"cannot open the controller database ({exc.orig}); check --db and that the server is up."
            ) from exc

    def dispose(self) -> None:
        self.engine.dispose()
