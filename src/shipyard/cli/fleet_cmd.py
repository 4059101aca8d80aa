"""Fleet commands through the controller (SHIPYARD_CONTROLLER or `controller:`; token SHIPYARD_TOKEN).

The controller is reached over https, verified with --ca-file / SHIPYARD_CA_FILE (else the system's
CAs); plain http only to a loopback address unless --insecure-http / SHIPYARD_INSECURE_HTTP=1.

`shipyard deploy IMAGE --env E` and `rollback --env E` land here when a controller is configured.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

import typer

from shipyard.cli.common import DEFAULT_CONFIG, ConfigOption, JsonOption, handle_errors
from shipyard.cli.render import announce, console, print_json, say, table
from shipyard.domain import names
from shipyard.domain.names import FLEET_NAME, is_name
from shipyard.domain.prune import human_bytes
from shipyard.domain.spec import AppSpec, load_spec, spec_snapshot
from shipyard.errors import ConfigError, ControllerError, DeployFailedError

if TYPE_CHECKING:  # the client and its schemas load only when a fleet command runs
    from rich.table import Table

    from shipyard.fleet_api.client import ControllerClient
    from shipyard.fleet_api.schemas.deployments import DeploymentOut, DeploymentPlanOut
    from shipyard.fleet_api.schemas.fleet import HostOut

FleetEnvOption = Annotated[str | None, typer.Option("--env", "-e", help="environment (the fleet's, if any)")]
SIGNING_KEY_ENV = "SHIPYARD_SIGNING_KEY"
QueueOption = Annotated[bool, typer.Option("--queue", help="wait behind a running deployment or a lock")]
AppOption = Annotated[str | None, typer.Option("--app", help="app name (default: from shipyard.yml)")]
EnvRequired = Annotated[str, typer.Option("--env", "-e", help="environment (host group)")]
CaFileOption = Annotated[
    Path | None,
    typer.Option(
        "--ca-file",
        envvar="SHIPYARD_CA_FILE",
        help="CA bundle (PEM) that signed the controller's certificate",
    ),
]
InsecureHttpOption = Annotated[
    bool,
    typer.Option(
        "--insecure-http",
        envvar="SHIPYARD_INSECURE_HTTP",
        help="allow plain http:// to a controller that is not on a loopback address (tokens in clear)",
    ),
]
FINISHED = {"succeeded", "failed", "aborted", "rolled_back"}


def controller_url(spec: AppSpec | None) -> str | None:
    return os.environ.get("SHIPYARD_CONTROLLER") or (spec.controller if spec else None)


def fleet_target(spec: AppSpec, env: str, command: str) -> str:
    """The first line of `deploy`/`rollback --env E`: the fleet's environment and its controller; one
    sentence instead when no controller is configured (never a silent deploy on this host)."""
    checked_name(env, "--env")
    url = controller_url(spec)
    if not url:
        raise ConfigError(
            f"'{command} --env {env}' acts on the fleet, but no controller is configured; set "
            "SHIPYARD_CONTROLLER or 'controller:' in shipyard.yml, or leave out --env to act on this host."
        )
    parts = urlsplit(url)
    shown = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()  # never a user:password
    return f"fleet: {env} via {shown}"


def fleet_client(
    spec: AppSpec | None = None, ca_file: Path | None = None, insecure_http: bool = False
) -> ControllerClient:
    from shipyard.fleet_api.client import ControllerClient

    url = controller_url(spec)
    if not url:
        raise ConfigError(
            "no controller configured; set SHIPYARD_CONTROLLER or 'controller:' in shipyard.yml."
        )
    return ControllerClient(
        url, os.environ.get("SHIPYARD_TOKEN"), ca_file=ca_file, insecure_http=insecure_http
    )


def checked_name(value: str, option: str) -> str:
    """An environment or app name as the controller accepts it, or one sentence saying what is wrong."""
    if not is_name(FLEET_NAME, value):
        raise ConfigError(
            f"{option} {value!r} is not a valid name; use up to 64 letters, digits, '.', '_' and '-', "
            "starting with a letter or digit."
        )
    return value


def _optional(value: str | None, option: str) -> str | None:
    return None if value is None else checked_name(value, option)


def optional_spec(config: Path) -> AppSpec | None:
    """shipyard.yml when there is one: fleet commands also run where there is none."""
    return load_spec(config) if config.is_file() else None


def _app_name(app: str | None, config: Path) -> str:
    if app is not None:
        return checked_name(app, "--app")
    spec = optional_spec(config)
    if spec is None:
        raise ConfigError(f"name the app with --app, or run where {config} is.")
    return spec.app


def release_id(text: str) -> int:
    if not is_name(names.RELEASE_REF, text):
        raise ConfigError(f"{text!r} is not a release id; use the form r12 (see the deployments list).")
    return int(text.removeprefix("r"))


def resolve_digest(spec: AppSpec, image: str, config_dir: Path | None = None) -> tuple[str, str]:
    """(repository, digest) of IMAGE, asking the registry for the digest of a tag; relative registry
    files are read from `config_dir`, the directory of shipyard.yml (None: only absolute ones)."""
    from shipyard.adapters.registry import parse_image, registry_credentials
    from shipyard.adapters.registry import resolve_digest as registry_digest

    ref = parse_image(image)
    if ref.name != spec.image:
        raise ConfigError(
            f"{ref.name} is not this app's image {spec.image}; deploy {spec.image}:TAG instead."
        )
    if ref.digest:
        return ref.name, ref.digest
    credentials = registry_credentials(spec.registry, None, config_dir)
    return ref.name, registry_digest(spec.registry, ref, credentials)


def ci_signature(app: str, image: str, digest: str, snapshot: dict[str, Any]) -> str | None:
    """A signature by the key in $SHIPYARD_SIGNING_KEY (CI's), or None to let the controller sign."""
    key_file = os.environ.get(SIGNING_KEY_ENV)
    if not key_file:
        return None
    # Loaded only when signing: the CLI's start time matters for a rollback.
    from shipyard.signing import load_private_key, release_payload, sign

    return sign(load_private_key(Path(key_file)), release_payload(app, image, digest, snapshot))


def sealed_secrets(spec: AppSpec, config_dir: Path, env: str) -> str | None:
    """The values of env.secret from the store of `env` (else exported), sealed for `env`'s hosts."""
    if not spec.env.secret:
        return None
    # Loaded only when the app has secrets: the cipher and the store are not needed otherwise.
    from shipyard.secrets.factory import open_store
    from shipyard.secrets.sealing import seal_secrets

    return seal_secrets(spec.env.secret, open_store(spec.secrets, config_dir, env))


def fleet_deploy(
    spec: AppSpec,
    image: str,
    env: str,
    *,
    queue: bool,
    as_json: bool,
    ca_file: Path | None = None,
    insecure_http: bool = False,
    config_dir: Path | None = None,
    dry_run: bool = False,
) -> None:
    """Record the release, start (or queue) its deployment to `env`, and follow it to the end; with
    `dry_run`, the controller's plan for it and nothing recorded."""
    announce(fleet_target(spec, env, "deploy"), as_json)
    with fleet_client(spec, ca_file, insecure_http) as client:  # URL policy before the registry
        repository, digest = resolve_digest(spec, image, config_dir)
        # Before anything is recorded: a secret that is not set stops the deploy with nothing changed.
        sealed = sealed_secrets(spec, config_dir or Path.cwd(), env)
        snapshot = spec_snapshot(spec)
        if dry_run:
            show_plan(client.plan_deployment(repository, digest, snapshot, env), as_json)
            return
        signature = ci_signature(spec.app, repository, digest, snapshot)
        release = client.create_release(repository, digest, snapshot, signature=signature)
        deployment = client.create_deployment(release.id, env, queue=queue, sealed_secrets=sealed)
        if not as_json:
            say(f"release {release.name} {repository}@{digest[:19]}: deployment {deployment.id} to {env}")
        follow(client, deployment.id, as_json)


def fleet_rollback(
    app: str,
    env: str,
    release: str | None,
    *,
    as_json: bool,
    spec: AppSpec,
    ca_file: Path | None = None,
    insecure_http: bool = False,
    dry_run: bool = False,
) -> None:
    announce(fleet_target(spec, env, "rollback"), as_json)
    target = release_id(release) if release else None
    with fleet_client(spec, ca_file, insecure_http) as client:
        if dry_run:
            show_plan(client.plan_rollback(app, env, target), as_json)
            return
        deployment = client.rollback(app, env, target)
        if not as_json:
            say(f"rollback of {app} in {env} to {deployment.release}: deployment {deployment.id}")
        follow(client, deployment.id, as_json)


def show_plan(plan: DeploymentPlanOut, as_json: bool) -> None:
    if as_json:
        print_json(plan.model_dump(mode="json"))
        return
    say(
        f"plan (dry run, nothing changed): {plan.app} release {plan.release} {plan.image}@{plan.digest[:19]} "
        f"to {plan.environment}, {plan.total_waves} wave(s) of max_parallel {plan.max_parallel}"
    )
    rows = [[host.host, host.wave or "-", host.running or "-", host.change] for host in plan.hosts]
    table("", ["host", "wave", "running", "change"], rows)


def progress_table(deployment: DeploymentOut) -> Table:
    title = (
        f"deployment {deployment.id} {deployment.app} {deployment.release} -> {deployment.environment}: "
        f"{deployment.status}, wave {deployment.current_wave}/{deployment.total_waves} {deployment.message}"
    )
    from rich.table import Table

    view = Table(title=title, title_justify="left")
    for column in ("host", "wave", "outcome", "step", "message"):
        view.add_column(column)
    for host in deployment.hosts:
        view.add_row(host.host, str(host.wave), host.outcome, host.step, host.message[:80])
    return view


def release_phase_output(
    deployment: DeploymentOut, printed: int, echo: Callable[..., None], *, quiet: bool = False
) -> int:
    """Print the release phase's output lines not printed yet (above the live table); the count printed."""
    if quiet:
        return printed
    if deployment.release_phase == "not run for a rollback" and printed == 0:
        echo("release phase not run for a rollback", markup=False, highlight=False)
        return -1
    task = deployment.release_task
    if task is None or printed < 0:
        return printed
    for line in task.lines[printed:]:
        echo(f"release phase | {line.text}", markup=False, highlight=False)
    return max(printed, len(task.lines))


def follow(
    client: ControllerClient, deployment_id: int, as_json: bool, interval: float = 0.5
) -> DeploymentOut:
    from rich.live import Live

    deployment = client.get_deployment(deployment_id)
    printed = 0
    with Live(
        progress_table(deployment), console=console.rich(), transient=as_json, auto_refresh=False
    ) as live:
        printed = release_phase_output(deployment, printed, live.console.print, quiet=as_json)
        while deployment.status not in FINISHED:
            time.sleep(interval)
            with contextlib.suppress(ControllerError):  # a restarting controller: keep following
                deployment = client.get_deployment(deployment_id)
            printed = release_phase_output(deployment, printed, live.console.print, quiet=as_json)
            live.update(progress_table(deployment), refresh=True)
    if as_json:
        print_json(deployment.model_dump(mode="json"))
    if deployment.status != "succeeded":
        raise DeployFailedError(f"deployment {deployment.id} {deployment.status}: {deployment.message}")
    return deployment


@handle_errors
def deployments(
    app: AppOption = None,
    env: FleetEnvOption = None,
    as_json: JsonOption = False,
    ca_file: CaFileOption = None,
    insecure_http: InsecureHttpOption = False,
) -> None:
    """Deployments on the controller, newest first."""
    app, env = _optional(app, "--app"), _optional(env, "--env")
    with fleet_client(optional_spec(DEFAULT_CONFIG), ca_file, insecure_http) as client:
        found = client.list_deployments(app=app, environment=env)
    if as_json:
        print_json([d.model_dump(mode="json") for d in found])
        return
    rows = [
        [d.id, d.app, d.environment, d.release, d.status, f"{d.current_wave}/{d.total_waves}", d.created_by]
        for d in found
    ]
    table("deployments", ["id", "app", "env", "release", "status", "wave", "by"], rows)


@handle_errors
def deployment(
    deployment_id: Annotated[int, typer.Argument(help="deployment id")],
    follow_it: Annotated[bool, typer.Option("--follow", "-f", help="follow until it finishes")] = False,
    as_json: JsonOption = False,
    ca_file: CaFileOption = None,
    insecure_http: InsecureHttpOption = False,
) -> None:
    """One deployment with per-host progress."""
    with fleet_client(optional_spec(DEFAULT_CONFIG), ca_file, insecure_http) as client:
        if follow_it:
            follow(client, deployment_id, as_json)
            return
        found = client.get_deployment(deployment_id)
    if as_json:
        print_json(found.model_dump(mode="json"))
    else:
        console.print(progress_table(found))


def _transition(
    change: str, deployment_id: int, ca_file: Path | None, insecure_http: bool, as_json: bool = False
) -> None:
    with fleet_client(optional_spec(DEFAULT_CONFIG), ca_file, insecure_http) as client:
        found: DeploymentOut = getattr(client, change)(deployment_id)
    if as_json:
        print_json(found.model_dump(mode="json"))
        return
    say(f"deployment {found.id}: {found.status} ({found.message})")


def _transition_command(change: str, summary: str) -> Callable[..., None]:
    @handle_errors
    def command(
        deployment_id: Annotated[int, typer.Argument(help="deployment id")],
        as_json: JsonOption = False,
        ca_file: CaFileOption = None,
        insecure_http: InsecureHttpOption = False,
    ) -> None:
        _transition(change, deployment_id, ca_file, insecure_http, as_json)

    command.__doc__ = summary
    return command


pause = _transition_command("pause", "Let the running wave finish and start no further one.")
resume = _transition_command("resume", "Continue a paused deployment.")
abort = _transition_command("abort", "Stop a deployment; every host returns to the current release.")


@handle_errors
def hosts(
    env: FleetEnvOption = None,
    as_json: JsonOption = False,
    ca_file: CaFileOption = None,
    insecure_http: InsecureHttpOption = False,
) -> None:
    """Hosts known to the controller with what their agents report."""
    env = _optional(env, "--env")
    with fleet_client(optional_spec(DEFAULT_CONFIG), ca_file, insecure_http) as client:
        found = client.hosts(env)
    if as_json:
        print_json([h.model_dump(mode="json") for h in found])
        return
    rows = [
        [
            h.name,
            h.group,
            h.address,
            h.status,
            ", ".join(f"{a.app}=r{a.active_release} {a.health}" for a in h.apps),
            h.last_seen.strftime("%H:%M:%S"),
            human_bytes(h.disk_free),
            *(_version_cell(h, component) for component in VERSION_COLUMNS),
        ]
        for h in found
    ]
    columns = ["host", "group", "address", "status", "apps", "last seen", "free disk", *VERSION_COLUMNS]
    table("hosts", columns, rows)
    skew = skew_summary(found)
    if skew:
        say(skew)


VERSION_COLUMNS = ("docker", "haproxy", "kernel", "shipyard")


def skew_summary(found: list[HostOut]) -> str | None:
    skewed = [f"{h.name} ({', '.join(h.skew)})" for h in found if h.skew]
    if not skewed:
        return None
    return "version skew (marked *, differs from most hosts of its group): " + "; ".join(skewed)


def _version_cell(host: HostOut, component: str) -> str:
    value = host.versions.get(component, "") or "?"
    return f"{value} *" if component in host.skew else value


@handle_errors
def lock(
    env: EnvRequired,
    reason: Annotated[str, typer.Option("--reason", help="why; shown to whoever tries to deploy")],
    app: AppOption = None,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
    ca_file: CaFileOption = None,
    insecure_http: InsecureHttpOption = False,
) -> None:
    """Refuse deployments of the app to ENV until unlocked."""
    checked_name(env, "--env")
    name = _app_name(app, config)
    with fleet_client(optional_spec(config), ca_file, insecure_http) as client:
        held = client.lock(name, env, reason)
    if as_json:
        print_json(held.model_dump(mode="json"))
        return
    say(f"{held.app} in {held.environment} locked by {held.holder}: {held.reason}")


@handle_errors
def unlock(
    env: EnvRequired,
    app: AppOption = None,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
    ca_file: CaFileOption = None,
    insecure_http: InsecureHttpOption = False,
) -> None:
    """Allow deployments of the app to ENV again (a queued one starts)."""
    checked_name(env, "--env")
    name = _app_name(app, config)
    with fleet_client(optional_spec(config), ca_file, insecure_http) as client:
        client.unlock(name, env)
    if as_json:
        print_json({"app": name, "environment": env, "locked": False})
        return
    say(f"{name} in {env} unlocked")


@handle_errors
def audit(
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
    action: Annotated[str | None, typer.Option("--action", help="only this action, e.g. rollback")] = None,
    as_json: JsonOption = False,
    ca_file: CaFileOption = None,
    insecure_http: InsecureHttpOption = False,
) -> None:
    """Who did what, when, from where."""
    with fleet_client(optional_spec(DEFAULT_CONFIG), ca_file, insecure_http) as client:
        entries = client.audit(limit=limit, action=action)
    if as_json:
        print_json([e.model_dump(mode="json") for e in entries])
        return
    rows = [[e.at.strftime("%Y-%m-%d %H:%M:%S"), e.actor, e.action, e.target, e.source_ip] for e in entries]
    table("audit", ["at", "actor", "action", "target", "from"], rows)
