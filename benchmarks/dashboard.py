"""The dashboard at fleet size: page render times and what 50 live dashboards cost the controller.

A database is filled with 1,000 hosts (800 production, 200 staging), 3 apps, 600 releases, 10,000
finished deployments (the last 60 with their per-host rows, as the deployment page reads them) and
10,000 audit entries. A `shipyard controller` process serves it over http on 127.0.0.1.

1. Render times: each page requested 30 times in a row by one signed-in client (after 3 warm-ups);
   the time to the whole answer.
2. Live dashboards: a deployment to the 800 production hosts (8 waves) runs while this script plays
   their agents (20 reports a second, host after host of the running wave), for 30 s: once with no
   dashboard open (app web) and once with 50 dashboards following it over Server-Sent Events (app api);
   the controller's CPU (from /proc) in both, and the difference is what the dashboards cost.

Usage: .venv/bin/python benchmarks/dashboard.py [--db sqlite postgres] [--seconds 30] [--dashboards 50]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import multiprocessing
import re
import secrets
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from _load import cpu_seconds, print_table
from sqlalchemy import insert, text

from shipyard.controller.store.db import Database
from shipyard.controller.store.models import (
    App,
    AuditEntry,
    Deployment,
    DeploymentHost,
    Environment,
    Host,
    HostApp,
    Release,
)
from shipyard.controller.store.tokens import AGENT_PREFIX, new_token
from shipyard.lab.ports import free_port
from shipyard.lab.processes import shipyard_process, stop_process, wait_http

HOSTS = {"production": 800, "staging": 200}
APPS = ["web", "api", "worker"]
RELEASES_PER_APP = 200
DEPLOYMENTS = 10_000
WITH_HOST_ROWS = 60
REPORTS_PER_TICK, TICK_S = 10, 0.5
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def spec_of(app: str, number: int) -> dict[str, Any]:
    return {
        "app": app,
        "image": f"registry.example:5000/{app}",
        "port": 3000,
        "rollout": {"max_parallel": "100", "max_failed": 0, "monitor": 0.2, "auto_rollback": True},
        "deploy": {"standby": 0},
        "labels": {
            "org.opencontainers.image.revision": secrets.token_hex(20),
            "org.opencontainers.image.description": f"{app}: change number {number}",
        },
    }


def fill(url: str) -> dict[str, str]:
    """Fill the database; returns each host's agent token, by host name."""
    tokens: dict[str, str] = {}
    db = Database(url)
    db.migrate()
    now = datetime.now(UTC)
    with db.transaction() as session:
        session.execute(
            insert(App), [{"id": i + 1, "name": name, "created_at": now} for i, name in enumerate(APPS)]
        )
        session.execute(
            insert(Environment),
            [{"id": i + 1, "name": name, "created_at": now} for i, name in enumerate(HOSTS)],
        )
        hosts, host_id, env_hosts = [], 0, {}
        for env_id, (group, count) in enumerate(HOSTS.items(), start=1):
            env_hosts[env_id] = []
            for index in range(count):
                host_id += 1
                env_hosts[env_id].append(host_id)
                status = "lost" if index % 200 == 199 else "ready"
                hosts.append(
                    {
                        "id": host_id,
                        "name": f"{group}-{index:04d}",
                        "address": f"10.0.{index // 250}.{index % 250}",
                        "labels": {"rack": f"r{index % 20}"},
                        "group": group,
                        "status": status,
                        "last_seen": now,
                        "agent_version": "0.1.0",
                        "token_hash": hashlib.sha256(
                            tokens.setdefault(f"{group}-{index:04d}", new_token(AGENT_PREFIX)).encode()
                        ).hexdigest(),
                        "registered_at": now,
                    }
                )
        session.execute(insert(Host), hosts)
        releases, release_id = [], 0
        for app_id, app in enumerate(APPS, start=1):
            for number in range(RELEASES_PER_APP):
                release_id += 1
                releases.append(
                    {
                        "id": release_id,
                        "app_id": app_id,
                        "image": f"registry.example:5000/{app}",
                        "digest": "sha256:" + secrets.token_hex(32),
                        "spec": spec_of(app, number),
                        "created_by": "ci",
                        "created_at": now - timedelta(days=30) + timedelta(minutes=number),
                    }
                )
        session.execute(insert(Release), releases)
        places = [(app_id, env_id) for app_id in range(1, len(APPS) + 1) for env_id in env_hosts]
        deployments, audit, host_rows = [], [], []
        start = now - timedelta(days=20)
        for number in range(1, DEPLOYMENTS + 1):
            app_id, env_id = places[number % len(places)]
            release = (app_id - 1) * RELEASES_PER_APP + 1 + (number // len(places)) % RELEASES_PER_APP
            status = "failed" if number % 17 == 0 else "rolled_back" if number % 23 == 0 else "succeeded"
            created = start + timedelta(minutes=2 * number)
            deployments.append(
                {
                    "id": number,
                    "release_id": release,
                    "app_id": app_id,
                    "environment_id": env_id,
                    "status": status,
                    "current_wave": 8,
                    "total_waves": 8,
                    "max_parallel": "100",
                    "max_failed": 0,
                    "monitor": 30.0,
                    "auto_rollback": True,
                    "message": "",
                    "created_by": "ci",
                    "created_at": created,
                    "started_at": created,
                    "finished_at": created + timedelta(minutes=1),
                }
            )
            audit.append(
                {
                    "at": created,
                    "actor": "ci",
                    "action": "deployment.create",
                    "target": f"{APPS[app_id - 1]}/deployment {number}",
                    "detail": {"release": release},
                }
            )
            if number > DEPLOYMENTS - WITH_HOST_ROWS:
                for index, host in enumerate(env_hosts[env_id]):
                    host_rows.append(
                        {
                            "deployment_id": number,
                            "host_id": host,
                            "wave": 1 + index * 8 // len(env_hosts[env_id]),
                            "outcome": "succeeded",
                            "step": "done",
                            "message": "",
                        }
                    )
        session.execute(insert(Deployment), deployments)
        session.execute(insert(DeploymentHost), host_rows)
        session.execute(insert(AuditEntry), audit)
        session.execute(
            insert(HostApp),
            [
                {
                    "host_id": host,
                    "app_id": app_id,
                    "active_release_id": (app_id - 1) * RELEASES_PER_APP + 150,
                    "release_id": (app_id - 1) * RELEASES_PER_APP + 150,
                    "step": "done",
                    "health": "healthy",
                    "outcome": "succeeded",
                    "message": "",
                    "reported_at": now,
                }
                for host in range(1, host_id + 1)
                for app_id in range(1, len(APPS) + 1)
            ],
        )
        if db.engine.dialect.name == "postgresql":  # ids were given explicitly: move the sequences past them
            for table in ("apps", "environments", "hosts", "releases", "deployments"):
                sequence = f"pg_get_serial_sequence('{table}', 'id')"
                session.execute(text(f"SELECT setval({sequence}, (SELECT max(id) FROM {table}))"))
    db.dispose()
    return tokens


def signed_in(url: str, token: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=30, follow_redirects=True)
    form = client.get("/ui/login")
    found = CSRF.search(form.text)
    assert found
    answer = client.post("/ui/login", data={"token": token, "csrf_token": found.group(1)})
    assert answer.status_code == 200, answer.text[:300]
    return client


def render_times(client: httpx.Client, path: str, pid: int, count: int = 30) -> list[str]:
    """Wall time per request, and the controller's CPU time per request (steadier on a busy machine)."""
    for _ in range(3):
        assert client.get(path).status_code == 200, path
    times = []
    cpu_before = cpu_seconds(pid)
    for _ in range(count):
        started = time.perf_counter()
        answer = client.get(path)
        times.append(time.perf_counter() - started)
        assert answer.status_code == 200
    cpu_each = (cpu_seconds(pid) - cpu_before) / count
    times.sort()
    p95 = times[int(len(times) * 0.95) - 1]
    return [
        f"{statistics.median(times) * 1000:.1f}",
        f"{p95 * 1000:.1f}",
        f"{times[-1] * 1000:.1f}",
        f"{cpu_each * 1000:.1f}",
        f"{len(answer.content) // 1024} KiB",
    ]


async def follow(url: str, cookies: httpx.Cookies, path: str, stop: asyncio.Event, counts: list[int]) -> None:
    async with (
        httpx.AsyncClient(base_url=url, cookies=cookies, timeout=None) as client,
        client.stream("GET", path) as events,
    ):
        assert events.status_code == 200
        async for line in events.aiter_lines():
            if line.startswith("event: progress"):
                counts.append(1)
            if stop.is_set():
                return


async def report(client: httpx.AsyncClient, app: str, release: int, token: str) -> httpx.Response:
    body = {
        "app": app,
        "step": "done",
        "active_release": release,
        "release": release,
        "health": "healthy",
        "outcome": "succeeded",
    }
    return await client.post(
        "/api/v1/agent/report", json={"apps": [body]}, headers={"Authorization": f"Bearer {token}"}
    )


async def play_agents(url: str, admin_token: str, tokens: dict[str, str], app: str, seconds: float) -> int:
    """Deploy the app's newest release to production and report for its hosts, wave after wave."""
    admin = {"Authorization": f"Bearer {admin_token}"}
    release = RELEASES_PER_APP * (APPS.index(app) + 1)
    sent = 0
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        created = await client.post(
            "/api/v1/deployments", json={"release_id": release, "environment": "production"}, headers=admin
        )
        assert created.status_code == 201, created.text
        deployment = created.json()["id"]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = (await client.get(f"/api/v1/deployments/{deployment}", headers=admin)).json()
            if found["status"] != "running":
                print(
                    f"{app}: deployment {deployment} {found['status']} at wave {found['current_wave']}: "
                    f"{found['message']}",
                    flush=True,
                )
                break
            waiting = [
                row["host"]
                for row in found["hosts"]
                if row["wave"] == found["current_wave"] and row["outcome"] == "pending"
            ]
            # Sent together, as many agents would: each report waits for the controller's batched write.
            answers = await asyncio.gather(
                *(report(client, app, release, tokens[host]) for host in waiting[:REPORTS_PER_TICK])
            )
            assert all(answer.status_code == 200 for answer in answers), [a.text for a in answers]
            sent += len(answers)
            await asyncio.sleep(TICK_S)
    return sent


async def first_running(url: str, admin_token: str, app: str) -> int:
    admin = {"Authorization": f"Bearer {admin_token}"}
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for _ in range(100):
            found = (await client.get(f"/api/v1/deployments?app={app}&status=running", headers=admin)).json()
            if found:
                return int(found[0]["id"])
            await asyncio.sleep(0.05)
    raise AssertionError(f"no running deployment of {app}")


async def follow_all(url: str, cookies: dict[str, str], path: str, dashboards: int, seconds: float) -> int:
    stop, counts = asyncio.Event(), []
    jar = httpx.Cookies(cookies)
    followers = [asyncio.create_task(follow(url, jar, path, stop, counts)) for _ in range(dashboards)]
    await asyncio.sleep(seconds)
    stop.set()
    for task in followers:
        task.cancel()
    await asyncio.gather(*followers, return_exceptions=True)
    return len(counts)


def dashboards_process(
    url: str, cookies: dict[str, str], path: str, dashboards: int, seconds: float, result: Any
) -> None:
    """The dashboards in a process of their own, so they do not slow down the agents' player."""
    result.put(asyncio.run(follow_all(url, cookies, path, dashboards, seconds)))


async def live_cost(
    url: str,
    token: str,
    tokens: dict[str, str],
    cookies: httpx.Cookies,
    app: str,
    dashboards: int,
    seconds: float,
    pid: int,
) -> tuple[float, int, int]:
    before, started = cpu_seconds(pid), time.monotonic()
    agents = asyncio.create_task(play_agents(url, token, tokens, app, seconds))
    deployment = await first_running(url, token, app)
    result: Any = multiprocessing.Queue()
    follower = None
    if dashboards:
        path = f"/ui/deployments/{deployment}/events"
        follower = multiprocessing.Process(
            target=dashboards_process, args=(url, dict(cookies.items()), path, dashboards, seconds, result)
        )
        follower.start()
    sent = await agents
    cpu = (cpu_seconds(pid) - before) / (time.monotonic() - started) * 100
    events = 0
    if follower is not None:
        events = await asyncio.to_thread(result.get, True, seconds + 60)
        follower.join(timeout=30)
    return cpu, sent, events


def run(
    url_db: str, work: Path, seconds: float, dashboards: int, label: str
) -> tuple[list[list[str]], list[list[str]]]:
    started = time.monotonic()
    tokens = fill(url_db)
    filled = time.monotonic() - started
    port, token_file, log = free_port(), work / "admin-token", work / f"controller-{label}.log"
    args = ["controller", "--db", url_db, "--port", str(port), "--bootstrap-token-file", str(token_file)]
    pid = shipyard_process([*args, "--lost-after", "86400"], log)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz", 60, "the controller", log)
        token = token_file.read_text().strip()
        client = signed_in(url, token)
        pages = [
            ("overview", "/ui"),
            ("deployment, finished, 800 hosts", f"/ui/deployments/{DEPLOYMENTS - 1}"),
            ("environment web/production", "/ui/environments/web/production"),
            ("hosts (1,000)", "/ui/hosts"),
            ("audit log (200 of 10,000)", "/ui/audit"),
        ]
        renders = [[label, name, *render_times(client, path, pid)] for name, path in pages]
        idle_cpu, idle_changes, _ = asyncio.run(
            live_cost(url, token, tokens, client.cookies, "web", 0, seconds, pid)
        )
        busy_cpu, busy_changes, events = asyncio.run(
            live_cost(url, token, tokens, client.cookies, "api", dashboards, seconds, pid)
        )
        live = [
            [label, "0", f"{idle_changes}", "-", f"{idle_cpu:.1f}%", "-"],
            [
                label,
                str(dashboards),
                f"{busy_changes}",
                str(events),
                f"{busy_cpu:.1f}%",
                f"{busy_cpu - idle_cpu:.1f}%",
            ],
        ]
        print(f"{label}: database filled in {filled:.0f} s", flush=True)
        client.close()
    finally:
        stop_process(pid)
        shutil.copy(log, Path(tempfile.gettempdir()) / f"shipyard-dashboard-bench-{label}.log")
    return renders, live


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", nargs="+", default=["sqlite"], choices=["sqlite", "postgres"])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--dashboards", type=int, default=50)
    options = parser.parse_args()
    renders: list[list[str]] = []
    live: list[list[str]] = []
    for kind in options.db:
        work = Path(tempfile.mkdtemp(prefix="shipyard-dashboard-bench-"))
        try:
            if kind == "sqlite":
                found = run(
                    f"sqlite:///{work}/controller.db", work, options.seconds, options.dashboards, kind
                )
            else:
                from shipyard.lab.postgres import throwaway_postgres

                with throwaway_postgres() as server:
                    url = server.create_database("dashboard_bench")
                    found = run(url, work, options.seconds, options.dashboards, kind)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        renders += found[0]
        live += found[1]
    print_table(
        "page render, 1,000 hosts and 10,000 deployments (ms, 30 requests after 3 warm-ups)",
        ["db", "page", "p50 ms", "p95 ms", "max ms", "controller CPU ms", "size"],
        renders,
    )
    print_table(
        f"dashboards following a deployment to 800 hosts, agents reporting 20/s ({options.seconds:.0f} s)",
        [
            "db",
            "dashboards",
            "agent reports",
            "SSE updates received",
            "controller CPU",
            "cost of the dashboards",
        ],
        live,
    )


if __name__ == "__main__":
    main()
