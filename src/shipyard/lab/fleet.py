"""`shipyard lab`: a local fleet on one machine, all on 127.0.0.0/8.

A registry, a controller (SQLite; or several replicas on PostgreSQL), N hosts each with its own Docker
Engine, agent and haproxy on its own loopback address, and an edge haproxy in front of them. Everything
it starts is recorded in DIR/lab.json, so `lab scale`, `lab status` and `lab down` work from separate
invocations.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from shipyard.controller.option_bounds import MAX_PREVIEW_RECONCILE_INTERVAL, MIN_PREVIEW_RECONCILE_INTERVAL
from shipyard.domain.names import HOST, is_name
from shipyard.errors import ConfigError, ShipyardError
from shipyard.lab import control_plane
from shipyard.lab.edge import PREVIEWS, EdgeProxy
from shipyard.lab.hosts import environment_key, host_processes, new_host, start_host, stop_host
from shipyard.lab.images import remove_lab_images
from shipyard.lab.ports import free_port
from shipyard.lab.processes import alive, stop_process
from shipyard.lab.state import (
    DEFAULT_PREVIEWS_DOMAIN,
    LAB_PREVIEW_RECONCILE_INTERVAL,
    PREVIEW_GROUP,
    AppPlan,
    HostRecord,
    LabState,
    load_state,
)

T = TypeVar("T")


def edge_of(state: LabState) -> EdgeProxy:
    return EdgeProxy(state.path / "edge", state.edge_port, state.previews_domain)


MAX_CONTROLLERS = 5


def lab_up(
    root: Path,
    hosts: int,
    *,
    subnet: str = "127.0.1",
    app: AppPlan | None = None,
    images: bool = True,
    controllers: int = 1,
    database: str = "sqlite",
    preview_hosts: int = 0,
    previews_domain: str = DEFAULT_PREVIEWS_DOMAIN,
    preview_reconcile_interval: float = LAB_PREVIEW_RECONCILE_INTERVAL,
) -> LabState:
    """`database`: sqlite, postgres (a server the lab starts) or a postgresql:// URL to use as it is.
    `preview_hosts` hosts join the group `preview` (they run the apps' previews), served at the edge
    for every Host ending in `previews_domain`; the controller's preview reconciler runs every
    `preview_reconcile_interval` seconds."""
    if not 1 <= controllers <= MAX_CONTROLLERS:
        raise ConfigError(f"--controllers {controllers} is out of range; run 1 to {MAX_CONTROLLERS}.")
    control_plane.check_database(database)
    if controllers > 1 and database == "sqlite":
        raise ConfigError("controller replicas share a PostgreSQL database; add --db postgres.")
    if not re.fullmatch(r"127\.(?:[0-9]{1,3})\.(?:[0-9]{1,3})", subnet) or any(
        int(part) > 255 for part in subnet.split(".")
    ):
        raise ConfigError(f"--subnet {subnet!r} is not a loopback /24 prefix; use one like 127.0.1.")
    if not is_name(HOST, previews_domain):
        raise ConfigError(
            f"--previews-domain {previews_domain!r} is not a DNS domain; use one like preview.lab.test."
        )
    if not MIN_PREVIEW_RECONCILE_INTERVAL <= preview_reconcile_interval <= MAX_PREVIEW_RECONCILE_INTERVAL:
        raise ConfigError(
            f"--preview-reconcile-interval {preview_reconcile_interval:g} is out of range; give "
            f"{MIN_PREVIEW_RECONCILE_INTERVAL:g} to {MAX_PREVIEW_RECONCILE_INTERVAL:g} seconds."
        )
    root.mkdir(parents=True, exist_ok=True)
    state = LabState(
        root=str(root.resolve()),
        subnet=subnet,
        app=app or AppPlan(),
        previews_domain=previews_domain.lower(),
        preview_reconcile_interval=preview_reconcile_interval,
    )
    state.save()
    control_plane.start_database(state, database)
    control_plane.start_registry(state)
    if images:
        control_plane.push_images(state)
    for replica in range(controllers):
        control_plane.start_controller(state, replica=replica)
    state.edge_port = free_port()
    edge_of(state).start()
    state.save()
    control_plane.write_app_files(state)
    state = lab_scale(root, hosts)
    return lab_add_preview_hosts(root, preview_hosts) if preview_hosts else state


def lab_add_preview_hosts(root: Path, count: int) -> LabState:
    """Add `count` hosts to the group `preview` (agents listening for previews on 127.0.1.N:8800, in
    the edge's `previews` backend); `lab_scale` never counts or removes them."""
    state = load_state(root)
    _add_hosts(state, count, PREVIEW_GROUP)
    return state


def lab_scale(root: Path, hosts: int) -> LabState:
    """Add hosts (each starts empty and pulls the current release) or remove the newest ones; the
    preview hosts are not counted (they stay as `lab up --preview-hosts` made them)."""
    state = load_state(root)
    serving = state.hosts_of(state.group)
    if hosts > len(serving):
        _add_hosts(state, hosts - len(serving))
    for host in sorted(serving, key=lambda h: h.index, reverse=True)[: max(0, len(serving) - hosts)]:
        stop_host(state, host, edge_of(state), control_plane.admin_token(state))
        state.hosts.remove(host)
        state.save()
    return state


def lab_remove_preview_hosts(root: Path) -> LabState:
    """Remove every preview host (drained at the edge first), newest first."""
    state = load_state(root)
    for host in sorted(state.hosts_of(PREVIEW_GROUP), key=lambda h: h.index, reverse=True):
        stop_host(state, host, edge_of(state), control_plane.admin_token(state))
        state.hosts.remove(host)
        state.save()
    return state


def _add_hosts(state: LabState, count: int, group: str = "") -> None:
    fresh: list[HostRecord] = []
    for _ in range(count):
        fresh.append(new_host(state, group))
        state.hosts.append(fresh[-1])
    environment_key(state)  # before the agents start, each with a copy of it
    with control_plane.admin_client(state) as admin:
        tokens = [admin.create_join_token(state.group_of(host)).token for host in fresh]
    edge = edge_of(state)
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda host, token: start_host(state, host, token, edge), fresh, tokens))
    finally:
        state.save()
    _wait_registered(state, {host.name for host in fresh}, group or state.group)


