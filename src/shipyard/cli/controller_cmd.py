"""`shipyard controller`: run the fleet controller (API, agent endpoints and rollout loop) on uvicorn."""

from __future__ import annotations

import dataclasses
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from shipyard.cli.common import handle_errors
from shipyard.controller.option_bounds import (
    DEFAULT_PREVIEW_RECONCILE_INTERVAL,
    MAX_PREVIEW_RECONCILE_INTERVAL,
    MIN_PREVIEW_RECONCILE_INTERVAL,
)
from shipyard.errors import ConfigError

DEFAULT_JOB_LEASE = 30.0  # ControllerSettings.job_lease; the settings module loads too much for --help
# Top-level modules of the `controller` extra: a host installs shipyard without them.
CONTROLLER_EXTRA_MODULES = frozenset(
    {
        "alembic",
        "fastapi",
        "httptools",
        "jinja2",
        "multipart",
        "prometheus_client",
        "psycopg",
        "python_multipart",
        "sqlalchemy",
        "sse_starlette",
        "starlette",
        "uvicorn",
        "uvloop",
    }
)


@contextmanager
def controller_extra(command: str) -> Iterator[None]:
    """Turns a missing dependency of the controller into one sentence saying how to install it."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in CONTROLLER_EXTRA_MODULES:
            raise
        raise ConfigError(
            f"'shipyard {command}' needs the controller's dependencies ({exc.name} is not installed); "
            "install them with: pip install 'shipyard[controller]'"
        ) from None


@handle_errors
def controller(
    db: Annotated[
        str | None,
        typer.Option("--db", help="database URL: sqlite:///path.db or postgresql+psycopg://user@host/db"),
    ] = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8700,
    bootstrap_token_file: Annotated[
        Path | None,
        typer.Option(help="admin token file: read if present, else written (0600); used on first start only"),
    ] = None,
    lost_after: Annotated[float, typer.Option(help="seconds without a report before a host is lost")] = 30.0,
    signing_key: Annotated[
        Path | None,
        typer.Option(help="Ed25519 key (from 'shipyard signing-key') that signs releases CI did not sign"),
    ] = None,
    access_log: Annotated[
        bool, typer.Option(help="log every request (a line per long-poll and report of every agent)")
    ] = False,
    tls_cert: Annotated[
        Path | None,
        typer.Option("--tls-cert", help="serve https with this certificate (PEM, chain after it)"),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="the certificate's private key (PEM)")
    ] = None,
    forwarded_allow_ips: Annotated[
        str,
        typer.Option(
            "--forwarded-allow-ips",
            envvar="SHIPYARD_FORWARDED_ALLOW_IPS",
            help="proxies (addresses or networks, comma-separated) whose X-Forwarded-For is believed",
        ),
    ] = "",
    max_body: Annotated[
        str, typer.Option("--max-body", help="largest request body, e.g. 1MiB; larger ones get 413")
    ] = "1MiB",
    job_lease: Annotated[
        float,
        typer.Option(
            "--job-lease",
            help="seconds a pipeline job's claim lasts unless renewed; a job whose controller died is "
            "retried once this long after its last renewal",
        ),
    ] = DEFAULT_JOB_LEASE,
    job_worker: Annotated[
        bool,
        typer.Option(
            "--job-worker/--no-job-worker",
            help="run pipeline jobs and schedules here (--no-job-worker: a 'shipyard job-worker' runs them)",
        ),
    ] = True,
    preview_reconcile_interval: Annotated[
        float,
        typer.Option(
            "--preview-reconcile-interval",
            min=MIN_PREVIEW_RECONCILE_INTERVAL,
            max=MAX_PREVIEW_RECONCILE_INTERVAL,
            help="seconds between passes of the preview reconciler (TTLs, teardowns of closed PRs, "
            "previews.max)",
        ),
    ] = DEFAULT_PREVIEW_RECONCILE_INTERVAL,
) -> None:
    """Run the fleet controller. Default database: $SHIPYARD_HOME/shipyard-controller.db or ./ (SQLite)."""
    # Imported here: the web stack takes most of a second to import; other commands don't need it.
    with controller_extra("controller"):
        import uvicorn

        from shipyard.controller.server.app import create_app
        from shipyard.controller.server.serving import ServeOptions, uvicorn_options
        from shipyard.controller.server.settings import load_settings
        from shipyard.controller.store.db import claim_sqlite_file
    from shipyard.fleet_api.tls import check_server_files
    from shipyard.fleet_api.url_policy import is_loopback
    from shipyard.logs import configure_process_logging, stop_process_logging

    served = uvicorn_options(ServeOptions(host, port, tls_cert, tls_key, forwarded_allow_ips, access_log))
    if tls_cert is not None and tls_key is not None:
        check_server_files(tls_cert, tls_key)
    settings = load_settings(
        database_url=db,
        lost_after=lost_after,
        bootstrap_token_file=bootstrap_token_file,
        signing_key_file=signing_key,
        max_body=max_body,
        job_lease=job_lease,
    )
    settings = dataclasses.replace(
        settings, preview_reconcile_interval=preview_reconcile_interval, settle_heap=True
    )
    if not job_worker:
        settings = dataclasses.replace(settings, run_jobs=False)
    if tls_cert is None and not is_loopback(host):
        typer.echo(
            f"warning: serving plain http on {host}; agents and the CLI refuse it without --insecure-http "
            "(serve https with --tls-cert and --tls-key).",
            err=True,
        )
    if bootstrap_token_file is not None:
        typer.echo(f"bootstrap admin token: in {bootstrap_token_file} (used only while no API token exists)")
    held = claim_sqlite_file(settings.database_url)  # kept open while the controller runs
    configure_process_logging()
    try:
        # log_config=None: uvicorn's loggers keep the masked handler configured above.
        uvicorn.run(create_app(settings), log_level="info", log_config=None, **served)
    finally:
        stop_process_logging()
        if held is not None:
            held.close()


@handle_errors
def job_worker(
    db: Annotated[
        str | None,
        typer.Option("--db", help="the controller's database URL (the same as its --db)"),
    ] = None,
    nice: Annotated[
        int,
        typer.Option(
            "--nice", min=0, max=19, help="lower this process's CPU priority (and its jobs') by this"
        ),
    ] = 10,
    signing_key: Annotated[
        Path | None,
        typer.Option(help="Ed25519 key that signs the releases jobs create (the controller's --signing-key)"),
    ] = None,
) -> None:
    """Run pipeline jobs and schedules beside a controller started with --no-job-worker, until SIGTERM."""
    with controller_extra("job-worker"):
        from shipyard.controller.server.pipeline.worker_process import run_job_worker
        from shipyard.controller.server.settings import load_settings
    from shipyard.logs import configure_process_logging, stop_process_logging

    settings = load_settings(database_url=db, signing_key_file=signing_key)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    configure_process_logging()
    try:
        run_job_worker(settings, stop, niceness=nice)
    finally:
        stop_process_logging()
