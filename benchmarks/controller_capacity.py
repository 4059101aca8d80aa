"""Controller capacity: N simulated agents (no Docker) long-poll and report exactly like the agent does.

Each simulated agent registers with its own join token, then loops: GET /agent/desired (first at once,
then long-polling with ?version=&wait=25) and POST /agent/report after every answer (what the agent
reports: each app's active release, health and outcome). Like the real agent, each one has its own
HTTP client and keep-alive connection. After a steady phase a deployment to every host starts
(max_parallel 100%, monitor 1 s); the agents see the change through their long-polls, "switch" and
report, and the deployment completes.

The agents run in `--workers` separate processes, so the simulator's own CPU (HTTP client, JSON) is
spread over processes rather than queueing every request behind one event loop.

Measured, as p50/p99 client-side latency: the connect phase (every agent starts within 5 s and makes
its first read and report, as after a controller restart), reports in the steady phase (long-polls
only), and reports in the burst after the deploy; the CPU of the controller and of the simulator in the
steady phase after the connect phase (100% = one core), and the CPU seconds each spent on the
deployment until it completed; how long the change took to reach the agents (fan-out) and the
deployment's duration. Requests time out after 60 s (counted as errors). The burst's reports are also
timed by the controllers themselves (their request-latency histogram, read from /metrics before and
after the deployment): from the moment the application gets the request to its answer, so without the
simulator's queueing nor the time a request waits in the socket for the event loop; given as the
histogram bucket bound each percentile falls under. Runs on
SQLite and on PostgreSQL (a throwaway server, shipyard.lab.postgres).

With `--replicas N` (PostgreSQL only: one SQLite file cannot be shared by several controllers) N
`shipyard controller` processes serve the same database and agent i talks to replica i % N; the
admin work (registration, the deployment, following it) goes through the first. Every replica runs
the rollout loop (PostgreSQL's row locks keep their ticks apart), and a replica whose agents did not
see a change committed by another learns of it within its recheck interval (1 s). CPU columns are
the sum over the replicas, each replica's share in parentheses.

The simulated agents use httpx like the real agent (`--client httpx`, the default). `--client raw`
gives each of them a minimal HTTP/1.1 client over one keep-alive connection instead (same requests,
same bodies), several times cheaper in CPU, to show how much of the client-side latency is the
simulator's own queueing on the shared cores.

Usage: .venv/bin/python benchmarks/controller_capacity.py [--agents 1000] [--steady 60] [--workers 2]
       [--db sqlite postgres] [--replicas 1] [--client httpx]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event as StopEvent
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from _load import cpu_seconds, percentile
from fleet_common import print_table
from prometheus_client.parser import text_string_to_metric_families

from shipyard.domain.spec import parse_spec, spec_snapshot
from shipyard.lab.ports import free_port
from shipyard.lab.processes import shipyard_process, stop_process, wait_http

IMAGE = "127.0.0.1:5000/web"
REPORT_ROUTE = "/api/v1/agent/report"
TIMEOUT = 60.0
CONNECT_S = 10.0  # the agents' first read and report are over by then; CPU is measured after it
DIGEST = "sha256:" + "5" * 64
# No TLS here; one context for every client spares each of them loading the CA bundle.
PLAIN = ssl.create_default_context()


@dataclass
class Record:
    """What one worker process saw: (kind, wall-clock start, seconds, ok) per request, version changes."""

    samples: list[tuple[str, float, float, bool]] = field(default_factory=list)
    changes: list[float] = field(default_factory=list)


@dataclass
class RawResponse:
    status_code: int
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


class RawClient:
    """One keep-alive HTTP/1.1 connection, one request at a time, as an agent's client uses it; bodies
    are read by Content-Length (the controller sends it on every answer these requests get)."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url + "/api/v1")
        self._host, self._port, self._prefix = parts.hostname or "127.0.0.1", parts.port or 80, parts.path
        self._head = f"Host: {self._host}:{self._port}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()
        )
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        self._close()

    def _close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None

    async def request(
        self, method: str, path: str, params: dict[str, Any] | None = None, json: Any = None
    ) -> RawResponse:
        try:
            return await asyncio.wait_for(self._exchange(method, path, params, json), TIMEOUT)
        except (OSError, TimeoutError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
            self._close()
            raise httpx.TransportError(f"raw client: {exc!r}") from exc

    async def _exchange(
        self, method: str, path: str, params: dict[str, Any] | None, body: Any
    ) -> RawResponse:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self._host, self._port)
        reader, writer = self._streams
        target = self._prefix + path + ("?" + urlencode(params) if params else "")
        content = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {target} HTTP/1.1\r\n{self._head}"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(content)}\r\n"
        writer.write(head.encode() + b"\r\n" + content)
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return RawResponse(status, await reader.readexactly(length) if length else b"")


