"""The console script: a host command (`shipyard rollback`, ...) loads only the host commands.

A rollback to a warm standby is a fraction of a second of work, so the interpreter's start and
imports are most of its wall time; the fleet, controller, build, lab and pipeline commands are not
imported for it. Every other command, and `shipyard` alone or with --help, loads the full app.

`shipyard rollback` on this host goes further: its usual arguments are read here without Typer and
Click, and it runs without them (and without rich when its output is not a terminal). Anything
else - --help, --env (the fleet), an unknown or repeated-looking flag, `--opt=value` - goes to the
Typer command, which has the same flags, messages and exit codes. And before loading the host
layer, it asks the app's standby keeper (the process waiting to stop the warm standby, which has it
loaded) to do the rollback: see shipyard.cli.keeper_client.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer

HOST_COMMANDS = ("deploy", "rollback", "status", "releases", "logs", "stop", "start", "prune", "remove")

# Environment variables the Typer command reads for flags of the fleet path: when one is set, Typer
# checks its value, so the fast path leaves such a run to it.
_FLEET_ENVVARS = ("SHIPYARD_CA_FILE", "SHIPYARD_INSECURE_HTTP")


def run(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "rollback":
        fast = parse_host_rollback(args[1:])
        if fast is not None:
            raise SystemExit(fast.run())
    if args and args[0] in HOST_COMMANDS:
        host_app()(args, prog_name="shipyard")
        return
    from shipyard.cli.main import app

    app(args, prog_name="shipyard")


class HostRollback:
    """The arguments of `shipyard rollback` on this host (no --env), as the Typer command takes them.

    A plain class: `dataclasses` loads inspect, tokenize and more, a tenth of a rollback's start.
    """

    def __init__(
        self,
        release: str | None = None,
        config: Path = Path("shipyard.yml"),
        dry_run: bool = False,
        wait: bool = False,
        as_json: bool = False,
        policy_file: Path | None = None,
    ) -> None:
        self.release = release
        self.config = config
        self.dry_run = dry_run
        self.wait = wait
        self.as_json = as_json
        self.policy_file = policy_file

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HostRollback) and vars(self) == vars(other)

    def __repr__(self) -> str:
        return f"HostRollback({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"

    def run(self) -> int:
        """Roll back; the exit code, after one clear sentence on an error (as `handle_errors` does).

        The app's standby keeper does it when one is running and can do it identically (see
        shipyard.cli.keeper_client); otherwise this process does.
        """
        from shipyard.cli.keeper_client import try_keeper

        try:
            served = try_keeper(
                config=self.config,
                release=self.release,
                dry_run=self.dry_run,
                wait=self.wait,
                as_json=self.as_json,
                policy_file=self.policy_file,
            )
        except KeyboardInterrupt:
            return 130
        if served is not None:
            return served
        from shipyard.cli.host_actions import rollback_here
        from shipyard.errors import ShipyardError

        try:
            rollback_here(
                self.config,
                self.release,
                env="production",
                dry_run=self.dry_run,
                wait=self.wait,
                as_json=self.as_json,
                policy_file=self.policy_file,
            )
        except ShipyardError as exc:
            from shipyard.cli.render import print_error

            print_error(exc)
            return exc.exit_code
        except KeyboardInterrupt:
            return 130
        return 0


def parse_host_rollback(args: list[str]) -> HostRollback | None:
    """`args` after `rollback` when they are a plain host rollback, else None (Typer takes them)."""
    if any(os.environ.get(name) for name in _FLEET_ENVVARS):
        return None
    parsed = HostRollback()
    if policy := os.environ.get("SHIPYARD_POLICY"):
        parsed.policy_file = Path(policy)
    flags = {"--dry-run": "dry_run", "--wait": "wait", "--json": "as_json"}
    pending = list(args)
    while pending:
        arg = pending.pop(0)
        if arg in flags:
            setattr(parsed, flags[arg], True)
        elif arg in ("--config", "-c", "--policy"):
            if not pending or pending[0].startswith("-"):
                return None
            value = Path(pending.pop(0))
            if arg == "--policy":
                parsed.policy_file = value
            else:
                parsed.config = value
        elif arg.startswith("-") or parsed.release is not None:
            return None  # --help, --env, another flag, `--opt=value`, a second argument
        else:
            parsed.release = arg
    return parsed


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
