"""The console script: a host command (`shipyard rollback`, ...) loads only the host commands.

A rollback to a warm standby is a fraction of a second of work, so the interpreter's start and
imports are most of its wall time; the fleet, controller, build, lab and pipeline commands are not
imported for it. Every other command, and `shipyard` alone or with --help, loads the full app.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer

HOST_COMMANDS = ("deploy", "rollback", "status", "releases", "logs", "stop", "start", "prune", "remove")


def run(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in HOST_COMMANDS:
        host_app()(args, prog_name="shipyard")
        return
    from shipyard.cli.main import app

    app(args, prog_name="shipyard")


def host_app() -> typer.Typer:
    """The host commands alone, registered exactly as in the full app."""
    import typer

    from shipyard.cli import host_cmd

    app = typer.Typer(name="shipyard", pretty_exceptions_enable=False, add_completion=False)
    # A group callback keeps `shipyard rollback ...` a sub-command (one command would collapse).
    app.callback()(_host_commands)
    for name in HOST_COMMANDS:
        app.command(name)(getattr(host_cmd, name))
    return app


def _host_commands() -> None:
    """Zero-downtime blue-green deploys of Docker images behind each host's haproxy."""
