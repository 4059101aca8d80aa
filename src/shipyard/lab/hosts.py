"""One lab host: its own Docker Engine, its own agent (which owns the host's haproxy), its edge membership."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path

import yaml

from shipyard.adapters.haproxy import HaproxyProcess
from shipyard.adapters.haproxy_config import ProxyPaths
from shipyard.errors import ShipyardError
from shipyard.files import write_private
from shipyard.fleet_api.client import ControllerClient
from shipyard.lab.edge import EdgeProxy
from shipyard.lab.engine import ExtraEngine, start_extra_engine, stop_extra_engine
from shipyard.lab.processes import alive, shipyard_process, stop_process
from shipyard.lab.state import PREVIEW_GROUP, HostRecord, LabState
from shipyard.secrets.local_key import create_key_file


def new_host(state: LabState, group: str = "") -> HostRecord:
    index = state.next_index()
    name = f"h{index}"
    return HostRecord(
        name=name,
        index=index,
        address=f"{state.subnet}.{index}",
        root=str(state.path / "hosts" / name),
        group=group,
    )


def agent_log(host: HostRecord) -> Path:
    return Path(host.root) / "agent.log"


def policy_file(host: HostRecord) -> Path:
    return Path(host.root) / "agent-policy.yml"


def write_policy(state: LabState, host: HostRecord) -> Path:
    """The host's own policy (kept when there is one): the lab registry only, no hooks, no host paths;
    one-off commands (`shipyard run`) allowed, so the lab can try them."""
    path = policy_file(host)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "registries": [state.registry_address],
            "hooks": {"allow": False},
            "tasks": {"run": True, "release_phase": True},
        }
        path.write_text("# this lab host's policy; see docs/policy.md\n" + yaml.safe_dump(document))
    return path


def environment_key(state: LabState) -> Path:
    """The lab environment's master key, made once, before the first host needs it."""
    if not state.secrets_key_file.exists():
        create_key_file(state.secrets_key_file)
    return state.secrets_key_file


def host_key_copy(state: LabState, host: HostRecord) -> Path:
    """The host's own copy of the environment's key, as a real host would have it installed (0600)."""
    path = Path(host.root) / "secrets.key"
    write_private(path, state.secrets_key_file.read_bytes())
    return path


def start_agent(state: LabState, host: HostRecord, join_token: str | None = None) -> None:
    """Start (or restart) the host's agent; a restarted one reads its saved agent token."""
    replicas = [option for url in state.controller_urls for option in ("--controller", url)]
    args = [
        "agent",
        *replicas,
        *("--name", host.name, "--group", state.group_of(host)),
        *("--home", str(host.home), "--docker-host", host.docker_url, "--address", host.address),
        *("--poll-wait", "20", "--max-backoff", "2", "--retry-failed-after", "30"),
        *("--policy", str(write_policy(state, host))),
        *("--secrets-key-file", str(host_key_copy(state, host))),
        *("--ca-file", str(state.ca_file)),
        *("--trusted-key", str(state.release_key_file.with_name(state.release_key_file.name + ".pub"))),
    ]
    if state.group_of(host) == PREVIEW_GROUP:  # listening from the start: the edge checks it
        args += ["--previews-listen", host.previews_listen]
    env = {"SHIPYARD_JOIN_TOKEN": join_token} if join_token else {}
    host.agent_pid = shipyard_process(args, agent_log(host), env)


def start_host(state: LabState, host: HostRecord, join_token: str, edge: EdgeProxy) -> HostRecord:
    """Engine, then agent, then edge membership (DOWN until the host's app serves)."""
    host.engine_pid = start_extra_engine(host.engine_root).pid
    start_agent(state, host, join_token)
    if state.group_of(host) == PREVIEW_GROUP:
        edge.add_preview_host(host.name, host.previews_listen)
    else:
        edge.add_host(host.name, state.app.listen(host.address))
    return host


def stop_host(state: LabState, host: HostRecord, edge: EdgeProxy | None, admin_token: str | None) -> None:
    """Leave the edge first (drained); stop the agent, haproxy and engine; forget it; remove its files."""
    if edge is not None:
        with contextlib.suppress(ShipyardError):
            edge.remove_host(host.name)
    stop_process(host.agent_pid)
    HaproxyProcess(ProxyPaths(host.home / "haproxy")).stop()
    if host.engine_pid is not None:
        stop_extra_engine(ExtraEngine(root=host.engine_root, pid=host.engine_pid))
    if admin_token:
        forget_host(state, host.name, admin_token)
    unmount_under(Path(host.root))
    shutil.rmtree(host.root, ignore_errors=True)


def unmount_under(root: Path) -> None:
    """Detach what a stopped engine left mounted under its root (its network namespace file)."""
    prefix = str(root.resolve()) + "/"
    mounts = Path("/proc/mounts").read_text().splitlines()
    points = [
        line.split()[1] for line in mounts if len(line.split()) > 1 and line.split()[1].startswith(prefix)
    ]
    for point in sorted(points, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def forget_host(state: LabState, name: str, admin_token: str) -> None:
    """Remove the host from the controller, as an autoscaler's termination hook would."""
    with (
        contextlib.suppress(ShipyardError),
        ControllerClient(state.controller_urls, admin_token, ca_file=state.ca_file) as admin,
    ):
        admin.delete_host(name)


def host_processes(host: HostRecord) -> dict[str, bool]:
    return {"agent": alive(host.agent_pid), "engine": alive(host.engine_pid)}
