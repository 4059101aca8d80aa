"""`shipyard build` and `shipyard scan`: an image from a git commit, and secrets looked for in its layers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from shipyard.cli.common import (
    DEFAULT_CONFIG,
    ConfigOption,
    EnvOption,
    JsonOption,
    handle_errors,
    load,
    repo_root,
)
from shipyard.cli.render import console, print_json, say
from shipyard.errors import SecretLeakError
from shipyard.secrets.masking import mask

if TYPE_CHECKING:
    from shipyard.imaging.pipeline import BuildOutcome

STEP_HEADER = re.compile(r"^#(\d+) \[(?:[\w.-]+ )?\d+/\d+\] ")
STEP_STATUS = re.compile(r"^#(\d+) (CACHED|DONE [\d.]+s|ERROR.*)$")


class BuildPrinter:
    """Phases as they start; below them, each Dockerfile step of BuildKit's log and how it ended."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self._steps: set[str] = set()

    def phase(self, text: str) -> None:
        if not self.quiet:
            console.print(f"[cyan]→[/] {escape(mask(text))}")

    def log_line(self, line: str) -> None:
        if self.quiet:
            return
        header, status = STEP_HEADER.match(line), STEP_STATUS.match(line)
        if header:
            self._steps.add(header.group(1))
        elif not (status and status.group(1) in self._steps):
            return
        console.print(f"  [dim]{escape(mask(line))}[/]")


@handle_errors
def build(
    ref: Annotated[str, typer.Option("--ref", help="git commit, branch or tag to build")] = "HEAD",
    push: Annotated[
        bool, typer.Option("--push", help="push the tags (and the layer cache) to the registry")
    ] = False,
    dirty: Annotated[
        bool, typer.Option("--dirty", help="build the working tree as it is; tagged <sha>-dirty")
    ] = False,
    tags: Annotated[list[str] | None, typer.Option("--tag", "-t", help="an extra tag (repeatable)")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    env: EnvOption = "production",
    as_json: JsonOption = False,
) -> None:
    """Build the app's image from a clean checkout of a git commit, scan it for secrets, push it."""
    from shipyard.imaging.pipeline import BuildOptions, build_image

    options = BuildOptions(
        spec=load(config),
        config_dir=repo_root(config),
        env=env,
        ref=ref,
        dirty=dirty,
        push=push,
        extra_tags=tuple(tags or ()),
    )
    outcome = build_image(options, BuildPrinter(quiet=as_json))
    if as_json:
        print_json(outcome.to_json())
    else:
        _print_outcome(outcome)


def _print_outcome(outcome: BuildOutcome) -> None:
    console.print(f"[bold green]built[/] {escape(outcome.image)} [dim]{outcome.image_id[:19]}[/]")
    if outcome.scan is not None:
        say(f"scan: {outcome.scan.summary()}")
    for reference in outcome.pushed:
        say(f"pushed {reference}")
    if outcome.digest:
        say(f"digest {outcome.digest}")


@handle_errors
def scan(
    image: Annotated[
        str, typer.Argument(help="image to scan: repository:tag, an image id, or repo@sha256:...")
    ],
    config: ConfigOption = DEFAULT_CONFIG,
    env: EnvOption = "production",
    as_json: JsonOption = False,
) -> None:
    """Look through every layer of IMAGE (deleted files too) for private keys, tokens and known secrets."""
    from shipyard.imaging.image_scan import scan_for_secrets

    spec = load(config) if config.is_file() or config != DEFAULT_CONFIG else None
    report = scan_for_secrets(image, spec, repo_root(config) if spec else Path.cwd(), env)
    if as_json:
        print_json(report.to_json())
    else:
        for finding in report.findings:
            console.print(f"[bold red]✗[/] {escape(mask(finding.describe()))}")
        say(report.summary())
    if not report.clean:
        raise SecretLeakError(
            f"{len(report.findings)} secret(s) found in {image}; rebuild it without them (see docs/build.md)."
        )
