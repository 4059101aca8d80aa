"""The agent's day-two work on fakes: the prune after each successful deployment, and maintenance."""

from __future__ import annotations

from test_agent_fakes import FakeController, FakeHost, desired_app
from test_agent_loop import Clock, make_loop

from shipyard.agent.plan import MaintenanceChange, maintenance_due
from shipyard.agent.ports import LocalApp
from shipyard.errors import DockerError
from shipyard.fleet_api.schemas.agent import DesiredApp, DesiredMaintenance


def in_maintenance(message: str = "", release_id: int = 2) -> DesiredApp:
    return desired_app(release_id=release_id).model_copy(
        update={"maintenance": DesiredMaintenance(message=message)}
    )


def test_a_successful_swap_is_reported_first_then_the_app_is_pruned_and_the_free_disk_reported() -> None:
    controller, clock = FakeController(), Clock()
    host = FakeHost(running={"web": LocalApp("r1", running=True, healthy=True)})
    host.prune_removes = ["shipyard-web-r1-blue"]
    events: list[str] = []
    original_report, original_prune = controller.report, host.prune

    def report(apps, **kwargs):  # type: ignore[no-untyped-def]
        events.extend(f"report {a.outcome} {a.step}" for a in apps)
        return original_report(apps, **kwargs)

    def prune(desired: DesiredApp) -> list[str]:
        events.append("prune")
        return original_prune(desired)

    controller.report = report  # type: ignore[method-assign]
    host.prune = prune  # type: ignore[method-assign]
    controller.set_desired(desired_app(release_id=2))
    make_loop(controller, host, clock).run_once()
    assert host.pruned == [("web", None)]  # the host's own prune, not a requested one
    assert events.index("report succeeded done") < events.index("prune")
    assert controller.disk_free[-1] == 5_001_000_000  # measured after the prune
    assert controller.prunes == []  # nothing to answer: no prune was requested


def test_no_prune_after_a_failed_swap_nor_when_the_app_is_already_in_sync() -> None:
    controller, clock = FakeController(), Clock()
    host = FakeHost(running={"web": LocalApp("r1", running=True, healthy=True)}, broken={"r2"})
    controller.set_desired(desired_app(release_id=2))
    loop = make_loop(controller, host, clock)
    loop.run_once()
    assert host.converged == ["r2"] and host.pruned == []
    controller.set_desired(desired_app(release_id=1))
    loop.run_once()  # r1 serves already: no swap, no prune
    assert host.pruned == []


def test_a_failed_prune_after_a_deployment_is_reported_but_the_deployment_stays_succeeded() -> None:
    controller, clock = FakeController(), Clock()
    host = FakeHost(running={"web": LocalApp("r1", running=True, healthy=True)})
    host.prune_error = DockerError("the engine refused to remove image web@sha256:1 (conflict).")
    controller.set_desired(desired_app(release_id=2))
    make_loop(controller, host, clock).run_once()
    final = controller.last_report()
    assert (final.outcome, final.active_release, final.health) == ("succeeded", 2, "healthy")
    assert "the prune after it failed: the engine refused" in final.message


def test_a_requested_prune_in_the_same_pass_is_not_doubled_by_the_one_after_the_deployment() -> None:
    controller, clock = FakeController(), Clock()
    host = FakeHost(running={"web": LocalApp("r1", running=True, healthy=True)})
    controller.set_desired(desired_app(release_id=2).model_copy(update={"prune": 4}))
    make_loop(controller, host, clock).run_once()
    assert host.pruned == [("web", 4)]


def test_maintenance_due_enters_shows_a_new_message_leaves_and_skips_apps_not_served_here() -> None:
    serving = LocalApp("r2", running=True, healthy=True)
    resting = LocalApp("r2", running=True, maintenance=True)
    wanted = in_maintenance("back at 10:00")
    assert maintenance_due([wanted], {"web": serving}, {}) == [
        MaintenanceChange(wanted, True, "back at 10:00")
    ]
    assert maintenance_due([wanted], {"web": resting}, {"web": "back at 10:00"}) == []
    assert maintenance_due([wanted], {"web": resting}, {"web": "old"}) == [
        MaintenanceChange(wanted, True, "back at 10:00")
    ]
    plain = desired_app(release_id=2)
    assert maintenance_due([plain], {"web": resting}, {}) == [MaintenanceChange(plain, False)]
    assert maintenance_due([plain], {"web": serving}, {}) == []
    assert maintenance_due([wanted], {}, {}) == []  # nothing serves here yet


def test_the_environment_s_maintenance_is_entered_once_reported_and_left_when_lifted() -> None:
    controller, clock = FakeController(), Clock()
    host = FakeHost(running={"web": LocalApp("r2", running=True, healthy=True)})
    controller.set_desired(in_maintenance("upgrading the database"))
    loop = make_loop(controller, host, clock)
    loop.run_once()
    report = controller.last_report()
    assert (report.step, report.outcome, report.maintenance) == ("maintenance", "succeeded", True)
    assert report.health == "healthy"  # the containers run: a rollout during maintenance can finish
    loop.run_once()
    assert host.maintenance_changes == [("web", True, "upgrading the database")]
    assert host.converged == []  # the containers kept running: nothing to converge
    assert controller.last_report().maintenance is True
    controller.set_desired(in_maintenance("back at 10:00"))
    loop.run_once()
    controller.set_desired(desired_app(release_id=2))
    loop.run_once()
    assert host.maintenance_changes[1:] == [("web", True, "back at 10:00"), ("web", False, "")]
    assert controller.last_report().maintenance is False