def _wait_registered(state: LabState, names: set[str], group: str, timeout: float = 60.0) -> None:
    """Return once every new agent has registered with the controller."""
    deadline = time.monotonic() + timeout
    with control_plane.admin_client(state) as admin:
        while not names <= {host.name for host in admin.hosts(group)}:
            if time.monotonic() > deadline:
                raise ShipyardError(f"lab hosts {sorted(names)} did not register; see their agent.log files.")
            time.sleep(0.1)


def lab_down(root: Path) -> None:
    """Stop everything the lab started and remove its directory; one failure does not stop the rest."""
    state = load_state(root)
    token = control_plane.admin_token(state)
    problems: list[str] = []

    def attempt(what: str, action: Callable[[], object]) -> None:
        try:
            action()
        except Exception as exc:  # keep tearing down: a half-removed lab is worse than a noisy one
            problems.append(f"{what}: {exc}")

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(
            pool.map(
                lambda host: attempt(host.name, lambda: stop_host(state, host, None, token)), state.hosts
            )
        )
    attempt("edge", edge_of(state).stop)
    attempt("controllers", lambda: control_plane.stop_controllers(state))
    attempt("database", lambda: control_plane.stop_database(state))
    attempt("registry", lambda: stop_process(state.registry_pid))
    attempt("images", lambda: remove_lab_images(state.image))
    shutil.rmtree(state.path, ignore_errors=True)
    if problems:
        raise ShipyardError("the lab was removed, with problems: " + "; ".join(problems))


def lab_status(root: Path) -> dict[str, object]:
    """What runs, what the edge thinks of each host and what the controller says about it."""
    state = load_state(root)
    no_servers: dict[str, str] = {}
    no_hosts: dict[str, dict[str, object]] = {}
    edge_servers = _safe(lambda: edge_of(state).servers(), no_servers)
    edge_previews = _safe(lambda: edge_of(state).servers(PREVIEWS), no_servers)
    reported = _safe(lambda: _controller_hosts(state), no_hosts)
    hosts = []
    for host in sorted(state.hosts, key=lambda h: h.index):
        seen = reported.get(host.name, {})
        hosts.append(
            {
                "name": host.name,
                "group": state.group_of(host),
                "address": host.address,
                **host_processes(host),
                "edge": edge_servers.get(host.name) or edge_previews.get(host.name, "absent"),
                "controller_status": seen.get("status", "unknown"),
                "active_release": seen.get("active_release"),
            }
        )
    return {
        "dir": state.root,
        "controller": state.controller_url,
        "controller_running": alive(state.controller_pid),
        "controllers": controller_replicas(state),
        "registry": state.registry_address,
        "edge": state.edge_url,
        "app": state.app.name,
        "hosts": hosts,
    }


def controller_replicas(state: LabState) -> list[dict[str, object]]:
    """Each replica's URL and pid, and whether it leads (asked from the replica itself)."""
    replicas: list[dict[str, object]] = []
    for url, pid in zip(state.controller_urls, state.controller_pids, strict=True):
        role = control_plane.controller_role(state, url) if alive(pid) else None
        replicas.append(
            {"url": url, "pid": pid, "running": alive(pid), "leader": bool(role and role.get("leader"))}
        )
    return replicas


def _controller_hosts(state: LabState) -> dict[str, dict[str, object]]:
    groups = sorted({state.group_of(host) for host in state.hosts} | {state.group})
    with control_plane.admin_client(state, timeout=3) as admin:
        found = [host for group in groups for host in admin.hosts(group)]
    return {
        host.name: {
            "status": host.status,
            "active_release": next((f"r{a.active_release}" for a in host.apps if a.active_release), None),
        }
        for host in found
    }


def _safe(read: Callable[[], T], default: T) -> T:
    try:
        return read()
    except ShipyardError:
        return default
