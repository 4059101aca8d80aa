"""Helpers of the controller's integration tests: a shared PostgreSQL, a harness, fake agents.

The fixtures themselves live in conftest_controller.py, which the test modules load as a plugin.
PostgreSQL is started once per test process, lazily, and stopped at exit.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from shipyard.controller.server.app import create_app
from shipyard.controller.server.settings import ControllerSettings
from shipyard.errors import ControllerError
from shipyard.fleet_api.client import ControllerClient
from shipyard.fleet_api.schemas.agent import AppReport, DesiredState
from shipyard.lab.ports import free_port
from shipyard.lab.postgres import PostgresServer, start_postgres
from shipyard.lab.simulated_host import succeeded_report
from shipyard.lab.tls import TlsFiles

ADMIN_TOKEN = "sya_test-admin-token-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DIGESTS = ["sha256:" + str(i) * 64 for i in range(1, 10)]
_postgres: PostgresServer | None = None


def shared_postgres() -> PostgresServer:
    global _postgres
    if _postgres is None:
        _postgres = start_postgres()
        atexit.register(_postgres.stop)
    return _postgres


def controller_settings(controller_db_url: str, **overrides: Any) -> ControllerSettings:
    values: dict[str, Any] = {
        "database_url": controller_db_url,
        "tick_interval": 0.05,
        "recheck_interval": 0.2,
        "lost_after": 30.0,
        "bootstrap_admin_token": ADMIN_TOKEN,
    }
    values.update(overrides)
    return ControllerSettings(**values)


def spec(app: str = "web", **rollout: Any) -> dict[str, Any]:
    policy = {"max_parallel": "1", "max_failed": 0, "monitor": 0.1, "auto_rollback": True, **rollout}
    return {"app": app, "image": f"registry:5000/{app}", "rollout": policy}


def wait_for(predicate: Callable[[], bool], *, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class FakeAgent:
    """Plays a host: reads the desired state and reports having switched to it (or failing)."""

    name: str
    token: str
    client: ControllerClient
    running: dict[str, int] = field(default_factory=dict)
    broken_releases: set[int] = field(default_factory=set)

    def sync(self) -> DesiredState:
        desired = self.client.desired()
        reports = []
        for app in desired.apps:
            if app.release_id in self.broken_releases:
                reports.append(
                    AppReport(
                        app=app.app,
                        step="health",
                        active_release=self.running.get(app.app),
                        release=app.release_id,
                        health="unhealthy",
                        outcome="failed",
                        message="health check failed",
                    )
                )
                continue
            self.running[app.app] = app.release_id
            reports.append(succeeded_report(app))
        self.client.report(reports, agent_version="test")
        return desired


@dataclass
class Harness:
    http: TestClient
    admin: ControllerClient
    agents: list[FakeAgent] = field(default_factory=list)

    def client(self, token: str | None) -> ControllerClient:
        return ControllerClient("http://testserver", token, http=self.http)

    def add_agent(self, name: str, group: str = "production") -> FakeAgent:
        join = self.admin.create_join_token(group)
        registered = self.client(None).register_agent(join.token, name, agent_version="test")
        agent = FakeAgent(name, registered.agent_token, self.client(registered.agent_token))
        self.agents.append(agent)
        return agent

    def adopt(self, agents: list[FakeAgent]) -> None:
        """Agents of an earlier controller process talk to this one from now on."""
        for agent in agents:
            agent.client = self.client(agent.token)
            self.agents.append(agent)

    def sync_all(self) -> None:
        for agent in self.agents:
            agent.sync()

    def deploy_until(self, deployment_id: int, statuses: set[str], *, timeout: float = 60.0) -> str:
        """Let the agents follow the desired state until the deployment reaches one of `statuses`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sync_all()
            status = self.admin.get_deployment(deployment_id).status
            if status in statuses:
                return status
            time.sleep(0.05)
        raise AssertionError(f"deployment {deployment_id} never reached {statuses}")


RUN_CONTROLLER = "import typer; from shipyard.cli.controller_cmd import controller; typer.run(controller)"


@dataclass
class ServedController:
    """A `shipyard controller` process reached over TCP: its https URL, admin token, CA and output."""

    url: str
    admin_token: str
    ca_file: Path
    output: str = ""

    def client(self, token: str | None = None, **kwargs: Any) -> ControllerClient:
        return ControllerClient(self.url, token, ca_file=self.ca_file, **kwargs)


def controller_answers(client: ControllerClient) -> bool:
    try:
        with client:
            client.healthz()
        return True
    except ControllerError:
        return False


@contextmanager
def served_controller(db_url: str, work: Path, tls: TlsFiles, *extra: str) -> Iterator[ServedController]:
    """The controller started through its CLI command, serving https with `tls`; stopped on exit."""
    port, token_file = free_port(), work / "admin.token"
    command = [sys.executable, "-c", RUN_CONTROLLER, "--db", db_url, "--port", str(port)]
    command += ["--bootstrap-token-file", str(token_file), "--lost-after", "30"]
    command += ["--tls-cert", str(tls.server_cert), "--tls-key", str(tls.server_key), *extra]
    env = {**os.environ, "SHIPYARD_ADMIN_TOKEN": ""}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    served = ServedController(f"https://127.0.0.1:{port}", "", tls.ca_cert)
    try:
        wait_for(
            lambda: process.poll() is None and controller_answers(served.client(timeout=1.0)),
            timeout=30,
            what="the controller",
        )
        served.admin_token = token_file.read_text().strip()
        yield served
    finally:
        process.terminate()
        served.output, _ = process.communicate(timeout=15)


@contextmanager
def running_controller(settings: ControllerSettings) -> Iterator[Harness]:
    with TestClient(create_app(settings)) as http:
        yield Harness(http=http, admin=ControllerClient("http://testserver", ADMIN_TOKEN, http=http))
