"""Controller capacity: N simulated agents (no Docker) long-poll and report exactly like the agent does.

Each simulated agent registers with its own join token, then loops: GET /agent/desired (first at once,
then long-polling with ?version=&wait=25) and POST /agent/report after every answer (what the agent
reports: each app's active release, health and outcome). After a steady phase a deployment to every
host starts (max_parallel 100%, monitor 1 s); the agents see the change through their long-polls,
"switch" and report, and the deployment completes.

Measured: p50/p99 latency of reports in the steady phase and in the burst after the deploy, of immediate
desired reads, the controller's CPU (user+system of its process) in the steady phase, how long the change
took to reach the agents (fan-out) and the deployment's duration. Requests time out after 60 s (counted
as errors). Runs on SQLite and on PostgreSQL (a throwaway server, shipyard.lab.postgres).

Usage: .venv/bin/python benchmarks/controller_capacity.py [--agents 1000] [--steady 60] [--db sqlite postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
from fleet_common import print_table

from shipyard.domain.spec import parse_spec, spec_snapshot
from shipyard.lab.ports import free_port
from shipyard.lab.processes import shipyard_process, stop_process, wait_http

IMAGE = "127.0.0.1:5000/web"
TIMEOUT = 60.0
DIGEST = "sha256:" + "5" * 64


class Simulation:
    def __init__(self, url: str, admin_token: str, agents: int) -> None:
        self.admin = {"Authorization": f"Bearer {admin_token}"}
        self.latency: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.phase = "steady"
        self.fanout: list[float] = []
        self.changed_at = 0.0
        self.errors = 0
        self.stop = asyncio.Event()
        limits = httpx.Limits(max_connections=agents + 50, max_keepalive_connections=agents + 50)
        self.http = httpx.AsyncClient(base_url=url + "/api/v1", limits=limits, timeout=TIMEOUT)

    async def call(self, kind: str, method: str, path: str, **kwargs: Any) -> Any:
        """The answer's JSON; None (counted as an error, its time kept) on a failure or a timeout."""
        started = time.perf_counter()
        try:
            response = await self.http.request(method, path, **kwargs)
            ok = response.status_code < 400
        except httpx.HTTPError:
            response, ok = None, False
        if kind:
            self.latency[(self.phase, kind)].append(time.perf_counter() - started)
        if not ok:
            self.errors += 1
            return None
        return response.json() if response is not None and response.content else {}

    async def register(self, number: int, gate: asyncio.Semaphore) -> str:
        """A join token, then registration, tried again (with a new name) while the controller sheds load."""
        async with gate:
            for attempt in itertools.count():
                join = await self.call(
                    "", "POST", "/join-tokens", json={"group": "production"}, headers=self.admin
                )
                if join is None:
                    continue
                body, headers = (
                    {"name": f"sim{number:04d}-{attempt}"},
                    {"Authorization": f"Bearer {join['token']}"},
                )
                answer = await self.call("", "POST", "/agent/register", json=body, headers=headers)
                if answer is not None:
                    return str(answer["agent_token"])
            raise AssertionError("unreachable")

    async def agent(self, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        version: int | None = None
        await asyncio.sleep(random.uniform(0, 5))
        while not self.stop.is_set():
            params = {"wait": 0} if version is None else {"wait": 25, "version": version}
            state = await self.call(
                "read" if version is None else "", "GET", "/agent/desired", params=params, headers=headers
            )
            if state is None:
                await asyncio.sleep(1)
                continue
            if version is not None and state["version"] != version and self.changed_at:
                self.fanout.append(time.perf_counter() - self.changed_at)
            version = state["version"]
            apps = [
                {
                    "app": a["app"],
                    "active_release": a["release_id"],
                    "release": a["release_id"],
                    "health": "healthy",
                    "outcome": "succeeded",
                    "step": "done",
                }
                for a in state["apps"]
            ]
            await self.call("report", "POST", "/agent/report", json={"apps": apps}, headers=headers)

    async def deploy_everywhere(self, limit: float) -> float | None:
        """Seconds until a deployment to every host succeeded; None when it did not within `limit`."""
        snapshot = spec_snapshot(
            parse_spec({"app": "web", "image": IMAGE, "rollout": {"max_parallel": "100%", "monitor": 1}})
        )
        release = await self.call(
            "",
            "POST",
            "/releases",
            json={"image": IMAGE, "digest": DIGEST, "spec": snapshot},
            headers=self.admin,
        )
        self.phase, self.changed_at = "deploy", time.perf_counter()
        body = {"release_id": release["id"], "environment": "production"}
        deployment = await self.call("", "POST", "/deployments", json=body, headers=self.admin) or {}
        while time.perf_counter() - self.changed_at < limit:
            found = await self.call("", "GET", f"/deployments/{deployment.get('id', 0)}", headers=self.admin)
            if found and found["status"] == "succeeded":
                return time.perf_counter() - self.changed_at
            await asyncio.sleep(0.5)
        return None


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000 if ordered else 0.0


async def simulate(url: str, token: str, agents: int, steady: float, pid: int) -> list[object]:
    sim = Simulation(url, token, agents)
    gate = asyncio.Semaphore(8)
    # The group's environment first: concurrent first registrations would all try to create it.
    await sim.call("", "POST", "/environments", json={"name": "production"}, headers=sim.admin)
    tokens = await asyncio.gather(*(sim.register(n, gate) for n in range(agents)))
    sim.errors = 0  # count errors of the measured phases only
    cpu_before, wall_before = cpu_seconds(pid), time.perf_counter()
    tasks = [asyncio.create_task(sim.agent(t)) for t in tokens]
    await asyncio.sleep(steady)
    cpu = (cpu_seconds(pid) - cpu_before) / (time.perf_counter() - wall_before) * 100
    deploy_seconds = await sim.deploy_everywhere(limit=180)
    sim.stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await sim.http.aclose()
    steady_reports, burst_reports = sim.latency[("steady", "report")], sim.latency[("deploy", "report")]
    reads = sim.latency[("steady", "read")] + sim.latency[("deploy", "read")]
    return [
        agents,
        f"{percentile(steady_reports, 0.5):.0f} / {percentile(steady_reports, 0.99):.0f}",
        f"{percentile(reads, 0.5):.0f} / {percentile(reads, 0.99):.0f}",
        f"{cpu:.0f}%",
        f"{percentile(burst_reports, 0.5):.0f} / {percentile(burst_reports, 0.99):.0f}",
        f"{percentile(sim.fanout, 0.5):.0f} / {percentile(sim.fanout, 0.99):.0f}",
        f"{deploy_seconds:.1f}" if deploy_seconds is not None else "not in 180 s",
        sim.errors,
    ]


def start_controller(args: list[str], log: Path, recheck: float | None) -> int:
    """`shipyard controller ARGS`, or (to try another long-poll recheck interval) the same app via uvicorn."""
    if recheck is None:
        return shipyard_process(args, log)
    options = dict(zip(args[1::2], args[2::2], strict=True))
    script = (
        "import dataclasses, pathlib, uvicorn\n"
        "from shipyard.controller.app import create_app\n"
        "from shipyard.controller.settings import load_settings\n"
        f"s = load_settings(database_url={options['--db']!r}, lost_after=120, "
        f"bootstrap_token_file=pathlib.Path({options['--bootstrap-token-file']!r}))\n"
        f"s = dataclasses.replace(s, recheck_interval={recheck})\n"
        f"uvicorn.run(create_app(s), host='127.0.0.1', port={options['--port']}, log_level='warning')\n"
    )
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", script], stdout=out, stderr=out, start_new_session=True
        ).pid


