"""Error load: how fast a 500 is answered, and whether /healthz notices, while 20 requests/s fail.

A real controller (the app of create_app on uvicorn, in its own process, SQLite) with one extra route
that raises, added to the app object by this script: production code has no way to fail on purpose.
Each 500 is logged with its traceback, which is what once took seconds on the event loop.

For each logging set-up, three phases of `--seconds` each, /healthz polled by `--health-clients`
keep-alive clients (benchmarks/_load.py) throughout:
- no other load;
- `--rate` requests per second to a route answering 200 (the cost of the requests themselves);
- `--rate` requests per second to the failing route (500s).
The requests are sent on schedule (open loop: a slow answer does not slow the sending), each with an
admin token in its Authorization header, as the leaking requests had.

Logging set-ups:
- shipyard: what `shipyard controller` configures (shipyard.logs.configure_process_logging):
  plain tracebacks, credentials masked, formatted and written by a thread of their own;
- structlog defaults: no configuration, as the controller ran before: structlog's console renderer with
  rich tracebacks that print every frame's local variables (`--before` adds this row).

Printed: the other load's latency p50/p99/max and how many were answered as expected (500 with a
reference, or 200), /healthz p50/p99/max and its requests/s, the controller's CPU seconds in the phase
and per request answered (less disturbed by the machine's other work than latencies are), the size of
the controller's log, and whether the token reached the log.

Usage: .venv/bin/python benchmarks/error_load.py [--seconds 20] [--rate 20] [--health-clients 2] [--before]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path

import httpx
from _load import Load, LoadResult, cpu_seconds, percentile
from fleet_common import print_table

from shipyard.lab.ports import free_port
from shipyard.lab.processes import stop_process, wait_http

ADMIN_TOKEN = "sya_error-load-benchmark-admin-token-0123456789"
FAULT, FINE = "/bench/fault", "/bench/fine"
SERVER = f"""
import sys
import uvicorn
from fastapi import Request
from shipyard.controller.server.app import create_app
from shipyard.controller.server.settings import ControllerSettings
from shipyard.logs import configure_process_logging

database, port, logging_setup = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if logging_setup == "shipyard":
    configure_process_logging()
app = create_app(ControllerSettings(database_url=database, bootstrap_admin_token={ADMIN_TOKEN!r}))


@app.get({FAULT!r})
async def fault(request: Request) -> None:
    raise RuntimeError("the benchmark's failing route")


@app.get({FINE!r})
async def fine(request: Request) -> dict[str, str]:
    return {{"reference": "none: the same request, answered 200"}}


log_config = None if logging_setup == "shipyard" else uvicorn.config.LOGGING_CONFIG
uvicorn.run(app, host="127.0.0.1", port=port, log_level="info", log_config=log_config, access_log=False)
"""


def start_server(work: Path, logging_setup: str) -> tuple[int, int, Path]:
    port, log = free_port(), work / f"controller-{logging_setup}.log"
    database = f"sqlite:///{work}/controller-{logging_setup}.db"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVER, database, str(port), logging_setup],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_http(f"http://127.0.0.1:{port}/healthz", 60, "the controller", log)
    return process.pid, port, log


async def send_requests(port: int, path: str, rate: float, seconds: float) -> tuple[list[float], int, int]:
    """(latencies, requests sent, unexpected answers) of GET `path` at `rate` per second, on schedule."""
    latencies: list[float] = []
    unexpected = 0
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60) as http:

        async def one() -> None:
            nonlocal unexpected
            started = time.perf_counter()
            try:
                answer = await http.get(path, headers=headers)
            except httpx.HTTPError:
                unexpected += 1
                return
            if answer.status_code == (500 if path == FAULT else 200) and "reference" in answer.json():
                latencies.append(time.perf_counter() - started)
            else:
                unexpected += 1

        tasks = []
        begin = time.perf_counter()
        count = int(rate * seconds)
        for index in range(count):
            await asyncio.sleep(max(0.0, begin + index / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return latencies, count, unexpected


def health_phase(
    port: int, clients: int, seconds: float, path: str | None, rate: float
) -> tuple[LoadResult, tuple[list[float], int, int]]:
    """/healthz polled for `seconds`, with GET `path` at `rate` per second meanwhile (when given)."""
    load = Load(f"127.0.0.1:{port}", "keep-alive", concurrency=clients, path="/healthz").start()
    try:
        if path is not None:
            other = asyncio.run(send_requests(port, path, rate, seconds))
        else:
            time.sleep(seconds)
            other = ([], 0, 0)
    finally:
        result = load.stop()
    return result, other


def ms(value: float) -> str:
    return f"{value * 1000:.1f}"


def latencies_text(values: list[float] | array[float]) -> str:
    if not values:
        return "-"
    return "/".join(ms(percentile(values, q)) for q in (50, 99)) + f"/{ms(max(values))}"


def measure(logging_setup: str, args: argparse.Namespace, work: Path) -> list[list[object]]:
    pid, port, log = start_server(work, logging_setup)
    phases = [("none", None), (f"{args.rate:g}/s 200s", FINE), (f"{args.rate:g}/s 500s", FAULT)]
    rows: list[list[object]] = []
    try:
        for phase, path in phases:
            cpu_before = cpu_seconds(pid)
            health, other = health_phase(port, args.health_clients, args.seconds, path, args.rate)
            cpu = cpu_seconds(pid) - cpu_before
            latencies, sent, unexpected = other
            answered = f"{len(latencies)}/{sent}" + (f" ({unexpected} other)" if unexpected else "")
            health_rate = f"{health.ok / args.seconds:.0f}"
            if health.failed:
                health_rate += f" ({health.failed} failed)"
            rows.append(
                [
                    logging_setup,
                    phase,
                    latencies_text(latencies),
                    answered if path else "-",
                    latencies_text(health.ok_latencies),
                    health_rate,
                    f"{cpu:.1f}",
                    f"{cpu * 1000 / max(1, health.ok + sent):.2f}",
                ]
            )
    finally:
        stop_process(pid)
    text = log.read_text(errors="replace")
    leaked = ADMIN_TOKEN in text or ADMIN_TOKEN[4:] in text
    for row in rows:
        row += [f"{len(text.encode()) / 1024:.0f}", "yes" if leaked else "no"]
    return rows


COLUMNS = [
    "logging",
    "other load",
    "its p50/p99/max ms",
    "answered as expected",
    "/healthz p50/p99/max ms",
    "/healthz req/s",
    "controller CPU s",
    "CPU ms/request",
    "log KiB",
    "token in log",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--rate", type=float, default=20.0, help="failing requests per second")
    parser.add_argument("--health-clients", type=int, default=2, help="keep-alive clients polling /healthz")
    parser.add_argument("--before", action="store_true", help="also run with structlog's defaults")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="shipyard-error-load-"))
    rows: list[list[object]] = []
    try:
        for logging_setup in ("shipyard", "structlog-defaults") if args.before else ("shipyard",):
            rows += measure(logging_setup, args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    title = (
        f"{args.health_clients} clients poll /healthz; phases of {args.seconds:g} s "
        "(latencies client-side; 'log KiB' covers all phases)"
    )
    print_table(title, COLUMNS, rows)


if __name__ == "__main__":
    main()
