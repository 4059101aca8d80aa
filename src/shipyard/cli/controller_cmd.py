"""`shipyard controller`: run the fleet controller (API, agent endpoints and rollout loop) on uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli.common import handle_errors


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
    access_log: Annotated[
        bool, typer.Option(help="log every request (a line per long-poll and report of every agent)")
    ] = False,
    max_body: Annotated[
        str, typer.Option("--max-body", help="largest request body, e.g. 1MiB; larger ones get 413")
    ] = "1MiB",
) -> None:
    """Run the fleet controller. Default database: $SHIPYARD_HOME/shipyard-controller.db or ./ (SQLite)."""
    # Imported here: the web stack takes most of a second to import; other commands don't need it.
    import uvicorn

    from shipyard.controller.app import create_app
    from shipyard.controller.settings import load_settings
    from shipyard.logs import configure_process_logging, stop_process_logging

    settings = load_settings(
        database_url=db, lost_after=lost_after, bootstrap_token_file=bootstrap_token_file, max_body=max_body
    )
    if bootstrap_token_file is not None:
        typer.echo(f"bootstrap admin token: in {bootstrap_token_file} (used only while no API token exists)")
    configure_process_logging()
    try:
        # log_config=None: uvicorn's loggers keep the masked handler configured above.
        uvicorn.run(
            create_app(settings),
            host=host,
            port=port,
            log_level="info",
            access_log=access_log,
            log_config=None,
        )
    finally:
        stop_process_logging()
