"""The real thing: `shipyard controller` on uvicorn in a subprocess, reached over TCP with the client."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from controller_fixtures import DIGESTS, FakeAgent, spec, wait_for

from shipyard.controller.client import ControllerClient
from shipyard.controller.schemas.agent import DesiredState
from shipyard.errors import ControllerError
from shipyard.lab.ports import free_port

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]

RUN_CONTROLLER = "import typer; from shipyard.cli.controller_cmd import controller; typer.run(controller)"


def controller_answers(url: str) -> bool:
    try:
        with ControllerClient(url, timeout=1.0) as client:
            client.healthz()
        return True
    except ControllerError:
        return False


@pytest.fixture
def served(controller_db_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(url, admin token) of a controller process started through the CLI command."""
    port, token_file = free_port(), tmp_path / "admin.token"
    command = [sys.executable, "-c", RUN_CONTROLLER, "--db", controller_db_url, "--port", str(port)]
    command += ["--bootstrap-token-file", str(token_file), "--lost-after", "30"]
    env = {**os.environ, "SHIPYARD_ADMIN_TOKEN": ""}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: process.poll() is None and controller_answers(url), timeout=30, what="the controller"
        )
        yield url, token_file.read_text().strip()
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=15)
        assert token_file.read_text().strip() not in output, "the admin token must never reach the log"


def test_deployment_over_real_http_with_long_polling_agents(served: tuple[str, str]) -> None:
    url, admin_token = served
    admin = ControllerClient(url, admin_token)
    agents = []
    for name in ("h1", "h2", "h3"):
        registered = ControllerClient(url).register_agent(admin.create_join_token("production").token, name)
        agents.append(FakeAgent(name, registered.agent_token, ControllerClient(url, registered.agent_token)))
    baseline = agents[0].client.desired()
    woken: list[DesiredState] = []
    poll = threading.Thread(target=lambda: woken.append(agents[0].client.desired(baseline.version, wait=25)))
    poll.start()
    time.sleep(0.3)
    release = admin.create_release("registry:5000/web", DIGESTS[0], spec(max_parallel="2", monitor=0.1))
    deployment = admin.create_deployment(release.id, "production")
    poll.join(timeout=10)
    assert woken and woken[0].apps[0].release_id == release.id, "the long-poll wakes up on the change"

    def finished() -> bool:
        for agent in agents:
            agent.sync()
        return admin.get_deployment(deployment.id).status == "succeeded"

    wait_for(finished, timeout=30, what="the deployment to succeed")
    assert admin.get_deployment(deployment.id).total_waves == 2
    assert {entry.action for entry in admin.audit()} >= {"deployment.create", "deployment.succeeded"}
