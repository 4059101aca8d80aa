"""Pipeline commands through the controller: `shipyard hooks ...`, `shipyard jobs`, `shipyard job ...`."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from shipyard.cli.common import DEFAULT_CONFIG, ConfigOption, JsonOption, handle_errors
from shipyard.cli.fleet_cmd import controller_url, optional_spec
from shipyard.cli.render import console, print_json, say, table
from shipyard.domain import names
from shipyard.domain.spec import AppSpec
from shipyard.errors import ConfigError, DeployFailedError

if TYPE_CHECKING:
    from shipyard.fleet_api.pipeline_client import PipelineClient
    from shipyard.fleet_api.schemas.pipeline import JobOut, LogLineOut

hooks_app = typer.Typer(help="Webhooks that ship merged commits (admin token).", no_args_is_help=True)
PROVIDERS = ("github", "gitlab")
AppRequired = Annotated[str, typer.Option("--app", help="the app's name")]
JOB_ACTIONS = ("cancel", "retry")


def pipeline_client(spec: AppSpec | None = None) -> PipelineClient:
    import os

    from shipyard.fleet_api.pipeline_client import PipelineClient

    url = controller_url(spec)
    if not url:
        raise ConfigError(
            "no controller configured; set SHIPYARD_CONTROLLER or 'controller:' in shipyard.yml."
        )
    from shipyard.fleet_api.tls import CA_FILE_ENV, INSECURE_HTTP_ENV

    # The same environment as the fleet commands' --ca-file and --insecure-http options.
    ca_file = os.environ.get(CA_FILE_ENV)
    insecure_http = os.environ.get(INSECURE_HTTP_ENV, "").lower() in ("1", "true", "yes")
    return PipelineClient(
        url,
        os.environ.get("SHIPYARD_TOKEN"),
        ca_file=Path(ca_file) if ca_file else None,
        insecure_http=insecure_http,
    )


def read_secret(prompt: str) -> str:
    """The secret from standard input (piped), or typed without echo at a terminal."""
    secret = getpass.getpass(prompt) if sys.stdin.isatty() else sys.stdin.readline()
    secret = secret.strip()
    if not secret:
        raise ConfigError(
            "no webhook secret on standard input; pipe one in, e.g. 'openssl rand -hex 32 | ...'."
        )
    return secret


def parse_pipeline(text: str) -> dict[str, str]:
    branch, sep, environment = text.partition("=")
    if not sep or not branch or not environment:
        raise ConfigError(f"--pipeline {text!r} must be BRANCH=ENVIRONMENT, e.g. release=production.")
    return {"branch": branch, "environment": environment}


@hooks_app.command("add")
@handle_errors
def add(
    provider: Annotated[str, typer.Argument(help="github or gitlab")],
    app: AppRequired,
    repository: Annotated[
        str | None,
        typer.Option("--repository", help="git URL to fetch (default: repository in shipyard.yml)"),
    ] = None,
    pipeline: Annotated[
        list[str] | None,
        typer.Option(
            "--pipeline", help="BRANCH=ENVIRONMENT (default: pipelines in shipyard.yml); repeatable"
        ),
    ] = None,
    deploy_key_secret: Annotated[
        str | None,
        typer.Option(
            "--deploy-key-secret",
            help="ssh URLs: name of the key in the controller's secret store (--env controller)",
        ),
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
) -> None:
    """Register APP's webhook; the secret is read from standard input and never shown again."""
    if provider not in PROVIDERS:
        raise ConfigError(f"provider {provider!r} is not supported yet; use {', '.join(PROVIDERS)}.")
    spec = optional_spec(config)
    repository = repository or (spec.repository if spec else None)
    if not repository:
        raise ConfigError(
            "name the git repository with --repository URL, or set repository: in shipyard.yml."
        )
    pipelines = [parse_pipeline(text) for text in pipeline or []]
    if not pipelines and spec is not None:
        pipelines = [p.model_dump() for p in spec.pipelines]
    if not pipelines and (spec is None or spec.previews is None):  # such a hook would never act
        raise ConfigError(
            "no pipelines: add 'pipelines: [{branch, environment}]' to shipyard.yml or pass --pipeline "
            "(an app with previews: in shipyard.yml may have none)."
        )
    secret = read_secret("webhook secret: ")
    with pipeline_client(spec) as client:
        hook = client.add_hook(
            app, repository, secret, pipelines, provider=provider, deploy_key_secret=deploy_key_secret
        )
        url = client.url + hook.payload_path
    if as_json:
        print_json({**hook.model_dump(mode="json"), "payload_url": url})
        return
    shipped = ", ".join(f"{p['branch']} -> {p['environment']}" for p in hook.pipelines)
    say(f"hook added for {hook.app}: {shipped or 'no pipelines; pull and merge requests get previews'}")
    if provider == "gitlab":
        say("In GitLab: the project's Settings -> Webhooks -> Add new webhook:")
        say(f"  URL:           {url}")
        say("  Secret token:  the secret you just entered")
        say("  Trigger:       Push events (all branches) and Merge request events")
        say("  SSL:           enable SSL verification")
        return
    say("In GitHub: the repository's Settings -> Webhooks -> Add webhook:")
    say(f"  Payload URL:   {url}")
    say("  Content type:  application/json")
    say("  Secret:        the secret you just entered")
    say("  SSL:           enable SSL verification")
    say("  Events:        Let me select individual events -> Pushes and Pull requests")


