"""Previews through the controller: `shipyard previews`, `shipyard preview up|down|pin`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from shipyard.cli.common import DEFAULT_CONFIG, JsonOption, handle_errors
from shipyard.cli.fleet_cmd import optional_spec
from shipyard.cli.pipeline_cmd import pipeline_client
from shipyard.cli.render import print_json, say, table

if TYPE_CHECKING:
    from shipyard.fleet_api.schemas.previews import PreviewAnswer, PreviewOut

preview_app = typer.Typer(help="A preview of an app per pull request (deployer token).", no_args_is_help=True)
AppRequired = Annotated[str, typer.Option("--app", help="the app's name")]
PrRequired = Annotated[int, typer.Option("--pr", min=1, max=99_999_999, help="the pull request's number")]


def duration(seconds: int | None) -> str:
    """4d 2h, 3h 5m, 12m, 40s: the two largest units."""
    if seconds is None:
        return "-"
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    parts: list[str] = []
    for name, size in units:
        if seconds >= size or (name == "s" and not parts):
            parts.append(f"{seconds // size}{name}")
            seconds %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


def _ttl(preview: PreviewOut) -> str:
    return (
        "pinned"
        if preview.pinned and preview.status not in ("closing", "closed")
        else duration(preview.ttl_left_seconds)
    )


@handle_errors
def previews(
    app: Annotated[str | None, typer.Option("--app", help="only this app's")] = None,
    all_: Annotated[bool, typer.Option("--all", help="closed previews too, however long ago")] = False,
    as_json: JsonOption = False,
) -> None:
    """Previews, newest first: PR, sha, URL, age, TTL left, status (closed ones for an hour; the reason
    of each one's last change in --json's `message`)."""
    with pipeline_client(optional_spec(DEFAULT_CONFIG)) as client:
        found = client.previews(app, all=all_)
    if as_json:
        print_json([p.model_dump(mode="json") for p in found])
        return
    rows = [
        [
            p.app,
            f"#{p.pr}" + (" (fork)" if p.fork else ""),
            p.sha[:12],
            p.url,
            duration(p.age_seconds),
            _ttl(p),
            p.status,
        ]
        for p in found
    ]
    table("previews", ["app", "pr", "sha", "url", "age", "ttl left", "status"], rows)


def _said(answer: PreviewAnswer, as_json: bool) -> None:
    if as_json:
        print_json(answer.model_dump(mode="json"))
        return
    preview = answer.preview
    where = f" ({preview.status}, {preview.url})" if preview is not None else ""
    job = f"; job {answer.job_id}" if answer.job_id is not None else ""
    say(f"{answer.detail}{where}{job}")


@preview_app.command("up")
@handle_errors
def up(
    app: AppRequired,
    pr: PrRequired,
    ref: Annotated[str, typer.Option("--ref", help="the full sha of the commit to preview")],
    repository: Annotated[
        str | None,
        typer.Option("--repository", help="git URL of the PR's repository (default: the app's hook's)"),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Build and deploy a preview pr-N of the app from the commit REF (a new push: a new release)."""
    with pipeline_client(optional_spec(DEFAULT_CONFIG)) as client:
        _said(client.preview_up(app, pr, ref, repository), as_json)


@preview_app.command("down")
@handle_errors
def down(app: AppRequired, pr: PrRequired, as_json: JsonOption = False) -> None:
    """Tear the preview down: off its hosts at once, then its database and secrets."""
    with pipeline_client(optional_spec(DEFAULT_CONFIG)) as client:
        _said(client.preview_down(app, pr), as_json)


@preview_app.command("pin")
@handle_errors
def pin(
    app: AppRequired,
    pr: PrRequired,
    unpin: Annotated[bool, typer.Option("--unpin", help="let the TTL apply again")] = False,
    as_json: JsonOption = False,
) -> None:
    """Keep a preview past its TTL (and out of previews.max's replacements); --unpin undoes it."""
    with pipeline_client(optional_spec(DEFAULT_CONFIG)) as client:
        _said(client.preview_pin(app, pr, pinned=not unpin), as_json)
