"""The agent's loop with a fake controller and a fake host: what it converges, reports and retries."""

from __future__ import annotations

from test_agent_fakes import FakeController, FakeHost, desired_app

from shipyard.agent.backoff import Backoff
from shipyard.agent.loop import AgentLoop
from shipyard.agent.ports import LocalApp


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def make_loop(controller: FakeController, host: FakeHost, clock: Clock) -> AgentLoop:
    backoff = Backoff(base=0.5, cap=8.0, draw=lambda low, high: high)
    return AgentLoop(controller, host, poll_wait=25.0, backoff=backoff, clock=clock, sleep=clock.sleep)


def test_a_new_host_converges_to_the_desired_release_and_reports_each_step() -> None:
    controller, host, clock = FakeController(), FakeHost(), Clock()
    controller.set_desired(desired_app(release_id=3))
    loop = make_loop(controller, host, clock)
    loop.run_once()
    assert host.converged == ["r3"]
    outcomes = [(r.outcome, r.step) for r in controller.reports]
    assert outcomes[0] == ("in_progress", "")  # said before the swap starts: not ready yet
    assert ("in_progress", "start") in outcomes and ("in_progress", "switch") in outcomes
    switched = [r for r in controller.reports if r.step == "switch" and r.active_release == 3]
    assert switched and switched[0].health == "healthy"  # the controller's monitor starts at the switch
    final = controller.last_report()
    assert (final.outcome, final.active_release, final.release, final.health) == (
        "succeeded",
        3,
        3,
        "healthy",
    )


def test_the_first_poll_returns_at_once_and_later_polls_long_poll_with_the_version() -> None:
    controller, host, clock = FakeController(), FakeHost(), Clock()
    loop = make_loop(controller, host, clock)
    loop.run_once()
    loop.run_once()
    assert controller.polls == [(None, 0.0), (controller.version, 25.0)]


def test_an_app_already_on_the_desired_release_is_left_alone_and_reported_healthy() -> None:
    controller, clock = FakeController(), Clock()
    host = FakeHost(running={"web": LocalApp("r2", running=True, healthy=True)})
    controller.set_desired(desired_app(release_id=2))
    make_loop(controller, host, clock).run_once()
    assert host.converged == []
    assert controller.last_report().outcome == "succeeded"


def test_a_failed_swap_is_reported_and_not_retried_before_its_retry_time() -> None:
    controller, clock = FakeController(), Clock()
    host = FakeHost(running={"web": LocalApp("r1", running=True, healthy=True)}, broken={"r2"})
    controller.set_desired(desired_app(release_id=2))
    loop = make_loop(controller, host, clock)
    loop.run_once()
    report = controller.last_report()
    assert (report.outcome, report.active_release, report.release) == ("failed", 1, 2)
    assert "health check" in report.message
    loop.run_once()
    assert host.converged == ["r2"]
    assert controller.polls[-1][1] == 25.0
    clock.now += 61
    loop.run_once()
    assert host.converged == ["r2", "r2"]


def test_the_long_poll_is_shortened_to_the_next_retry_time() -> None:
    controller, clock = FakeController(), Clock()
    host = FakeHost(running={"web": LocalApp("r1", running=True, healthy=True)}, broken={"r2"})
    controller.set_desired(desired_app(release_id=2))
    loop = make_loop(controller, host, clock)
    loop.failures.first_retry = 5.0
    loop.run_once()
    loop.run_once()
    assert controller.polls[-1] == (controller.version, 5.0)


def test_a_new_deployment_of_a_failed_release_is_tried_at_once() -> None:
    controller, clock = FakeController(), Clock()
    host = FakeHost(running={"web": LocalApp("r1", running=True, healthy=True)}, broken={"r2"})
    controller.set_desired(desired_app(release_id=2, deployment_id=7))
    loop = make_loop(controller, host, clock)
    loop.run_once()
    controller.set_desired(desired_app(release_id=2, deployment_id=8))
    loop.run_once()
    assert host.converged == ["r2", "r2"]


def test_when_the_controller_is_away_the_host_keeps_serving_and_retries_with_growing_backoff() -> None:
    controller, clock = FakeController(reachable=False), Clock()
    host = FakeHost(running={"web": LocalApp("r1", running=True, healthy=True)})
    loop = make_loop(controller, host, clock)
    for _ in range(6):
        assert loop.run_once() is None
    assert clock.slept == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert host.converged == [] and host.running["web"].active_release == "r1"
    controller.reachable = True
    controller.set_desired(desired_app(release_id=2))
    assert loop.run_once() is not None
    assert host.converged == ["r2"] and loop.backoff.failures == 0


def test_reports_made_while_the_controller_is_away_are_sent_when_it_returns() -> None:
    controller, host, clock = FakeController(), FakeHost(), Clock()
    controller.set_desired(desired_app(release_id=4))
    host.on_converge = lambda: setattr(controller, "reachable", False)  # the controller dies mid-swap
    loop = make_loop(controller, host, clock)
    loop.run_once()
    assert host.converged == ["r4"] and controller.last_report().outcome == "in_progress"
    assert controller.failed_reports == 1  # the swap tried once, then stopped waiting on the controller
    controller.reachable = True
    loop.run_once()
    final = controller.last_report()
    assert (final.outcome, final.active_release) == ("succeeded", 4)


def test_start_recovers_every_app_the_host_knows() -> None:
    host = FakeHost(running={"api": LocalApp("r1"), "web": LocalApp("r2")})
    done = make_loop(FakeController(), host, Clock()).start()
    assert host.recovered == ["api", "web"]
    assert done[0].startswith("api: removed")


def test_several_apps_are_converged_in_one_pass() -> None:
    controller, clock = FakeController(), Clock()
    host = FakeHost(running={"api": LocalApp("r5", running=True, healthy=True)})
    controller.set_desired(desired_app("api", 5), desired_app("web", 6))
    make_loop(controller, host, clock).run_once()
    assert host.converged == ["r6"]
    assert controller.last_report("api").outcome == controller.last_report("web").outcome == "succeeded"


def test_an_unexpected_failure_in_a_pass_is_logged_and_retried_after_a_backoff() -> None:
    import threading

    from shipyard.agent.runner import run_guarded

    class BrokenHost(FakeHost):
        def observe(self, app: str) -> LocalApp:
            raise RuntimeError("engine socket vanished")

    controller, clock = FakeController(), Clock()
    controller.set_desired(desired_app(release_id=2))
    loop = make_loop(controller, BrokenHost(), clock)
    stop = threading.Event()
    run_guarded(loop, stop)
    run_guarded(loop, stop)
    assert loop.backoff.failures == 2


def test_each_pass_tears_down_the_previews_its_desired_state_no_longer_holds() -> None:
    controller, host, clock = FakeController(), FakeHost(), Clock()
    controller.set_desired(desired_app(release_id=3))
    loop = make_loop(controller, host, clock)
    loop.run_once()
    assert host.teardowns == [["web"]]  # the desired apps: every preview but these goes
    controller.set_desired()
    loop.run_once()
    assert host.teardowns[-1] == []
