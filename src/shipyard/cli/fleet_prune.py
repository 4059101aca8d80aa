"""`shipyard prune --env E`: every host of E prunes the app through its agent, and says what it removed."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from rich.table import Table

from shipyard.cli.fleet_cmd import checked_name, fleet_client
from shipyard.cli.render import console, print_json, say
from shipyard.domain.prune import human_bytes
from shipyard.domain.spec import AppSpec
from shipyard.errors import ControllerError, ShipyardError
from shipyard.fleet_api.schemas.fleet import PruneOut


def prune_table(prune: PruneOut) -> Table:
    view = Table(title=f"prune {prune.id} of {prune.app} in {prune.environment}", title_justify="left")
    for column in ("host", "outcome", "removed", "free disk"):
        view.add_column(column)
    for host in prune.hosts:
        removed = ", ".join(host.removed) if host.removed else "-"
        if host.outcome != "succeeded":
            removed = host.message[:120]
        view.add_row(host.host, host.outcome, removed, human_bytes(host.disk_free))
    for name in prune.waiting:
        view.add_row(name, "waiting", "", "")
    return view


def fleet_prune(
    spec: AppSpec,
    env: str,
    *,
    timeout: float,
    as_json: bool,
    ca_file: Path | None = None,
    insecure_http: bool = False,
    interval: float = 1.0,
) -> None:
    """Ask the controller for a prune of every host of `env`, then wait up to `timeout` for their reports."""
    checked_name(env, "--env")
    with fleet_client(spec, ca_file, insecure_http) as client:
        prune = client.request_prune(spec.app, env)
        deadline = time.monotonic() + timeout
        while prune.waiting and time.monotonic() < deadline:
            time.sleep(interval)
            with contextlib.suppress(ControllerError):  # a restarting controller: keep waiting
                prune = client.get_prune(prune.id)
    if as_json:
        print_json(prune.model_dump(mode="json"))
    else:
        console.print(prune_table(prune))
        if prune.waiting:
            say(
                f"{len(prune.waiting)} host(s) have not reported yet; each prunes when its agent next polls "
                "(see 'shipyard hosts' for free disk)."
            )
    failed = [host for host in prune.hosts if host.outcome != "succeeded"]
    if failed:
        details = "; ".join(f"{host.host}: {host.message}" for host in failed)
        raise ShipyardError(f"prune {prune.id} failed on {len(failed)} host(s): {details}")
