"""Requests per second of the same busybox httpd page through four network paths, with wrk.

- native:        busybox httpd run directly on the host (the same static busybox binary the image holds);
- host network:  the test image in a container on the host network (what shipyard runs);
- bridge:        the test image on Docker's bridge network, published on 127.0.0.1 (docker-proxy/NAT);
- shipyard:      shipyard's haproxy (proxy.listen) in front of a host-network container deployed by shipyard.

wrk keeps connections alive where the server allows: busybox httpd closes the connection after each
response (and forks a process per connection), so direct paths cost one TCP handshake + one fork per
request; through haproxy the client side stays open and haproxy opens one server connection per request.
The four targets are measured round-robin, `--repeat` rounds of `--duration` seconds each (after one short
warm-up each); the median round is reported, and ratios are medians of per-round ratios (paired rounds run
back to back), so drift in other load on the machine favours no path.

Usage: .venv/bin/python benchmarks/network_modes.py [--quick] [--duration 10] [--repeat 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

import yaml
from _load import Lab, cpu_seconds, describe_run, free_port_block, lab, print_table, run, wait_http

from shipyard.lab.fixtures import AppHome, unique_name
from shipyard.lab.testapp import busybox_path, write_context_dir

LABEL = "shipyard-benchmark=network-modes"


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    non_2xx: int
    haproxy_cpu: float = 0.0  # cores used by shipyard's haproxy during the run


@dataclass
class Target:
    name: str
    address: str
    results: list[WrkResult] = field(default_factory=list)

    def median(self) -> WrkResult:
        ordered = sorted(self.results, key=lambda r: r.rps)
        return ordered[len(ordered) // 2]


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(address: str, seconds: float, connections: int, threads: int) -> WrkResult:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "5s"]
    output = run([*argv, f"http://{address}/"], timeout=seconds + 60)
    percentiles = dict(re.findall(r"^ *(50|99)% +(\S+) *$", output, re.M))
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    requests = re.search(r"(\d+) requests in", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not (rps and requests and "50" in percentiles and "99" in percentiles):
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    return WrkResult(
        rps=float(rps.group(1)),
        p50_ms=_ms(percentiles["50"]),
        p99_ms=_ms(percentiles["99"]),
        requests=int(requests.group(1)),
        errors=sum(int(x) for x in sockets.groups()) if sockets else 0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )


def paired_ratio(target: Target, reference: Target) -> float:
    """Median over rounds of target/reference req/s: the two ran back to back, so drift in the
    machine's other load cancels out better than in a ratio of medians."""
    ratios = [a.rps / b.rps for a, b in zip(target.results, reference.results, strict=True)]
    return statistics.median(ratios)


