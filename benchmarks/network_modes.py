"""Requests per second of the same static page through four network paths, with wrk.

- native:        the server run directly on the host (the same binary the image holds);
- host network:  the image in a container on the host network (what shipyard runs);
- bridge:        the image on Docker's bridge network, published on 127.0.0.1 (docker-proxy/NAT);
- shipyard:      shipyard's haproxy (proxy.listen) in front of a host-network container deployed by shipyard.

The server is lighttpd by default (`shipyard.lab.server_image`: one event-driven process, keep-alive,
listen backlog 1024), the way a real app server behaves. `--server busybox` measures the regular test
image instead: busybox httpd forks a process per connection, closes it after each response and has a
listen backlog of 9, so there every request costs a handshake and a fork.

The targets are measured round-robin, `--repeat` rounds of `--duration` seconds each (after one short
warm-up each), every other round in reverse order; the median round is reported, and ratios are medians
of per-round ratios, so drift in other load on the machine favours no path. The server's CPU time
(user + system, all its processes) is read from /proc around each run, and wrk's (and haproxy's) too:
CPU µs per request tells a server that does more work per request apart from one that gets less CPU.

`--variants` measures where a gap between the host-network container and the native process comes
from instead: the same server with one thing changed at a time (no init, seccomp off, the container's
processes moved into the benchmark's own cgroups (all, or the cpu one only) and the native one into a
container's, a private cgroup namespace, a cgroup parent of its own beside /docker, pages bind-mounted
instead of read through overlayfs, server and wrk pinned to different CPUs). Load goes to 127.0.0.1
only, never to a container's bridge address. Each variant's "vs its reference" is its paired ratio
to what it changes one thing of.

Usage: .venv/bin/python benchmarks/network_modes.py [--quick] [--variants] [--server lighttpd|busybox]
       [--duration 10] [--repeat 5] [--threads 2] [--connections 65]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from _load import (
    Lab,
    _remove_images,
    cpu_seconds,
    describe_run,
    free_port_block,
    lab,
    print_table,
    run,
    wait_http,
)

from shipyard.domain.models import LABEL_APP
from shipyard.lab.server_image import pages, write_native_root
from shipyard.lab.single_host import AppHome, PushedImages, push_server_images, unique_name
from shipyard.lab.testapp import busybox_path, write_context_dir

LABEL = "shipyard-benchmark=network-modes"
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    non_2xx: int
    haproxy_cpu: float = 0.0  # cores used by shipyard's haproxy during the run
    server_cpu: float = 0.0  # cores used by the server's processes during the run
    wrk_cpu: float = 0.0  # cores used by wrk itself


@dataclass
class Target:
    name: str
    address: str
    server_pids: Callable[[], list[int]] = lambda: []
    wrk_cpus: str | None = None  # pin wrk to these CPUs (taskset -c)
    reference: str | None = None  # name of the target this variant changes one thing of
    results: list[WrkResult] = field(default_factory=list)

    def median(self) -> WrkResult:
        ordered = sorted(self.results, key=lambda r: r.rps)
        return ordered[len(ordered) // 2]


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(address: str, seconds: float, connections: int, threads: int, cpus: str | None = None) -> WrkResult:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "5s"]
    if cpus is not None:
        argv = ["taskset", "-c", cpus, *argv]
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


# --- cgroups (v1 here: one hierarchy per controller) --------------------------------------------


def cgroups_of(pid: int) -> dict[str, str]:
    """Controller directory -> cgroup path of a process, for the v1 hierarchies that have a directory."""
    paths = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers and not controllers.startswith("name=") and (CGROUP_ROOT / controllers).is_dir():
            paths[controllers] = path
    return paths


def processes_in(cgroups: dict[str, str]) -> list[int]:
    controller, path = next(iter(cgroups.items()))
    text = (CGROUP_ROOT / controller / path.lstrip("/") / "cgroup.procs").read_text()
    return [int(pid) for pid in text.split()]


def move_to(pids: list[int], cgroups: dict[str, str]) -> None:
    for controller, path in cgroups.items():
        procs = CGROUP_ROOT / controller / path.lstrip("/") / "cgroup.procs"
        for pid in pids:
            procs.write_text(f"{pid}\n")


def descendants(pid: int) -> list[int]:
    found = [pid]
    for child in run(["pgrep", "-P", str(pid)], check=False).split():
        found.extend(descendants(int(child)))
    return found


# --- the servers ---------------------------------------------------------------------------------


class Servers:
    """Start and stop native servers, containers and a shipyard home; every one is stopped at the end."""

    def __init__(self, the_lab: Lab, server: str, images: PushedImages) -> None:
        self.lab = the_lab
        self.server = server
        self.images = images
        self.natives: list[subprocess.Popen[bytes]] = []
        self.containers: list[str] = []
        self.home: AppHome | None = None
        self.cgroup_parents: list[str] = []

    def top_level_cgroup(self) -> str:
        """A --cgroup-parent beside /docker (docker creates it; stop() removes it)."""
        name = f"/{unique_name('shipyard-bench-')}"
        self.cgroup_parents.append(name)
        return name

    def native_argv(self, port: int) -> list[str]:
        root = self.lab.work / f"native-{port}"
        if self.server == "lighttpd":
            return write_native_root(root, "v1")
        www = write_context_dir(root / "context", "v1") / "rootfs" / "www"
        return [str(busybox_path()), "httpd", "-f", "-p", f"127.0.0.1:{port}", "-h", str(www)]

    def start_native(self, name: str, cpus: str | None = None, wrk_cpus: str | None = None) -> Target:
        port = free_port_block(1)
        argv = self.native_argv(port)
        if cpus is not None:
            argv = ["taskset", "-c", cpus, *argv]
        env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port)}
        with (self.lab.work / f"native-{port}.log").open("wb") as log:
            process = subprocess.Popen(argv, env=env, stdout=log, stderr=log, start_new_session=True)
        self.natives.append(process)
        return Target(name, f"127.0.0.1:{port}", lambda: descendants(process.pid), wrk_cpus)

    def start_container(
        self,
        name: str,
        *options: str,
        network: str = "host",
        init: bool = True,
        wrk_cpus: str | None = None,
    ) -> Target:
        port = free_port_block(1)
        container = unique_name("bench-net-")
        if network == "host":
            placement = ["--network", "host", "-e", f"PORT={port}", "-e", "HOST=127.0.0.1"]
        else:
            placement = ["-p", f"127.0.0.1:{port}:{port}", "-e", f"PORT={port}", "-e", "HOST=0.0.0.0"]
        init_option = ["--init"] if init else []
        image = self.images.ref("v1")
        self.containers.append(container)  # before `docker run`: a run that fails may leave it created
        self.lab.docker(
            "run", "-d", *init_option, "--name", container, "--label", LABEL, *placement, *options, image
        )
        # Only loopback: load is never sent to a container's bridge address.
        address = f"127.0.0.1:{port}"
        return Target(name, address, lambda: self.container_pids(container), wrk_cpus)

    def container_pids(self, container: str) -> list[int]:
        pid = int(self.lab.docker("inspect", "-f", "{{.State.Pid}}", container).strip())
        return descendants(pid) if pid else []

    def start_shipyard(self) -> Target:
        root = self.lab.work / "shipyard"
        root.mkdir()
        self.home = AppHome(
            root=root, docker_url=self.lab.docker_url, registry=self.lab.registry, app=unique_name("net")
        )
        self.home.write_config(self.images)
        self.home.run("deploy", self.images.ref("v1"))
        listen = yaml.safe_load(self.home.config.read_text())["proxy"]["listen"]
        app = self.home.app
        return Target("shipyard haproxy -> host-network container", str(listen), lambda: self.app_pids(app))

    def app_pids(self, app: str) -> list[int]:
        names = self.lab.docker("ps", "-q", "--filter", f"label={LABEL_APP}={app}").split()
        return [pid for name in names for pid in self.container_pids(name)]

    def haproxy_cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by shipyard's haproxy workers."""
        if self.home is None:
            return 0.0
        master = (self.home.home / "haproxy" / "haproxy.pid").read_text().split()[0]
        return sum(cpu_seconds(int(pid)) for pid in run(["pgrep", "-P", master], check=False).split())

    def stop(self) -> None:
        for process in self.natives:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(10)
        for name in self.containers:
            self.lab.docker("rm", "-f", name, check=False)
        if self.home is not None:
            self.home.teardown()
        for parent in self.cgroup_parents:
            for controller in CGROUP_ROOT.iterdir():
                with contextlib.suppress(OSError):
                    (controller / parent.lstrip("/")).rmdir()


