"""What idle previews cost one host: memory, haproxy's map, latency through the map, add/remove time.

One host (the real Docker Engine and haproxy, through the host layer as the agent drives it): a
production app (a plain backend) and N idle previews of it (busybox httpd test image), each routed by
host name through the shared previews frontend. Prints:
- memory: the previews' containers (cgroup memory of each, from the engine's stats), haproxy's RSS
  (master + worker) with production only, with the pool declared (first preview) and with N previews;
- the previews map: entries and size in bytes;
- request latency (wrk, p50/p99) through the map (Host header) against the plain app backend;
- the time to add one more preview (container start, health check, switch, map entry) and the
  haproxy part of it, and to remove one; haproxy's worker pid before and after (no reload).

Usage: .venv/bin/python benchmarks/preview_host_cost.py [--previews 20] [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import docker
from fleet_common import print_table

from shipyard.adapters.haproxy import HaproxyRuntime
from shipyard.agent.local_host import LocalHost
from shipyard.domain.commands import Command, RoutePreview, SwitchBackend
from shipyard.domain.preview_host import PreviewSettings
from shipyard.domain.previews import PREVIEW_LABEL, preview_app_name, preview_host_name
from shipyard.domain.spec import parse_spec, spec_snapshot
from shipyard.fleet_api.schemas.agent import DesiredApp
from shipyard.host.context import HostContext
from shipyard.lab.ports import free_port, free_port_range
from shipyard.lab.single_host import (
    free_port_pair,
    push_images,
    remove_app_containers,
    start_engine,
    start_local_registry,
    stop_haproxy,
    unique_name,
)

DOMAIN = "preview.bench.test"


class StepTimes:
    """A Reporter keeping each command's seconds."""

    def __init__(self) -> None:
        self.seconds: list[tuple[Command, float]] = []

    def step_started(self, step: Command) -> None:
        pass

    def step_finished(self, step: Command, seconds: float, note: str) -> None:
        self.seconds.append((step, seconds))

    def pull_progress(self, event: dict[str, Any]) -> None:
        pass


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def haproxy_pids(home: Path) -> tuple[int, int]:
    master = int((home / "haproxy" / "haproxy.pid").read_text().split()[0])
    info = HaproxyRuntime(home / "haproxy" / "admin.sock").execute("show info")
    worker = int(next(line for line in info.splitlines() if line.startswith("Pid:")).split(":")[1])
    return master, worker


def haproxy_rss_mib(home: Path) -> float:
    return sum(rss_kib(pid) for pid in haproxy_pids(home)) / 1024


