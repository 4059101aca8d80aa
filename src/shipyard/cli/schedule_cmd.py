"""`shipyard schedule add|rm`, `shipyard schedules` and `shipyard notify add|list|rm|log`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from shipyard.cli.common import DEFAULT_CONFIG, JsonOption, handle_errors
from shipyard.cli.fleet_cmd import optional_spec
from shipyard.cli.pipeline_cmd import pipeline_client
from shipyard.cli.render import print_json, say, table
from shipyard.errors import ConfigError

schedule_app = typer.Typer(help="Jobs started by the clock (deployer token).", no_args_is_help=True)
notify_app = typer.Typer(help="Post job and deployment events to a URL (admin token).", no_args_is_help=True)


@schedule_app.command("add", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@handle_errors
def add(
    job: Annotated[
        list[str],
        typer.Argument(
            help="the job: 'deploy --ref SHA --env E', 'rebuild --env E' or 'prune --env E'", metavar="JOB"
        ),
    ],
    app: Annotated[str, typer.Option("--app", help="the app's name")],
    cron: Annotated[str, typer.Option("--cron", help="five fields: minute hour day month weekday")],
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone the cron is read in")] = "UTC",
    overlap: Annotated[
        str, typer.Option("--overlap", help="skip | queue: when the previous run's job is still going")
    ] = "skip",
    missed: Annotated[
        str, typer.Option("--missed", help="run-once | skip: runs missed while the controller was down")
    ] = "run-once",
    as_json: JsonOption = False,
) -> None:
    """Run JOB for APP on a cron schedule in a time zone, e.g. --cron "0 3 * * *" --tz Asia/Tokyo."""
    from shipyard.controller.engine import schedule

    wanted = schedule.parse_job(job)
    if overlap not in schedule.OVERLAPS:
        raise ConfigError(f"--overlap {overlap!r} is not known; use skip or queue.")
    if missed not in schedule.MISSED_POLICIES:
        raise ConfigError(f"--missed {missed!r} is not known; use run-once or skip.")
    body: dict[str, Any] = {
        "app": app,
        "cron": schedule.check_cron(cron),
        "timezone": tz,
        "action": wanted.action,
        "environment": wanted.environment,
        "ref": wanted.ref,
        "overlap": overlap,
        "missed": missed,
    }
    schedule.zone(tz)  # an unknown zone is named here, before anything is sent
    with pipeline_client(optional_spec(DEFAULT_CONFIG)) as client:
        added = client.add_schedule(body)
    if as_json:
        print_json(added.model_dump(mode="json"))
        return
    what = f"{added.action} {added.app} -> {added.environment}"
    say(f"schedule {added.id}: {what} at '{added.cron}' {added.timezone}")
    say(f"next run: {added.next_run_local}")


@schedule_app.command("rm")
@handle_errors
def remove(
    schedule_id: Annotated[int, typer.Argument(help="the schedule's id", min=1)], as_json: JsonOption = False
) -> None:
    """Remove a schedule; a job it already queued keeps running."""
    with pipeline_client(optional_spec(DEFAULT_CONFIG)) as client:
        client.remove_schedule(schedule_id)
    if as_json:
        print_json({"schedule": schedule_id, "removed": True})
        return
    say(f"schedule {schedule_id} removed")


@handle_errors
def schedules(
    app: Annotated[str | None, typer.Option("--app", help="only this app's")] = None,
    as_json: JsonOption = False,
) -> None:
    """Schedules with their next run (in their own time zone) and how the last run went."""
    with pipeline_client(optional_spec(DEFAULT_CONFIG)) as client:
        found = client.schedules(app)
    if as_json:
        print_json([s.model_dump(mode="json") for s in found])
        return
    rows = [
        [
            s.id,
            s.app,
            f"{s.action}{' ' + s.ref[:12] if s.ref else ''} -> {s.environment}",
            f"{s.cron} ({s.timezone})",
            s.next_run_local,
            f"{s.overlap}/{s.missed}",
            s.last_result,
        ]
        for s in found
    ]
    table("schedules", ["id", "app", "job", "cron", "next run", "overlap/missed", "last run"], rows)


@notify_app.command("add")
@handle_errors
def notify_add(
    url: Annotated[str, typer.Option("--url", help="where to post (http or https)")],
    format_: Annotated[str, typer.Option("--format", help="slack | json")] = "json",
    app: Annotated[str | None, typer.Option("--app", help="only this app's events (default: all)")] = None,
    as_json: JsonOption = False,
) -> None:
    """Post job and deployment start, success and failure to URL (retried; never fails a deploy)."""
    if format_ not in ("slack", "json"):
        raise ConfigError(f"--format {format_!r} is not known; use slack or json.")
    with pipeline_client(optional_spec(DEFAULT_CONFIG)) as client:
        target = client.add_notify(url, format_, app)
    if as_json:
        print_json(target.model_dump(mode="json"))
        return
    say(f"notification target {target.id}: {target.format} to {target.url} ({target.app or 'every app'})")


@notify_app.command("list")
@handle_errors
def notify_list(as_json: JsonOption = False) -> None:
    """Notification targets (URLs shown as scheme and host only)."""
    with pipeline_client(optional_spec(DEFAULT_CONFIG)) as client:
        found = client.notify_targets()
    if as_json:
        print_json([t.model_dump(mode="json") for t in found])
        return
    table("notify", ["id", "format", "url", "app"], [[t.id, t.format, t.url, t.app or "*"] for t in found])


@notify_app.command("rm")
@handle_errors
def notify_remove(
    target_id: Annotated[int, typer.Argument(help="the target's id", min=1)], as_json: JsonOption = False
) -> None:
    """Remove a notification target and what is still queued for it."""
    with pipeline_client(optional_spec(DEFAULT_CONFIG)) as client:
        client.remove_notify(target_id)
    if as_json:
        print_json({"target": target_id, "removed": True})
        return
    say(f"notification target {target_id} removed")


@notify_app.command("log")
@handle_errors
def notify_log(
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 50, as_json: JsonOption = False
) -> None:
    """Notifications queued, newest first: sent, pending (with the next retry) or failed."""
    with pipeline_client(optional_spec(DEFAULT_CONFIG)) as client:
        found = client.notifications(limit)
    if as_json:
        print_json([n.model_dump(mode="json") for n in found])
        return
    rows = [[n.id, n.target_id, n.event, n.status, n.attempts, n.last_error] for n in found]
    table("notifications", ["id", "target", "event", "status", "attempts", "last error"], rows)