def process_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


def measure(targets: list[Target], servers: Servers, args: argparse.Namespace) -> None:
    expect = "v1"
    for target in targets:
        wait_http(target.address, "/version", expect)
        wrk(target.address, 2, args.connections, args.threads, target.wrk_cpus)  # warm-up, discarded
    for round_number in range(1, args.repeat + 1):
        # Every other round runs the targets in reverse order, so a steady drift of the machine's other
        # load favours no position in the list.
        for target in targets if round_number % 2 else targets[::-1]:
            pids = target.server_pids()
            haproxy, server = servers.haproxy_cpu_seconds(), process_cpu(pids)
            children = children_cpu_seconds()
            result = wrk(target.address, args.duration, args.connections, args.threads, target.wrk_cpus)
            result.wrk_cpu = (children_cpu_seconds() - children) / args.duration
            result.haproxy_cpu = (servers.haproxy_cpu_seconds() - haproxy) / args.duration
            result.server_cpu = (process_cpu(pids) - server) / args.duration
            target.results.append(result)
            print(f"  round {round_number}: {target.name}: {result.rps:.0f} req/s", flush=True)


def children_cpu_seconds() -> float:
    """User + system CPU time of this process's waited-for children (wrk, once it has exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_per_request_us(cores: float, result: WrkResult, duration: float) -> str:
    if not cores or not result.requests:
        return "-"
    return f"{cores * duration / result.requests * 1e6:.1f}"


@contextlib.contextmanager
def benchmark_images(the_lab: Lab, server: str) -> Iterator[PushedImages]:
    if server == "busybox":
        yield the_lab.images
        return
    images = push_server_images(
        the_lab.docker_url, the_lab.registry, unique_name("bench-net-lighttpd-"), ("v1",)
    )
    try:
        yield images
    finally:
        _remove_images(the_lab.docker_url, images)


def paths(servers: Servers) -> list[Target]:
    return [
        servers.start_native(f"native {servers.server}"),
        servers.start_container("container, host network"),
        servers.start_container("container, bridge + published port", network="bridge"),
        servers.start_shipyard(),
    ]


def variants(servers: Servers) -> list[Target]:
    """Each target changes one thing of its reference (the native server or the host-network container)."""
    native = servers.start_native(f"native {servers.server}")
    container = servers.start_container("container, host network, --init (as shipyard runs it)")
    in_host_cgroups = servers.start_container("container, processes moved into the native process's cgroups")
    in_host_cpu_cgroup = servers.start_container("container, moved into the native process's cpu cgroup only")
    in_container_cgroups = servers.start_native("native, process moved into a container's cgroups")
    host_variants = [
        servers.start_container("container, no --init", init=False),
        servers.start_container(
            "container, --security-opt seccomp=unconfined", "--security-opt", "seccomp=unconfined"
        ),
        in_host_cgroups,
        in_host_cpu_cgroup,
        servers.start_container("container, --cgroupns private", "--cgroupns", "private"),
        servers.start_container(
            "container, --cgroup-parent: its own top-level group, not under /docker",
            "--cgroup-parent",
            servers.top_level_cgroup(),
        ),
    ]
    if servers.server == "lighttpd":
        www = servers.lab.work / "bind-www"
        www.mkdir()
        for name, data in pages("v1").items():
            (www / name).write_bytes(data)
        host_variants.append(
            servers.start_container("container, pages bind-mounted (no overlayfs)", "-v", f"{www}:/www:ro")
        )
    for target in host_variants:
        target.reference = container.name
    in_container_cgroups.reference = native.name
    pinned_native = servers.start_native("native, server on CPU 0, wrk on CPU 1", cpus="0", wrk_cpus="1")
    pinned_container = servers.start_container(
        "container, --cpuset-cpus 0, wrk on CPU 1", "--cpuset-cpus", "0", wrk_cpus="1"
    )
    pinned_container.reference = pinned_native.name
    bridge = servers.start_container("container, bridge, via docker-proxy on 127.0.0.1", network="bridge")
    targets = [native, container, *host_variants, in_container_cgroups]
    targets += [pinned_native, pinned_container, bridge]
    for target in targets:
        wait_http(target.address, "/version", "v1")
    # The container's processes go where the native server runs (the benchmark's own cgroups), and
    # a second native server goes into the reference container's cgroups.
    own = cgroups_of(os.getpid())
    move_to(in_host_cgroups.server_pids(), own)
    cpu_only = {name: path for name, path in own.items() if {"cpu", "cpuacct"} & set(name.split(","))}
    move_to(in_host_cpu_cgroup.server_pids(), cpu_only)
    move_to(in_container_cgroups.server_pids(), cgroups_of(container.server_pids()[0]))
    return targets


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--repeat", type=int, default=5, help="rounds over the targets")
    parser.add_argument("--connections", type=int, default=65)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (the machine has 2 cores)")
    parser.add_argument("--server", choices=("lighttpd", "busybox"), default="lighttpd")
    parser.add_argument(
        "--variants", action="store_true", help="where the container's gap to native comes from"
    )
    parser.add_argument("--quick", action="store_true", help="one round of 5 s")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.repeat = 5.0, 1
    for tool in ("wrk", "taskset", "pgrep"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (make deps)", file=sys.stderr)
            return 2
    started = time.monotonic()
    print(describe_run())
    with lab("net") as the_lab, benchmark_images(the_lab, args.server) as images:
        servers = Servers(the_lab, args.server, images)
        try:
            targets = variants(servers) if args.variants else paths(servers)
            measure(targets, servers, args)
        finally:
            servers.stop()
    report(targets, args)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"total time {time.monotonic() - started:.0f} s")
    return 0


def report(targets: list[Target], args: argparse.Namespace) -> None:
    native, host = targets[0], targets[1]
    by_name = {target.name: target for target in targets}
    rows = []
    for target in targets:
        best = target.median()
        spread = f"{min(r.rps for r in target.results):.0f}-{max(r.rps for r in target.results):.0f}"
        server_cores = statistics.median(r.server_cpu for r in target.results)
        rows.append(
            [
                target.name,
                f"{best.rps:.0f}",
                spread,
                f"{paired_ratio(target, native):.2f}",
                f"{paired_ratio(target, host):.2f}",
                *(
                    [f"{paired_ratio(target, by_name[target.reference]):.2f}" if target.reference else "-"]
                    if args.variants
                    else []
                ),
                f"{server_cores:.2f}" if server_cores else "-",
                cpu_per_request_us(best.server_cpu, best, args.duration),
                *([] if args.variants else [cpu_per_request_us(best.haproxy_cpu, best, args.duration)]),
                cpu_per_request_us(best.wrk_cpu, best, args.duration),
                f"{best.p50_ms:.2f}",
                f"{best.p99_ms:.1f}",
                f"{best.errors} / {best.non_2xx}",
            ]
        )
    headers = [
        "path", "req/s (median round)", "req/s range", "vs native", "vs host-network container",
        *(["vs its reference"] if args.variants else []),
        "server cores", "server CPU µs/req", *([] if args.variants else ["haproxy CPU µs/req"]),
        "wrk CPU µs/req", "p50 ms", "p99 ms", "socket errors / non-2xx",
    ]  # fmt: skip
    title = (
        f"{args.server}, static page, wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s, "
        f"median of {args.repeat} round(s); ratios are medians of the per-round ratios"
    )
    print_table(title, headers, rows)
    if args.variants:
        return
    shipyard = targets[3]
    ratio = paired_ratio(shipyard, host)
    verdict = "met" if ratio >= 0.9 else "NOT met"
    rounds = ", ".join(f"{a.rps / b.rps:.2f}" for a, b in zip(shipyard.results, host.results, strict=True))
    print(f"\nhaproxy path vs direct (host-network container): {ratio:.2f} (target >= 0.90: {verdict})")
    print(f"per round: {rounds}")
    host_rounds = ", ".join(f"{a.rps / b.rps:.2f}" for a, b in zip(host.results, native.results, strict=True))
    print(f"host-network container vs native, per round: {host_rounds}")
    cores = statistics.median(r.haproxy_cpu for r in shipyard.results)
    print(f"haproxy's CPU on its path: {cores:.2f} of the machine's 2 cores (median round)")


if __name__ == "__main__":
    sys.exit(main())