def wrk(url: str, host: str | None, seconds: float) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) of 4 keep-alive connections on one thread."""
    headers = ["-H", f"Host: {host}"] if host else []
    done = subprocess.run(
        ["wrk", "-t1", "-c4", f"-d{seconds:g}s", "--latency", *headers, url],
        capture_output=True,
        text=True,
        check=True,
    )
    out = done.stdout

    def latency(label: str) -> float:
        found = re.search(rf"^\s*{label}%\s+([0-9.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        assert found is not None, out
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[found[2]]
        return float(found[1]) * scale

    rate = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert rate is not None and non_2xx is None, out
    return float(rate[1]), latency("50"), latency("99")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--previews", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="shipyard-preview-bench-"))
    docker_url = start_engine(work)
    registry = start_local_registry(work)
    app = unique_name("pb")[:16]
    images = push_images(docker_url, registry, app, {"v1": ("v1", "ok")}, recording={})
    client = docker.DockerClient(base_url=docker_url)
    repo_digests = client.images.get(images.ref("v1")).attrs["RepoDigests"]
    digest = next(d for d in repo_digests if d.startswith(images.repository + "@")).split("@")[1]
    os.environ["SHIPYARD_SECRET_BENCH_USER"] = registry.username
    os.environ["SHIPYARD_SECRET_BENCH_PASS"] = registry.password
    production = parse_spec(
        {
            "app": app,
            "image": images.repository,
            "registry": {
                "username_env": "SHIPYARD_SECRET_BENCH_USER",
                "password_env": "SHIPYARD_SECRET_BENCH_PASS",
            },
            "port": free_port_pair(),
            "proxy": {"listen": f"127.0.0.1:{free_port()}"},
            "healthcheck": {"interval": 0.1, "deadline": 10},
        }
    )
    home = work / "home"
    first, last = free_port_range(2 * args.previews + 4)
    settings = PreviewSettings(listen=f"127.0.0.1:{free_port()}", slots=32, first_port=first, last_port=last)
    context = HostContext(home=home, docker_url=docker_url, actor="bench")
    host = LocalHost(context, previews=settings)
    number = 0

    def desired(pr: int | None) -> DesiredApp:
        nonlocal number
        number += 1
        snapshot = spec_snapshot(production)
        if pr is not None:
            placement = {"repository": "bench/app", "pr": pr, "host_name": preview_host_name(app, pr, DOMAIN)}
            snapshot.update(app=preview_app_name(app, pr), preview=placement, resources={"memory": "64m"})
        return DesiredApp(
            app=snapshot["app"],
            release_id=number,
            release=f"r{number}",
            image=images.repository,
            digest=digest,
            spec=snapshot,
            deployment_id=None,
        )

    wanted: list[DesiredApp] = []
    try:
        wanted.append(desired(None))
        host.converge(wanted[0], StepTimes())
        rss_production = haproxy_rss_mib(home)
        for pr in range(1, args.previews + 1):
            wanted.append(desired(pr))
            host.converge(wanted[-1], StepTimes())
            if pr == 1:
                rss_pool = haproxy_rss_mib(home)
                worker_before = haproxy_pids(home)[1]
        time.sleep(2)
        rss_previews = haproxy_rss_mib(home)
        # This benchmark's only: the engine may be shared with other work.
        containers = [
            c
            for c in client.containers.list(filters={"label": PREVIEW_LABEL})
            if c.labels.get(PREVIEW_LABEL, "").startswith("bench/app#")
            and c.labels.get("shipyard.app", "").startswith(app)
        ]
        memory = [c.stats(stream=False)["memory_stats"].get("usage", 0) / 2**20 for c in containers]
        map_file = home / "haproxy" / "previews.map"
        entries = len(map_file.read_text().splitlines())

        through_map = wrk(
            f"http://{settings.listen}/version", preview_host_name(app, 5, DOMAIN), args.seconds
        )
        plain = wrk(f"http://{production.proxy.listen}/version", None, args.seconds)

        extra = desired(args.previews + 1)
        times = StepTimes()
        started = time.perf_counter()
        host.converge(extra, times)
        add_seconds = time.perf_counter() - started
        haproxy_part = sum(s for step, s in times.seconds if isinstance(step, SwitchBackend | RoutePreview))
        started = time.perf_counter()
        host.teardown_previews(wanted)  # the extra one is not wanted: removed
        remove_seconds = time.perf_counter() - started
        worker_after = haproxy_pids(home)[1]

        print_table(
            f"memory of {len(containers)} idle previews on one host",
            ["what", "value"],
            [
                ["preview containers, total (cgroup usage)", f"{sum(memory):.1f} MiB"],
                ["per preview container, mean", f"{sum(memory) / max(len(memory), 1):.2f} MiB"],
                ["haproxy RSS (master+worker), production only", f"{rss_production:.1f} MiB"],
                ["haproxy RSS, pool of 32 declared + 1 preview", f"{rss_pool:.1f} MiB"],
                [f"haproxy RSS, {args.previews} previews", f"{rss_previews:.1f} MiB"],
            ],
        )
        print_table(
            "the previews map",
            ["entries", "file bytes"],
            [[entries, map_file.stat().st_size]],
        )
        print_table(
            f"latency, wrk -t1 -c4 -d{args.seconds:g}s keep-alive, GET /version",
            ["path", "requests/s", "p50 ms", "p99 ms"],
            [
                [
                    "through the previews map (Host header)",
                    f"{through_map[0]:.0f}",
                    f"{through_map[1]:.2f}",
                    f"{through_map[2]:.2f}",
                ],
                ["plain app backend (own frontend)", f"{plain[0]:.0f}", f"{plain[1]:.2f}", f"{plain[2]:.2f}"],
            ],
        )
        print_table(
            "one more preview, and its removal",
            ["what", "seconds"],
            [
                ["add: container start, health check, switch, map entry", f"{add_seconds:.2f}"],
                ["  of which haproxy (runtime switch + add map)", f"{haproxy_part:.4f}"],
                ["remove: map entry, servers, container, image, records", f"{remove_seconds:.2f}"],
                ["haproxy worker pid before / after (same: no reload)", f"{worker_before} / {worker_after}"],
            ],
        )
    finally:
        host.teardown_previews([])
        remove_app_containers(docker_url, app)
        stop_haproxy(home)
        context.close()
        client.close()
        registry.server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
