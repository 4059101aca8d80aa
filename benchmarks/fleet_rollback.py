"""A fleet rollback to a warm standby: from the controller's request to the switch on the host.

`shipyard rollback --env E` asks the controller (POST /rollback), which makes the previous release
desired; the agent on each host, a resident process, converges to it in-process (`service.deploy`
with the stored release: no CLI process starts on the host) and, with `deploy.standby`, switches
haproxy back to the still-running container. Measured on a one-host lab, `--rollbacks` times:

- request -> answered: the controller's answer to POST /rollback (the deployment is created);
- request -> switched: the host's listen address serves the other version (polled every 5 ms);
- request -> finished: the deployment reached `succeeded` (includes the rollout's `monitor`);
- the host's reported cutover (runtime-API batch), from the agent's report.

Usage: .venv/bin/python benchmarks/fleet_rollback.py [--rollbacks 20] [--monitor 0.2]
"""

from __future__ import annotations

import argparse
import http.client
import re
import time

from _load import percentile
from fleet_common import admin, print_table, running_lab, wait, wait_edge_up

from shipyard.cli.fleet_cmd import resolve_digest
from shipyard.domain.spec import parse_spec, spec_snapshot
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rollbacks", type=int, default=20)
    parser.add_argument("--monitor", type=float, default=0.2, help="the rollout's monitor, seconds per wave")
    args = parser.parse_args()
    answered: list[float] = []
    switched: list[float] = []
    finished: list[float] = []
    cutovers: list[float] = []
    with running_lab(1) as root:
        wait_edge_up(root, timeout=120)
        state = load_state(root)
        address = state.app.listen(state.hosts[0].address)
        deploy_with_standby(state, "v1", args.monitor)
        deploy_with_standby(state, "v2", args.monitor)
        serving = version_of(address)
        print(f"  {args.rollbacks} fleet rollbacks on one host, serving {serving} ...", flush=True)
        with admin(state) as client:
            for _ in range(args.rollbacks):
                started = time.perf_counter()
                deployment = client.rollback(state.app.name, state.group)
                answered.append(time.perf_counter() - started)
                while (now := version_of(address)) in (serving, None):
                    time.sleep(0.005)
                    if time.perf_counter() - started > 60:
                        raise TimeoutError("the host did not switch within 60 s")
                switched.append(time.perf_counter() - started)
                serving = now
                done = wait(client, deployment.id)
                finished.append(time.perf_counter() - started)
                if done.status != "succeeded":
                    raise RuntimeError(f"rollback {done.id}: {done.status} {done.message}")
                found = CUTOVER.search(" ".join(host.message for host in done.hosts))
                if found:
                    cutovers.append(float(found.group(1)) / 1000)
    rows: list[list[object]] = []
    for label, samples in (
        ("request -> controller answered", answered),
        ("request -> host switched (traffic on the other release)", switched),
        ("request -> deployment succeeded", finished),
        ("host's cutover (runtime API, agent report)", cutovers),
    ):
        if samples:
            rows.append(
                [
                    label,
                    len(samples),
                    *(f"{percentile(samples, q):.3f}" for q in (50, 99)),
                    f"{max(samples):.3f}",
                ]
            )
    print_table(
        f"fleet rollback to a warm standby, one host (monitor {args.monitor:g} s)",
        ["measurement (s)", "n", "p50", "p99", "max"],
        rows,
    )


if __name__ == "__main__":
    main()
