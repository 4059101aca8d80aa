"""What TLS costs the controller: the agent's desired-state read over plain http and over https.

The same controller command (SQLite in a temporary directory) is started twice, once plain and once
with --tls-cert/--tls-key from a throwaway CA (P-256 keys, as the lab's), and one registered agent
reads GET /api/v1/agent/desired (answered at once) sequentially:
- on a new connection per request (TCP + TLS handshake each time: an agent's first contact, or every
  agent reconnecting after a controller restart);
- on one keep-alive connection (an agent's steady state: its long-polls and reports reuse it).
Printed: client-side latency p50/p99 and the controller's CPU per request (user + system).

Usage: .venv/bin/python benchmarks/controller_tls.py [--new 300] [--keepalive 1000]
"""

from __future__ import annotations

import argparse
import shutil
import ssl
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from _load import cpu_seconds, describe_run, percentile, print_table

from shipyard.fleet_api.client import ControllerClient
from shipyard.fleet_api.tls import client_ssl_context
from shipyard.lab.ports import free_port
from shipyard.lab.processes import shipyard_process, stop_process, wait_http
from shipyard.lab.tls import make_throwaway_ca

DESIRED = "/api/v1/agent/desired"


def start(work: Path, tls: bool) -> tuple[int, str, str, ssl.SSLContext]:
    """(pid, url, agent token, client context) of a controller serving plain http or https."""
    port, token_file = free_port(), work / "admin-token"
    args = ["controller", "--db", f"sqlite:///{work}/controller.db", "--port", str(port)]
    args += ["--bootstrap-token-file", str(token_file)]
    context = ssl.create_default_context()
    ca_file = None
    if tls:
        files = make_throwaway_ca(work / "tls")
        args += ["--tls-cert", str(files.server_cert), "--tls-key", str(files.server_key)]
        context, ca_file = client_ssl_context(files.ca_cert), files.ca_cert
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    pid = shipyard_process(args, work / "controller.log")
    wait_http(f"{url}/healthz", 60, "the controller", work / "controller.log", verify=context)
    with ControllerClient(url, token_file.read_text().strip(), ca_file=ca_file) as admin:
        join = admin.create_join_token("production").token
        agent_token = admin.register_agent(join, "bench-host").agent_token
    return pid, url, agent_token, context


def measure(pid: int, count: int, request: Callable[[], httpx.Response]) -> tuple[list[float], float]:
    """Latencies (s) of `count` requests and the controller's CPU seconds per request."""
    latencies: list[float] = []
    cpu_before = cpu_seconds(pid)
    for _ in range(count):
        started = time.perf_counter()
        response = request()
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return latencies, (cpu_seconds(pid) - cpu_before) / count


def run(tls: bool, new: int, keepalive: int) -> list[str]:
    work = Path(tempfile.mkdtemp(prefix="shipyard-tls-bench-"))
    pid, url, token, context = start(work, tls)
    headers = {"Authorization": f"Bearer {token}"}
    try:

        def on_new_connection() -> httpx.Response:
            with httpx.Client(base_url=url, verify=context, headers=headers) as client:
                return client.get(DESIRED)

        fresh, fresh_cpu = measure(pid, new, on_new_connection)
        with httpx.Client(base_url=url, verify=context, headers=headers) as client:
            client.get(DESIRED)
            reused, reused_cpu = measure(pid, keepalive, lambda: client.get(DESIRED))
    finally:
        stop_process(pid)
        shutil.rmtree(work, ignore_errors=True)

    def ms(values: list[float], q: float) -> str:
        return f"{percentile(values, q) * 1000:.2f}"

    return [
        "https" if tls else "http",
        f"{ms(fresh, 50)} / {ms(fresh, 99)}",
        f"{fresh_cpu * 1000:.2f}",
        f"{ms(reused, 50)} / {ms(reused, 99)}",
        f"{reused_cpu * 1000:.2f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--new", type=int, default=300, help="requests on a new connection each")
    parser.add_argument("--keepalive", type=int, default=1000, help="requests on one keep-alive connection")
    arguments = parser.parse_args()
    print(describe_run())
    rows = [run(tls, arguments.new, arguments.keepalive) for tls in (False, True)]
    print_table(
        f"desired-state read, {arguments.new} on new connections, {arguments.keepalive} keep-alive",
        [
            "controller",
            "new connection p50 / p99 ms",
            "controller CPU ms per new connection",
            "keep-alive p50 / p99 ms",
            "controller CPU ms per keep-alive request",
        ],
        rows,
    )
    print(describe_run())


if __name__ == "__main__":
    main()