async def call(
    client: httpx.AsyncClient | RawClient, record: Record, kind: str, method: str, path: str, **kwargs: Any
) -> Any:
    """The answer's JSON; None on a failure or a timeout (recorded as not ok, its time kept)."""
    wall, started = time.time(), time.perf_counter()
    response: httpx.Response | RawResponse | None
    try:
        response = await client.request(method, path, **kwargs)
        ok = response.status_code < 400
    except httpx.HTTPError:
        response, ok = None, False
    if kind:
        record.samples.append((kind, wall, time.perf_counter() - started, ok))
    if not ok or response is None:
        return None
    return response.json() if response.content else {}


def agent_client(url: str, headers: dict[str, str] | None = None, connections: int = 1) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(
        base_url=url + "/api/v1", headers=headers, limits=limits, timeout=TIMEOUT, verify=PLAIN
    )


async def simulated_agent(
    url: str, token: str, record: Record, stopping: asyncio.Event, client_kind: str
) -> None:
    """One agent talking to the controller replica at `url`."""
    version: int | None = None
    await asyncio.sleep(random.uniform(0, 5))
    headers = {"Authorization": f"Bearer {token}"}
    opened = RawClient(url, headers) if client_kind == "raw" else agent_client(url, headers)
    async with opened as client:
        while not stopping.is_set():
            first = version is None
            params = {"wait": 0} if first else {"wait": 25, "version": version}
            kind = "connect read" if first else ""
            state = await call(client, record, kind, "GET", "/agent/desired", params=params)
            if state is None:
                await asyncio.sleep(1)
                continue
            if version is not None and state["version"] != version:
                record.changes.append(time.time())
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
            kind = "connect report" if first else "report"
            await call(client, record, kind, "POST", "/agent/report", json={"apps": apps})


async def run_agents(agents: list[tuple[str, str]], stop: StopEvent, client_kind: str) -> Record:
    """Every (replica URL, agent token) of `agents` as a simulated agent, until `stop`."""
    record, stopping = Record(), asyncio.Event()
    tasks = [asyncio.create_task(simulated_agent(url, t, record, stopping, client_kind)) for url, t in agents]
    while not stop.is_set():
        await asyncio.sleep(0.2)
    stopping.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return record


def worker(agents: list[tuple[str, str]], stop: StopEvent, results: Any, client_kind: str) -> None:
    """One simulator process: its share of the agents until `stop`, then its record to `results`."""
    record = asyncio.run(run_agents(agents, stop, client_kind))
    results.put((record.samples, record.changes))


async def register_all(url: str, admin_token: str, agents: int) -> list[str]:
    """Agent tokens for `agents` hosts (join token, then registration), eight at a time."""
    gate = asyncio.Semaphore(8)
    record = Record()
    async with agent_client(url, {"Authorization": f"Bearer {admin_token}"}, connections=16) as admin:
        await call(admin, record, "", "POST", "/environments", json={"name": "production"})

        async def register(number: int) -> str:
            async with gate:
                for attempt in range(100):
                    join = await call(admin, record, "", "POST", "/join-tokens", json={"group": "production"})
                    if join is None:
                        continue
                    answer = await call(
                        admin,
                        record,
                        "",
                        "POST",
                        "/agent/register",
                        json={"name": f"sim{number:04d}-{attempt}"},
                        headers={"Authorization": f"Bearer {join['token']}"},
                    )
                    if answer is not None:
                        return str(answer["agent_token"])
            raise SystemExit(f"agent {number} could not register in 100 attempts")

        return list(await asyncio.gather(*(register(n) for n in range(agents))))


async def deploy_everywhere(url: str, admin_token: str, limit: float) -> tuple[float, float | None]:
    """The deployment's creation time (wall clock) and seconds until it succeeded (None: not in `limit`)."""
    snapshot = spec_snapshot(
        parse_spec({"app": "web", "image": IMAGE, "rollout": {"max_parallel": "100%", "monitor": 1}})
    )
    record = Record()
    async with agent_client(url, {"Authorization": f"Bearer {admin_token}"}) as admin:
        body = {"image": IMAGE, "digest": DIGEST, "spec": snapshot}
        release = await call(admin, record, "", "POST", "/releases", json=body)
        if release is None:
            raise SystemExit("the release could not be created; see the controller's log")
        changed_at, started = time.time(), time.perf_counter()
        body = {"release_id": release["id"], "environment": "production"}
        deployment = await call(admin, record, "", "POST", "/deployments", json=body)
        if deployment is None:
            raise SystemExit("the deployment could not be created; see the controller's log")
        while time.perf_counter() - started < limit:
            found = await call(admin, record, "", "GET", f"/deployments/{deployment['id']}")
            if found and found["status"] == "succeeded":
                return changed_at, time.perf_counter() - started
            await asyncio.sleep(0.5)
    return changed_at, None


