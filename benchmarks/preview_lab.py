"""Previews in the lab: PR opened -> preview answering at its host name through the edge, and its teardown.

    .venv/bin/python benchmarks/preview_lab.py [--prs 5] [--dir LAB]

Starts a lab (`lab up --hosts 1 --preview-hosts 1`: registry, https controller with its job worker and
a preview reconciler every 3 s, one app host, one preview host, the edge), or uses the running lab in
LAB (it needs a preview host). A bare git origin holds the lab app with `previews:` (no database); the
app's hook is added and a release carrying those settings recorded. One PR is opened first to warm the
build cache (shown, not counted). Then, one PR after the other:

- opened: a commit on the PR's branch pushed to refs/pull/N/head, one signed `pull_request` opened
  delivery; the clock runs until `GET /version` with Host `pr-N.web.<previews domain>` through the edge
  answers that commit's page (fetch, warm BuildKit build, push, release, deployment to the preview host,
  health check, route);
- teardown: one `closed` delivery; the clock runs until the preview host's engine holds nothing labelled
  with the preview (containers, images) and its haproxy map (runtime API) has no entry for it.

Prints a row per PR, then p50 and max.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import httpx
import yaml
from fleet_common import print_table

from shipyard.adapters.haproxy import HaproxyRuntime
from shipyard.domain.previews import PREVIEW_LABEL, preview_host_name, preview_label_value
from shipyard.domain.spec import load_spec, spec_snapshot
from shipyard.lab import control_plane
from shipyard.lab.fleet import lab_down, lab_up
from shipyard.lab.origin import LabOrigin, git
from shipyard.lab.state import PREVIEW_GROUP, HostRecord, LabState, load_state

SECRET = "bench-previews-hook-secret-0123456789"


def pull_request(action: str, number: int, sha: str) -> dict[str, object]:
    repository = {"id": 1, "name": "lab-app", "full_name": "lab/lab-app", "fork": False}
    return {
        "action": action,
        "number": number,
        "pull_request": {
            "number": number,
            "state": "closed" if action == "closed" else "open",
            "merged": False,
            "head": {"ref": f"feature-{number}", "sha": sha, "repo": repository},
            "base": {"ref": "main", "sha": sha, "repo": repository},
        },
        "repository": repository,
        "sender": {"login": "lab"},
    }


@contextlib.contextmanager
def a_lab(directory: Path | None) -> Iterator[Path]:
    if directory is not None:
        yield directory
        return
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-") as work:
        root = Path(work) / "lab"
        try:
            lab_up(root, 1, subnet="127.0.240", preview_hosts=1)
            yield root
        finally:
            if (root / "lab.json").exists():
                lab_down(root)


def answers(state: LabState, host_name: str, expected: str) -> bool:
    try:
        answer = httpx.get(f"{state.edge_url}/version", headers={"Host": host_name}, timeout=5)
    except httpx.HTTPError:
        return False
    return answer.status_code == 200 and answer.text.strip() == expected


def gone(host: HostRecord, label: str, host_name: str) -> bool:
    with contextlib.closing(docker.DockerClient(base_url=host.docker_url)) as engine:
        filters = {"label": f"{PREVIEW_LABEL}={label}"}
        if engine.containers.list(all=True, filters=filters) or engine.images.list(filters=filters):
            return False
    haproxy = host.home / "haproxy"
    return host_name not in HaproxyRuntime(haproxy / "admin.sock").routes(haproxy / "previews.map")


def until(probe: Callable[..., bool], *args: object, timeout: float = 300) -> float:
    """Seconds until PROBE(*ARGS) is true, polled every 50 ms."""
    started = time.perf_counter()
    while not probe(*args):
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"gave up after {timeout:.0f} s")
        time.sleep(0.05)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prs", type=int, default=5, help="PRs measured, one after the other")
    parser.add_argument("--dir", type=Path, default=None, help="a running lab with a preview host")
    options = parser.parse_args()
    with a_lab(options.dir) as root, tempfile.TemporaryDirectory() as scratch:
        state = load_state(root)
        hosts = state.hosts_of(PREVIEW_GROUP)
        if not hosts:
            raise SystemExit(f"the lab in {root} has no preview host; start it with --preview-hosts 1.")
        host, app = hosts[0], state.app.name
        origin = LabOrigin.create(state, Path(scratch))
        config = yaml.safe_load((origin.work / "shipyard.yml").read_text())
        config["previews"] = {"domain": state.previews_domain, "ttl": "1h", "max": 3}
        (origin.work / "shipyard.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        git(origin.work, "commit", "-qam", "previews")
        env = {"SHIPYARD_CONTROLLER": state.controller_url, "SHIPYARD_CA_FILE": str(state.ca_file)}
        env |= {"SHIPYARD_TOKEN": control_plane.admin_token(state) or "", "PATH": "/usr/bin:/bin"}
        with control_plane.admin_client(state) as client:
            releases = client.list_releases(app=app)
            if releases:
                latest = max(releases, key=lambda release: release.id)
                image, digest = latest.image, latest.digest
            else:
                from shipyard.cli.fleet_cmd import resolve_digest

                image, digest = resolve_digest(load_spec(origin.work / "shipyard.yml"), f"{state.image}:v1")
            client.create_release(image, digest, spec_snapshot(load_spec(origin.work / "shipyard.yml")))
        command = [sys.executable, "-m", "shipyard.cli.main", "hooks", "add", "github", "--app", app]
        subprocess.run(
            command, input=SECRET, cwd=origin.work, env=env, capture_output=True, text=True, check=True
        )

        rows: list[list[object]] = []
        opened_seconds: list[float] = []
        teardown_seconds: list[float] = []
        first = 1000 + int(time.time()) % 1000 * 10  # PR numbers of their own in a reused lab
        for index in range(options.prs + 1):
            pr = first + index
            version = f"bench-pr-{pr}"
            sha = origin.commit_pull_request(pr, version)
            name, label = (
                preview_host_name(app, pr, state.previews_domain),
                preview_label_value(origin.bare.as_uri(), pr),
            )
            started = time.perf_counter()
            verdict = origin.deliver(SECRET, "pull_request", pull_request("opened", pr, sha)).json()[
                "verdict"
            ]
            if verdict != "accepted":
                raise SystemExit(f"pr-{pr} was not accepted: {verdict}")
            until(answers, state, name, version)
            opened = time.perf_counter() - started
            started = time.perf_counter()
            origin.deliver(SECRET, "pull_request", pull_request("closed", pr, sha))
            until(gone, host, label, name)
            teardown = time.perf_counter() - started
            warm = index > 0
            if warm:
                opened_seconds.append(opened)
                teardown_seconds.append(teardown)
            rows.append(
                [f"pr-{pr}" + ("" if warm else " (warms the cache)"), f"{opened:.2f}", f"{teardown:.2f}"]
            )
        subprocess.run(
            [sys.executable, "-m", "shipyard.cli.main", "hooks", "rm", "--app", app],
            env=env,
            capture_output=True,
        )
        for label, values in (("p50", statistics.median), ("max", max)):
            rows.append([label, f"{values(opened_seconds):.2f}", f"{values(teardown_seconds):.2f}"])
        print_table(
            f"previews in the lab (reconciler every {state.preview_reconcile_interval:g} s), seconds",
            ["PR", "opened -> answering at the edge", "closed -> nothing on the host"],
            rows,
        )


if __name__ == "__main__":
    sys.exit(main())
