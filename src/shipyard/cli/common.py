"""What every command shares: loading the config, the host context, error handling."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from shipyard.cli.host_actions import app_secrets, host_context, host_policy, load, repo_root
from shipyard.cli.render import print_error
from shipyard.errors import ShipyardError

__all__ = ["app_secrets", "host_context", "host_policy", "load", "repo_root"]

F = TypeVar("F", bound=Callable[..., Any])

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="path to shipyard.yml")]
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable output (see docs/json.md)")]
WaitOption = Annotated[bool, typer.Option("--wait", help="queue behind a deploy that holds the lock")]
EnvOption = Annotated[str, typer.Option("--env", "-e", help="environment whose secrets to use")]
PolicyOption = Annotated[
    Path | None,
    typer.Option(
        "--policy",
        envvar="SHIPYARD_POLICY",
        help="this host's policy file (default /etc/shipyard/agent-policy.yml when it exists)",
    ),
]
DEFAULT_CONFIG = Path("shipyard.yml")


def handle_errors(function: F) -> F:
    """One clear sentence and the error's exit code instead of a traceback."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except ShipyardError as exc:
            print_error(exc)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]
