"""The agent's prunes: once per new prune asked for, after the swaps, reported with the free disk."""

from __future__ import annotations

from test_agent_fakes import FakeController, FakeHost, desired_app
from test_agent_loop import Clock, make_loop

from shipyard.agent.plan import prunes_due
from shipyard.agent.ports import LocalApp
from shipyard.errors import DockerError, LockedError


def pruning(prune: int | None, release_id: int = 2) -> object:
    return desired_app(release_id=release_id).model_copy(update={"prune": prune})


def test_prunes_due_are_the_apps_with_a_newer_prune_than_the_last_carried_out() -> None:
    web = desired_app("web").model_copy(update={"prune": 4})
    api = desired_app("api").model_copy(update={"prune": 2})
    never = desired_app("db")
    assert prunes_due([web, api, never], {"web": 4, "api": 1}) == [api]
    assert prunes_due([web, api, never], {}) == [web, api]


def test_a_new_prune_runs_once_and_reports_what_was_removed_and_the_free_disk() -> None:
    controller, clock = FakeController(), Clock()
    host = FakeHost(running={"web": LocalApp("r2", running=True, healthy=True)})
    host.prune_removes = ["web-r1-blue", "127.0.0.1:5000/web@sha256:" + "1" * 64]
    controller.set_desired(pruning(7))
    loop = make_loop(controller, host, clock)
    loop.run_once()
    loop.run_once()  # the same prune again: nothing more happens
    assert host.pruned == [("web", 7)]
    [report] = controller.prunes
    assert (report.app, report.prune, report.outcome, report.removed) == (
        "web",
        7,
        "succeeded",
        host.prune_removes,
    )
    assert controller.disk_free[-1] == 5_002_000_000  # measured again after the prune
    controller.set_desired(pruning(8))
    loop.run_once()
    assert host.pruned == [("web", 7), ("web", 8)]


def test_a_prune_runs_after_the_swap_so_the_new_release_is_the_one_kept() -> None:
    controller, clock = FakeController(), Clock()
    host = FakeHost(running={"web": LocalApp("r1", running=True, healthy=True)})
    order: list[str] = []
    host.on_converge = lambda: order.append("swap")
    controller.set_desired(pruning(3, release_id=2))
    original = host.prune

    def prune(desired: object) -> list[str]:
        order.append("prune")
        return original(desired)  # type: ignore[arg-type]

    host.prune = prune  # type: ignore[method-assign]
    make_loop(controller, host, clock).run_once()
    assert order == ["swap", "prune"]


def test_a_locked_app_is_pruned_on_a_later_pass_and_a_failed_prune_is_reported_once() -> None:
    controller, clock = FakeController(), Clock()
    host = FakeHost(running={"web": LocalApp("r2", running=True, healthy=True)})
    host.prune_error = LockedError("web is locked by someone (pid 1, deploy) since now; wait for it.")
    controller.set_desired(pruning(5))
    loop = make_loop(controller, host, clock)
    loop.run_once()
    assert controller.prunes == [] and loop.pruned == {}
    host.prune_error = DockerError("removing container web-r1-blue failed: engine away.")
    loop.run_once()
    loop.run_once()
    [report] = controller.prunes
    assert report.outcome == "failed" and "engine away" in report.message and report.removed == []
    assert host.pruned == [("web", 5)] * 2 and loop.pruned == {"web": 5}


def test_a_prune_report_waits_while_the_controller_is_away_and_is_sent_once_it_answers() -> None:
    controller, clock = FakeController(), Clock()
    host = FakeHost(running={"web": LocalApp("r2", running=True, healthy=True)})
    controller.set_desired(pruning(9))
    original = host.prune

    def prune_while_the_controller_goes_away(desired: object) -> list[str]:
        controller.reachable = False
        return original(desired)  # type: ignore[arg-type]

    host.prune = prune_while_the_controller_goes_away  # type: ignore[method-assign]
    loop = make_loop(controller, host, clock)
    loop.run_once()
    assert controller.prunes == [] and "web" in loop.reports.prunes
    controller.reachable = True
    assert loop.reports.flush()
    assert [r.prune for r in controller.prunes] == [9] and loop.reports.prunes == {}
