"""Previews, the controller's side: PR opened -> preview deployed, a push -> redeployed, close -> gone.

    .venv/bin/python benchmarks/previews_controller.py [--prs 3] [--reconcile 1] [--deliveries 200]

Everything is real and local except the host: `shipyard controller` (SQLite) in a subprocess with its
job worker and `--preview-reconcile-interval`, the suite's Docker Engine and an htpasswd registry on
127.0.0.1, a bare git repository as the origin, and one host of the `preview` group played by a
simulated agent (it long-polls and reports the desired release healthy at once, so the times are the
controller's and the build's, not a container start). For each of `--prs` pull requests: a signed
`pull_request opened` delivery, then the job's time per step until the preview is `ready` (the first
builds cold, the others with a warm cache); then a `synchronize` of the first PR (a new release and a
swap), then a `closed` of every PR: the time until the host's desired state no longer holds it (its
long-poll answers) and until the reconciler has closed it. Between the two, the acknowledgement
latency of `pull_request` deliveries (decided under the hook's lock: the ready PR's commit again, so
nothing is queued) next to pushes to a branch without a pipeline (the lock-free path), one after the other.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
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
from pipeline_webhooks import remove_images, signed_push

from shipyard.controller.engine.github import signature_of
from shipyard.errors import ControllerError
from shipyard.fleet_api.client import ControllerClient
from shipyard.lab.ports import free_port
from shipyard.lab.processes import shipyard_process, stop_process, wait_http
from shipyard.lab.simulated_host import succeeded_report
from shipyard.lab.single_host import start_engine, start_local_registry, unique_name
from shipyard.lab.testapp import busybox_path

SECRET = "bench-webhook-secret-0123456789"
DOMAIN = "preview.bench"
DOCKERFILE = "FROM scratch\nCOPY rootfs/ /\nENV PATH=/bin\nCOPY pr.txt /pr.txt\n"
STEPS = ("fetch", "build.build", "build.scan", "build.push", "release", "deploy", "wait")


def make_repo(root: Path, image: str, app: str, origin: Path, prs: int) -> dict[str, Any]:
    (root / "rootfs" / "bin").mkdir(parents=True)
    shutil.copy2(busybox_path(), root / "rootfs" / "bin" / "busybox")
    (root / "Dockerfile").write_text(DOCKERFILE)
    (root / "pr.txt").write_text("0\n")
    config = {
        "app": app,
        "image": image,
        "registry": {"username_env": "BENCH_REG_USER", "password_env": "BENCH_REG_PASS"},
        "repository": origin.as_uri(),
        "pipelines": [{"branch": "release", "environment": "production"}],
        "rollout": {"monitor": 0.1},
        "previews": {"domain": DOMAIN, "max": prs, "ttl": "1h"},
    }
    (root / "shipyard.yml").write_text(yaml.safe_dump(config))
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    subprocess.run(["git", "clone", "-q", "--bare", str(root), str(origin)], check=True)
    git(root, "remote", "add", "origin", origin.as_uri())
    return config


def signed_pull_request(action: str, number: int, sha: str) -> tuple[bytes, dict[str, str]]:
    repository = {"full_name": "acme/web"}
    pull = {
        "number": number,
        "head": {"sha": sha, "repo": repository},
        "base": {"ref": "main", "repo": repository},
    }
    body = json.dumps({"action": action, "number": number, "pull_request": pull}).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": signature_of(SECRET, body),
    }
    return body, headers


class PreviewHost:
    """Long-polls like an agent of the preview group, reports every desired release healthy at once,
    and notes when each app leaves its desired state."""

    def __init__(self, url: str, admin: ControllerClient) -> None:
        registered = ControllerClient(url).register_agent(admin.create_join_token("preview").token, "pv1")
        self.client = ControllerClient(url, registered.agent_token)
        self.apps: set[str] = set()
        self.left: dict[str, float] = {}
        self.stop = threading.Event()
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        version: int | None = None
        while not self.stop.is_set():
            try:
                desired = self.client.desired(version, wait=5.0)
                if desired.version == version:
                    continue
                version = desired.version
                now = time.perf_counter()
                apps = {app.app for app in desired.apps}
                for gone in self.apps - apps:
                    self.left[gone] = now
                self.apps = apps
                self.client.report([succeeded_report(app) for app in desired.apps], agent_version="bench")
            except ControllerError:
                time.sleep(0.2)


def preview_of(url: str, token: str, app: str, pr: int) -> dict[str, Any]:
    rows = httpx.get(
        f"{url}/api/v1/previews",
        params={"app": app, "all": "true"},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    return dict(next(row for row in rows if row["pr"] == pr))


def wait_preview(
    url: str, token: str, app: str, pr: int, statuses: set[str], sha: str | None = None
) -> dict[str, Any]:
    while True:
        row = preview_of(url, token, app, pr)
        if row["status"] in statuses and (sha is None or row["sha"] == sha):
            return row
        time.sleep(0.05)


def job_of(url: str, token: str, job_id: int) -> dict[str, Any]:
    answer = httpx.get(f"{url}/api/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"})
    return dict(answer.json())


def latencies(url: str, app: str, count: int, make: Any) -> list[float]:
    seconds = []
    with httpx.Client() as client:
        for _ in range(count):
            body, headers = make()
            started = time.perf_counter()
            answer = client.post(f"{url}/hooks/github/{app}", content=body, headers=headers)
            seconds.append(time.perf_counter() - started if answer.status_code == 202 else float("inf"))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prs", type=int, default=3, help="pull requests opened one after the other")
    parser.add_argument("--reconcile", type=float, default=1.0, help="--preview-reconcile-interval")
    parser.add_argument("--deliveries", type=int, default=200, help="deliveries per latency row")
    options = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="shipyard-bench-previews-"))
    registry = start_local_registry(work)
    docker_url = start_engine(work)
    app = unique_name("pv")
    repo, origin = work / "web", work / "web.git"
    config = make_repo(repo, f"{registry.address}/{app}", app, origin, options.prs)
    port, token_file = free_port(), work / "admin.token"
    env = {
        "DOCKER_HOST": docker_url,
        "BENCH_REG_USER": registry.username,
        "BENCH_REG_PASS": registry.password,
        "XDG_CACHE_HOME": str(work / "cache"),
        "SHIPYARD_ADMIN_TOKEN": "",
        "SHIPYARD_HOME": str(work),
    }
    args = ["controller", "--db", f"sqlite:///{work / 'controller.db'}", "--port", str(port)]
    args += [
        "--preview-reconcile-interval",
        str(options.reconcile),
        "--bootstrap-token-file",
        str(token_file),
    ]
    pid = shipyard_process(args, work / "controller.log", env)
    url = f"http://127.0.0.1:{port}"
    host: PreviewHost | None = None
    try:
        wait_http(f"{url}/healthz", 60, "the controller", work / "controller.log")
        token = token_file.read_text().strip()
        auth = {"Authorization": f"Bearer {token}"}
        admin = ControllerClient(url, token)
        host = PreviewHost(url, admin)
        hook = {"app": app, "repository": origin.as_uri(), "secret": SECRET, "pipelines": config["pipelines"]}
        httpx.post(f"{url}/api/v1/hooks", json=hook, headers=auth).raise_for_status()
        # The app's latest release carries `previews:` (as its last pipeline release would).
        release = {"image": config["image"], "digest": "sha256:" + "e" * 64, "spec": config}
        httpx.post(f"{url}/api/v1/releases", json=release, headers=auth).raise_for_status()

        rows: list[list[object]] = []

        def ship(label: str, action: str, pr: int) -> None:
            (repo / "pr.txt").write_text(f"{pr} {label}\n")
            git(repo, "commit", "-qam", f"pr {pr} {label}")
            git(repo, "push", "-q", "origin", f"HEAD:refs/heads/pr-{pr}")
            sha = git(repo, "rev-parse", "HEAD")
            started = time.perf_counter()
            body, headers = signed_pull_request(action, pr, sha)
            answer = httpx.post(f"{url}/hooks/github/{app}", content=body, headers=headers).json()
            row = wait_preview(url, token, app, pr, {"ready", "failed"}, sha)
            total = time.perf_counter() - started
            timings = job_of(url, token, answer["job_id"])["timings"]
            rows.append(
                [f"pr-{pr} {label}", row["status"]]
                + [f"{timings.get(step, 0):.2f}" for step in STEPS]
                + [f"{total:.2f}"]
            )

        for pr in range(1, options.prs + 1):
            ship("opened (cold)" if pr == 1 else "opened (warm)", "opened", pr)
        ship("synchronize", "synchronize", 1)
        print_table(
            "PR event -> preview ready, seconds per step (1 preview host, simulated agent)",
            ["event", "status", *STEPS, "total"],
            rows,
        )

        same = preview_of(url, token, app, 1)["sha"]  # pr-1 is ready at it: nothing is queued
        ack: list[list[object]] = []
        for label, make in (
            ("push to a branch without a pipeline (lock-free)", lambda: signed_push("feature", same)),
            (
                "pull_request synchronize, same commit (hook lock)",
                lambda: signed_pull_request("synchronize", 1, same),
            ),
        ):
            values = [value * 1000 for value in latencies(url, app, options.deliveries, make)]
            ok = [value for value in values if value != float("inf")]
            ack.append(
                [
                    label,
                    len(values),
                    len(values) - len(ok),
                    f"{percentile(ok, 50):.1f}",
                    f"{percentile(ok, 99):.1f}",
                ]
            )
        print_table(
            "delivery -> 202, milliseconds, one after the other",
            ["delivery", "n", "failed", "p50", "p99"],
            ack,
        )

        teardown: list[list[object]] = []
        for pr in range(1, options.prs + 1):
            sha = preview_of(url, token, app, pr)["sha"]
            started = time.perf_counter()
            body, headers = signed_pull_request("closed", pr, sha)
            httpx.post(f"{url}/hooks/github/{app}", content=body, headers=headers).raise_for_status()
            wait_preview(url, token, app, pr, {"closed"})
            closed = time.perf_counter() - started
            while f"{app}-pr-{pr}" not in host.left:
                time.sleep(0.02)
            off_host = host.left[f"{app}-pr-{pr}"] - started
            teardown.append([f"pr-{pr}", f"{off_host:.3f}", f"{closed:.3f}"])
        print_table(
            f"closed -> gone, seconds (--preview-reconcile-interval {options.reconcile:g})",
            ["preview", "out of the host's desired state", "closed (database, secrets gone)"],
            teardown,
        )

    finally:
        if host is not None:
            host.stop.set()
        stop_process(pid)
        remove_images(docker_url, f"{registry.address}/{app}")
        registry.server.stop()


if __name__ == "__main__":
    main()
