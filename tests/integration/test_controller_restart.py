"""A controller restarted mid-deployment continues it from the database alone."""

from __future__ import annotations

import pytest
from controller_fixtures import DIGESTS, FakeAgent, controller_settings, running_controller, spec, wait_for

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]


def test_restart_mid_deployment_continues_where_it_stopped(controller_db_url: str) -> None:
    settings = controller_settings(controller_db_url)
    agents: list[FakeAgent] = []
    with running_controller(settings) as first:
        agents = [first.add_agent(name) for name in ("h1", "h2", "h3")]
        target = first.admin.create_release(
            "registry:5000/web", DIGESTS[0], spec(max_parallel="1", monitor=0.1)
        )
        deployment = first.admin.create_deployment(target.id, "production")

        def in_second_wave() -> bool:
            first.sync_all()
            return first.admin.get_deployment(deployment.id).current_wave >= 2

        wait_for(in_second_wave, what="the second wave")
    # The first controller is gone; nothing of it survives but the database.
    with running_controller(settings) as second:
        second.adopt(agents)
        resumed = second.admin.get_deployment(deployment.id)
        assert resumed.status == "running" and resumed.current_wave >= 2
        assert second.deploy_until(deployment.id, {"succeeded", "failed", "rolled_back"}) == "succeeded"
        final = second.admin.get_deployment(deployment.id)
        assert final.current_wave == 3 and {h.outcome for h in final.hosts} == {"succeeded"}
        assert [h.name for h in second.admin.hosts()] == ["h1", "h2", "h3"]
