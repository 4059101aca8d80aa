"""Day-two commands across an environment, through the controller: status and maintenance.

`shipyard status --env E` and `shipyard maintenance on|off --env E` land here when a controller is
configured; without --env they act on this host alone (host_cmd).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shipyard.cli.fleet_cmd import checked_name, fleet_client
from shipyard.cli.render import print_json, say, table
from shipyard.domain.maintenance_page import check_message
from shipyard.domain.prune import human_bytes
from shipyard.domain.spec import AppSpec
from shipyard.errors import NotFoundError


def status_rows(hosts: list[Any], app: str | None) -> list[dict[str, Any]]:
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
