"""The real thing: `shipyard controller` on uvicorn in a subprocess, reached over TCP with the client."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from controller_fixtures import DIGESTS, FakeAgent, ServedController, served_controller, spec, wait_for

from shipyard.fleet_api.schemas.agent import DesiredState
from shipyard.lab.tls import TlsFiles

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]


@pytest.fixture
def served(controller_db_url: str, tmp_path: Path, controller_tls: TlsFiles) -> Iterator[ServedController]:
    """A controller process started through the CLI command, serving https."""
    with served_controller(controller_db_url, tmp_path, controller_tls) as controller:
        yield controller
    assert controller.admin_token not in controller.output, "the admin token must never reach the log"


def test_deployment_over_real_https_with_long_polling_agents(served: ServedController) -> None:
    admin = served.client(served.admin_token)
    agents = []
    for name in ("h1", "h2", "h3"):
        registered = served.client().register_agent(admin.create_join_token("production").token, name)
        agents.append(FakeAgent(name, registered.agent_token, served.client(registered.agent_token)))
    baseline = agents[0].client.desired()
    woken: list[DesiredState] = []
    poll = threading.Thread(target=lambda: woken.append(agents[0].client.desired(baseline.version, wait=25)))
    poll.start()
    time.sleep(0.3)
    release = admin.create_release("registry:5000/web", DIGESTS[0], spec(max_parallel="2", monitor=0.1))
    deployment = admin.create_deployment(release.id, "production")
    poll.join(timeout=30)
    assert woken and woken[0].apps[0].release_id == release.id, "the long-poll wakes up on the change"

    def finished() -> bool:
        for agent in agents:
            agent.sync()
        return admin.get_deployment(deployment.id).status == "succeeded"

    wait_for(finished, timeout=30, what="the deployment to succeed")
    assert admin.get_deployment(deployment.id).total_waves == 2
    assert {entry.action for entry in admin.audit()} >= {"deployment.create", "deployment.succeeded"}
