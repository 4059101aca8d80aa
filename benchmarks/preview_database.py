"""A preview's database: copying a template of ~10 MB against creating a database and loading it.

Starts a throwaway PostgreSQL server (shipyard.lab.postgres: 127.0.0.1, its own temporary directory),
fills a template database with ~10 MB (a table of rows with an index), then times, each
`--runs` times:

- preview create: the postgres strategy's create (`CREATE DATABASE APP_pr_N TEMPLATE ...`, with its
  connection and existence check), and preview destroy (`DROP DATABASE ... WITH (FORCE)`);
- the same copy with `STRATEGY FILE_COPY` (PostgreSQL 15+; shipyard uses the server's default,
  WAL_LOG on 15+), for comparison;
- a plain `CREATE DATABASE` (empty), and a plain one into which the same rows and index are then
  loaded by the server itself (generate_series, no client round trips: a lower bound for
  migrations and seeds), and its DROP.

No Docker needed. The server syncs its files (fsync on) unless --no-fsync is given.
Run: .venv/bin/python benchmarks/preview_database.py [--runs N] [--rows N] [--no-fsync]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Callable

import psycopg
import structlog
from psycopg import sql

from shipyard.adapters.preview_databases import preview_databases
from shipyard.domain.spec import PreviewDatabaseSpec, PreviewPostgresSpec
from shipyard.lab.postgres import PostgresServer, throwaway_postgres

TEMPLATE = "bench_template"
APP = "bench"
ADMIN_SECRET = "PREVIEW_DB_ADMIN_URL"
LOAD = (
    "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, payload text NOT NULL);"
    "INSERT INTO items SELECT i, 'item ' || i, repeat(md5(i::text), 3) FROM generate_series(1, {rows}) i;"
    "CREATE INDEX items_name ON items (name);"
    "ANALYZE items;"
)


def admin(server: PostgresServer, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        host="127.0.0.1", port=server.port, user="postgres", dbname=database, autocommit=True
    )


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def fill(server: PostgresServer, database: str, rows: int) -> None:
    with admin(server, database) as connection:
        for statement in LOAD.format(rows=rows).split(";"):
            if statement.strip():
                connection.execute(statement.encode())


def run(server: PostgresServer, runs: int, rows: int, fsync: bool) -> None:
    with admin(server) as connection:
        # The throwaway server starts with fsync off; a real one syncs the copied files.
        connection.execute(f"ALTER SYSTEM SET fsync = {'on' if fsync else 'off'}")
        connection.execute("SELECT pg_reload_conf()")
        connection.execute(f"CREATE DATABASE {TEMPLATE}")
    fill(server, TEMPLATE, rows)
    with admin(server) as connection:
        size = connection.execute("SELECT pg_database_size(%s)", (TEMPLATE,)).fetchone()
        empty = connection.execute("SELECT pg_database_size('template1')").fetchone()
        version = connection.execute("SHOW server_version").fetchone()
    assert size is not None and empty is not None and version is not None
    data_mb = (int(str(size[0])) - int(str(empty[0]))) / 1e6

    url = f"postgresql://postgres@127.0.0.1:{server.port}/postgres"
    spec = PreviewDatabaseSpec(postgres=PreviewPostgresSpec(template=TEMPLATE, admin_url_secret=ADMIN_SECRET))
    databases = preview_databases(spec, lambda name: url)
    times: dict[str, list[float]] = {}

    def sample(label: str, action: Callable[[], object]) -> None:
        times.setdefault(label, []).append(timed(action))

    def statement(text: str, *names: str) -> Callable[[], None]:
        def execute() -> None:
            with admin(server) as connection:
                connection.execute(sql.SQL(text).format(*map(sql.Identifier, names)))

        return execute

    for index in range(runs):
        pr = index + 1
        sample("preview create (copy of the template)", lambda pr=pr: databases.create(APP, pr))
        sample("preview destroy (DROP ... WITH (FORCE))", lambda pr=pr: databases.destroy(APP, pr))
        if int(str(version[0]).split(".")[0]) >= 15:
            copy = f"file_copy_{pr}"
            sample(
                "copy with STRATEGY FILE_COPY",
                statement("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY", copy, TEMPLATE),
            )
            statement("DROP DATABASE {}", copy)()
        plain = f"plain_{pr}"
        sample("plain CREATE DATABASE (empty)", statement("CREATE DATABASE {}", plain))
        sample("  + load the same rows and index", lambda plain=plain: fill(server, plain, rows))
        sample("plain DROP DATABASE", statement("DROP DATABASE {}", plain))

    title = (
        f"a preview's database: template of {data_mb:.1f} MB ({rows} rows and an index), "
        f"PostgreSQL {version[0]}, fsync {'on' if fsync else 'off'}, {runs} runs"
    )
    headers = ["step", "median ms", "min ms", "max ms"]
    table = [
        [
            label,
            f"{statistics.median(values) * 1000:.0f}",
            f"{min(values) * 1000:.0f}",
            f"{max(values) * 1000:.0f}",
        ]
        for label, values in times.items()
    ]
    widths = [max(len(row[i]) for row in [headers, *table]) for i in range(len(headers))]
    print(f"\n{title}\n")
    for row in [headers, *table]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rows", type=int, default=50_000, help="rows in the template (50000: ~10 MB)")
    parser.add_argument("--no-fsync", action="store_true", help="run the server with fsync off")
    options = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with throwaway_postgres() as server:
        run(server, options.runs, options.rows, fsync=not options.no_fsync)


if __name__ == "__main__":
    main()
