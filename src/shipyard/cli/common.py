"""What every command shares: loading the config, the host context, error handling."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from shipyard.cli.render import print_error
from shipyard.domain.spec import AppSpec, load_spec
from shipyard.errors import ShipyardError

if TYPE_CHECKING:  # the Docker client behind them loads only for a command that acts on this host
    from shipyard.host.context import HostContext
    from shipyard.host.policy import HostPolicy

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


def load(config: Path) -> AppSpec:
    return load_spec(config)


def host_context(config: Path | None = None) -> HostContext:
    """This host's context; with `config`, relative registry files resolve next to it."""
    from shipyard.host.context import HostContext, default_home

    return HostContext(home=default_home(), config_dir=config.resolve().parent if config else None)


def repo_root(config: Path) -> Path:
    return config.resolve().parent


def app_secrets(spec: AppSpec, config: Path, env: str) -> dict[str, str]:
    """Values of env.secret: the encrypted store of `env`, else the process environment."""
    if not spec.env.secret:
        return {}
    from shipyard.secrets.factory import open_store
    from shipyard.secrets.resolve import resolve_secrets

    return resolve_secrets(spec.env.secret, open_store(spec.secrets, repo_root(config), env))


def host_policy(path: Path | None, spec: AppSpec, config: Path, env: str, home: Path) -> HostPolicy | None:
    """The host's policy for a deploy from this machine, or None when the host has none.

    Names of env.secret found in the encrypted store of `env` are not read from the environment, so
    the policy's prefix rule applies only to the others.
    """
    from shipyard.host.policy import cli_policy

    policy = cli_policy(path, home=home)
    if policy is None:
        return None
    policy = policy.for_config(config)
    if not spec.env.secret:
        return policy
    from shipyard.secrets.factory import open_store

    store = open_store(spec.secrets, repo_root(config), env)
    return policy.with_stored_secrets(store.names() if store.exists() else [])
