"""Requests failed through the lab's edge while the fleet deploys and rolls back, for 3 and 6 hosts.

Each run: a fresh lab, v1 deployed to every host, then under load through the edge (keep-alive
clients and new-connection clients): deploy v2 in waves of 50%, then `rollback` (back to v1, same waves).

Usage: .venv/bin/python benchmarks/fleet_under_load.py [--hosts 3 6] [--clients 4]
"""

from __future__ import annotations

import argparse
import time

from fleet_common import deploy, print_table, rollback, running_lab, wait_edge_up

from shipyard.lab.load import LoadGenerator
from shipyard.lab.state import load_state


def measure(hosts: int, clients: int) -> list[list[object]]:
    rows: list[list[object]] = []
    with running_lab(hosts) as root:
        deploy(root, "v1", max_parallel="100%", monitor=0.5)
        wait_edge_up(root)
        url = f"{load_state(root).edge_url}/version"
        for action in ("deploy v2", "rollback to v1"):
            keep_alive = LoadGenerator(url, clients=clients, keep_alive=True).start()
            fresh = LoadGenerator(url, clients=clients, keep_alive=False).start()
            time.sleep(0.5)
            done, seconds = (
                deploy(root, "v2", max_parallel="50%", monitor=2) if action == "deploy v2" else rollback(root)
            )
            time.sleep(0.5)
            stats = [keep_alive.stop(), fresh.stop()]
            sent, failed = sum(s.sent for s in stats), sum(s.failed for s in stats)
            p99 = max(s.percentile(0.99) for s in stats) * 1000
            rows.append(
                [hosts, action, done.status, done.total_waves, f"{seconds:.1f}", sent, failed, f"{p99:.1f}"]
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, nargs="+", default=[3, 6])
    parser.add_argument(
        "--clients", type=int, default=4, help="clients per mode (keep-alive and new-connection)"
    )
    args = parser.parse_args()
    rows = [row for hosts in args.hosts for row in measure(hosts, args.clients)]
    columns = ["hosts", "action", "status", "waves", "seconds", "requests", "failed", "p99 ms"]
    print_table("requests through the edge during fleet deploys and rollbacks", columns, rows)


if __name__ == "__main__":
    main()
