"""A fleet rollback to a warm standby: from the controller's request to the switch on the host.

`shipyard rollback --env E` asks the controller (POST /rollback), which makes the previous release
desired; the agent on each host, a resident process, converges to it in-process (`service.deploy`
with the stored release: no CLI process starts on the host) and, with `deploy.standby`, switches
haproxy back to the still-running container. Measured on a one-host lab, `--rollbacks` times:

- request -> answered: the controller's answer to POST /rollback (the deployment is created);
- request -> switched: the host's haproxy has the other slot `ready` (its runtime API over the admin
  socket, polled every 5 ms): the moment new requests go to the standby;
- request -> answered by the other version: a GET /version on the host's listen address answers with
  the other release (polled; under load this includes the probe's own wait in busybox's queue);
- request -> finished: the deployment reached `succeeded` (includes the rollout's `monitor`);
- the host's reported cutover (runtime-API batch), from the agent's report.

Idle and under `--concurrency` keep-alive clients on the host's proxy.

Usage: .venv/bin/python benchmarks/fleet_rollback.py [--rollbacks 20] [--monitor 0.2] [--concurrency 65]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from _load import Load, describe_run, percentile
from fleet_common import admin, print_table, running_lab, wait, wait_edge_up

from shipyard.adapters.haproxy import HaproxyRuntime
from shipyard.cli.fleet_cmd import resolve_digest
from shipyard.domain.spec import parse_spec, spec_snapshot
from shipyard.errors import ProxyError
from shipyard.host.proxy_sync import backend_name
from shipyard.lab import control_plane
from shipyard.lab.state import LabState, load_state

CUTOVER = re.compile(r"cutover ([0-9.]+) ms")


def version_of(address: str) -> str | None:
    host, _, port = address.rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=2)
    try:
        connection.request("GET", "/version")
        answer = connection.getresponse()
        return answer.read().decode().strip() if answer.status == 200 else None
    except OSError:
        return None
    finally:
        connection.close()


def lab_processes(root: Path) -> dict[int, str]:
    """pid -> command line of the processes working for the lab: its path in their command line,
    working directory or environment (a command an agent started would carry its SHIPYARD_HOME)."""
    marker = str(root)
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            line = " ".join(part.decode(errors="replace") for part in argv if part)
            if "shipyard" not in line or "fleet_rollback" in line:
                continue
            where = os.readlink(entry / "cwd") + (entry / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if marker in line or marker in where:
            found[int(entry.name)] = line
    return found


def kind_of(command_line: str) -> str:
    words = command_line.split()
    if "-m" in words and words.index("-m") + 1 < len(words):
        module = words[words.index("-m") + 1]
        rest = words[words.index("-m") + 2 :]
        return f"-m {module} {rest[0] if rest and not rest[0].startswith('-') else ''}".strip()
    return " ".join(words[:2])


def deploy_with_standby(state: LabState, tag: str, monitor: float) -> None:
    document = control_plane.app_document(state)
    document["deploy"] = {**document["deploy"], "standby": 3600}  # type: ignore[dict-item]
    document["rollout"] = {**document["rollout"], "max_parallel": "100%", "monitor": monitor}  # type: ignore[dict-item]
    spec = parse_spec(document)
    repository, digest = resolve_digest(spec, f"{state.image}:{tag}")
    with admin(state) as client:
        release = client.create_release(repository, digest, spec_snapshot(spec))
        done = wait(client, client.create_deployment(release.id, state.group).id)
    if done.status != "succeeded":
        raise RuntimeError(f"deploy of {tag}: {done.status} {done.message}")


@dataclass
class Samples:
    answered: list[float] = field(default_factory=list)
    switched: list[float] = field(default_factory=list)
    answered_new: list[float] = field(default_factory=list)
    finished: list[float] = field(default_factory=list)
    cutovers: list[float] = field(default_factory=list)
    processes: dict[int, str] = field(default_factory=dict)

    def rows(self, condition: str) -> list[list[object]]:
        rows: list[list[object]] = []
        for label, samples in (
            ("request -> controller answered", self.answered),
            ("request -> host's haproxy switched (runtime API)", self.switched),
            ("request -> GET /version answered by the other release", self.answered_new),
            ("request -> deployment succeeded", self.finished),
            ("host's cutover (runtime API, agent report)", self.cutovers),
        ):
            if samples:
                quantiles = (f"{percentile(samples, q):.3f}" for q in (50, 99))
                rows.append([f"{label}, {condition}", len(samples), *quantiles, f"{max(samples):.3f}"])
        return rows


def ready_slot(runtime: HaproxyRuntime, backend: str) -> str | None:
    """The slot haproxy sends new requests to (the one `ready`; the other is in drain or maint)."""
    try:
        ready = [name for name, state in runtime.server_states(backend).items() if state.admin == "ready"]
    except ProxyError:
        return None
    return ready[0] if len(ready) == 1 else None


def rollbacks(root: Path, state: LabState, address: str, count: int) -> Samples:
    """`count` fleet rollbacks, each timed to the switch on the host and to the deployment's end."""
    samples = Samples()
    runtime = HaproxyRuntime(state.hosts[0].home / "haproxy" / "admin.sock")
    backend = backend_name(state.app.name)
    serving = version_of(address)
    before = lab_processes(root)
    last_scan = 0.0
    with admin(state) as client:
        for _ in range(count):
            slot = ready_slot(runtime, backend)
            started = time.perf_counter()
            deployment = client.rollback(state.app.name, state.group)
            samples.answered.append(time.perf_counter() - started)
            while ready_slot(runtime, backend) in (slot, None):
                time.sleep(0.005)
                if time.perf_counter() - last_scan > 0.02:
                    last_scan = time.perf_counter()
                    samples.processes.update(
                        {p: c for p, c in lab_processes(root).items() if p not in before}
                    )
                if time.perf_counter() - started > 60:
                    raise TimeoutError("the host's haproxy did not switch within 60 s")
            samples.switched.append(time.perf_counter() - started)
            while (now := version_of(address)) in (serving, None):
                time.sleep(0.005)
                if time.perf_counter() - started > 60:
                    raise TimeoutError("the host did not serve the other release within 60 s")
            samples.answered_new.append(time.perf_counter() - started)
            serving = now
            done = wait(client, deployment.id)
            samples.finished.append(time.perf_counter() - started)
            samples.processes.update({p: c for p, c in lab_processes(root).items() if p not in before})
            if done.status != "succeeded":
                raise RuntimeError(f"rollback {done.id}: {done.status} {done.message}")
            found = CUTOVER.search(" ".join(host.message for host in done.hosts))
            if found:
                samples.cutovers.append(float(found.group(1)) / 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rollbacks", type=int, default=20)
    parser.add_argument("--monitor", type=float, default=0.2, help="the rollout's monitor, seconds per wave")
    parser.add_argument("--concurrency", type=int, default=65, help="keep-alive clients on the host's proxy")
    args = parser.parse_args()
    print(describe_run())
    rows: list[list[object]] = []
    notes: list[str] = []
    with running_lab(1) as root:
        state = load_state(root)
        address = state.app.listen(state.hosts[0].address)
        deploy_with_standby(state, "v1", args.monitor)
        deploy_with_standby(state, "v2", args.monitor)
        wait_edge_up(root, timeout=120)
        for loaded in (False, True):
            condition = f"under load ({args.concurrency} keep-alive clients)" if loaded else "idle"
            print(f"  {args.rollbacks} fleet rollbacks on one host, {condition} ...", flush=True)
            if loaded:
                with Load(address, "keep-alive", args.concurrency) as load:
                    time.sleep(1.0)
                    samples = rollbacks(root, state, address, args.rollbacks)
                    result = load.stop()
                notes.append(f"under load: {result.total} requests, {result.failed} failed")
            else:
                samples = rollbacks(root, state, address, args.rollbacks)
            rows += samples.rows(condition)
            kinds = Counter(kind_of(line) for line in samples.processes.values())
            notes.append(f"lab processes started, {condition}: {dict(kinds) or 'none'}")
    print_table(
        f"fleet rollback to a warm standby, one host (monitor {args.monitor:g} s)",
        ["measurement (s)", "n", "p50", "p99", "max"],
        rows,
    )
    for note in notes:
        print(f"note: {note}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
