"""Takeover time of controller replicas: the leader SIGKILLed -> the other leads -> the next wave starts.

Starts a PostgreSQL server and two `shipyard controller` processes on it, and simulated agents (threads
that long-poll the desired state through both URLs and report success at once). Each run deploys to
the hosts in waves of one with a monitor period, kills the leader as soon as the first wave's host
has reported success (its monitor period then runs), and times from the kill:

- elected: the other replica's GET /controller says leader (polled every 20 ms);
- next wave: the deployment's second wave started (read every 20 ms from the survivor);
- the same deployment step without a kill (the baseline run) is the monitor period plus one tick.

The killed replica is restarted between runs (it then follows); the next run kills whichever leads.
No Docker needed. Run: .venv/bin/python benchmarks/controller_takeover.py [--runs N] [--monitor S]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import structlog

from shipyard.errors import ControllerError
from shipyard.fleet_api.client import ControllerClient
from shipyard.lab.ports import free_port
from shipyard.lab.postgres import PostgresServer, start_postgres
from shipyard.lab.processes import kill_now, shipyard_process, stop_process, wait_http
from shipyard.lab.simulated_host import succeeded_report

HOSTS = 3
POLL_S = 0.02
DIGEST = "sha256:{:064x}"


@dataclass
class Replica:
    port: int
    log: Path
    pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def leads(self) -> bool:
        try:
            return bool(httpx.get(f"{self.url}/controller", timeout=1.0).json()["leader"])
        except (httpx.HTTPError, ValueError, KeyError):
            return False


@dataclass
class Cluster:
    database: str
    work: Path
    replicas: list[Replica] = field(default_factory=list)

    def start(self, replica: Replica) -> None:
        args = ["controller", "--db", self.database, "--port", str(replica.port)]
        args += ["--bootstrap-token-file", str(self.work / "admin-token"), "--lost-after", "60"]
        replica.pid = shipyard_process(args, replica.log)
        wait_http(f"{replica.url}/healthz", 60, "a controller replica", replica.log)

    def leader(self, timeout: float = 30.0) -> Replica:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leading = [replica for replica in self.replicas if replica.leads()]
            if len(leading) == 1:
                return leading[0]
            time.sleep(POLL_S)
        raise SystemExit("no single leader among the replicas")

    @property
    def urls(self) -> list[str]:
        return [replica.url for replica in self.replicas]


def agent_thread(urls: list[str], token: str, stop: threading.Event) -> None:
    """A host that switches to whatever it is asked at once and reports it."""
    with ControllerClient(urls, token, timeout=5.0) as client:
        version: int | None = None
        while not stop.is_set():
            try:
                desired = client.desired(version, wait=5.0 if version is not None else 0.0)
                if desired.apps:
                    client.report([succeeded_report(app) for app in desired.apps])
                version = desired.version
            except ControllerError:
                time.sleep(0.1)


REPORTED = {"healthy", "succeeded"}  # healthy: reported, its monitor period running


def wait_wave(client: ControllerClient, deployment_id: int, wave: int, succeeded: bool) -> float:
    """When the deployment reached `wave` (with `succeeded`: and its hosts reported success; wave 0:
    when it finished)."""
    while True:
        try:
            found = client.get_deployment(deployment_id)
        except ControllerError:
            time.sleep(POLL_S)
            continue
        if wave == 0 and found.status == "succeeded":
            return time.monotonic()
        in_wave = [host for host in found.hosts if host.wave == wave]
        done = not succeeded or (in_wave and all(host.outcome in REPORTED for host in in_wave))
        if wave > 0 and found.current_wave >= wave and done:
            return time.monotonic()
        if found.status in ("failed", "aborted", "rolled_back"):
            raise SystemExit(f"deployment {deployment_id} ended {found.status}: {found.message}")
        time.sleep(POLL_S)


def deploy(admin: ControllerClient, number: int, monitor: float) -> int:
    spec = {"app": "web", "image": "registry:5000/web", "rollout": {"max_parallel": "1", "monitor": monitor}}
    release = admin.create_release("registry:5000/web", DIGEST.format(number), spec)
    return admin.create_deployment(release.id, "production").id


def one_run(
    cluster: Cluster, admin: ControllerClient, number: int, monitor: float, kill: bool
) -> list[object]:
    deployment_id = deploy(admin, number, monitor)
    first_done = wait_wave(admin, deployment_id, 1, succeeded=True)
    if not kill:
        second = wait_wave(admin, deployment_id, 2, succeeded=False)
        wait_wave(admin, deployment_id, 0, succeeded=True)
        return ["no kill (baseline)", "-", "-", f"{second - first_done:.2f}"]
    leader = cluster.leader()
    killed_at = time.monotonic()
    kill_now(leader.pid)
    survivor = next(replica for replica in cluster.replicas if replica is not leader)
    while not survivor.leads():
        time.sleep(POLL_S)
    elected = time.monotonic()
    second = wait_wave(admin, deployment_id, 2, succeeded=False)
    wait_wave(admin, deployment_id, 0, succeeded=True)
    cluster.start(leader)  # back as a follower for the next run
    return [
        f"leader :{leader.port} killed",
        f"{elected - killed_at:.2f}",
        f"{second - killed_at:.2f}",
        f"{second - first_done:.2f}",
    ]


def print_table(rows: list[list[object]], monitor: float) -> None:
    columns = ["run", "killed -> elected s", "killed -> next wave s", "wave 1 done -> wave 2 s"]
    widths = [max(len(str(row[i])) for row in [columns, *rows]) for i in range(len(columns))]
    print(f"takeover with 2 replicas, {HOSTS} simulated hosts, waves of 1, monitor {monitor} s")
    print(" | ".join(str(c).ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    killed = [float(str(row[2])) for row in rows if row[1] != "-"]
    if killed:
        print(f"killed -> next wave: median {statistics.median(killed):.2f} s, max {max(killed):.2f} s")


def main() -> None:
    # The simulated agents' failover warnings would bury the table.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="leader kills (after one baseline run)")
    parser.add_argument("--monitor", type=float, default=0.5, help="monitor period between waves, s")
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="shipyard-takeover-"))
    server: PostgresServer = start_postgres()
    stop = threading.Event()
    cluster = Cluster(server.create_database("takeover"), work)
    try:
        cluster.replicas = [Replica(free_port(), work / f"controller-{i}.log") for i in (1, 2)]
        for replica in cluster.replicas:
            cluster.start(replica)
        token = (work / "admin-token").read_text().strip()
        with ControllerClient(cluster.urls, token, timeout=10.0) as admin:
            for index in range(HOSTS):
                join = admin.create_join_token("production").token
                with ControllerClient(cluster.urls) as joining:
                    agent_token = joining.register_agent(join, f"h{index + 1}").agent_token
                threading.Thread(
                    target=agent_thread, args=(cluster.urls, agent_token, stop), daemon=True
                ).start()
            rows = [one_run(cluster, admin, 1, options.monitor, kill=False)]
            for run in range(options.runs):
                rows.append(one_run(cluster, admin, run + 2, options.monitor, kill=True))
        print_table(rows, options.monitor)
    finally:
        stop.set()
        for replica in cluster.replicas:
            stop_process(replica.pid)
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
