"""`shipyard run` and `shipyard exec`: one-off commands in an app's release, on this host or in the fleet.

`run --env E` asks the controller for a task on one host of E (deployer role, audited), prints its output
as the agent sends it, and exits with the command's exit code. Without --env (or without a controller)
it runs the container on this host directly. `exec` attaches to the serving container on this host, or
with --env E --host H to the one on H, through a session the controller relays to H's agent.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from shipyard.cli.common import (
    DEFAULT_CONFIG,
    ConfigOption,
    JsonOption,
    app_secrets,
    handle_errors,
    host_context,
)
from shipyard.cli.fleet_cmd import (
    AppOption,
    CaFileOption,
    FleetEnvOption,
    InsecureHttpOption,
    _app_name,
    _optional,
    fleet_client,
    optional_spec,
)
from shipyard.cli.render import print_json
from shipyard.errors import ConfigError, NotFoundError, ShipyardError

if TYPE_CHECKING:
    from shipyard.fleet_api.client import ControllerClient
    from shipyard.fleet_api.schemas.tasks import TaskOut

ArgvArgument = Annotated[list[str], typer.Argument(help="the command and its arguments, after --")]
HostOption = Annotated[
    str | None, typer.Option("--host", help="the host to run it on (default: one healthy host)")
]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", min=1, help="seconds to wait for an agent to start the command")
]
POLL_INTERVAL = 0.3


class TaskNotRunError(ShipyardError):
    """The command did not run to an exit code: refused by the host's policy, no agent took it, ..."""

    exit_code = 125  # as `docker run` when the container could not run at all


@handle_errors
def run(
    argv: ArgvArgument,
    env: FleetEnvOption = None,
    host: HostOption = None,
    app: AppOption = None,
    config: ConfigOption = DEFAULT_CONFIG,
    timeout: TimeoutOption = 120.0,
    as_json: JsonOption = False,
    ca_file: CaFileOption = None,
    insecure_http: InsecureHttpOption = False,
) -> None:
    """Run a command once in a new container of the app's active release, with its env and secrets."""
    if not argv:
        raise ConfigError(
            "give the command after --, like: shipyard run --env production -- bin/rails runner 'Task.go'."
        )
    env = _optional(env, "--env")
    host = _optional(host, "--host")
    spec = optional_spec(config)
    if env is not None:  # --env means the fleet, as for deploy: refused without a controller
        client = fleet_client(spec, ca_file, insecure_http)
        code = _fleet_run(client, argv, env, host, _app_name(app, config), timeout, as_json)
    else:
        if host is not None:
            raise ConfigError("--host picks a host of --env through the controller; give --env E as well.")
        code = _local_run(argv, config)
    raise typer.Exit(code)


def _fleet_run(
    client: ControllerClient,
    argv: list[str],
    env: str,
    host: str | None,
    app: str,
    timeout: float,
    as_json: bool,
) -> int:
    with client:
        task = client.create_task(app, env, argv, host)
        print(f"task {task.id}: {' '.join(argv)} on {task.host} ({task.release})", file=sys.stderr)
        task = _follow(client, task, timeout, echo=not as_json)
        if as_json:
            print_json(client.get_task(task.id).model_dump(mode="json"))
    if task.exit_code is None:
        raise TaskNotRunError(f"task {task.id} ended without an exit code: {task.message}")
    return task.exit_code


def _follow(client: ControllerClient, task: TaskOut, timeout: float, *, echo: bool) -> TaskOut:
    """Print the task's output as it arrives until it ends; cancel it when no agent starts it in time."""
    from shipyard.errors import ControllerError

    deadline = time.monotonic() + timeout
    seen = 0
    while True:
        try:
            task = client.get_task(task.id, after=seen)
        except ControllerError:  # a restarting controller: keep following
            time.sleep(POLL_INTERVAL)
            continue
        for line in task.lines:
            if echo:
                print(line.text, flush=True)
            seen = line.number
        if task.status in ("succeeded", "failed") and not task.lines:
            return task
        if task.status == "pending" and time.monotonic() > deadline:
            cancelled = client.cancel_task(task.id)
            if cancelled.status == "failed" and cancelled.started_at is None:
                raise TaskNotRunError(
                    f"no agent started task {task.id} within {timeout:g} s (is the agent of {task.host} "
                    "running?); it was cancelled."
                )
        if not task.lines:
            time.sleep(POLL_INTERVAL)


