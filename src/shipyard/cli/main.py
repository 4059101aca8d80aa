"""The `shipyard` command: thin, each command parses, calls one function and renders."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from typer.core import TyperGroup
from typer.models import CommandInfo

from shipyard import __version__
from shipyard.cli.common import DEFAULT_CONFIG, ConfigOption, JsonOption, handle_errors, load
from shipyard.cli.entry import HOST_COMMANDS
from shipyard.cli.render import print_json, say
from shipyard.errors import ConfigError

if TYPE_CHECKING:  # typer's own click: the types its groups and commands are built from
    from typer._click.core import Command, Context

# Commands living in their own modules, in `shipyard --help` order: name -> (module, attribute,
# is_group). A module is imported only when one of its commands runs or --help lists them.
LAZY_COMMANDS: dict[str, tuple[str, str, bool]] = {
    **{name: ("shipyard.cli.host_cmd", name, False) for name in HOST_COMMANDS},
    "secrets": ("shipyard.cli.secrets_cmd", "secrets_app", True),
    "build": ("shipyard.cli.build_cmd", "build", False),
    "scan": ("shipyard.cli.build_cmd", "scan", False),
    "controller": ("shipyard.cli.controller_cmd", "controller", False),
    "job-worker": ("shipyard.cli.controller_cmd", "job_worker", False),
    "agent": ("shipyard.cli.agent_cmd", "agent", False),
    "signing-key": ("shipyard.cli.signing_cmd", "signing_key", False),
    "lab": ("shipyard.cli.lab_cmd", "lab_app", True),
    "host": ("shipyard.cli.host_ops_cmd", "host_app", True),
    "maintenance": ("shipyard.cli.host_cmd", "maintenance_command", False),
    **{
        name: ("shipyard.cli.fleet_cmd", name, False)
        for name in (
            "deployments",
            "deployment",
            "pause",
            "resume",
            "abort",
            "hosts",
            "lock",
            "unlock",
            "audit",
        )
    },
    "hooks": ("shipyard.cli.pipeline_cmd", "hooks_app", True),
    "jobs": ("shipyard.cli.pipeline_cmd", "jobs", False),
    "job": ("shipyard.cli.pipeline_cmd", "job", False),
    "preview": ("shipyard.cli.preview_cmd", "preview_app", True),
    "previews": ("shipyard.cli.preview_cmd", "previews", False),
    "schedule": ("shipyard.cli.schedule_cmd", "schedule_app", True),
    "schedules": ("shipyard.cli.schedule_cmd", "schedules", False),
    "notify": ("shipyard.cli.schedule_cmd", "notify_app", True),
    "release": ("shipyard.cli.ci_cmd", "release_app", True),
    "token": ("shipyard.cli.ci_cmd", "token_app", True),
    "run": ("shipyard.cli.task_cmd", "run", False),
    "exec": ("shipyard.cli.task_cmd", "exec_", False),
}


class LazyCommands(TyperGroup):
    """The top-level group: LAZY_COMMANDS first, then the commands defined here (init, config, version)."""

    def list_commands(self, ctx: Context) -> list[str]:
        return [*LAZY_COMMANDS, *(name for name in super().list_commands(ctx) if name not in LAZY_COMMANDS)]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in LAZY_COMMANDS:
            return command
        module_name, attribute, is_group = LAZY_COMMANDS[cmd_name]
        target = getattr(importlib.import_module(module_name), attribute)
        if is_group:
            command = typer.main.get_group(target)
        else:
            command = typer.main.get_command_from_info(
                CommandInfo(name=cmd_name, callback=target),
                pretty_exceptions_short=app.pretty_exceptions_short,
                rich_markup_mode=app.rich_markup_mode,
            )
        command.name = cmd_name
        self.add_command(command, cmd_name)
        return command


app = typer.Typer(
    name="shipyard",
    cls=LazyCommands,
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
