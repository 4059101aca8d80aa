"""The e2e suite's handle on the lab: its controller, its CLI, its hosts and its edge."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from shipyard.fleet_api.client import ControllerClient
from shipyard.fleet_api.schemas.deployments import DeploymentOut
from shipyard.lab import control_plane
from shipyard.lab.fleet import edge_of
from shipyard.lab.state import LabState, load_state

FINISHED = {"succeeded", "failed", "aborted", "rolled_back"}


@dataclass
class Lab:
    root: Path

    @property
    def state(self) -> LabState:
        return load_state(self.root)

    def client(self) -> ControllerClient:
        return control_plane.admin_client(self.state)

    def env(self) -> dict[str, str]:
        state = self.state
        token = control_plane.admin_token(state) or ""
        return {
            "SHIPYARD_CONTROLLER": state.controller_url,
            "SHIPYARD_CA_FILE": str(state.ca_file),
            "SHIPYARD_TOKEN": token,
            "PATH": "/usr/bin:/bin",
        }

    def write_config(self, name: str, extra: dict[str, Any] | None = None, **rollout: Any) -> Path:
        document = {**control_plane.app_document(self.state), **(extra or {})}
        document["rollout"] = {**document["rollout"], **rollout}  # type: ignore[dict-item]
        path = self.root / f"{name}.yml"
        path.write_text(yaml.safe_dump(document))
        return path

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return self.cli_with(self.env(), *args, timeout=timeout)

    def cli_with(
        self, env: dict[str, str], *args: str, timeout: float = 180, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "shipyard.cli.main", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.root,
            timeout=timeout,
            input=stdin,
        )

    def start_deployment(
        self, tag: str, extra: dict[str, Any] | None = None, **rollout: Any
    ) -> DeploymentOut:
        """Create the release (the lab app with `extra` keys) and deployment, without following it."""
        from shipyard.cli.fleet_cmd import resolve_digest
        from shipyard.domain.spec import load_spec, spec_snapshot

        spec = load_spec(self.write_config(f"deploy-{tag}", extra, **rollout))
        repository, digest = resolve_digest(spec, f"{self.state.image}:{tag}")
        with self.client() as client:
            release = client.create_release(repository, digest, spec_snapshot(spec))
            return client.create_deployment(release.id, self.state.group)

    def wait_deployment(self, deployment_id: int, timeout: float = 180) -> DeploymentOut:
        return wait_for(
            lambda: _finished(self, deployment_id), timeout, f"deployment {deployment_id} to finish"
        )

    def host_version(self, name: str) -> str | None:
        hosts = {host.name: host for host in self.state.hosts}
        if name not in hosts:
            return None
        host = hosts[name]
        try:
            # Generous: a loaded machine can be slow to answer, and None means "serves nothing".
            answer = httpx.get(f"http://{self.state.app.listen(host.address)}/version", timeout=10)
        except httpx.HTTPError:
            return None
        return answer.text.strip() if answer.status_code == 200 else None

    def edge_servers(self) -> dict[str, str]:
        return edge_of(self.state).servers()

    @property
    def edge_version_url(self) -> str:
        return f"{self.state.edge_url}/version"


def _finished(lab: Lab, deployment_id: int) -> DeploymentOut | None:
    with lab.client() as client:
        found = client.get_deployment(deployment_id)
    return found if found.status in FINISHED else None


def wait_for(probe: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def current_version(lab: Lab) -> str:
    versions = {lab.host_version(host.name) for host in lab.state.hosts}
    assert len(versions) == 1, f"hosts disagree: {versions}"
    return str(versions.pop())
