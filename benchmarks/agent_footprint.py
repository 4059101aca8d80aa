"""The agent's idle footprint: resident memory and CPU of a real agent serving one app in the lab.

A one-host lab, v1 deployed; then the agent only long-polls (20 s in the lab) and reports after each
answer. Sampled from /proc over --seconds.

Usage: .venv/bin/python benchmarks/agent_footprint.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _load import cpu_seconds
from fleet_common import deploy, print_table, running_lab

from shipyard.lab.state import load_state


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    with running_lab(1) as root:
        done, _ = deploy(root, "v1", max_parallel="100%", monitor=0.5)
        pid = load_state(root).hosts[0].agent_pid
        assert pid is not None and done.status == "succeeded"
        time.sleep(3)
        cpu_start, wall_start, samples = cpu_seconds(pid), time.perf_counter(), []
        while time.perf_counter() - wall_start < args.seconds:
            samples.append(rss_mib(pid))
            time.sleep(1)
        cpu = (cpu_seconds(pid) - cpu_start) / (time.perf_counter() - wall_start) * 100
    rows = [[f"{args.seconds:.0f}", f"{min(samples):.1f}", f"{max(samples):.1f}", f"{cpu:.2f}%"]]
    print_table("idle agent (one app, long-polling)", ["seconds", "RSS min MiB", "RSS max MiB", "CPU"], rows)


if __name__ == "__main__":
    main()
