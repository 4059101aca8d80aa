"""A throwaway PostgreSQL server for tests and the local lab: initdb, start, hand out URLs, stop, delete.

initdb refuses to run as root, so as uid 0 the data directory is given to the `postgres` system user
and the server tools run through `runuser`. Every server lives in its own fresh temporary directory,
listens on 127.0.0.1 only and keeps its unix socket there too, so leftovers of earlier runs never collide.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from shipyard.errors import ExternalError
from shipyard.lab.ports import free_port

SYSTEM_USER = "postgres"
START_TIMEOUT_S = 60


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", SYSTEM_USER, "--", *command] if os.geteuid() == 0 else command


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(_as_server_user(command), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise ExternalError(f"PostgreSQL {what} failed: {' | '.join(tail)}")


@dataclass
class PostgresServer:
    root: Path
    port: int

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _admin_connection(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        )

    def create_database(self, prefix: str = "shipyard") -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with self._admin_connection() as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with self._admin_connection() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self.data_dir.exists():
            command = ["pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"]
            subprocess.run(_as_server_user(command), capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _prepare_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="shipyard-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, user=SYSTEM_USER, group=SYSTEM_USER)
    return root


def start_postgres() -> PostgresServer:
    for binary in ("initdb", "pg_ctl"):
        if shutil.which(binary) is None:
            raise ExternalError(f"{binary} is not on PATH; install the PostgreSQL server package.")
    server = PostgresServer(root=_prepare_root(), port=free_port())
    try:
        _run(["initdb", "-D", str(server.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8"], "initdb")
        options = f"-c listen_addresses=127.0.0.1 -p {server.port} -k {server.root} -c fsync=off"
        log = server.root / "server.log"
        command = ["pg_ctl", "-D", str(server.data_dir), "-l", str(log), "-o", options, "-w"]
        _run([*command, "-t", str(START_TIMEOUT_S), "start"], "start")
    except BaseException:
        server.stop()
        raise
    return server


@contextmanager
def throwaway_postgres() -> Iterator[PostgresServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()
