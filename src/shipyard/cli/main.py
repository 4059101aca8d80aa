"""The `shipyard` command: thin, each command parses, calls one function and renders."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated

import typer

from shipyard import __version__
from shipyard.cli import host_cmd
from shipyard.cli.common import DEFAULT_CONFIG, ConfigOption, JsonOption, handle_errors, load
from shipyard.cli.entry import HOST_COMMANDS
from shipyard.cli.render import print_json, say
from shipyard.errors import ConfigError

app = typer.Typer(
    name="shipyard",
    help="Zero-downtime blue-green deploys of Docker images behind each host's haproxy.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def main(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="print shipyard's version and exit",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Zero-downtime blue-green deploys of Docker images behind each host's haproxy."""


for name in HOST_COMMANDS:
    app.command(name)(getattr(host_cmd, name))

# Sub-command groups and commands living in their own modules: (module, attribute, name, is_group).
EXTENSIONS: list[tuple[str, str, str, bool]] = [
    ("shipyard.cli.secrets_cmd", "secrets_app", "secrets", True),
    ("shipyard.cli.build_cmd", "build", "build", False),
    ("shipyard.cli.build_cmd", "scan", "scan", False),
    ("shipyard.cli.controller_cmd", "controller", "controller", False),
    ("shipyard.cli.controller_cmd", "job_worker", "job-worker", False),
    ("shipyard.cli.agent_cmd", "agent", "agent", False),
    ("shipyard.cli.signing_cmd", "signing_key", "signing-key", False),
    ("shipyard.cli.lab_cmd", "lab_app", "lab", True),
    ("shipyard.cli.host_ops_cmd", "host_app", "host", True),
    ("shipyard.cli.host_cmd", "maintenance_command", "maintenance", False),
    *[
        ("shipyard.cli.fleet_cmd", name, name, False)
        for name in ("deployments", "deployment", "pause", "resume", "abort")
    ],
    *[("shipyard.cli.fleet_cmd", name, name, False) for name in ("hosts", "lock", "unlock", "audit")],
    ("shipyard.cli.pipeline_cmd", "hooks_app", "hooks", True),
    *[("shipyard.cli.pipeline_cmd", name, name, False) for name in ("jobs", "job")],
    ("shipyard.cli.schedule_cmd", "schedule_app", "schedule", True),
    ("shipyard.cli.schedule_cmd", "schedules", "schedules", False),
    ("shipyard.cli.schedule_cmd", "notify_app", "notify", True),
    ("shipyard.cli.ci_cmd", "release_app", "release", True),
    ("shipyard.cli.ci_cmd", "token_app", "token", True),
]


def _register_extensions() -> None:
    for module_name, attribute, name, is_group in EXTENSIONS:
        module = importlib.import_module(module_name)
        target = getattr(module, attribute)
        if is_group:
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)


_register_extensions()


@app.command()
@handle_errors
def init(
    app_name: Annotated[str, typer.Option("--app", help="the app's name")] = "web",
    image: Annotated[str, typer.Option("--image", help="registry/repository of the app's image")] = (
        "127.0.0.1:5000/web"
    ),
    config: ConfigOption = DEFAULT_CONFIG,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
    as_json: JsonOption = False,
    ci: Annotated[
        str | None,
        typer.Option(
            "--ci",
            help="github | gitlab | circleci: write that CI's config (build --push, release create) "
            "for the app of an existing shipyard.yml",
        ),
    ] = None,
) -> None:
    """Write a commented shipyard.yml (or, with --ci, a CI config that ships each pipeline branch)."""
    from shipyard.cli.init_template import render_template
    from shipyard.domain.spec import parse_spec

    if ci is not None:
        written = init_ci(ci, config, force, quiet=as_json)
        if as_json:
            print_json({"wrote": str(written), "ci": ci})
        return

    if config.exists() and not force:
        raise ConfigError(f"{config} already exists; pass --force to overwrite it.")
    # The values are checked before they are written into the template, where a newline would add keys.
    parse_spec({"app": app_name, "image": image}, source="--app/--image")
    text = render_template(app_name, image)
    import yaml

    parse_spec(yaml.safe_load(text), source=str(config))
    config.write_text(text)
    if as_json:
        print_json({"wrote": str(config), "app": app_name, "image": image})
        return
    say(f"wrote {config}; edit it, then run 'shipyard deploy {image}:TAG'.")


def init_ci(ci: str, config: Path, force: bool, *, quiet: bool = False) -> Path:
    from shipyard.cli.ci_templates import PATHS, render

    if ci not in PATHS:
        raise ConfigError(f"--ci {ci!r} is not known; use one of: {', '.join(PATHS)}.")
    if not config.is_file():
        raise ConfigError(
            f"{config} does not exist; run 'shipyard init' first, then 'shipyard init --ci {ci}'."
        )
    spec = load(config)
    pipelines = [(p.branch, p.environment) for p in spec.pipelines] or [("release", "production")]
    target = config.resolve().parent / PATHS[ci]
    if target.exists() and not force:
        raise ConfigError(f"{target} already exists; pass --force to overwrite it.")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(ci, spec.image, pipelines))
    shipped = ", ".join(f"{branch} -> {environment}" for branch, environment in pipelines)
    if not quiet:
        say(f"wrote {target} ({shipped})")
        say(f"give the CI a token: shipyard token create {ci}-ci --role ci --app {spec.app}")
    return target


@app.command("config")
@handle_errors
def show_config(
    config: ConfigOption = DEFAULT_CONFIG,
    env: Annotated[
        str | None,
        typer.Option("--env", "-e", help="merge shipyard.ENV.yml over the config, as deploys to ENV do"),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The validated config with defaults filled in, each key with the file that set it."""
    from shipyard.cli.config_view import annotated_yaml
    from shipyard.domain.spec import load_config, spec_snapshot

    merged = load_config(config, env)
    spec = load(config, env)
    document = spec_snapshot(spec)
    if as_json:
        print_json(document)
        return
    from shipyard.secrets.masking import mask

    typer.echo(mask(annotated_yaml(document, merged)), nl=False)


@app.command()
def version(as_json: JsonOption = False) -> None:
    """Print shipyard's version."""
    if as_json:
        print_json({"version": __version__})
        return
    typer.echo(__version__)


def run() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    run()

__all__ = ["Path", "app", "run"]
