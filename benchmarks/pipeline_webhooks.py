"""The pipeline: merge -> live broken down by step, and webhook acknowledgement latency during a build.

    .venv/bin/python benchmarks/pipeline_webhooks.py [--rate 100] [--seconds 10] [--commits 2]
        [--job-worker thread|process] [--worker-nice 10] [--engine-nice N]

Everything is real and local: `shipyard controller` (SQLite) in a subprocess with its job worker, the
suite's Docker Engine and an htpasswd registry on 127.0.0.1, a bare git repository as the origin, and
one production host played by a simulated agent (it reports the desired release healthy at once, so the
rollout time is the controller's own, not a container start). For each commit: push to `release`, one
signed push delivery, and the job's time per step (fetch, build, scan, push, release, deploy, wait)
until the deployment succeeded; the first commit builds cold, the next ones with a warm cache. Then one
more commit the manual way, timed the same (`shipyard build --push`, then `shipyard deploy IMAGE:SHA
--env production` through the controller; its `deploy` column is the whole deploy command).
Then the acknowledgement latency of signed deliveries (pushes to a branch without a pipeline:
verified, stored, answered; nothing queued), signed beforehand and sent on raw sockets from a child
process of their own, a new connection each as GitHub does: 200 one after the other (the service
time), then sent at `--rate` per second for `--seconds`, once idle and once while jobs build back to
back (fetch, build, scan, push, deploy of one commit after another).

Where the builds run: `--job-worker thread` (the default) is the controller's own worker thread;
`--job-worker process` starts the controller with --no-job-worker and a `shipyard job-worker` process
at `--worker-nice`. `--engine-nice N` builds on an engine of the benchmark's own, whose dockerd and
containerd run N nice levels lower, as a builder with a lower CPU weight would be deployed; without it
the suite's engine is used as it is.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml
from _load import git, percentile
from fleet_common import print_table

from shipyard.controller.engine.github import signature_of
from shipyard.errors import ControllerError
from shipyard.fleet_api.client import ControllerClient
from shipyard.lab.engine import ExtraEngine, start_extra_engine, stop_extra_engine
from shipyard.lab.ports import free_port
from shipyard.lab.processes import shipyard_process, stop_process, wait_http
from shipyard.lab.simulated_host import succeeded_report
from shipyard.lab.single_host import start_engine, start_local_registry, unique_name
from shipyard.lab.testapp import busybox_path

SECRET = "bench-webhook-secret-0123456789"
DOCKERFILE = "FROM scratch\nCOPY rootfs/ /\nENV PATH=/bin\nCOPY release.txt /release.txt\n"
STEPS = ("fetch", "build.build", "build.scan", "build.push", "release", "deploy", "wait")
FINAL = {"succeeded", "failed", "cancelled", "superseded", "interrupted"}


def make_repo(root: Path, image: str, app: str, origin: Path) -> None:
    (root / "rootfs" / "bin").mkdir(parents=True)
    shutil.copy2(busybox_path(), root / "rootfs" / "bin" / "busybox")
    (root / "Dockerfile").write_text(DOCKERFILE)
    (root / "release.txt").write_text("0\n")
    config = {
        "app": app,
        "image": image,
        "registry": {"username_env": "BENCH_REG_USER", "password_env": "BENCH_REG_PASS"},
        "repository": origin.as_uri(),
        "pipelines": [{"branch": "release", "environment": "production"}],
        "rollout": {"monitor": 0.1},
    }
    (root / "shipyard.yml").write_text(yaml.safe_dump(config))
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    subprocess.run(["git", "clone", "-q", "--bare", str(root), str(origin)], check=True)
    git(root, "remote", "add", "origin", origin.as_uri())


def signed_push(branch: str, sha: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {"ref": f"refs/heads/{branch}", "after": sha, "deleted": False, "head_commit": {"id": sha}}
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": signature_of(SECRET, body),
    }
    return body, headers


def simulated_host(url: str, admin: ControllerClient, stop: threading.Event) -> None:
    """Long-polls like the agent and reports the desired release healthy whenever it changes."""
    registered = ControllerClient(url).register_agent(admin.create_join_token("production").token, "h1")
    client = ControllerClient(url, registered.agent_token)
    version: int | None = None
    while not stop.is_set():
        try:
            desired = client.desired(version, wait=5.0)
            if desired.version == version:
                continue
            version = desired.version
            reports = [succeeded_report(app) for app in desired.apps]
            client.report(reports, agent_version="bench")
        except ControllerError:
            time.sleep(0.2)


def wait_job(url: str, token: str, job_id: int) -> dict[str, Any]:
    while True:
        job = httpx.get(f"{url}/api/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"}).json()
        if job["status"] in FINAL:
            return dict(job)
        time.sleep(0.1)


def delivery_request(port: int, app: str) -> bytes:
    """One signed delivery as raw HTTP/1.1 bytes (a new connection each, as GitHub sends them)."""
    body, headers = signed_push("feature", uuid.uuid4().hex[:40].ljust(40, "0"))
    lines = [f"POST /hooks/github/{app} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _send(port: int, request: bytes) -> float:
    """Seconds to the answer's status line; inf when it is not 202 or the connection fails."""
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        status = await asyncio.wait_for(reader.readline(), 30)
        elapsed = time.perf_counter() - started
        writer.close()
        return elapsed if status.split(b" ")[1:2] == [b"202"] else float("inf")
    except (OSError, TimeoutError, IndexError):
        return float("inf")


