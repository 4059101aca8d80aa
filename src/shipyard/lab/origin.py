"""A git origin for the lab app: a bare repository on this machine, and GitHub-like signed deliveries.

The working copy holds the lab app's build context (Dockerfile, busybox root filesystem) and a
shipyard.yml with `pipelines:`, so a push to `release` plus a signed webhook is all it takes for the
lab's controller to build the commit and ship it to every lab host.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from shipyard.controller.engine.github import signature_of
from shipyard.errors import ShipyardError
from shipyard.fleet_api.tls import client_ssl_context
from shipyard.lab import control_plane
from shipyard.lab.state import LabState
from shipyard.lab.testapp import write_context_dir

RELEASE_BRANCH = "release"
GIT = ["git", "-c", "user.email=lab@shipyard.test", "-c", "user.name=lab", "-c", "init.defaultBranch=main"]


def git(root: Path, *args: str) -> str:
    done = subprocess.run([*GIT, "-C", str(root), *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ShipyardError(f"git {' '.join(args)} failed in {root}: {done.stderr.strip()}")
    return done.stdout.strip()


@dataclass(frozen=True)
class LabOrigin:
    state: LabState
    work: Path
    bare: Path

    @classmethod
    def create(cls, state: LabState, root: Path, *, rollout: dict[str, Any] | None = None) -> LabOrigin:
        """ROOT/app (the working copy, its origin set) and ROOT/app.git (the bare origin)."""
        work, bare = root / "app", root / "app.git"
        write_context_dir(work, "pipeline-0")
        document = {
            **control_plane.app_document(state),
            "repository": bare.as_uri(),
            "pipelines": [{"branch": RELEASE_BRANCH, "environment": state.group}],
            "build": {"cache": True},
        }
        document["rollout"] = rollout or {"max_parallel": "1", "monitor": 1}  # a wave per host
        (work / "shipyard.yml").write_text(yaml.safe_dump(document, sort_keys=False))
        git(work, "init", "-q")
        git(work, "add", "-A")
        git(work, "commit", "-qm", "the lab app")
        git(root, "clone", "-q", "--bare", str(work), str(bare))
        git(work, "remote", "add", "origin", bare.as_uri())
        return cls(state, work, bare)

    def commit(self, version: str) -> str:
        """Commit a change of the page served at /version, push it to `release`; returns its sha."""
        (self.work / "rootfs" / "www" / "version").write_text(f"{version}\n")
        git(self.work, "commit", "-qam", f"serve {version}")
        git(self.work, "push", "-q", "origin", f"HEAD:{RELEASE_BRANCH}")
        return git(self.work, "rev-parse", "HEAD")

    def commit_pull_request(self, number: int, version: str) -> str:
        """Commit a page serving VERSION on the branch of pull request NUMBER (started from the working
        copy's current branch, else its own last commit) and push it where GitHub keeps a PR's head,
        `refs/pull/N/head`; returns its sha (the `pull_request.head.sha` of its delivery)."""
        branch = f"feature-{number}"
        known = git(self.work, "branch", "--list", branch)
        start = branch if known else "HEAD"
        git(self.work, "checkout", "-q", "-B", branch, start)
        try:
            (self.work / "rootfs" / "www" / "version").write_text(f"{version}\n")
            git(self.work, "commit", "-qam", f"serve {version} in pull request {number}")
            git(self.work, "push", "-q", "--force", "origin", f"HEAD:refs/pull/{number}/head")
            return git(self.work, "rev-parse", "HEAD")
        finally:
            git(self.work, "checkout", "-q", "-")

    @property
    def hook_url(self) -> str:
        return f"{self.state.controller_url}/hooks/github/{self.state.app.name}"

    def deliver(
        self, secret: str, event: str, payload: dict[str, Any], delivery: str | None = None
    ) -> httpx.Response:
        """POST the payload as GitHub would: X-GitHub-Event, X-GitHub-Delivery, X-Hub-Signature-256."""
        body = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/lab",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "X-Hub-Signature-256": signature_of(secret, body),
        }
        return httpx.post(
            self.hook_url,
            content=body,
            headers=headers,
            verify=client_ssl_context(self.state.ca_file),
            timeout=30,
        )

    def job(self, job_id: int) -> dict[str, Any]:
        answer = httpx.get(
            f"{self.state.controller_url}/api/v1/jobs/{job_id}",
            headers={"Authorization": f"Bearer {control_plane.admin_token(self.state)}"},
            verify=client_ssl_context(self.state.ca_file),
            timeout=30,
        )
        answer.raise_for_status()
        return dict(answer.json())


def merged_pull_request(branch: str, sha: str, number: int) -> dict[str, Any]:
    """The `pull_request` payload GitHub sends when pull request NUMBER is merged into BRANCH."""
    return {
        "action": "closed",
        "number": number,
        "pull_request": {
            "number": number,
            "state": "closed",
            "merged": True,
            "merge_commit_sha": sha,
            "base": {"ref": branch},
            "head": {"ref": f"feature-{number}"},
        },
        "repository": {"name": "lab-app", "full_name": "lab/lab-app"},
        "sender": {"login": "lab"},
    }
