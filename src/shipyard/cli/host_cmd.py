"""Commands that act on this host: deploy, rollback, status, releases, logs, stop, start, prune, remove."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli import fleet_cmd
from shipyard.cli.common import (
    DEFAULT_CONFIG,
    ConfigOption,
    EnvOption,
    JsonOption,
    PolicyOption,
    WaitOption,
    app_secrets,
    handle_errors,
    host_context,
    host_policy,
    load,
    repo_root,
)
from shipyard.cli.fleet_cmd import CaFileOption, FleetEnvOption, InsecureHttpOption, QueueOption
from shipyard.cli.host_actions import print_outcome_plan, print_plan, report, rollback_here
from shipyard.cli.render import StepPrinter, announce, print_json, say, table
from shipyard.errors import ConfigError
from shipyard.host import maintenance, service
from shipyard.host.status_view import releases_document

DryRunOption = Annotated[
    bool,
    typer.Option("--dry-run", help="print the plan and change nothing (with --env: the controller's plan)"),
]
# deploy and rollback: --env means the fleet (its controller), without it this host
FleetTargetOption = Annotated[
    str | None,
    typer.Option(
        "--env",
        "-e",
        help="act on this environment of the fleet, through the controller (default: this host)",
    ),
]
AppFilterOption = Annotated[str | None, typer.Option("--app", help="with --env: this app only")]


@handle_errors
def deploy(
    image: Annotated[str | None, typer.Argument(help="repo:tag or repo@sha256:...")] = None,
    ref: Annotated[
        str | None, typer.Option("--ref", help="deploy the image built for this git commit")
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    env: FleetTargetOption = None,
    dry_run: DryRunOption = False,
    wait: WaitOption = False,
    as_json: JsonOption = False,
    queue: QueueOption = False,
    policy_file: PolicyOption = None,
    ca_file: CaFileOption = None,
    insecure_http: InsecureHttpOption = False,
) -> None:
    """Deploy IMAGE with a health-gated blue-green swap behind this host's haproxy (or --env: the fleet)."""
    spec = load(config, env)
    image = _image_argument(spec.image, image, ref, config)
    if env is not None:  # --env: the fleet, through its controller (never this host)
        return fleet_cmd.fleet_deploy(
            spec,
            image,
            env,
            queue=queue,
            as_json=as_json,
            ca_file=ca_file,
            insecure_http=insecure_http,
            config_dir=config.resolve().parent,
            dry_run=dry_run,
        )
    announce("this host", as_json)
    env = "production"
    with host_context(config) as context:
        policy = host_policy(policy_file, spec, config, env, context.home)
        if dry_run:
            outcome = service.deploy(context, spec, image, dry_run=True, policy=policy)
            print_outcome_plan(outcome, as_json)
            return
        if policy is not None:
            policy.enforce(spec, image)  # before any secret is resolved
        secrets = app_secrets(spec, config, env)
        outcome = service.deploy(
            context,
            spec,
            image,
            secrets=secrets,
            wait=wait,
            reporter=StepPrinter(quiet=as_json),
            policy=policy,
        )
        report(outcome, as_json, "deployed")


def _image_argument(repository: str, image: str | None, ref: str | None, config: Path) -> str:
    from shipyard.errors import ConfigError

    if image and ref:
        raise ConfigError("give either IMAGE or --ref, not both.")
    if ref:
        from shipyard.adapters.git import resolve_commit

        return f"{repository}:{resolve_commit(ref, repo_root(config))}"
    if not image:
        raise ConfigError("name the image to deploy: shipyard deploy REPOSITORY:TAG (or --ref COMMIT).")
    return image