async def acknowledgements(port: int, app: str, rate: float | None, count: int) -> list[float]:
    """Seconds from sending each delivery to its answer: `count` deliveries started on a schedule of
    `rate` per second (not waiting for answers), or one after the other when `rate` is None. The
    requests are signed beforehand and sent on raw sockets, so the sender's own cost stays small."""
    requests = [delivery_request(port, app) for _ in range(count)]
    if rate is None:
        return [await _send(port, request) for request in requests]
    tasks = []
    begin = time.perf_counter()
    for index, request in enumerate(requests):
        await asyncio.sleep(max(0.0, begin + index / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(_send(port, request)))
    return list(await asyncio.gather(*tasks))


def _acknowledgements_here(port: int, app: str, rate: float | None, count: int) -> list[float]:
    return asyncio.run(acknowledgements(port, app, rate, count))


def acknowledgements_apart(port: int, app: str, rate: float | None, count: int) -> list[float]:
    """acknowledgements() in a child process: the benchmark's own threads (the simulated host, the
    commits pushed while building) then never hold the sender's interpreter lock."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return list(pool.apply(_acknowledgements_here, (port, app, rate, count)))


def ack_row(label: str, latencies: list[float]) -> list[object]:
    failed = sum(1 for value in latencies if value == float("inf"))
    ok = [value * 1000 for value in latencies if value != float("inf")]
    return [
        label,
        len(latencies),
        failed,
        f"{percentile(ok, 50):.1f}",
        f"{percentile(ok, 99):.1f}",
        f"{max(ok):.1f}",
    ]


def remove_images(docker_url: str, repository: str) -> None:
    import docker

    client = docker.DockerClient(base_url=docker_url)
    try:
        for image in client.images.list(name=repository):
            client.images.remove(image.id, force=True)
    finally:
        client.close()


def manual_path(
    repo: Path, url: str, token: str, env: dict[str, str], registry: str, app: str
) -> list[object]:
    """The same change the manual way, timed the same: `shipyard build --push`, then `shipyard deploy`."""
    (repo / "release.txt").write_text("manual\n")
    git(repo, "commit", "-qam", "shipped by hand")
    environ = {**os.environ, **env, "SHIPYARD_CONTROLLER": url, "SHIPYARD_TOKEN": token}
    started = time.perf_counter()
    built = subprocess.run(
        [sys.executable, "-m", "shipyard.cli.main", "build", "--push", "--json"],
        cwd=repo,
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    )
    build_done = time.perf_counter()
    timings = json.loads(built.stdout)["timings_ms"]
    sha = git(repo, "rev-parse", "HEAD")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "shipyard.cli.main",
            "deploy",
            f"{registry}/{app}:{sha}",
            "--env",
            "production",
            "--json",
        ],
        cwd=repo,
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    )
    deployed = time.perf_counter()
    return (
        ["manual (warm)", "succeeded", "-"]
        + [f"{timings.get(step, 0) / 1000:.2f}" for step in ("build", "scan", "push")]
        + ["-", f"{deployed - build_done:.2f}", "-", f"{deployed - started:.2f}"]
    )


def build_engine(work: Path, niceness: int | None) -> tuple[str, ExtraEngine | None]:
    """The suite's engine, or (with a niceness) one of our own with its processes reniced."""
    if niceness is None:
        return start_engine(work), None
    engine = start_extra_engine(work / "builder-engine")
    # dockerd (BuildKit runs inside it) and what it started so far: containerd; later children inherit.
    for pid in [engine.pid, *children_of(engine.pid)]:
        os.setpriority(os.PRIO_PROCESS, pid, niceness)
    return engine.base_url, engine


def children_of(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(entry.name))
    return found


def loadavg() -> str:
    return "/".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=100.0, help="deliveries per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--commits", type=int, default=2, help="commits shipped one after the other")
    parser.add_argument("--job-worker", choices=("thread", "process"), default="thread")
    parser.add_argument("--worker-nice", type=int, default=10, help="with --job-worker process")
    parser.add_argument(
        "--engine-nice", type=int, default=None, help="build on an own engine this much nicer"
    )
    options = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="shipyard-bench-pipeline-"))
    registry = start_local_registry(work)
    docker_url, own_engine = build_engine(work, options.engine_nice)
    setup = f"job worker: {options.job_worker}"
    if options.job_worker == "process":
        setup += f" (nice {options.worker_nice})"
    setup += ", engine: " + ("the suite's" if own_engine is None else f"own, nice {options.engine_nice}")
    print(f"{setup}; load average at start {loadavg()}")
    app = unique_name("pipe")
    repo, origin = work / "web", work / "web.git"
    make_repo(repo, f"{registry.address}/{app}", app, origin)
    port, token_file = free_port(), work / "admin.token"
    env = {
        "DOCKER_HOST": docker_url,
        "BENCH_REG_USER": registry.username,
        "BENCH_REG_PASS": registry.password,
        "XDG_CACHE_HOME": str(work / "cache"),
        "SHIPYARD_ADMIN_TOKEN": "",
    }
    database = f"sqlite:///{work / 'controller.db'}"
    args = ["controller", "--db", database, "--port", str(port)]
    if options.job_worker == "process":
        args.append("--no-job-worker")
    pid = shipyard_process([*args, "--bootstrap-token-file", str(token_file)], work / "controller.log", env)
    worker_pid: int | None = None
    url, stop = f"http://127.0.0.1:{port}", threading.Event()
    try:
        wait_http(f"{url}/healthz", 60, "the controller", work / "controller.log")
        if options.job_worker == "process":
            worker_args = ["job-worker", "--db", database, "--nice", str(options.worker_nice)]
            worker_pid = shipyard_process(worker_args, work / "job-worker.log", env)
        token = token_file.read_text().strip()
        admin = ControllerClient(url, token)
        threading.Thread(target=simulated_host, args=(url, admin, stop), daemon=True).start()
        hook = {
            "app": app,
            "repository": origin.as_uri(),
            "secret": SECRET,
            "pipelines": [{"branch": "release", "environment": "production"}],
        }
        httpx.post(
            f"{url}/api/v1/hooks", json=hook, headers={"Authorization": f"Bearer {token}"}
        ).raise_for_status()

        rows: list[list[object]] = []
        for number in range(1, options.commits + 1):
            (repo / "release.txt").write_text(f"{number}\n")
            git(repo, "commit", "-qam", f"commit {number}")
            git(repo, "push", "-q", "origin", "HEAD:release")
            sha = git(repo, "rev-parse", "HEAD")
            started = time.perf_counter()
            body, headers = signed_push("release", sha)
            answer = httpx.post(f"{url}/hooks/github/{app}", content=body, headers=headers).json()
            job = wait_job(url, token, answer["job_id"])
            total = time.perf_counter() - started
            timings = job["timings"]
            rows.append(
                [f"{number} ({'cold' if number == 1 else 'warm'})", job["status"]]
                + [f"{timings.get(step, 0):.2f}" for step in STEPS]
                + [f"{total:.2f}"]
            )
        rows.append(manual_path(repo, url, token, env, registry.address, app))
        print_table(
            "merge -> live, seconds per step (1 host, simulated agent)",
            ["commit", "status", *STEPS, "total"],
            rows,
        )

        count = int(options.rate * options.seconds)
        sequential = acknowledgements_apart(port, app, None, 200)
        idle = acknowledgements_apart(port, app, options.rate, count)
        # Jobs back to back for the whole window: each commit is built, pushed and deployed in turn.
        finished: list[dict[str, Any]] = []
        window_over = threading.Event()

        def keep_building() -> None:
            number = 0
            while not window_over.is_set():
                number += 1
                (repo / "release.txt").write_text(f"during acknowledgements {number}\n")
                git(repo, "commit", "-qam", f"built while deliveries arrive ({number})")
                git(repo, "push", "-q", "origin", "HEAD:release")
                body, headers = signed_push("release", git(repo, "rev-parse", "HEAD"))
                answer = httpx.post(f"{url}/hooks/github/{app}", content=body, headers=headers, timeout=60)
                finished.append(wait_job(url, token, answer.json()["job_id"]))

        builder = threading.Thread(target=keep_building, daemon=True)
        builder.start()
        time.sleep(1.0)  # the first job is fetching and building
        busy = acknowledgements_apart(port, app, options.rate, count)
        window_over.set()
        builder.join(timeout=300)
        outcomes = ", ".join(sorted({job["status"] for job in finished}))
        print(f"load average at the end {loadavg()}")
        print_table(
            f"webhook acknowledgement at {options.rate:.0f}/s for {options.seconds:.0f} s, milliseconds"
            f" ({setup})",
            ["while", "deliveries", "failed", "p50", "p99", "max"],
            [
                ack_row("one at a time, idle", sequential),
                ack_row("idle", idle),
                ack_row(f"jobs build back to back ({len(finished)} jobs, {outcomes})", busy),
            ],
        )
    finally:
        stop.set()
        if worker_pid is not None:
            stop_process(worker_pid)
        stop_process(pid)
        registry.server.stop()
        if own_engine is not None:
            stop_extra_engine(own_engine)
        else:
            remove_images(docker_url, f"{registry.address}/{app}")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
