"""Cutover and warm-standby rollback times.

1. Cutover (new container healthy -> haproxy switched), target < 50 ms: `timings_ms` of
   `shipyard deploy --json` over `--deploys` deploys alternating v2 and v1 (no standby, so each deploy
   starts, health-checks and switches to a new container), once idle and once under load
   (`--concurrency` keep-alive clients on the proxy). `cutover` is the runtime-API batch that makes the
   new slot ready and puts the old one in drain; `Switch` is the whole step (that batch plus recording
   the active slot, rewriting haproxy.cfg and the server-state file).
2. The same runtime-API switch timed directly (`--direct` switches between two running slots through
   shipyard's HaproxyRuntime client), for a larger sample.
3. Rollback with a warm standby (`deploy.standby: 300`), target < 1 s: wall time of the `shipyard rollback`
   subprocess from start to exit, `--rollbacks` times (each rollback swaps back to the other release), idle
   and under load. The wall time includes starting Python and importing the CLI, measured separately too,
   and so is the CPU time the command used. With `--baseline-src DIR` (a `src` directory of another
   checkout, e.g. `git archive main src | tar -x -C DIR` then DIR/src), every rollback is followed by
   one run with that code (PYTHONPATH=DIR), alternating on the same app and the same load, so the
   table compares both. A rollback the app's standby keeper ran (shipyard.cli.standby_keeper: a line
   in the host's operation log) is counted, and the keeper's CPU time for it is shown apart from the
   command's.

Usage: .venv/bin/python benchmarks/cutover.py [--quick] [--deploys 20] [--rollbacks 20] [--direct 200]
       [--rollback-only] [--baseline-src DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import socket
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml
from _load import Lab, Load, LoadResult, describe_run, lab, percentile, print_table, wait_http

from shipyard.adapters.haproxy import HaproxyRuntime
from shipyard.cli.standby_keeper import SERVED_EVENT
from shipyard.lab.single_host import AppHome, stop_reapers, unique_name


def stats_row(label: str, samples: list[float], target: float | None, unit: str = "ms") -> list[str]:
    """p50 / p99 / max of samples given in seconds, printed in `unit`."""
    scale = 1000.0 if unit == "ms" else 1.0
    p50, p99, top = (percentile(samples, 50), percentile(samples, 99), max(samples))
    verdict = ""
    if target is not None:
        verdict = "met" if top < target else ("p99 met, max not" if p99 < target else "NOT met")
    digits = 1 if unit == "ms" else 3
    return [
        label,
        str(len(samples)),
        f"{p50 * scale:.{digits}f}",
        f"{p99 * scale:.{digits}f}",
        f"{top * scale:.{digits}f}",
        f"< {target * scale:g} {unit}" if target is not None else "",
        verdict,
    ]


# What `shipyard rollback` loads before it runs (shipyard.cli.entry's fast path): the host layer, not
# the CLI framework.
HOST_COMMANDS_IMPORT = "from shipyard.cli import entry, host_actions; from shipyard.host import service"

HEADERS = ["measurement", "n", "p50", "p99", "max", "target", "verdict"]


def new_home(the_lab: Lab, name: str, **overrides: object) -> AppHome:
    root = the_lab.work / name
    root.mkdir()
    home = AppHome(
        root=root, docker_url=the_lab.docker_url, registry=the_lab.registry, app=unique_name("cut")
    )
    home.write_config(the_lab.images, **overrides)
    return home


def listen_of(home: AppHome) -> str:
    return str(yaml.safe_load(home.config.read_text())["proxy"]["listen"])


def load_summary(result: LoadResult) -> str:
    """'N requests, M failed', with the kinds of the failures when there are any."""
    kinds = Counter(kind for _, _, kind in result.failures)
    detail = f" ({', '.join(f'{n} {kind}' for kind, n in kinds.most_common())})" if kinds else ""
    return f"{result.total} requests, {result.failed} failed{detail}"


@contextmanager
def maybe_load(address: str, loaded: bool, concurrency: int) -> Iterator[list[LoadResult]]:
    """Run keep-alive load on `address` while the block runs (when `loaded`); the result lands in the list."""
    results: list[LoadResult] = []
    if not loaded:
        yield results
        return
    with Load(address, "keep-alive", concurrency) as load:
        time.sleep(1.0)
        yield results
        results.append(load.stop())


def deploy_timings(the_lab: Lab, deploys: int, concurrency: int) -> tuple[list[list[str]], list[str]]:
    home = new_home(the_lab, "deploys")
    rows: list[list[str]] = []
    notes: list[str] = []
    try:
        home.run("deploy", the_lab.images.ref("v1"))
        address = listen_of(home)
        serving = "v1"
        wait_http(address, "/version", serving)
        for loaded in (False, True):
            cutover: list[float] = []
            switch: list[float] = []
            health: list[float] = []
            wall: list[float] = []
            condition = f"under load ({concurrency} keep-alive clients)" if loaded else "idle"
            print(f"  {deploys} deploys, {condition} ...", flush=True)
            with maybe_load(address, loaded, concurrency) as results:
                for _ in range(deploys):
                    tag = serving = "v1" if serving == "v2" else "v2"
                    started = time.perf_counter()
                    done = home.run("deploy", the_lab.images.ref(tag), "--json")
                    wall.append(time.perf_counter() - started)
                    timings = json.loads(done.stdout)["timings_ms"]
                    if "cutover" not in timings:
                        raise RuntimeError(f"deploy of {tag} did not switch: {done.stdout}")
                    cutover.append(timings["cutover"] / 1000)
                    switch.append(timings["Switch"] / 1000)
                    health.append(timings["WaitHealthy"] / 1000)
                    wait_http(address, "/version", tag)
            rows.append(stats_row(f"deploy cutover (runtime API), {condition}", cutover, 0.050))
            rows.append(stats_row(f"deploy Switch step (API + state files), {condition}", switch, 0.050))
            rows.append(stats_row(f"  for reference: health-check wait, {condition}", health, None))
            rows.append(stats_row(f"  for reference: whole deploy command, {condition}", wall, None, "s"))
            if results:
                notes.append(f"deploys under load: {load_summary(results[0])}")
    finally:
        home.teardown()
    return rows, notes


def direct_switches(home: AppHome, count: int) -> list[float]:
    """Time shipyard's runtime-API switch between the two running slots; restore the state afterwards."""
    document = json.loads(home.run("status", "--json").stdout)
    active = str(document["active_slot"])
    idle = "green" if active == "blue" else "blue"
    runtime = HaproxyRuntime(home.home / "haproxy" / "admin.sock")
    backend = f"app_{home.app}"
    samples: list[float] = []
    slots = (idle, active)
    for number in range(count + count % 2):  # an even count ends on the active slot
        to_slot, from_slot = slots[number % 2], slots[(number + 1) % 2]
        started = time.perf_counter()
        runtime.switch(backend, to_slot, from_slot)
        samples.append(time.perf_counter() - started)
    runtime.set_state(backend, idle, "maint")  # as shipyard leaves a warm standby
    return samples


