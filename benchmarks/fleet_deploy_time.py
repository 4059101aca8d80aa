"""Fleet deploy time for 1, 3 and 6 hosts with max_parallel 1 and 50%: it grows with waves, not hosts.

One lab, scaled up between sizes (new hosts converge to the current release first). Each measurement
deploys the other of v2/v3 with monitor=1 s and times creation to `succeeded`.

Usage: .venv/bin/python benchmarks/fleet_deploy_time.py [--sizes 1 3 6] [--monitor 1]
"""

from __future__ import annotations

import argparse
import itertools

from fleet_common import deploy, print_table, running_lab, wait_edge_up

from shipyard.lab.fleet import lab_scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 3, 6])
    parser.add_argument("--monitor", type=float, default=1.0)
    args = parser.parse_args()
    tags = itertools.cycle(["v2", "v3"])
    rows: list[list[object]] = []
    with running_lab(args.sizes[0]) as root:
        deploy(root, "v1", max_parallel="100%", monitor=0.5)
        for size in args.sizes:
            lab_scale(root, size)
            wait_edge_up(root, timeout=120)
            for policy in ("1", "50%"):
                done, seconds = deploy(root, next(tags), max_parallel=policy, monitor=args.monitor)
                per_wave = seconds / max(done.total_waves, 1)
                rows.append(
                    [size, policy, done.total_waves, done.status, f"{seconds:.1f}", f"{per_wave:.1f}"]
                )
    columns = ["hosts", "max_parallel", "waves", "status", "seconds", "seconds/wave"]
    print_table(f"fleet deploy time (monitor {args.monitor:g} s per wave)", columns, rows)


if __name__ == "__main__":
    main()
