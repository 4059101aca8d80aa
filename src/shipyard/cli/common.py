"""What every command shares: loading the config, the host context, error handling."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from shipyard.cli.render import print_error
from shipyard.domain.spec import AppSpec, load_spec
from shipyard.errors import ShipyardError
from shipyard.host.context import HostContext, default_home

F = TypeVar("F", bound=Callable[..., Any])

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="path to shipyard.yml")]
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable output (see docs/json.md)")]
WaitOption = Annotated[bool, typer.Option("--wait", help="queue behind a deploy that holds the lock")]
EnvOption = Annotated[str, typer.Option("--env", "-e", help="environment whose secrets to use")]
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


def load(config: Path) -> AppSpec:
    return load_spec(config)


def host_context() -> HostContext:
    return HostContext(home=default_home())


def repo_root(config: Path) -> Path:
    return config.resolve().parent


def app_secrets(spec: AppSpec, config: Path, env: str) -> dict[str, str]:
    """Values of env.secret: the encrypted store of `env`, else the process environment."""
    if not spec.env.secret:
        return {}
    from shipyard.secrets.factory import open_store
    from shipyard.secrets.resolve import resolve_secrets

    return resolve_secrets(spec.env.secret, open_store(spec.secrets, repo_root(config), env))
