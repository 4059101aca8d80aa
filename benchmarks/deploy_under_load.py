"""Failed requests and latency while the app is swapped under load: shipyard against the usual ways.

One cycle is two swaps: v1 -> v2, then v2 -> v1. For shipyard that is `shipyard deploy IMAGE:v2` then
`shipyard rollback` (no warm standby: every swap starts a container, health-gates it, switches haproxy,
drains and stops the old one). The same load, with the same image (busybox httpd), runs against:

- docker-run:  `docker stop` + `docker rm` + `docker run` of the other image on the same port
               (published on 127.0.0.1, bridge network);
- compose:     `docker-compose up -d` after changing the image tag (Debian's docker-compose v1);
- swarm:       `docker service update --image` with update order stop-first (one node; see below).

Each contender runs under `--concurrency` clients in both client modes (keep-alive, and a new connection
per request); every request is recorded (see _load.py). Between swaps the script waits until the new
version answers, then `--settle` seconds. Failures are attributed to the swap (and its phase) during
which the failed request started.

Swarm and 127.0.0.1: a swarm `--publish mode=host` port is bound on every address (a service port has no
host-IP field), so the swarm service here runs on the host network with the app bound to 127.0.0.1 instead:
the same one-port-per-host constraint, hence stop-first (with start-first the new task cannot bind the
port, exits, and swarm pauses the update).

For shipyard the script also watches haproxy: backend counters (retries, redispatches, errors), its
process ids (a swap must not reload or restart it) and every change of the slot servers' status.
`--mixed` runs every contender on the recording test app (shipyard.lab.recording_app) with mixed
traffic instead of `GET /` only: GETs, POSTs to /pay with a unique id each, 256 KB uploads checked by
sha256 and websockets (see _mixed.py). The app records every id it handles in a directory on the host
(mounted at /records, shared by old and new container); the "duplicates" column counts ids of POSTs
and uploads the app handled more than once, and a second table shows each kind of traffic, POSTs the
client saw succeed that the app never handled (lost) and how websocket sessions ended.

`--stall S [S ...]` runs only a different experiment: no swap, the serving container is frozen with
`docker pause` for S seconds under keep-alive load, to show what haproxy's health checks make of a
stalled app.

Usage: .venv/bin/python benchmarks/deploy_under_load.py [--quick] [--cycles 20] [--alt-cycles 5] [--save F]
       .venv/bin/python benchmarks/deploy_under_load.py --mixed [--quick] [--upload-kb 256] [--slow-post S]
       .venv/bin/python benchmarks/deploy_under_load.py --stall 4 6 8
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import yaml
from _load import (
    MODES,
    Lab,
    Load,
    LoadResult,
    Swap,
    attribute,
    completions_per_second,
    describe_run,
    error_window,
    fmt_ms,
    free_port_block,
    lab,
    phase_durations,
    print_table,
    run,
    tcp_counters,
    wait_http,
)
from _mixed import MixedLoad, MixedResult, MixOptions

from shipyard.adapters.haproxy import HaproxyRuntime
from shipyard.errors import ShipyardError
from shipyard.lab.recording_app import RECORD_DIR, read_records, record_volume
from shipyard.lab.single_host import AppHome, PushedImages, unique_name

LABEL = "shipyard-benchmark=deploy-under-load"


@dataclass
class TestApp:
    """The image every contender runs: the busybox test image (tags v1, v2), or with --mixed the
    recording app (rec-v1, rec-v2), which appends each request's id to a file in a host directory."""

    images: PushedImages
    recording: bool = False

    def ref(self, tag: str) -> str:
        return self.images.ref(f"rec-{tag}" if self.recording else tag)

    def records(self, work: Path, contender: str) -> Path | None:
        """The host directory a contender's containers record into (created), or None."""
        if not self.recording:
            return None
        directory = work / f"records-{contender}"
        record_volume(directory)
        return directory


