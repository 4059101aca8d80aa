"""What the agent reports is always what the controller accepts, whatever a failed step printed."""

from __future__ import annotations

from shipyard.agent.ports import LocalApp
from shipyard.agent.reporting import MAX_MESSAGE, app_report
from shipyard.fleet_api.schemas.agent import AgentReport, DesiredApp

DESIRED = DesiredApp(
    app="web",
    release_id=7,
    release="r7",
    image="registry:5000/web",
    digest="sha256:" + "0" * 64,
    spec={},
    deployment_id=None,
)


def test_nul_and_control_characters_are_replaced_not_sent() -> None:
    report = app_report(
        DESIRED,
        LocalApp("r6", running=True, healthy=True),
        "failed",
        step="health\ncheck\x00",
        message="exit 1:\nboom\x00" + "x" * 3000,
    )
    assert report.step == "health check "
    assert report.message.startswith("exit 1:\nboom ") and "\x00" not in report.message
    assert len(report.message) == MAX_MESSAGE
    # The body the controller validates accepts it as it is.
    assert AgentReport.model_validate_json(AgentReport(apps=[report]).model_dump_json()).apps == [report]


def test_a_local_release_name_that_is_no_controller_id_is_reported_as_none() -> None:
    for name in ("r" + "9" * 30, "r\u0661\u0662", "local-1"):
        assert app_report(DESIRED, LocalApp(name), None).active_release is None
    assert app_report(DESIRED, LocalApp("r12"), None).active_release == 12