def report_buckets(urls: list[str]) -> dict[float, float]:
    """The controllers' own latency histogram of POST /agent/report, summed over the replicas:
    cumulative count per bucket bound (seconds)."""
    counts: dict[float, float] = {}
    for url in urls:
        text = httpx.get(url + "/metrics", timeout=TIMEOUT).text
        for family in text_string_to_metric_families(text):
            if family.name != "shipyard_controller_request_seconds":
                continue
            for sample in family.samples:
                labels = sample.labels
                if sample.name.endswith("_bucket") and labels.get("route") == REPORT_ROUTE:
                    bound = float(labels["le"])
                    counts[bound] = counts.get(bound, 0.0) + sample.value
    return counts


def bucket_percentiles(before: dict[float, float], after: dict[float, float]) -> str:
    """'p50 / p99' in milliseconds as the bucket bounds they fall under, from two histogram snapshots."""
    delta = sorted((bound, count - before.get(bound, 0.0)) for bound, count in after.items())
    total = delta[-1][1] if delta else 0.0
    if total <= 0:
        return "-"

    def bound_of(q: float) -> str:
        bound = next(b for b, count in delta if count >= q / 100 * total)
        return "> 10,000" if bound == float("inf") else f"≤ {bound * 1000:,.0f}"

    return f"{bound_of(50)} / {bound_of(99)}"


def percentiles(values: list[float]) -> str:
    """'p50 / p99' in milliseconds, nearest-rank."""
    if not values:
        return "-"
    return f"{percentile(values, 50) * 1000:.0f} / {percentile(values, 99) * 1000:.0f}"


def cpu_split(seconds: list[float], scale: float, unit: str, digits: int) -> str:
    """The controllers' total, and each replica's share in parentheses when there are several."""
    total = f"{sum(seconds) * scale:.{digits}f}{unit}"
    if len(seconds) == 1:
        return total
    return total + " (" + " + ".join(f"{s * scale:.{digits}f}" for s in seconds) + ")"


def simulate(
    urls: list[str],
    admin_token: str,
    agents: int,
    steady: float,
    workers: int,
    pids: list[int],
    client_kind: str = "httpx",
) -> list[object]:
    """Agent i talks to urls[i % len(urls)]; the admin work goes through urls[0]."""
    url = urls[0]
    tokens = asyncio.run(register_all(url, admin_token, agents))
    assigned = [(urls[n % len(urls)], token) for n, token in enumerate(tokens)]
    # fork: the workers inherit this script's imports; no event loop or thread runs at this point
    context = multiprocessing.get_context("fork")
    stop, results = context.Event(), context.Queue()
    processes = [
        context.Process(target=worker, args=(assigned[n::workers], stop, results, client_kind), daemon=True)
        for n in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        simulator = [p.pid for p in processes if p.pid is not None]
        time.sleep(CONNECT_S)
        before = {p: cpu_seconds(p) for p in [*pids, *simulator]}
        started = time.perf_counter()
        time.sleep(max(1.0, steady - CONNECT_S))
        elapsed = time.perf_counter() - started
        controller_cpu = [(cpu_seconds(p) - before[p]) / elapsed for p in pids]
        simulator_cpu = sum(cpu_seconds(p) - before[p] for p in simulator) / elapsed * 100
        before = {p: cpu_seconds(p) for p in [*pids, *simulator]}
        served_before = report_buckets(urls)
        changed_at, deploy_seconds = asyncio.run(deploy_everywhere(url, admin_token, limit=180))
        # CPU seconds spent on the deployment until it completed, by the controllers and by the simulator
        burst_controller = [cpu_seconds(p) - before[p] for p in pids]
        burst_simulator = sum(cpu_seconds(p) - before[p] for p in simulator)
        served_burst = bucket_percentiles(served_before, report_buckets(urls))
        stop.set()
        records = [results.get(timeout=120) for _ in processes]
    finally:
        stop.set()
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    samples = [s for sample_list, _ in records for s in sample_list]
    steady_reports = [s for kind, at, s, _ in samples if kind == "report" and at < changed_at]
    burst_reports = [s for kind, at, s, _ in samples if kind == "report" and at >= changed_at]
    connect = [s for kind, _, s, _ in samples if kind.startswith("connect")]
    fanout = [at - changed_at for _, changes in records for at in changes if at >= changed_at]
    return [
        len(urls),
        agents,
        percentiles(connect),
        percentiles(steady_reports),
        f"{cpu_split(controller_cpu, 100, '%', 0)} / {simulator_cpu:.0f}%",
        percentiles(burst_reports),
        served_burst,
        f"{cpu_split(burst_controller, 1, '', 1)} / {burst_simulator:.1f}",
        percentiles(fanout),
        f"{deploy_seconds:.1f}" if deploy_seconds is not None else "not in 180 s",
        sum(1 for *_, ok in samples if not ok),
    ]


def start_controller(args: list[str], log: Path, recheck: float | None) -> int:
    """`shipyard controller ARGS`, or (to try another long-poll recheck interval) the same app via uvicorn."""
    if recheck is None:
        return shipyard_process(args, log)
    options = dict(zip(args[1::2], args[2::2], strict=True))
    script = (
        "import dataclasses, pathlib, uvicorn\n"
        "from shipyard.controller.server.app import create_app\n"
        "from shipyard.controller.server.settings import load_settings\n"
        f"s = load_settings(database_url={options['--db']!r}, lost_after=120, "
        f"bootstrap_token_file=pathlib.Path({options['--bootstrap-token-file']!r}))\n"
        f"s = dataclasses.replace(s, recheck_interval={recheck})\n"
        f"uvicorn.run(create_app(s), host='127.0.0.1', port={options['--port']}, log_level='warning')\n"
    )
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", script], stdout=out, stderr=out, start_new_session=True
        ).pid