class Contender(Protocol):
    name: str
    address: str
    records: Path | None

    def setup(self) -> None: ...
    def swap(self, tag: str, swap: Swap) -> None: ...
    def counters(self) -> dict[str, int]: ...
    def teardown(self) -> None: ...


class NoCounters:
    def counters(self) -> dict[str, int]:
        return {}


# --- shipyard ---------------------------------------------------------------------------------

PHASES = {
    "start release": "start new",
    "wait until": "health-check",
    "switch haproxy": "switch",
    "drain the": "drain old",
    "stop container": "stop old",
    "remove container": "remove",
    "keep ": "keep standby",
    "pull ": "pull",
    "run ": "hooks",
}


HAPROXY_COUNTERS = ("stot", "econ", "eresp", "wretr", "wredis", "hrsp_5xx", "cli_abrt", "srv_abrt")
SERVER_COUNTERS = ("chkfail", "chkdown")


def haproxy_stats(runtime: HaproxyRuntime, backend: str) -> dict[str, dict[str, str]]:
    """`show stat` rows of one backend (its servers and BACKEND), keyed by server name."""
    header, *rows = [line for line in runtime.execute("show stat -1 6 -1").splitlines() if line]
    columns = header.lstrip("# ").split(",")
    found = {}
    for row in rows:
        cells = dict(zip(columns, row.split(","), strict=False))
        if cells.get("pxname") == backend:
            found[cells["svname"]] = cells
    return found


