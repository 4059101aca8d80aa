"""Schedules, pure: cron expressions read in a time zone, the next run, and what a due run does.

A schedule runs one of a small set of jobs:
- `deploy --ref SHA --env E`: ship that commit to E at the set time (a release window);
- `rebuild --env E`: build the commit E last shipped again and deploy it (a fresh base image);
- `prune --env E`: every host of E removes the app's old releases (controller/store/prunes.py), no job.
Overlap: when the schedule's previous job is still queued or running, `skip` records the run as
skipped; `queue` adds the job behind it. Runs missed while the controller was down (due more than
MISSED_AFTER ago): `run-once` runs one job for all of them at start, `skip` records them as skipped;
either way the next run is the next occurrence after now. No I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

from shipyard.errors import ConfigError

DEPLOY, REBUILD, PRUNE = "deploy", "rebuild", "prune"
ACTIONS = (DEPLOY, REBUILD, PRUNE)
SKIP, QUEUE = "skip", "queue"
OVERLAPS = (SKIP, QUEUE)
RUN_ONCE = "run-once"
MISSED_POLICIES = (RUN_ONCE, SKIP)
# A run this late was missed (the controller was down), not merely picked up on the next tick.
MISSED_AFTER = timedelta(minutes=2)
SHA = re.compile(r"^[0-9a-f]{40}$")
CRON_FIELDS = 5


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"time zone {name!r} is unknown; use an IANA name such as UTC or Asia/Tokyo."
        ) from None


def check_cron(expression: str) -> str:
    expression = " ".join(expression.split())
    if len(expression.split(" ")) != CRON_FIELDS or not croniter.is_valid(expression):
        raise ConfigError(
            f"cron expression {expression!r} is not valid; use five fields: minute hour day month "
            "weekday, e.g. '0 3 * * *'."
        )
    return expression


def next_run(expression: str, timezone: str, after: datetime) -> datetime:
    """The first occurrence strictly after `after`, read in `timezone`, returned in UTC."""
    local = after.astimezone(zone(timezone))
    try:
        following = croniter(expression, local).get_next(datetime)
    except (CroniterBadCronError, CroniterBadDateError) as exc:
        raise ConfigError(f"cron expression {expression!r} never fires: {exc}") from None
    return following.astimezone(UTC)


@dataclass(frozen=True)
class ScheduledJob:
    action: str
    environment: str
    ref: str | None = None


def check_job(action: str, environment: str, ref: str | None) -> ScheduledJob:
    if action not in ACTIONS:
        raise ConfigError(f"job {action!r} cannot be scheduled; use one of: {', '.join(ACTIONS)}.")
    if action == DEPLOY and (ref is None or not SHA.match(ref)):
        raise ConfigError("a scheduled deploy needs --ref with the full 40-character commit sha.")
    if action == REBUILD and ref is not None:
        raise ConfigError("a rebuild takes no --ref: it rebuilds the commit the environment runs.")
    if action == PRUNE and ref is not None:
        raise ConfigError("a prune takes no --ref: it keeps the releases deploy.keep_releases names.")
    return ScheduledJob(action, environment, ref)


def parse_job(words: Sequence[str]) -> ScheduledJob:
    """`deploy --ref SHA --env E`, `rebuild --env E` or `prune --env E`, after `shipyard schedule add`."""
    if not words:
        raise ConfigError(
            "name the job to schedule: 'deploy --ref SHA --env E', 'rebuild --env E' or 'prune --env E'."
        )
    action, options = words[0], list(words[1:])
    values: dict[str, str] = {}
    while options:
        option = options.pop(0)
        name, equals, value = option.partition("=")
        if name not in ("--ref", "--env"):
            raise ConfigError(f"{option!r} is not an option of a scheduled job; use --env E (and --ref SHA).")
        if not equals:
            if not options:
                raise ConfigError(f"{name} needs a value.")
            value = options.pop(0)
        values[name] = value
    if "--env" not in values:
        raise ConfigError(f"a scheduled {action} needs --env ENVIRONMENT.")
    return check_job(action, values["--env"], values.get("--ref"))


@dataclass(frozen=True)
class Decision:
    run: bool
    reason: str


def decide(
    *, due_at: datetime, now: datetime, missed: str, overlap: str, previous_status: str | None
) -> Decision:
    """What a due run does: run its job, or skip it and say why."""
    late = now - due_at
    if late > MISSED_AFTER and missed == SKIP:
        return Decision(
            False, f"skipped: missed while the controller was down (due {due_at:%Y-%m-%d %H:%M} UTC)"
        )
    if previous_status in ("queued", "running") and overlap == SKIP:
        return Decision(False, f"skipped: the previous run's job is still {previous_status}")
    if late > MISSED_AFTER:
        return Decision(True, f"run once for the runs missed since {due_at:%Y-%m-%d %H:%M} UTC")
    return Decision(True, "run on time")