def _local_run(argv: list[str], config: Path) -> int:
    from shipyard.cli.common import load
    from shipyard.host import service
    from shipyard.secrets.masking import mask

    spec = load(config)
    secrets = app_secrets(spec, config, "production")  # the environment a deploy on this host uses
    with host_context(config) as context:
        return service.run_in_active(
            context, spec.app, argv, secrets=secrets, on_line=lambda line: print(mask(line), flush=True)
        )


@handle_errors
def exec_(
    argv: ArgvArgument,
    host: Annotated[
        str | None,
        typer.Option("--host", help="the host whose serving container runs it (with --env: any host of E)"),
    ] = None,
    interactive: Annotated[
        bool, typer.Option("--interactive", "-i", help="keep stdin open (with -t: a terminal)")
    ] = False,
    tty: Annotated[bool, typer.Option("--tty", "-t", help="allocate a terminal")] = False,
    app: AppOption = None,
    config: ConfigOption = DEFAULT_CONFIG,
    env: FleetEnvOption = None,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=1, max=600, help="seconds to wait for the host's agent to attach"),
    ] = 60.0,
    ca_file: CaFileOption = None,
    insecure_http: InsecureHttpOption = False,
) -> None:
    """Run a command inside the app's serving container: on this host (docker exec), or with --env and
    --host on a fleet host, relayed through the controller and that host's agent."""
    if not argv:
        raise ConfigError("give the command after --, like: shipyard exec -it -- bin/rails console.")
    env = _optional(env, "--env")
    host = _optional(host, "--host")
    if env is not None:
        if host is None:
            raise ConfigError(
                f"an exec in the fleet needs the host: shipyard exec --env {env} --host HOST -- "
                f"{' '.join(argv)} (list them with 'shipyard hosts --env {env}')."
            )
        spec = optional_spec(config)
        client = fleet_client(spec, ca_file, insecure_http)
        session = ExecRequest(_app_name(app, config), env, host, argv, interactive, tty, timeout)
        raise typer.Exit(_fleet_exec(client, session))
    this_host = socket.gethostname()
    if host is not None and host != this_host:
        raise ConfigError(
            f"{host} is not this host; give --env E to reach {host} through the controller: "
            f"shipyard exec --env E --host {host} -it -- {' '.join(argv)}"
        )
    from shipyard.host import service

    name = _app_name(app, config)
    with host_context(config) as context:
        container = service.active_container(context, name)
        if interactive or tty:
            docker = shutil.which("docker")
            if docker is None:
                raise ConfigError("an interactive exec needs the docker command line; install docker.io.")
            # A terminal only when there is one: `-t` under a pipe or in CI would fail the exec.
            flags = [*(["-i"] if interactive else []), *(["-t"] if tty and sys.stdin.isatty() else [])]
            os.execvp(docker, ["docker", "exec", *flags, container, *argv])
        code = context.engine.exec_in(container, argv, lambda text: print(text, end="", flush=True))
    if code != 0:
        raise typer.Exit(code)


@dataclass(frozen=True)
class ExecRequest:
    app: str
    environment: str
    host: str
    argv: list[str]
    interactive: bool
    tty: bool
    timeout: float


def _fleet_exec(client: ControllerClient, request: ExecRequest) -> int:
    from shipyard.cli.exec_terminal import run_session

    with client:
        try:
            task = client.create_exec(request.app, request.environment, request.host, request.argv)
        except NotFoundError as exc:  # an unknown host, app or environment: nothing could run
            raise TaskNotRunError(exc.message) from exc
        print(f"exec {task.id}: {' '.join(request.argv)} on {task.host} ({task.release})", file=sys.stderr)
        with client.exec_channel(task.id, pickup_timeout=request.timeout) as channel:
            outcome = run_session(
                channel,
                tty=request.tty,
                # stdin goes to the command with -i, or whenever it is not a terminal (a pipe, a file)
                forward_stdin=request.interactive or not sys.stdin.isatty(),
                pickup_timeout=request.timeout,
            )
    if outcome.exit_code is None:
        raise TaskNotRunError(f"exec {task.id} on {task.host}: {outcome.message}")
    return outcome.exit_code
