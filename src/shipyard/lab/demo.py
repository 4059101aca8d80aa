"""`make demo`: build demo v1 and v2, deploy v1, then deploy v2 and roll back under load; then one click
on the lab: a commit merged into `release`, GitHub's webhook, the controller's build, the waves, live.

Starts a Docker Engine and a registry when none runs, and a 3-host lab; removes what it started at the end.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from shipyard.lab import control_plane
from shipyard.lab.fleet import lab_down, lab_up
from shipyard.lab.load import LoadGenerator, LoadStats
from shipyard.lab.origin import LabOrigin, merged_pull_request
from shipyard.lab.single_host import AppHome, push_images, start_engine, start_local_registry, unique_name
from shipyard.lab.state import LabState
from shipyard.lab.testapp import Behaviour

LAB_HOSTS = 3
DEMO_SECRET = "demo-webhook-secret-" + "0123456789abcdef"
JOB_FINAL = {"succeeded", "failed", "cancelled", "superseded", "interrupted"}

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


def summary(
    results: list[tuple[str, LoadStats]],
    timings: dict[str, float],
    title: str = "requests during the deploy of v2 and the rollback to v1",
) -> None:
    table = Table(title=title, title_justify="left")
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


def lab_cli(state: LabState, cwd: Path, *args: str, stdin: str | None = None) -> str:
    """`shipyard ARGS` against the lab's controller, shown as typed; its output echoed and returned."""
    console.print(f"\n[bold]$ shipyard {' '.join(args)}[/]")
    env = {
        **os.environ,
        "SHIPYARD_CONTROLLER": state.controller_url,
        "SHIPYARD_CA_FILE": str(state.ca_file),
        "SHIPYARD_TOKEN": control_plane.admin_token(state) or "",
    }
    done = subprocess.run(
        [sys.executable, "-m", "shipyard.cli.main", *args],
        input=stdin,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        raise SystemExit(done.returncode)
    return done.stdout


def one_click_on_the_lab(work: Path) -> int:
    """Commit, merge webhook, build, waves, live: on LAB_HOSTS hosts behind the edge, under load."""
    console.print(f"\n[bold]one click[/]: a {LAB_HOSTS}-host lab, a git origin, a merged pull request")
    root = work / "lab"
    try:
        state = lab_up(root, LAB_HOSTS, subnet=f"127.0.{random.randint(100, 250)}")
        origin = LabOrigin.create(state, work / "origin")
        console.print(f"origin: {origin.bare}; shipyard.yml in the repository:")
        console.print((origin.work / "shipyard.yml").read_text())
        lab_cli(state, origin.work, "hooks", "add", "github", "--app", state.app.name, stdin=DEMO_SECRET)
        lab_cli(state, origin.work, "deploy", f"{state.image}:v1", "--env", state.group)
        url = f"{state.edge_url}/version"
        console.print(f"\nload: 8 keep-alive clients on {url} (the edge in front of {LAB_HOSTS} hosts)")
        started = time.perf_counter()
        with LoadGenerator(url, clients=8) as load:
            sha = origin.commit("merged")
            console.print(
                f"\n[bold]git push origin HEAD:release[/] -> {sha[:12]} (the page now says 'merged')"
            )
            answer = origin.deliver(DEMO_SECRET, "pull_request", merged_pull_request("release", sha, 42))
            console.print(
                f"[bold]POST {origin.hook_url}[/] (pull_request #42 merged): "
                f"{answer.status_code} {answer.json()}"
            )
            if answer.status_code != 202 or answer.json().get("job_id") is None:
                return 1
            job_id = int(answer.json()["job_id"])
            lab_cli(state, root, "job", str(job_id), "--follow")
            job = origin.job(job_id)
            while job["status"] not in JOB_FINAL:
                time.sleep(0.5)
                job = origin.job(job_id)
            if job.get("deployment_id") is not None:
                lab_cli(state, root, "deployment", str(job["deployment_id"]))
            time.sleep(1)
        merge_to_live = time.perf_counter() - started
        lab_cli(state, root, "jobs")
        served = {host.name: _version(state, host.address) for host in state.hosts}
        console.print(f"\nevery host serves: {served}")
        summary(
            [("keep-alive via the edge", load.stats)],
            {"merge -> live on every host": merge_to_live},
            "requests through the edge from the merge until every host served it",
        )
        shipped = job["status"] == "succeeded" and set(served.values()) == {"merged"}
        ok = shipped and load.stats.failed == 0
        console.print(f"[bold]{'shipped with no failed request' if ok else 'the one-click story failed'}[/]")
        return 0 if ok else 1
    finally:
        if (root / "lab.json").exists():  # whatever part of the lab started, even when `lab up` failed
            lab_down(root)


def _version(state: LabState, address: str) -> str:
    import httpx

    try:
        return httpx.get(f"http://{state.app.listen(address)}/version", timeout=5).text.strip()
    except httpx.HTTPError as exc:
        return f"unreachable ({exc.__class__.__name__})"


def main() -> int:
    first = deploy_and_roll_back()
    work = Path(tempfile.mkdtemp(prefix="shipyard-demo-lab-"))
    try:
        second = one_click_on_the_lab(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return first or second


def deploy_and_roll_back() -> int:
    work = Path(tempfile.mkdtemp(prefix="shipyard-demo-"))
    console.print("[bold]shipyard demo[/]: engine, registry, demo images v1 and v2")
    docker_url = start_engine(work)
    registry = start_local_registry(work)
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