class Servers:
    """Start and stop the four servers."""

    def __init__(self, the_lab: Lab) -> None:
        self.lab = the_lab
        self.native: subprocess.Popen[bytes] | None = None
        self.containers: list[str] = []
        self.home: AppHome | None = None

    def start_native(self) -> Target:
        www = write_context_dir(self.lab.work / "context", "v1") / "rootfs" / "www"
        port = free_port_block(1)
        argv = [str(busybox_path()), "httpd", "-f", "-p", f"127.0.0.1:{port}", "-h", str(www)]
        self.native = subprocess.Popen(argv, start_new_session=True)
        return Target("native busybox httpd", f"127.0.0.1:{port}")

    def start_container(self, network: str) -> Target:
        port = free_port_block(1)
        name = unique_name(f"bench-net-{network}-")
        if network == "host":
            placement = ["--network", "host", "-e", f"PORT={port}", "-e", "HOST=127.0.0.1"]
        else:
            placement = ["-p", f"127.0.0.1:{port}:{port}", "-e", f"PORT={port}", "-e", "HOST=0.0.0.0"]
        self.lab.docker(
            "run", "-d", "--init", "--name", name, "--label", LABEL, *placement, self.lab.images.ref("v1")
        )
        self.containers.append(name)
        label = "container, host network" if network == "host" else "container, bridge + published port"
        return Target(label, f"127.0.0.1:{port}")

    def start_shipyard(self) -> Target:
        root = self.lab.work / "shipyard"
        root.mkdir()
        self.home = AppHome(
            root=root, docker_url=self.lab.docker_url, registry=self.lab.registry, app=unique_name("net")
        )
        self.home.write_config(self.lab.images)
        self.home.run("deploy", self.lab.images.ref("v1"))
        listen = yaml.safe_load(self.home.config.read_text())["proxy"]["listen"]
        return Target("shipyard haproxy -> host-network container", str(listen))

    def haproxy_cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by shipyard's haproxy workers."""
        if self.home is None:
            return 0.0
        master = (self.home.home / "haproxy" / "haproxy.pid").read_text().split()[0]
        return sum(cpu_seconds(int(pid)) for pid in run(["pgrep", "-P", master], check=False).split())

    def stop(self) -> None:
        if self.native is not None:
            os.killpg(self.native.pid, signal.SIGTERM)
            self.native.wait(10)
        for name in self.containers:
            self.lab.docker("rm", "-f", name, check=False)
        if self.home is not None:
            self.home.teardown()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--repeat", type=int, default=5, help="rounds over the four targets")
    parser.add_argument("--connections", type=int, default=65)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (the machine has 2 cores)")
    parser.add_argument("--quick", action="store_true", help="one round of 5 s")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.repeat = 5.0, 1
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    started = time.monotonic()
    print(describe_run())
    with lab("net") as the_lab:
        servers = Servers(the_lab)
        try:
            targets = [
                servers.start_native(),
                servers.start_container("host"),
                servers.start_container("bridge"),
                servers.start_shipyard(),
            ]
            for target in targets:
                wait_http(target.address, "/version", "v1")
                wrk(target.address, 2, args.connections, args.threads)  # warm-up, discarded
            for round_number in range(1, args.repeat + 1):
                for target in targets:
                    cpu = servers.haproxy_cpu_seconds()
                    result = wrk(target.address, args.duration, args.connections, args.threads)
                    result.haproxy_cpu = (servers.haproxy_cpu_seconds() - cpu) / args.duration
                    target.results.append(result)
                    print(f"  round {round_number}: {target.name}: {result.rps:.0f} req/s", flush=True)
        finally:
            servers.stop()
    rows = []
    for target in targets:
        best = target.median()
        spread = f"{min(r.rps for r in target.results):.0f}-{max(r.rps for r in target.results):.0f}"
        rows.append(
            [
                target.name,
                f"{best.rps:.0f}",
                spread,
                f"{paired_ratio(target, targets[0]):.2f}",
                f"{paired_ratio(target, targets[1]):.2f}",
                f"{best.p50_ms:.2f}",
                f"{best.p99_ms:.1f}",
                str(best.requests),
                f"{best.errors} / {best.non_2xx}",
            ]
        )
    headers = [
        "path", "req/s (median round)", "req/s range", "vs native", "vs host-network container",
        "p50 ms", "p99 ms", "requests", "socket errors / non-2xx",
    ]  # fmt: skip
    title = (
        f"Static page, wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s, "
        f"median of {args.repeat} round(s); ratios are medians of the per-round ratios"
    )
    print_table(title, headers, rows)
    ratio = paired_ratio(targets[3], targets[1])
    verdict = "met" if ratio >= 0.9 else "NOT met"
    rounds = ", ".join(
        f"{a.rps / b.rps:.2f}" for a, b in zip(targets[3].results, targets[1].results, strict=True)
    )
    print(f"\nhaproxy path vs direct (host-network container): {ratio:.2f} (target >= 0.90: {verdict})")
    print(f"per round: {rounds}")
    cores = statistics.median(r.haproxy_cpu for r in targets[3].results)
    print(f"haproxy's CPU on its path: {cores:.2f} of the machine's 2 cores (median round)")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"total time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