@hooks_app.command("list")
@handle_errors
def list_hooks(as_json: JsonOption = False) -> None:
    """Registered hooks (never their secrets)."""
    with pipeline_client(optional_spec(DEFAULT_CONFIG)) as client:
        found = client.hooks()
    if as_json:
        print_json([hook.model_dump(mode="json") for hook in found])
        return
    rows = [
        [
            h.app,
            h.provider,
            h.repository,
            ", ".join(f"{p['branch']}->{p['environment']}" for p in h.pipelines),
            "rotating" if h.rotating else "",
            h.payload_path,
        ]
        for h in found
    ]
    table("hooks", ["app", "provider", "repository", "pipelines", "secret", "payload path"], rows)


@hooks_app.command("rm")
@handle_errors
def remove(app: AppRequired, as_json: JsonOption = False) -> None:
    """Remove APP's hook; its deliveries are then refused."""
    with pipeline_client(optional_spec(DEFAULT_CONFIG)) as client:
        client.remove_hook(app)
    if as_json:
        print_json({"app": app, "removed": True})
        return
    say(f"hook of {app} removed")


@hooks_app.command("rotate")
@handle_errors
def rotate(
    app: AppRequired,
    finish: Annotated[
        bool, typer.Option("--finish", help="end the rotation: only the new secret is accepted")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Start a secret rotation (new secret on standard input; both accepted) or end it with --finish."""
    secret = None if finish else read_secret("new webhook secret: ")
    with pipeline_client(optional_spec(DEFAULT_CONFIG)) as client:
        hook = client.rotate_hook(app, secret)
    if as_json:
        print_json(hook.model_dump(mode="json"))
    elif hook.rotating:
        say(
            f"{app}: the new and the old secret are both accepted; set the new one in GitHub/GitLab, then run"
        )
        say(f"  shipyard hooks rotate --app {app} --finish")
    else:
        say(f"{app}: only the new secret is accepted from now on")


@hooks_app.command("deliveries")
@handle_errors
def deliveries(
    app: Annotated[str | None, typer.Option("--app", help="only this app's")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 50,
    as_json: JsonOption = False,
) -> None:
    """Webhook deliveries received, newest first, with their verdict and reason."""
    with pipeline_client(optional_spec(DEFAULT_CONFIG)) as client:
        found = client.deliveries(app, limit)
    if as_json:
        print_json([d.model_dump(mode="json") for d in found])
        return
    rows = [
        [
            d.received_at.strftime("%Y-%m-%d %H:%M:%S"),
            d.app,
            d.event,
            d.delivery_id,
            d.verdict,
            d.job_id,
            d.reason,
        ]
        for d in found
    ]
    table("deliveries", ["at", "app", "event", "delivery", "verdict", "job", "reason"], rows)


def _timings(job: JobOut) -> str:
    return " ".join(f"{name} {seconds:.1f}s" for name, seconds in job.timings.items() if "." not in name)


@handle_errors
def jobs(
    app: Annotated[str | None, typer.Option("--app", help="only this app's")] = None,
    env: Annotated[str | None, typer.Option("--env", "-e", help="only this environment's")] = None,
    as_json: JsonOption = False,
) -> None:
    """Pipeline jobs, newest first: commit, trigger, status and time per step."""
    with pipeline_client(optional_spec(DEFAULT_CONFIG)) as client:
        found = client.jobs(app=app, environment=env)
    if as_json:
        print_json([j.model_dump(mode="json") for j in found])
        return
    rows = [[j.id, j.app, j.environment, j.sha[:12], j.trigger, j.status, j.step, _timings(j)] for j in found]
    table("jobs", ["id", "app", "env", "sha", "trigger", "status", "step", "timings"], rows)


def _print_line(line: LogLineOut) -> None:
    say(f"[{line.step or '-'}] {line.line}")


def _show(client: PipelineClient, job_id: int, follow: bool, as_json: bool) -> None:
    if follow:
        found = client.follow_log(job_id, _print_line)
    else:
        found = client.job(job_id)
        if not as_json:
            for line in client.job_log(job_id):
                _print_line(line)
    if as_json:
        print_json(found.model_dump(mode="json"))
    else:
        console.print()
        where = f"{found.app} {found.sha[:12]} -> {found.environment}"
        say(f"job {found.id} {where}: {found.status} {found.message}")
        if found.timings:
            say(f"timings: {_timings(found)}")
    if follow and found.status != "succeeded":
        raise DeployFailedError(f"job {found.id} {found.status}: {found.message}")


@handle_errors
def job(
    target: Annotated[str, typer.Argument(help="a job id, or cancel / retry followed by the id")],
    job_id: Annotated[int | None, typer.Argument(help="the job id after cancel or retry")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="stream the log until the job ends")] = False,
    as_json: JsonOption = False,
) -> None:
    """A job and its log (ID [--follow]), or: cancel ID, retry ID."""
    with pipeline_client(optional_spec(DEFAULT_CONFIG)) as client:
        if target in JOB_ACTIONS:
            if job_id is None:
                raise ConfigError(f"name the job: shipyard job {target} ID.")
            changed = client.cancel_job(job_id) if target == "cancel" else client.retry_job(job_id)
            if as_json:
                print_json(changed.model_dump(mode="json"))
            elif target == "cancel":
                say(f"job {changed.id}: {changed.status} ({changed.message})")
            else:
                what = f"{changed.sha[:12]} -> {changed.environment}"
                say(f"job {changed.id} queued: {what} (retry of {job_id})")
            return
        if not names.is_name(names.DECIMAL_ID, target) or job_id is not None:
            raise ConfigError(
                f"{target!r} is not a job id; use 'shipyard job ID', 'job cancel ID' or 'job retry ID'."
            )
        _show(client, int(target), follow, as_json)