@dataclass
class TimedRollback:
    wall: float
    switched: float
    steps: float
    started_containers: int
    cpu: float
    by_keeper: bool = False
    keeper_cpu: float = 0.0


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def keeper_pid(home: AppHome) -> int | None:
    """The pid of the standby keeper listening for the app (its socket's peer), if any."""
    directory = home.home / "run"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    descriptor = None
    try:
        descriptor = os.open(directory, os.O_PATH | os.O_DIRECTORY)
        sock.connect(f"/proc/self/fd/{descriptor}/{home.app}.sock")
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return int(struct.unpack("3i", creds)[0])
    except OSError:
        return None
    finally:
        sock.close()
        if descriptor is not None:
            os.close(descriptor)


def process_cpu(pid: int | None) -> float:
    """User + system CPU seconds of a running process (0 when it is gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def served_count(home: AppHome) -> int:
    try:
        text = (home.home / "shipyard.log").read_text()
    except OSError:
        return 0
    return text.count(f'"event": "{SERVED_EVENT}"')


STEP_DONE = re.compile(r"^\s*✓ (\d+) ms")


def timed_rollback(home: AppHome, source: Path | None = None) -> TimedRollback:
    """Run `shipyard rollback`, reading its step lines as they come: when haproxy switched, when it exited.

    `source`: run the code of that `src` directory instead (PYTHONPATH) for a before/after comparison."""
    env = home.env()
    if source is not None:
        env["PYTHONPATH"] = str(source)
    keeper = keeper_pid(home)
    keeper_cpu_before, served_before = process_cpu(keeper), served_count(home)
    cpu_before = children_cpu()
    started = time.perf_counter()
    process = subprocess.Popen(
        home.argv("rollback"),
        cwd=home.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None and process.stderr is not None
    switched, steps, containers = float("nan"), 0.0, 0
    for line in process.stdout:
        if line.strip().startswith("→ start release"):
            containers += 1
        done = STEP_DONE.match(line)
        if done:
            steps += int(done.group(1)) / 1000
            if "cutover" in line:
                switched = time.perf_counter() - started
    code = process.wait()
    wall = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"shipyard rollback exited {code}: {process.stderr.read()[-800:]}")
    cpu = children_cpu() - cpu_before
    by_keeper = served_count(home) > served_before
    keeper_cpu = process_cpu(keeper) - keeper_cpu_before if by_keeper else 0.0
    return TimedRollback(wall, switched, steps, containers, cpu, by_keeper, keeper_cpu)


@dataclass
class RollbackSamples:
    wall: list[float]
    switched: list[float]
    steps: list[float]
    cpu: list[float]
    keeper_cpu: list[float]
    started_containers: int = 0
    by_keeper: int = 0

    def add(self, timed: TimedRollback) -> None:
        self.wall.append(timed.wall)
        self.switched.append(timed.switched)
        self.steps.append(timed.steps)
        self.cpu.append(timed.cpu)
        self.started_containers += timed.started_containers
        if timed.by_keeper:
            self.by_keeper += 1
            self.keeper_cpu.append(timed.keeper_cpu)

    def rows(self, condition: str, label: str = "") -> list[list[str]]:
        of = f" ({label})" if label else ""
        return [
            stats_row(f"rollback command wall time{of}, {condition}", self.wall, 1.0, "s"),
            stats_row(f"  command start -> haproxy switched{of}, {condition}", self.switched, 1.0, "s"),
            stats_row(f"  CPU time of the command{of}, {condition}", self.cpu, None, "s"),
            *(
                [stats_row(f"  CPU time of the keeper for it{of}, {condition}", self.keeper_cpu, None, "s")]
                if self.keeper_cpu
                else []
            ),
            stats_row(f"  sum of the plan's steps{of}, {condition}", self.steps, None, "s"),
        ]


def new_samples() -> RollbackSamples:
    return RollbackSamples([], [], [], [], [])


def rollback_timings(
    the_lab: Lab, rollbacks: int, direct: int, concurrency: int, baseline: Path | None = None
) -> tuple[list[list[str]], list[list[str]], list[str]]:
    """Rows for the rollback table, the direct-switch row (if any) and notes."""
    home = new_home(the_lab, "standby", deploy={"standby": 300})
    rows: list[list[str]] = []
    direct_rows: list[list[str]] = []
    notes: list[str] = []
    try:
        home.run("deploy", the_lab.images.ref("v1"))
        home.run("deploy", the_lab.images.ref("v2"))
        address = listen_of(home)
        serving = "v2"
        wait_http(address, "/version", serving)
        imports = []
        for _ in range(5):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", HOST_COMMANDS_IMPORT], check=True, env=home.env())
            imports.append(time.perf_counter() - started)
        for loaded in (False, True):
            current, before = new_samples(), new_samples()
            condition = f"under load ({concurrency} keep-alive clients)" if loaded else "idle"
            print(f"  {rollbacks} rollbacks to a warm standby, {condition} ...", flush=True)
            with maybe_load(address, loaded, concurrency) as results:
                for _ in range(rollbacks):
                    for samples, source in ((current, None), (before, baseline)):
                        if samples is before and baseline is None:
                            continue
                        samples.add(timed_rollback(home, source))
                        serving = "v1" if serving == "v2" else "v2"
                        wait_http(address, "/version", serving)
            if baseline is None:
                rows += current.rows(condition)
            else:
                rows += current.rows(condition, "this checkout")
                rows += before.rows(condition, "baseline")
            started_containers = current.started_containers + before.started_containers
            count = rollbacks * (1 if baseline is None else 2)
            notes.append(
                f"rollbacks {condition}: {started_containers} of {count} started a container (0 expected)"
            )
            notes.append(
                f"rollbacks {condition}: {current.by_keeper} of {rollbacks} of this checkout run by the "
                f"standby keeper" + (f", {before.by_keeper} of the baseline's" if baseline else "")
            )
            if results:
                notes.append(f"rollbacks under load: {load_summary(results[0])}")
        rows.append(stats_row("  for reference: python start + the rollback's imports", imports, None, "s"))
        if direct:
            print(f"  {direct} runtime-API switches, timed directly ...", flush=True)
            samples = direct_switches(home, direct)
            direct_rows.append(stats_row("runtime-API switch, timed directly (idle)", samples, 0.050))
    finally:
        home.teardown()
        stop_reapers(home.home)
    return rows, direct_rows, notes


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deploys", type=int, default=20)
    parser.add_argument("--rollbacks", type=int, default=20)
    parser.add_argument("--direct", type=int, default=200, help="runtime-API switches timed directly")
    parser.add_argument("--concurrency", type=int, default=65)
    parser.add_argument("--quick", action="store_true", help="5 deploys, 5 rollbacks, 50 direct switches")
    parser.add_argument(
        "--rollback-only",
        action="store_true",
        help="only the rollback table (no deploys, no direct switches)",
    )
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="a `src` directory of other code (e.g. main's) to run alternately with this checkout's",
    )
    args = parser.parse_args()
    if args.quick:
        args.deploys, args.rollbacks, args.direct = 5, 5, 50
    if args.rollback_only:
        args.deploys, args.direct = 0, 0
    if args.baseline_src is not None and not (args.baseline_src / "shipyard" / "__main__.py").is_file():
        parser.error(f"{args.baseline_src} holds no shipyard package; pass the src directory of a checkout.")
    started = time.monotonic()
    print(describe_run())
    with lab("cutover") as the_lab:
        cut_rows: list[list[str]] = []
        cut_notes: list[str] = []
        if args.deploys:
            cut_rows, cut_notes = deploy_timings(the_lab, args.deploys, args.concurrency)
        back_rows, direct_rows, back_notes = rollback_timings(
            the_lab,
            args.rollbacks,
            args.direct,
            args.concurrency,
            args.baseline_src.resolve() if args.baseline_src else None,
        )
    if cut_rows or direct_rows:
        print_table(
            "Cutover: new container healthy -> haproxy switched (ms)", HEADERS, [*direct_rows, *cut_rows]
        )
    print_table(
        "Rollback to a warm standby (deploy.standby: 300), command start to exit (s)", HEADERS, back_rows
    )
    for note in cut_notes + back_notes:
        print(f"note: {note}")
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"total time {time.monotonic() - started:.0f} s (percentiles nearest-rank; with 20 samples p99 = max)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