class ProxyWatcher(threading.Thread):
    """Polls haproxy's server status every 100 ms; records each change (e.g. a health check marking DOWN)."""

    def __init__(self, runtime: HaproxyRuntime, backend: str) -> None:
        super().__init__(daemon=True)
        self.runtime, self.backend = runtime, backend
        self.changes: list[tuple[float, str, str]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        last: dict[str, str] = {}
        while not self.halt.wait(0.1):
            try:
                rows = haproxy_stats(self.runtime, self.backend)
            except ShipyardError:
                continue
            for slot in ("blue", "green"):
                cells = rows.get(slot, {})
                state = f"{cells.get('status', '?')} (check {cells.get('check_status', '?')})"
                if last.get(slot) != state:
                    self.changes.append((time.monotonic(), slot, state))
                    last[slot] = state

    def between(self, start: float, end: float) -> list[tuple[float, str, str]]:
        return [change for change in self.changes if start <= change[0] <= end]


class Shipyard:
    """Also watches haproxy: its backend counters (retries, redispatches, errors) and its processes."""

    name = "shipyard"

    def __init__(self, lab: Lab, app: TestApp) -> None:
        self.lab, self.app = lab, app
        self.records = app.records(lab.work, self.name)
        root = lab.work / unique_name("shipyard-")
        root.mkdir()
        self.home = AppHome(
            root=root, docker_url=lab.docker_url, registry=lab.registry, app=unique_name("bench")
        )
        self.address = ""
        self.process_changes: list[str] = []
        self.runtime = HaproxyRuntime(self.home.home / "haproxy" / "admin.sock")
        self.backend = f"app_{self.home.app}"
        self.watcher = ProxyWatcher(self.runtime, self.backend)

    def setup(self) -> None:
        volumes = [record_volume(self.records)] if self.records else []
        self.home.write_config(self.lab.images, volumes=volumes)
        self.home.run("deploy", self.app.ref("v1"))
        self.address = yaml.safe_load(self.home.config.read_text())["proxy"]["listen"]
        wait_http(self.address, "/version", "v1")
        self.watcher.start()

    def processes(self) -> tuple[str, ...]:
        """haproxy's master and worker pids: a swap must change neither (no reload, no restart)."""
        try:
            master = (self.home.home / "haproxy" / "haproxy.pid").read_text().split()[0]
        except (OSError, IndexError):
            return ()
        workers = run(["pgrep", "-P", master], check=False).split()
        return (master, *sorted(workers))

    def counters(self) -> dict[str, int]:
        rows = haproxy_stats(self.runtime, self.backend)
        values = {name: int(rows.get("BACKEND", {}).get(name) or 0) for name in HAPROXY_COUNTERS}
        for name in SERVER_COUNTERS:
            values[name] = sum(int(rows.get(slot, {}).get(name) or 0) for slot in ("blue", "green"))
        return values

    def swap(self, tag: str, swap: Swap) -> None:
        args = ("deploy", self.app.ref(tag)) if tag == "v2" else ("rollback",)
        before = self.processes()
        swap.mark(f"shipyard {args[0]}")
        process = self.home.popen(*args)
        assert process.stdout is not None and process.stderr is not None
        for line in process.stdout:
            text = line.strip()
            if text.startswith("→"):
                step = text.lstrip("→ ")
                swap.mark(
                    next((name for prefix, name in PHASES.items() if step.startswith(prefix)), step[:20])
                )
        code = process.wait()
        swap.mark("cli exited")
        if code != 0:
            raise RuntimeError(f"shipyard {' '.join(args)} exited {code}: {process.stderr.read()[-800:]}")
        after = self.processes()
        if after != before:
            self.process_changes.append(f"{swap.label}: haproxy pids {before} -> {after}")

    def teardown(self) -> None:
        self.watcher.halt.set()
        self.home.teardown()


# --- docker stop + docker run -----------------------------------------------------------------


class DockerRun(NoCounters):
    name = "docker-run"

    def __init__(self, lab: Lab, app: TestApp) -> None:
        self.lab, self.app = lab, app
        self.records = app.records(lab.work, self.name)
        self.container = unique_name("bench-run-")
        self.port = free_port_block(1)
        self.address = f"127.0.0.1:{self.port}"

    def _run(self, tag: str) -> None:
        volume = ["-v", record_volume(self.records)] if self.records else []
        self.lab.docker(
            "run", "-d", "--init", "--name", self.container, "--label", LABEL,
            "-p", f"127.0.0.1:{self.port}:{self.port}",
            "-e", f"PORT={self.port}", "-e", "HOST=0.0.0.0", *volume,
            self.app.ref(tag),
        )  # fmt: skip

    def setup(self) -> None:
        self._run("v1")
        wait_http(self.address, "/version", "v1")

    def swap(self, tag: str, swap: Swap) -> None:
        swap.mark("docker stop")
        self.lab.docker("stop", self.container)
        swap.mark("docker rm")
        self.lab.docker("rm", self.container)
        swap.mark("docker run")
        self._run(tag)
        swap.mark("cli exited")

    def teardown(self) -> None:
        self.lab.docker("rm", "-f", self.container, check=False)


# --- docker-compose v1 -------------------------------------------------------------------------

COMPOSE_FILE = """\
version: "2.4"
services:
  web:
    image: ${{BENCH_IMAGE}}
    init: true
    ports:
      - "127.0.0.1:{port}:{port}"
    environment:
      PORT: "{port}"
      HOST: "0.0.0.0"
    labels:
      shipyard-benchmark: deploy-under-load
"""


class Compose(NoCounters):
    name = "compose"

    def __init__(self, lab: Lab, app: TestApp) -> None:
        self.lab, self.app = lab, app
        self.records = app.records(lab.work, self.name)
        self.project = unique_name("benchcompose")
        self.port = free_port_block(1)
        self.address = f"127.0.0.1:{self.port}"
        self.directory = lab.work / "compose"
        self.directory.mkdir()
        compose = COMPOSE_FILE.format(port=self.port)
        if self.records:
            compose += f'    volumes:\n      - "{record_volume(self.records)}"\n'
        (self.directory / "docker-compose.yml").write_text(compose)

    def _compose(self, tag: str, *args: str) -> None:
        env = {**self.lab.env(), "BENCH_IMAGE": self.app.ref(tag)}
        compose_file = str(self.directory / "docker-compose.yml")
        run(["docker-compose", "--ansi", "never", "-p", self.project, "-f", compose_file, *args], env=env)

    def setup(self) -> None:
        self._compose("v1", "up", "-d")
        wait_http(self.address, "/version", "v1")

    def swap(self, tag: str, swap: Swap) -> None:
        swap.mark("compose up -d")
        self._compose(tag, "up", "-d")
        swap.mark("cli exited")

    def teardown(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._compose("v1", "down", "--remove-orphans")


# --- docker swarm ------------------------------------------------------------------------------


class Swarm(NoCounters):
    name = "swarm"

    def __init__(self, lab: Lab, app: TestApp) -> None:
        self.lab, self.app = lab, app
        self.records = app.records(lab.work, self.name)
        self.service = unique_name("bench-svc-")
        self.port = free_port_block(1)
        self.address = f"127.0.0.1:{self.port}"
        self.created_swarm = False
        self.had_gwbridge = True

    def setup(self) -> None:
        state = self.lab.docker("info", "--format", "{{.Swarm.LocalNodeState}}").strip()
        if state != "active":
            networks = self.lab.docker("network", "ls", "--format", "{{.Name}}").split()
            self.had_gwbridge = "docker_gwbridge" in networks
            self.lab.docker("swarm", "init", "--advertise-addr", "127.0.0.1")
            self.created_swarm = True
        mount = ["--mount", f"type=bind,source={self.records},target={RECORD_DIR}"] if self.records else []
        self.lab.docker(
            "service", "create", "--detach=false", "--quiet", "--name", self.service, "--label", LABEL,
            "--network", "host", "--init", *mount,
            "--env", f"PORT={self.port}", "--env", "HOST=127.0.0.1",
            "--update-order", "stop-first", "--update-monitor", "1s", "--no-resolve-image",
            self.app.ref("v1"),
            timeout=180,
        )  # fmt: skip
        wait_http(self.address, "/version", "v1")

    def swap(self, tag: str, swap: Swap) -> None:
        swap.mark("service update")
        self.lab.docker(
            "service", "update", "--detach=false", "--quiet", "--no-resolve-image",
            "--image", self.app.ref(tag), self.service,
            timeout=180,
        )  # fmt: skip
        swap.mark("cli exited")

    def teardown(self) -> None:
        self.lab.docker("service", "rm", self.service, check=False)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            names = self.lab.docker(
                "ps", "-a", "-q", "--filter", f"label=com.docker.swarm.service.name={self.service}"
            )
            if not names.strip():
                break
            time.sleep(0.5)
        if self.created_swarm:
            self.lab.docker("swarm", "leave", "--force", check=False)
            if not self.had_gwbridge:
                self.lab.docker("network", "rm", "docker_gwbridge", check=False)


# --- one measured run -------------------------------------------------------------------------


@dataclass
class Measurement:
    contender: str
    mode: str
    load: LoadResult
    swaps: list[Swap]
    groups: list[list[tuple[float, float, str]]] = field(default_factory=list)
    tcp: dict[str, int] = field(default_factory=dict)
    proxy: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    watcher: ProxyWatcher | None = None
    mixed: MixedTally | None = None

    @property
    def duplicates(self) -> str:
        return str(self.mixed.duplicates) if self.mixed else "n/a"

    @property
    def per_swap(self) -> float:
        return self.load.failed / max(len(self.swaps), 1)

    @property
    def windows(self) -> list[float]:
        return [error_window(group) for group in self.groups]

    @property
    def swap_seconds(self) -> float:
        return statistics.median(s.events[-1][1] - s.started for s in self.swaps)


@dataclass
class MixedTally:
    """The client's view of a mixed run (MixedResult) checked against what the app recorded."""

    client: MixedResult
    duplicates: int  # ids of POSTs and uploads the app handled more than once
    lost: int  # POSTs and uploads the client saw succeed that the app never handled
    get_duplicates: int  # GETs handled more than once (a proxy may retry an idempotent request)
    unanswered: int  # POSTs and uploads the app handled that the client saw fail (an error, not a replay)


def tally(result: MixedResult, records_dir: Path) -> MixedTally:
    received = read_records(records_dir).received
    mine = {key: count for key, count in received.items() if key.startswith(f"{result.prefix}-")}
    posts = ("pay", "upload")
    duplicates = sum(1 for key, count in mine.items() if count > 1 and result.kind_of(key) in posts)
    gets = sum(1 for key, count in mine.items() if count > 1 and result.kind_of(key) == "get")
    ok = {key for kind in posts for key in result.ok_ids[kind]}
    lost = sum(1 for key in ok if key not in mine)
    unanswered = sum(1 for key in mine if result.kind_of(key) in posts and key not in ok)
    return MixedTally(result, duplicates, lost, gets, unanswered)


class _Loads:
    """Load (GET only) or MixedLoad, one interface for measure()."""

    def __init__(self, contender: Contender, mode: str, concurrency: int, options: MixOptions) -> None:
        self.records = contender.records
        self.mixed: MixedLoad | None = None
        self.plain: Load | None = None
        if self.records is not None:
            prefix = unique_name(f"{contender.name}-{mode}-").replace("-", "")
            self.mixed = MixedLoad(contender.address, mode, concurrency, prefix, options)
        else:
            self.plain = Load(contender.address, mode, concurrency)

    def __enter__(self) -> _Loads:
        (self.mixed or self.plain).start()  # type: ignore[union-attr]
        return self

    def stop(self) -> tuple[LoadResult, MixedTally | None]:
        if self.mixed is not None and self.records is not None:
            result = self.mixed.stop()
            return result.load, tally(result, self.records)
        assert self.plain is not None
        return self.plain.stop(), None

    def __exit__(self, *exc: object) -> None:
        (self.mixed or self.plain).kill()  # type: ignore[union-attr]


def measure(
    contender: Contender,
    mode: str,
    cycles: int,
    concurrency: int,
    settle: float,
    options: MixOptions | None = None,
) -> Measurement:
    swaps: list[Swap] = []
    print(f"  {contender.name} / {mode}: {cycles} cycles ({cycles * 2} swaps) ...", end="", flush=True)
    tcp_before, proxy_before = tcp_counters(), contender.counters()
    with _Loads(contender, mode, concurrency, options or MixOptions()) as load:
        time.sleep(1.0)
        for cycle in range(1, cycles + 1):
            for tag in ("v2", "v1"):
                swap = Swap(f"cycle {cycle} -> {tag}")
                contender.swap(tag, swap)
                swap.mark("new version serving", wait_http(contender.address, "/version", tag, timeout=30))
                swaps.append(swap)
                time.sleep(settle)
        time.sleep(1.0)
        result, mixed = load.stop()
    tcp_after, proxy_after = tcp_counters(), contender.counters()
    measurement = Measurement(contender.name, mode, result, swaps, attribute(result.failures, swaps))
    measurement.mixed = mixed
    measurement.tcp = {k: v - tcp_before.get(k, 0) for k, v in tcp_after.items()}
    measurement.proxy = {k: v - proxy_before.get(k, 0) for k, v in proxy_after.items()}
    if isinstance(contender, Shipyard):
        changes = contender.process_changes
        measurement.notes = changes or [f"haproxy master and worker pids unchanged over {len(swaps)} swaps"]
        contender.process_changes = []
        measurement.watcher = contender.watcher
        downs = [
            c for c in contender.watcher.between(result.started, result.finished) if c[2].startswith("DOWN")
        ]
        measurement.notes.append(
            f"haproxy health checks marked a slot DOWN {len(downs)} times during the run"
        )
    duplicates = f", {mixed.duplicates} duplicates" if mixed else ""
    print(f" {result.total} requests, {result.failed} failed{duplicates}", flush=True)
    return measurement


def ratio(value: float, base: float) -> str:
    if base == 0:
        return "-" if value == 0 else "inf (shipyard 0)"
    return f"{value / base:.1f}x"


def report(measurements: list[Measurement], concurrency: int) -> None:
    base = {m.mode: m for m in measurements if m.contender == "shipyard"}
    rows = []
    for m in measurements:
        ref = base.get(m.mode)
        windows = [w for w in m.windows if w > 0]
        rows.append(
            [
                m.contender,
                m.mode,
                str(len(m.swaps)),
                str(m.load.total),
                str(m.load.failed),
                m.duplicates,
                f"{m.per_swap:.1f}",
                f"{sum(1 for g in m.groups if g)}/{len(m.swaps)}",
                f"{fmt_ms(statistics.median(windows))} / {fmt_ms(max(windows))}" if windows else "0 / 0",
                fmt_ms(m.load.percentile(50)),
                fmt_ms(m.load.percentile(99)),
                fmt_ms(max(m.load.ok_latencies, default=float("nan"))),
                f"{m.load.rps:.0f}",
                f"{m.swap_seconds:.2f}",
                ratio(m.per_swap, ref.per_swap) if ref else "",
                ratio(m.load.percentile(99), ref.load.percentile(99)) if ref else "",
            ]
        )
    headers = [
        "contender", "client mode", "swaps", "requests", "failed", "duplicates", "failed/swap",
        "swaps w/ failures", "error window/swap ms (median / max)", "p50 ms", "p99 ms", "max ms", "req/s",
        "swap s (median)", "failed/swap vs shipyard", "p99 vs shipyard",
    ]  # fmt: skip
    print_table(f"Requests during swaps, {concurrency} concurrent clients (one run)", headers, rows)
    mixed_report(measurements)

    kinds: list[list[str]] = []
    for m in measurements:
        if m.load.failed:
            by_phase = Counter(
                swap.phase_at(start)
                for swap, group in zip(m.swaps, m.groups, strict=True)
                for start, _, _ in group
            )
            kinds.append(
                [
                    m.contender,
                    m.mode,
                    ", ".join(f"{k}: {v}" for k, v in m.load.failure_kinds().most_common()),
                    ", ".join(f"{k}: {v}" for k, v in by_phase.most_common()),
                ]
            )
    if kinds:
        print_table("Failed requests by kind, and by swap phase in which they started", [
            "contender", "client mode", "kinds", "phase at request start"], kinds)  # fmt: skip
    phases: list[list[str]] = []
    for m in measurements:
        steps = ", ".join(
            f"{name} {seconds * 1000:.0f}" for name, seconds in phase_durations(m.swaps).items()
        )
        phases.append([m.contender, m.mode, steps])
    print_table("Median time in each swap phase (ms), up to the new version answering", [
        "contender", "client mode", "phases"], phases)  # fmt: skip
    counters: list[list[str]] = []
    for m in measurements:
        proxy = ", ".join(f"{k} {v}" for k, v in m.proxy.items()) if m.proxy else ""
        tcp = ", ".join(f"{k} {v}" for k, v in m.tcp.items())
        counters.append([m.contender, m.mode, proxy, tcp])
    title = "Counters over each run: haproxy backend (shipyard) and the kernel's TcpExt (whole machine)"
    print_table(title, ["contender", "client mode", "haproxy backend", "kernel TCP"], counters)
    for m in measurements:
        for note in m.notes:
            print(f"note ({m.contender}, {m.mode}): {note}")
    for m in measurements:
        if m.contender == "shipyard" and m.load.failed:
            details(m)


def mixed_report(measurements: list[Measurement]) -> None:
    """Each kind of traffic of a --mixed run, checked against what the app recorded."""
    rows = []
    for m in measurements:
        if m.mixed is None:
            continue
        client = m.mixed.client

        def counts(kind: str, client: MixedResult = client) -> str:
            return f"{client.ok[kind]} / {client.failed[kind]}"

        ends = ", ".join(f"{how}: {count}" for how, count in client.ws_ends.most_common())
        rows.append(
            [
                m.contender,
                m.mode,
                " ".join(f"{kind} {count}" for kind, count in client.clients.items()),
                counts("get"),
                counts("pay"),
                f"{counts('upload')} ({client.corrupt_uploads} corrupt)",
                f"**{m.mixed.duplicates}**",
                str(m.mixed.lost),
                str(m.mixed.unanswered),
                str(m.mixed.get_duplicates),
                f"{counts('websocket')}; {client.ws_messages} echoed",
                ends,
            ]
        )
    if rows:
        headers = [
            "contender", "client mode", "clients", "GET ok / failed", "POST /pay ok / failed",
            "uploads ok / failed", "duplicates (POST, upload)", "lost", "handled, client saw an error",
            "GET handled twice", "websocket sessions ok / broken", "how websocket sessions ended",
        ]  # fmt: skip
        print_table("Mixed traffic, by kind; ids checked against the app's records", headers, rows)


def details(m: Measurement, limit: int = 40) -> None:
    """Every shipyard failure: which swap, which phase, when relative to the swap's steps."""
    print(f"\nshipyard failures ({m.mode}): swap, phase, request start/end after the swap began, kind")
    shown = 0
    for swap, group in zip(m.swaps, m.groups, strict=True):
        if not group:
            continue
        steps = ", ".join(f"{name} +{(at - swap.started) * 1000:.0f}" for name, at in swap.events)
        print(f"  {swap.label}: {len(group)} failed; steps (ms): {steps}")
        for start, end, kind in group[: limit - shown]:
            print(
                f"    {swap.phase_at(start):>14}  start +{(start - swap.started) * 1000:8.1f} ms"
                f"  end +{(end - swap.started) * 1000:8.1f} ms  {kind}"
            )
        first = min(start for start, _, _ in group)
        rate = completions_per_second(m.load, first - 3, max(end for _, end, _ in group) + 2)
        print(f"    successful responses per second from 3 s before the first failure: {rate}")
        if m.watcher is not None:
            for at, slot, state in m.watcher.between(first - 10, max(end for _, end, _ in group) + 1):
                print(f"    haproxy: {slot} became {state} at +{(at - swap.started) * 1000:.0f} ms")
        shown += len(group)
        if shown >= limit:
            print("    ...")
            break


def save(measurements: list[Measurement], path: str) -> None:
    document = [
        {
            "contender": m.contender,
            "mode": m.mode,
            "requests": m.load.total,
            "failed": m.load.failed,
            "duplicates": m.mixed.duplicates if m.mixed else None,
            "lost": m.mixed.lost if m.mixed else None,
            "p50_ms": m.load.percentile(50) * 1000,
            "p99_ms": m.load.percentile(99) * 1000,
            "load_started": m.load.started,
            "failures": m.load.failures,
            "swaps": [{"label": s.label, "events": s.events} for s in m.swaps],
            "haproxy": m.proxy,
            "tcp": m.tcp,
            "notes": m.notes,
        }
        for m in measurements
    ]
    Path(path).write_text(json.dumps(document, indent=1))


def stall_experiment(the_lab: Lab, seconds: list[float], concurrency: int) -> None:
    """No swap: freeze the serving container (`docker pause`) for S seconds under keep-alive load.

    Shows what haproxy's health checks make of an app that stalls (a GC pause, CPU starvation): the
    requests in flight wait, and if the checks mark the only serving slot DOWN, everyone gets a 503
    until the checks see it up again.
    """
    rows = []
    for stall in seconds:
        contender = Shipyard(the_lab, TestApp(the_lab.images))
        try:
            contender.setup()
            container = the_lab.docker(
                "ps", "-q", "--filter", f"label=shipyard.app={contender.home.app}"
            ).split()[0]
            with Load(contender.address, "keep-alive", concurrency) as load:
                time.sleep(3.0)
                the_lab.docker("pause", container)
                paused = time.monotonic()
                time.sleep(stall)
                the_lab.docker("unpause", container)
                resumed = time.monotonic()
                time.sleep(6.0)
                result = load.stop()
            changes = contender.watcher.between(paused - 1, resumed + 6)
            states = "; ".join(f"+{(at - paused):.1f} s {slot} {state}" for at, slot, state in changes)
            failed = ", ".join(f"{k}: {v}" for k, v in result.failure_kinds().most_common()) or "0"
            window = ""
            if result.failures:
                first = min(start for start, _, _ in result.failures) - resumed
                last = max(end for _, end, _ in result.failures) - resumed
                window = f"{first:+.1f} s .. {last:+.1f} s"
            longest = max(result.ok_latencies, default=float("nan"))
            rows.append([f"{stall:g}", str(result.total), failed, window, fmt_ms(longest), states])
        finally:
            contender.teardown()
    print_table(
        f"Serving container paused for S seconds under {concurrency} keep-alive clients (no swap)",
        [
            "stall s",
            "requests",
            "failed",
            "failures, from the unpause",
            "max ms",
            "slot states, from the pause",
        ],
        rows,
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--cycles", type=int, default=20, help="shipyard deploy+rollback cycles per client mode"
    )
    parser.add_argument(
        "--alt-cycles", type=int, default=5, help="cycles per client mode for the alternatives"
    )
    parser.add_argument("--concurrency", type=int, default=65)
    parser.add_argument(
        "--settle", type=float, default=0.3, help="seconds between swaps once the new one serves"
    )
    parser.add_argument(
        "--only", default="shipyard,docker-run,compose,swarm", help="comma-separated contenders"
    )
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--save", help="write failures and swap timelines to this JSON file")
    parser.add_argument(
        "--mixed",
        action="store_true",
        help="GETs, POSTs with ids, uploads and websockets on the recording app",
    )
    parser.add_argument("--upload-kb", type=int, default=256, help="size of each upload with --mixed")
    parser.add_argument(
        "--slow-post",
        type=float,
        default=0.0,
        metavar="S",
        help="with --mixed, one client's POSTs take S seconds in the app (in flight when a swap stops it)",
    )
    parser.add_argument("--quick", action="store_true", help="3 shipyard cycles, 1 for each alternative")
    parser.add_argument(
        "--stall", type=float, nargs="+", metavar="S", help="only the app-stall experiment (docker pause S s)"
    )
    args = parser.parse_args()
    if args.stall:
        print(describe_run())
        with lab("stall") as the_lab:
            stall_experiment(the_lab, args.stall, 10)
        return 0
    if args.quick:
        args.cycles, args.alt_cycles = 3, 1
    chosen = args.only.split(",")
    modes = args.modes.split(",")
    kinds: dict[str, type[Shipyard | DockerRun | Compose | Swarm]] = {
        "shipyard": Shipyard, "docker-run": DockerRun, "compose": Compose, "swarm": Swarm,
    }  # fmt: skip
    measurements: list[Measurement] = []
    started = time.monotonic()
    print(describe_run())
    with lab("load") as the_lab:
        app = TestApp(the_lab.images, recording=args.mixed)
        options = MixOptions(upload_bytes=args.upload_kb * 1024, slow_post=args.slow_post)
        print(
            f"images {app.ref('v1')} and {app.ref('v2')}; {args.concurrency} clients; "
            f"modes {', '.join(modes)}"
        )
        for name in chosen:
            contender = kinds[name](the_lab, app)
            try:
                contender.setup()
                cycles = args.cycles if name == "shipyard" else args.alt_cycles
                for mode in modes:
                    measurements.append(
                        measure(contender, mode, cycles, args.concurrency, args.settle, options)
                    )
            finally:
                contender.teardown()
    report(measurements, args.concurrency)
    if args.save:
        save(measurements, args.save)
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"total time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