@handle_errors
def rollback(
    release: Annotated[str | None, typer.Argument(help="release id (default: the previous one)")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    env: FleetTargetOption = None,
    dry_run: DryRunOption = False,
    wait: WaitOption = False,
    as_json: JsonOption = False,
    policy_file: PolicyOption = None,
    ca_file: CaFileOption = None,
    insecure_http: InsecureHttpOption = False,
) -> None:
    """Swap back to the previous release (or RELEASE) with the image on this host (or --env: the fleet)."""
    spec = load(config)
    if env is not None:  # --env: the fleet, through its controller (never this host)
        return fleet_cmd.fleet_rollback(
            spec.app,
            env,
            release,
            as_json=as_json,
            spec=spec,
            ca_file=ca_file,
            insecure_http=insecure_http,
            dry_run=dry_run,
        )
    rollback_here(
        config,
        release,
        env="production",
        dry_run=dry_run,
        wait=wait,
        as_json=as_json,
        policy_file=policy_file,
        spec=spec,
    )


@handle_errors
def status(
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
    env: FleetEnvOption = None,
    app: AppFilterOption = None,
    ca_file: CaFileOption = None,
    insecure_http: InsecureHttpOption = False,
) -> None:
    """The app's active release, slot, health and haproxy server states (--env: every host of ENV)."""
    if env is not None:
        from shipyard.cli.fleet_ops import fleet_status

        spec_or_none = fleet_cmd.optional_spec(config)
        fleet_status(
            env, app, as_json=as_json, spec=spec_or_none, ca_file=ca_file, insecure_http=insecure_http
        )
        return
    spec = load(config)
    with host_context() as context:
        document = service.status(context, spec.app)
    if as_json:
        print_json(document)
        return
    active = document["active_release"] or {}
    say(f"app {document['app']}  listen {document['listen']}  maintenance {document['maintenance']}")
    say(
        f"active release {active.get('id', '-')} {active.get('image', '')}@{active.get('digest', '')} "
        f"(deployed {active.get('deployed_at', '-')} by {active.get('deployed_by', '-')})"
    )
    say(
        f"active slot {document['active_slot']} on port {document['active_port']}, "
        f"health {document['health']}"
    )
    rows = [
        [n, s["admin"], s["operational"], s["sessions"], s["port"]] for n, s in document["servers"].items()
    ]
    table("haproxy servers", ["slot", "admin", "health", "sessions", "port"], rows)
    rows = [[c["name"], c["slot"], c["release"], c["status"]] for c in document["containers"]]
    table("containers (kept releases)", ["name", "slot", "release", "status"], rows)
    workers = {name: found for name, found in document["processes"].items() if name != "web"}
    if workers:
        rows = [
            [name, c["name"], c["release"], c["status"], c["stop_deadline"] or "-"]
            for name, found in workers.items()
            for c in found
        ]
        table("worker processes", ["process", "container", "release", "status", "may be killed at"], rows)
    if document["preview"]:
        preview = document["preview"]
        routed = "routed" if preview["routed"] else "not routed yet"
        say(f"preview answering {preview['host_name']} through {preview['backend']} ({routed})")
    if document["previews"]:
        rows = [
            [p["app"], p["host_name"], p["active_release"] or "-", p["active_slot"] or "-", p["active_port"]]
            for p in document["previews"]
        ]
        table("previews on this host", ["app", "host name", "release", "slot", "port"], rows)
    for line in document["recovered"]:
        say(f"recovered: {line}")


@handle_errors
def releases(config: ConfigOption = DEFAULT_CONFIG, as_json: JsonOption = False) -> None:
    """This host's releases and the outcome of each deploy and rollback."""
    spec = load(config)
    with host_context() as context:
        document = releases_document(context, spec.app)
    if as_json:
        print_json(document)
        return
    active = document["active_release"]
    rows = [
        [
            ("* " if r["id"] == active else "  ") + r["id"],
            r["tag"],
            r["digest"][:19],
            r["created_at"][:19],
            r["created_by"],
        ]
        for r in document["releases"]
    ]
    table(f"releases of {spec.app}", ["release", "tag", "digest", "created", "by"], rows)
    rows = [
        [
            h["id"],
            h["kind"],
            h["release"],
            h["from_release"],
            h["outcome"],
            h["started_at"][:19],
            h["actor"],
            h["message"],
        ]
        for h in document["history"]
    ]
    table("history", ["#", "kind", "release", "from", "outcome", "started", "by", "message"], rows)


@handle_errors
def logs(
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="keep printing new lines (with --env: up to 10 min, or Ctrl-C)"),
    ] = False,
    release: Annotated[str | None, typer.Option("--release", "-r")] = None,
    tail: Annotated[int, typer.Option("--tail", help="lines per container to start with")] = 100,
    config: ConfigOption = DEFAULT_CONFIG,
    env: FleetEnvOption = None,
    app: AppFilterOption = None,
    grep: Annotated[str | None, typer.Option("--grep", help="with --env: lines matching this regex")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="with --env: lines of the last 10m, 2h, 1d")
    ] = None,
    process: Annotated[
        str | None, typer.Option("--process", help="with --env: containers of this process only (web, ...)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="with --env: one JSON object per line")] = False,
    ca_file: CaFileOption = None,
    insecure_http: InsecureHttpOption = False,
) -> None:
    """Logs of the active release's container (or --release R); --env: every host of ENV, prefixed."""
    from shipyard.secrets.masking import mask

    if env is not None:
        from shipyard.cli.fleet_ops import fleet_logs, log_query

        if release is not None:
            raise ConfigError(
                "--release is for this host's logs; with --env the hosts' active release is read."
            )
        query = log_query(follow=follow, grep=grep, since=since, process=process, tail=tail)
        spec_or_none = fleet_cmd.optional_spec(config)
        name = app or (spec_or_none.app if spec_or_none else None)
        if name is None:
            raise ConfigError(f"name the app with --app, or run where {config} is.")
        fleet_logs(
            env, name, query, as_json=as_json, spec=spec_or_none, ca_file=ca_file, insecure_http=insecure_http
        )
        return
    fleet_only = {
        "--grep": grep,
        "--since": since,
        "--process": process,
        "--app": app,
        "--json": as_json or None,
    }
    given = [option for option, value in fleet_only.items() if value is not None]
    if given:
        raise ConfigError(
            f"{', '.join(given)} go with --env (the fleet's logs); drop them for this host's logs."
        )
    spec = load(config)
    with host_context() as context:
        for chunk in maintenance.follow_logs(context, spec.app, release, follow, tail):
            typer.echo(mask(chunk), nl=False)


@handle_errors
def stop(
    config: ConfigOption = DEFAULT_CONFIG,
    wait: WaitOption = False,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Maintenance: haproxy answers 503 with the maintenance page; the app's containers stop."""
    spec = load(config)
    with host_context() as context:
        plan = maintenance.stop_app(context, spec.app, wait=wait, dry_run=dry_run)
    if dry_run:
        print_plan(plan, as_json, {"app": spec.app})
        return
    if as_json:
        print_json({"app": spec.app, "plan": plan.describe(), "changed": not plan.empty})
        return
    say(
        f"{spec.app} is in maintenance: {spec.proxy.listen} answers 503, {spec.healthcheck.path} answers 200."
    )


class Switch(StrEnum):
    on = "on"
    off = "off"


@handle_errors
def maintenance_command(
    turn: Annotated[Switch, typer.Argument(help="on: answer the maintenance page; off: serve again")],
    env: FleetEnvOption = None,
    app: AppFilterOption = None,
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="one line shown on the maintenance page")
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    secrets_env: Annotated[
        str, typer.Option("--secrets-env", help="without --env: environment whose secrets a start uses")
    ] = "production",
    wait: WaitOption = False,
    as_json: JsonOption = False,
    ca_file: CaFileOption = None,
    insecure_http: InsecureHttpOption = False,
) -> None:
    """Maintenance with the containers kept running: haproxy answers 503 with the maintenance page
    (and --message), the health path 200; off serves the app again at once. --env: every host of ENV."""
    turn_on = turn is Switch.on
    if message is not None and not turn_on:
        raise ConfigError("--message goes with 'maintenance on'; drop it to turn maintenance off.")
    spec = fleet_cmd.optional_spec(config)
    if env is not None:
        from shipyard.cli.fleet_ops import fleet_maintenance

        name = app or (spec.app if spec else None)
        if name is None:
            raise ConfigError(f"name the app with --app, or run where {config} is.")
        fleet_maintenance(
            turn_on,
            env,
            name,
            message,
            as_json=as_json,
            spec=spec,
            ca_file=ca_file,
            insecure_http=insecure_http,
        )
        return
    spec = load(config)
    with host_context() as context:
        if turn_on:
            plan = maintenance.enter_maintenance(context, spec.app, message=message, wait=wait)
        else:
            secrets = app_secrets(spec, config, secrets_env)
            plan = maintenance.start_app(context, spec.app, secrets=secrets, wait=wait)
    if as_json:
        print_json(
            {"app": spec.app, "maintenance": turn.value, "plan": plan.describe(), "changed": not plan.empty}
        )
    elif turn_on:
        say(
            f"{spec.app} is in maintenance: {spec.proxy.listen} answers 503, {spec.healthcheck.path} answers "
            "200, its containers keep running."
        )
    else:
        say(f"{spec.app} serves again on {spec.proxy.listen}.")


@handle_errors
def start(
    config: ConfigOption = DEFAULT_CONFIG,
    env: EnvOption = "production",
    wait: WaitOption = False,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Leave maintenance: start the active release again, health-gated."""
    spec = load(config)
    with host_context() as context:
        if dry_run:  # no secret is resolved for a plan: the commands name variables, never values
            print_plan(maintenance.start_app(context, spec.app, dry_run=True), as_json, {"app": spec.app})
            return
        plan = maintenance.start_app(context, spec.app, secrets=app_secrets(spec, config, env), wait=wait)
    if as_json:
        print_json({"app": spec.app, "plan": plan.describe(), "changed": True})
        return
    say(f"{spec.app} serves again on {spec.proxy.listen}.")


@handle_errors
def prune(
    config: ConfigOption = DEFAULT_CONFIG,
    env: FleetEnvOption = None,
    wait: WaitOption = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0, max=3600, help="with --env: seconds to wait for the hosts")
    ] = 120.0,
    as_json: JsonOption = False,
    ca_file: CaFileOption = None,
    insecure_http: InsecureHttpOption = False,
    dry_run: DryRunOption = False,
) -> None:
    """Remove containers and images older than the last deploy.keep_releases releases (--env: every host)."""
    spec = load(config)
    if env is not None:
        from shipyard.cli.fleet_prune import fleet_prune
        from shipyard.errors import ConfigError

        if dry_run:
            raise ConfigError("--dry-run plans this host's prune; drop --env to see it.")
        fleet_cmd.checked_name(env, "--env")
        if not fleet_cmd.controller_url(spec):
            raise ConfigError(
                "--env prunes every host of the environment through the controller; set "
                "SHIPYARD_CONTROLLER or 'controller:' in shipyard.yml, or drop --env to prune this host."
            )
        return fleet_prune(
            spec, env, timeout=timeout, as_json=as_json, ca_file=ca_file, insecure_http=insecure_http
        )
    with host_context() as context:
        plan, removed = maintenance.prune_plan(context, spec, wait=wait, dry_run=dry_run)
    if dry_run:
        print_plan(plan, as_json, {"removed": removed})
        return
    if as_json:
        print_json({"removed": removed})
        return
    say(f"removed {len(removed)}: " + ", ".join(removed) if removed else "nothing to prune")


@handle_errors
def remove(
    app_name: Annotated[
        str | None,
        typer.Argument(metavar="APP", help="the app to take off this host (default: the app of --config)"),
    ] = None,
    dry_run: DryRunOption = False,
    yes: Annotated[bool, typer.Option("--yes", help="remove without asking")] = False,
    wait: WaitOption = False,
    as_json: JsonOption = False,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Take APP off this host: containers, images of its releases, haproxy frontend, history."""
    from shipyard.domain.names import APP_NAME, is_name
    from shipyard.errors import ConfigError

    if app_name is None:
        if not config.exists():
            raise ConfigError(f"name the app to remove: shipyard remove APP (there is no {config}).")
        app_name = load(config).app
    if not is_name(APP_NAME, app_name):
        raise ConfigError(
            f"{app_name!r} is not an app name (lowercase letters, digits and dashes, starting with a letter)."
        )
    if not dry_run and not yes:
        raise ConfigError(
            f"'shipyard remove {app_name}' deletes its containers, images, haproxy frontend and history "
            "on this host; run it again with --yes (or --dry-run to see what it would do)."
        )
    with host_context() as context:
        plan = maintenance.remove_app(context, app_name, wait=wait, dry_run=dry_run)
    if dry_run:
        print_plan(plan, as_json, {"app": app_name})
        return
    if as_json:
        print_json({"app": app_name, "plan": plan.describe(), "changed": True})
        return
    say(f"{app_name} is removed from this host ({len(plan.steps)} steps).")
