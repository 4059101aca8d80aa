"""`make demo`: build demo v1 and v2, deploy v1, then deploy v2 and roll back under load.

Starts a Docker Engine and a registry when none runs, and removes what it started at the end.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from shipyard.lab.fixtures import AppHome, push_images, start_engine, start_test_registry, unique_name
from shipyard.lab.load import LoadGenerator, LoadStats
from shipyard.lab.testapp import Behaviour

console = Console(highlight=False)


def shipyard(home: AppHome, *args: str) -> float:
    console.print(f"\n[bold]$ shipyard {' '.join(args)}[/]")
    started = time.perf_counter()
    done = home.run(*args, check=False)
    seconds = time.perf_counter() - started
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        raise SystemExit(done.returncode)
    return seconds


def summary(results: list[tuple[str, LoadStats]], timings: dict[str, float]) -> None:
    table = Table(title="requests during the deploy of v2 and the rollback to v1", title_justify="left")
    for column in ("clients", "sent", "failed", "p50 ms", "p99 ms", "answers"):
        table.add_column(column)
    for name, stats in results:
        answers = ", ".join(f"{body}: {count}" for body, count in sorted(stats.bodies.items()))
        table.add_row(
            name,
            str(stats.sent),
            str(stats.failed),
            f"{stats.percentile(0.5) * 1000:.1f}",
            f"{stats.percentile(0.99) * 1000:.1f}",
            answers,
        )
    console.print(table)
    for name, seconds in timings.items():
        console.print(f"{name}: {seconds:.2f} s")


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="shipyard-demo-"))
    console.print("[bold]shipyard demo[/]: engine, registry, demo images v1 and v2")
    docker_url = start_engine(work)
    registry = start_test_registry(work)
    home = AppHome(root=work, docker_url=docker_url, registry=registry, app="demo-" + unique_name(""))
    try:
        variants: dict[str, tuple[str, Behaviour]] = {"v1": ("v1", "ok"), "v2": ("v2", "ok")}
        images = push_images(docker_url, registry, unique_name("demo-"), variants, recording={})
        home.write_config(images, deploy={"standby": 120, "drain_timeout": 5})
        console.print(f"config: {home.config}\n" + home.config.read_text())
        shipyard(home, "deploy", images.ref("v1"))
        url = home.listen_url + "/version"
        console.print(f"\nload: 16 keep-alive clients and 16 new-connection clients on {url}")
        timings: dict[str, float] = {}
        kept, fresh = LoadGenerator(url, clients=16), LoadGenerator(url, clients=16, keep_alive=False)
        with kept, fresh:
            time.sleep(1)
            timings["deploy v2"] = shipyard(home, "deploy", images.ref("v2"))
            time.sleep(1)
            timings["rollback to v1 (warm standby)"] = shipyard(home, "rollback")
            time.sleep(1)
        shipyard(home, "releases")
        results = [("keep-alive", kept.stop()), ("new connection", fresh.stop())]
        summary(results, timings)
        failed = sum(stats.failed for _, stats in results)
        console.print(f"[bold]{'no request failed' if not failed else f'{failed} requests failed'}[/]")
        return 1 if failed else 0
    finally:
        home.teardown()
        registry.server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