def run(
    database: str | None,
    agents: int,
    steady: float,
    workers: int,
    recheck: float | None = None,
    replicas: int = 1,
    client_kind: str = "httpx",
) -> list[object]:
    """Start `replicas` controllers on `database` (default: SQLite in a temporary directory) and simulate."""
    work = Path(tempfile.mkdtemp(prefix="shipyard-capacity-"))
    database = database or f"sqlite:///{work}/controller.db"
    token_file = work / "admin-token"
    pids: list[int] = []
    urls: list[str] = []
    try:
        # One after the other: the first migrates the database and writes the admin token file.
        for replica in range(replicas):
            port, log = free_port(), work / f"controller-{replica}.log"
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
            pids.append(start_controller(args, log, recheck))
            wait_http(f"http://127.0.0.1:{port}/healthz", 60, f"controller replica {replica}", log)
            urls.append(f"http://127.0.0.1:{port}")
        row = simulate(urls, token_file.read_text().strip(), agents, steady, workers, pids, client_kind)
    finally:
        for pid in pids:
            stop_process(pid)
        shutil.rmtree(work, ignore_errors=True)
    return row


COLUMNS = [
    "db",
    "replicas",
    "agents",
    "connect p50/p99 ms",
    "steady report p50/p99 ms",
    "steady CPU controller / simulator",
    "burst report p50/p99 ms",
    "burst report p50/p99 ms in the controller",
    "deploy CPU s controller / simulator",
    "fan-out p50/p99 ms",
    "deploy to all s",
    "errors",
]
TITLE = "controller capacity (simulated agents; the simulator shares the 2-core machine)"


def measure(
    kind: str,
    agents: int,
    steady: float,
    workers: int,
    recheck: float | None,
    replicas: int,
    client_kind: str,
) -> list[object]:
    label = kind if recheck is None else f"{kind} (recheck {recheck:g} s)"
    label += ", raw client" if client_kind == "raw" else ""
    if kind == "sqlite":
        return [label, *run(None, agents, steady, workers, recheck, replicas, client_kind)]
    from shipyard.lab.postgres import throwaway_postgres

    with throwaway_postgres() as server:
        database = server.create_database()
        return [label, *run(database, agents, steady, workers, recheck, replicas, client_kind)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument(
        "--steady", type=float, default=60.0, help="seconds of long-polling before the deploy"
    )
    parser.add_argument("--workers", type=int, default=2, help="simulator processes")
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    parser.add_argument(
        "--recheck", type=float, help="run the controller with this long-poll recheck interval"
    )
    parser.add_argument(
        "--replicas", type=int, default=1, help="controller processes sharing the database (PostgreSQL)"
    )
    parser.add_argument(
        "--client",
        choices=["httpx", "raw"],
        default="httpx",
        help="the simulated agents' HTTP client: httpx like the agent, or a minimal one (less simulator CPU)",
    )
    args = parser.parse_args()
    if args.replicas < 1:
        parser.error(f"--replicas {args.replicas}: pass 1 or more controller processes.")
    if args.replicas > 1 and "sqlite" in args.db:
        parser.error(
            f"--replicas {args.replicas} needs --db postgres: one SQLite file cannot be shared by "
            "several controllers."
        )
    rows = []
    for kind in args.db:
        rows.append(
            measure(kind, args.agents, args.steady, args.workers, args.recheck, args.replicas, args.client)
        )
        print_table(TITLE, COLUMNS, rows[-1:])
        sys.stdout.flush()
    print_table(TITLE, COLUMNS, rows)


if __name__ == "__main__":
    main()
