"""Day-two commands across an environment, through the controller: status, maintenance and logs.

`shipyard status --env E`, `shipyard maintenance on|off --env E` and `shipyard logs --env E` land
here; without --env they act on this host alone (host_cmd).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from pydantic import ValidationError

from shipyard.agent.log_lines import parse_duration
from shipyard.cli.fleet_cmd import checked_name, fleet_client
from shipyard.cli.render import errors, print_json, say, table
from shipyard.domain.maintenance_page import check_message
from shipyard.domain.prune import human_bytes
from shipyard.domain.spec import AppSpec
from shipyard.errors import ConfigError, NotFoundError, ShipyardError
from shipyard.fleet_api.schemas.agent import CRASH_LOOP_STEP
from shipyard.fleet_api.schemas.logs import MAX_FOLLOW, LogQuery
from shipyard.secrets.masking import mask

if TYPE_CHECKING:
    from shipyard.fleet_api.schemas.fleet import HostOut


def say_error(text: str) -> None:
    errors.print(mask(text), markup=False)


def status_rows(hosts: list[HostOut], app: str | None) -> list[dict[str, Any]]:
    """One row per host and app of the environment (a host that runs no app yet: one row without app)."""
    rows: list[dict[str, Any]] = []
    for host in hosts:
        apps = [a for a in host.apps if app is None or a.app == app]
        base = {
            "host": host.name,
            "status": host.status,
            "last_seen": host.last_seen.isoformat(),
            "disk_free": host.disk_free,
        }
        if not apps and app is None:
            rows.append(
                {**base, "app": None, "active_release": None, "health": "unknown", "maintenance": False}
            )
        for item in apps:
            release = f"r{item.active_release}" if item.active_release is not None else None
            rows.append(
                {
                    **base,
                    "app": item.app,
                    "active_release": release,
                    "health": item.health,
                    "maintenance": item.maintenance,
                    # why it is unhealthy, when the agent said (a crash-looping worker)
                    "problem": item.message
                    if item.step == CRASH_LOOP_STEP and item.health == "unhealthy"
                    else None,
                }
            )
    return rows


def fleet_status(
    env: str,
    app: str | None,
    *,
    as_json: bool,
    spec: AppSpec | None,
    ca_file: Path | None = None,
    insecure_http: bool = False,
) -> None:
    """Every host of `env` as its agent last reported: apps, releases, health, maintenance, free disk."""
    checked_name(env, "--env")
    if app is not None:
        checked_name(app, "--app")
    with fleet_client(spec, ca_file, insecure_http) as client:
        hosts = client.hosts(env)
    if not hosts:
        raise NotFoundError(f"no host has joined {env}; start an agent there with a join token for it.")
    rows = status_rows(hosts, app)
    if as_json:
        print_json({"environment": env, "app": app, "hosts": rows})
        return
    table(
        f"status of {env}" + (f" ({app})" if app else ""),
        ["host", "status", "app", "release", "health", "maintenance", "last seen", "free disk"],
        [
            [
                r["host"],
                r["status"],
                r["app"] or "-",
                r["active_release"] or "-",
                r["health"],
                "on" if r["maintenance"] else "off",
                r["last_seen"][11:19],
                human_bytes(r["disk_free"]),
            ]
            for r in rows
        ],
    )
    for r in rows:
        if r.get("problem"):
            say(f"{r['host']} {r['app']}: {r['problem']}")


def fleet_maintenance(
    turn_on: bool,
    env: str,
    app: str,
    message: str | None,
    *,
    as_json: bool,
    spec: AppSpec | None,
    ca_file: Path | None = None,
    insecure_http: bool = False,
) -> None:
    """Record the app's maintenance in `env` on the controller; every host's agent carries it out."""
    checked_name(env, "--env")
    checked_name(app, "--app")
    if message is not None:
        check_message(message)
    with fleet_client(spec, ca_file, insecure_http) as client:
        if turn_on:
            window = client.enter_maintenance(app, env, message or "")
            document: dict[str, Any] = {"maintenance": "on", **window.model_dump(mode="json")}
        else:
            client.leave_maintenance(app, env)
            document = {"maintenance": "off", "app": app, "environment": env}
    if as_json:
        print_json(document)
    elif turn_on:
        say(
            f"{app} is in maintenance in {env}: each host's agent puts its haproxy on the maintenance page "
            "(containers keep running); 'shipyard status --env' shows when every host has."
        )
    else:
        say(f"{app} leaves maintenance in {env}: each host's agent serves it again.")


def log_query(
    *, follow: bool, grep: str | None, since: str | None, process: str | None, tail: int
) -> LogQuery:
    """The options checked here, each refusal one sentence, before anything is sent."""
    if grep is not None:
        try:
            re.compile(grep)
        except re.error as exc:
            raise ConfigError(
                f"--grep {grep!r} is not a regular expression ({exc}); fix the pattern."
            ) from exc
    seconds = None
    if since is not None:
        seconds = parse_duration(since)
        if seconds is None:
            raise ConfigError(
                f"--since {since!r} is not a duration; use a number and s, m, h or d, like 10m."
            )
    try:
        return LogQuery(
            grep=grep, since=seconds, process=process, tail=tail, follow=MAX_FOLLOW if follow else 0
        )
    except ValidationError as exc:
        problem = exc.errors()[0]
        option = "--" + str(problem["loc"][0])
        raise ConfigError(f"{option} is not valid: {problem['msg']}; see 'shipyard logs --help'.") from exc


def fleet_logs(
    env: str,
    app: str,
    query: LogQuery,
    *,
    as_json: bool,
    spec: AppSpec | None,
    ca_file: Path | None = None,
    insecure_http: bool = False,
    interval: float = 0.5,
) -> None:
    """Every host's lines, prefixed with its name, until each host has sent all (or, followed, until the
    follow time passes or Ctrl-C); then which hosts did not answer and why."""
    checked_name(env, "--env")
    checked_name(app, "--app")
    with fleet_client(spec, ca_file, insecure_http) as client:
        request = client.request_logs(app, env, query)
        width = max((len(name) for name in request.hosts), default=0)
        after, current = 0, request
        try:
            while True:
                current = client.read_logs(request.id, after)
                for line in current.lines:
                    after = line.id
                    if as_json:
                        typer.echo(mask(json.dumps({"host": line.host, "line": line.line})))
                    else:
                        typer.echo(f"{line.host.ljust(width)} | {mask(line.line)}")
                everyone = set(current.finished) >= set(current.hosts)
                if not current.lines and (everyone or not current.open):
                    break
                if not current.lines:
                    time.sleep(interval)
        except KeyboardInterrupt:
            pass
        finally:
            if current.open:
                with contextlib.suppress(ShipyardError):  # closing is a courtesy: it expires anyway
                    client.close_logs(request.id)
    silent = [name for name in current.hosts if name not in current.finished and name not in current.messages]
    for name, message in sorted(current.messages.items()):
        say_error(f"{name}: {message}")
    if silent and not query.follow:
        say_error(
            f"no answer from {', '.join(silent)} in time (offline, or an older agent); see 'shipyard hosts'."
        )