def run(database: str | None, agents: int, steady: float, recheck: float | None = None) -> list[object]:
    """Start a controller on `database` (default: SQLite in a temporary directory) and simulate."""
    work = Path(tempfile.mkdtemp(prefix="shipyard-capacity-"))
    database = database or f"sqlite:///{work}/controller.db"
    port = free_port()
    token_file, log = work / "admin-token", work / "controller.log"
    args = [
        "controller",
        "--db",
        database,
        "--port",
        str(port),
        "--bootstrap-token-file",
        str(token_file),
        "--lost-after",
        "120",
    ]
    pid = start_controller(args, log, recheck)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", 60, "the controller", log)
        url, token = f"http://127.0.0.1:{port}", token_file.read_text().strip()
        row = asyncio.run(simulate(url, token, agents, steady, pid))
    finally:
        stop_process(pid)
        shutil.rmtree(work, ignore_errors=True)
    return row


COLUMNS = [
    "db",
    "agents",
    "steady report p50/p99 ms",
    "read p50/p99 ms",
    "steady CPU",
    "burst report p50/p99 ms",
    "fan-out p50/p99 ms",
    "deploy to all s",
    "errors",
]
TITLE = "controller capacity (simulated agents, one 2-core machine shared with the simulator)"


def measure(kind: str, agents: int, steady: float, recheck: float | None) -> list[object]:
    label = kind if recheck is None else f"{kind} (recheck {recheck:g} s)"
    if kind == "sqlite":
        return [label, *run(None, agents, steady, recheck)]
    from shipyard.lab.postgres import throwaway_postgres

    with throwaway_postgres() as server:
        return [label, *run(server.create_database(), agents, steady, recheck)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument(
        "--steady", type=float, default=60.0, help="seconds of long-polling before the deploy"
    )
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    parser.add_argument(
        "--recheck", type=float, help="run the controller with this long-poll recheck interval"
    )
    args = parser.parse_args()
    rows = []
    for kind in args.db:
        rows.append(measure(kind, args.agents, args.steady, args.recheck))
        print_table(TITLE, COLUMNS, rows[-1:])
        sys.stdout.flush()
    print_table(TITLE, COLUMNS, rows)


if __name__ == "__main__":
    main()
