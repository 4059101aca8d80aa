"""Worker processes on the in-memory host: a deploy starts the new workers before the switch and asks
the old ones to finish with their own signal and timeout, a crash-looping worker fails the deploy, a
rollback rolls them back, a crash after each command converges, and no command kills an old worker
before its stop timeout ends (a fake clock: `now` given to the recovery)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from host_fakes import DIGESTS, REPOSITORY, FakeHost, app_spec, fake_host, now
from test_host_interpreter import Crash, Recorder, deploy, release_of, serving

from shipyard.domain import commands as cmd
from shipyard.domain.commands import container_name, worker_container_name
from shipyard.domain.plan import plan_recovery, plan_swap
from shipyard.domain.spec import AppSpec, spec_snapshot
from shipyard.errors import DeployFailedError
from shipyard.host import maintenance, service
from shipyard.host.interpreter import Interpreter
from shipyard.host.observe import observe
from shipyard.host.status_view import processes_document

WORKER: dict[str, Any] = {
    "command": ["sh", "-c", "work"],
    "stop_signal": "TSTP",
    "stop_timeout": 600,
    "health": {"running_for": 0.05},
}


@pytest.fixture
def host(tmp_path: Path) -> Iterator[FakeHost]:
    fake = fake_host(tmp_path / "home")
    yield fake
    fake.close()


def worker_spec(**process: Any) -> AppSpec:
    return app_spec(processes={"web": {}, "worker": {**WORKER, **process}})


def worker(release: str, number: int = 1) -> str:
    return worker_container_name("web", release, "worker", number)


def running_workers(host: FakeHost) -> list[str]:
    return [name for name in host.engine.running("web") if "-worker-" in name]


def assert_workers_converged(host: FakeHost, spec: AppSpec) -> None:
    """One slot serves; the active release's web and worker run; any other running worker is one
    asked to finish (recorded, signalled); no record is left 'running'."""
    record = host.store.app(spec.app)
    assert record is not None and record.active_release_id and record.active_slot
    assert serving(host) == [record.active_slot]
    web = [n for n in host.engine.running("web") if "-worker-" not in n]
    assert web == [container_name("web", record.active_release_id, record.active_slot)]
    stops = host.store.worker_stops("web")
    prefix = f"shipyard-web-{record.active_release_id}-"
    active_workers = [n for n in running_workers(host) if n.startswith(prefix) and n not in stops]
    assert len(active_workers) == 1
    for name in running_workers(host):
        if name not in active_workers:
            assert name in stops and stops[name].signalled, f"{name} runs without being asked to stop"
    assert all(entry.status != "running" for entry in host.store.history("web"))


# the plan -----------------------------------------------------------------------------------------


def test_workers_start_and_pass_their_health_before_the_switch_and_old_ones_stop_after(
    host: FakeHost,
) -> None:
    spec = worker_spec()
    deploy(host, spec, "v1")
    state = observe(host.context, "web", REPOSITORY)
    plan = plan_swap(release_of(host, spec, "v2"), state)
    kinds = [type(step).__name__ for step in plan.steps]
    assert kinds == [
        "BeginHistory",
        "Pull",
        "StartContainer",
        "WaitHealthy",
        "StartWorker",
        "WaitWorkerHealthy",
        "SwitchBackend",
        "Drain",
        "StopContainer",
        "StopWorker",
        "FinishHistory",
    ]
    start = plan.steps[4]
    assert isinstance(start, cmd.StartWorker)
    assert start.container.name == worker("r2") and start.container.command == ["sh", "-c", "work"]
    assert start.container.stop_signal == "TSTP" and start.container.ports == {}
    assert start.container.labels["shipyard.process"] == "worker"
    stop = plan.steps[9]
    assert stop == cmd.StopWorker("web", "worker", worker("r1"), "TSTP", 600)
    assert "SIGTSTP" in stop.describe()


def test_a_single_process_app_plans_exactly_as_before(host: FakeHost) -> None:
    spec = app_spec()
    deploy(host, spec, "v1")
    plan = plan_swap(release_of(host, spec, "v2"), observe(host.context, "web", REPOSITORY))
    assert not any(isinstance(s, cmd.StartWorker | cmd.StopWorker) for s in plan.steps)
    assert "processes" not in spec_snapshot(spec)  # its releases read as they always did


def test_a_process_for_other_hosts_does_not_run_here(host: FakeHost) -> None:
    spec = worker_spec(hosts={"role": "jobs"})
    release = release_of(host, spec, "v1")
    service.deploy(host.context, spec, release.pinned_image, release=release, host_labels={"role": "web"})
    assert running_workers(host) == []
    release2 = release_of(host, spec, "v2")
    service.deploy(host.context, spec, release2.pinned_image, release=release2, host_labels={"role": "jobs"})
    assert running_workers(host) == [worker("r2")]


# deploy, failure, rollback ------------------------------------------------------------------------


def test_a_deploy_rolls_the_worker_and_the_old_one_gets_its_signal_not_a_kill(host: FakeHost) -> None:
    spec = worker_spec()
    deploy(host, spec, "v1")
    assert running_workers(host) == [worker("r1")]
    deploy(host, spec, "v2")
    assert_workers_converged(host, spec)
    old = host.engine.by_name[worker("r1")]
    assert old.status == "running" and old.signals == ["TSTP"]  # still finishing its jobs
    assert worker("r1") not in host.engine.killed
    stop = host.store.worker_stops("web")[worker("r1")]
    assert timedelta(seconds=590) < stop.deadline - now() <= timedelta(seconds=600)
    assert ("web", 600) in host.reaper.spawned  # the reaper comes back after the deadline
    assert host.store.history("web")[0].status == "succeeded"


def test_a_crash_looping_worker_fails_the_deploy_and_the_old_release_keeps_running(host: FakeHost) -> None:
    spec = worker_spec()
    deploy(host, spec, "v1")
    host.engine.crash_looping.add("worker")
    with pytest.raises(DeployFailedError, match="worker process of release r2 failed its health check"):
        deploy(host, spec, "v2")
    host.engine.crash_looping.clear()
    assert serving(host) == ["blue"]
    assert worker("r2") not in host.engine.by_name  # the new worker is removed
    assert container_name("web", "r2", "green") not in host.engine.by_name  # and the new web
    assert running_workers(host) == [worker("r1")] and host.engine.by_name[worker("r1")].signals == []
    assert host.store.history("web")[0].status == "failed"


def test_a_failing_exec_health_command_fails_the_deploy(host: FakeHost) -> None:
    spec = worker_spec(health={"exec": ["test", "-f", "/tmp/ready"], "timeout": 0.1})
    host.engine.exec_codes["worker"] = 1
    with pytest.raises(DeployFailedError, match="its health command exited 1"):
        deploy(host, spec, "v1")
    assert running_workers(host) == []


def test_rollback_starts_the_older_releases_worker_beside_its_finishing_one(host: FakeHost) -> None:
    spec = worker_spec()
    deploy(host, spec, "v1")
    deploy(host, spec, "v2")  # r1's worker is still finishing its jobs (600 s)
    outcome = service.rollback(host.context, spec)
    assert outcome.release is not None and outcome.release.id == "r1"
    assert_workers_converged(host, spec)
    # A new container of r1's worker: the one finishing keeps its name, its record and its time.
    assert worker("r1", 2) in running_workers(host)
    assert host.engine.by_name[worker("r1")].status == "running" and worker("r1") not in host.engine.killed
    assert host.engine.by_name[worker("r2")].signals == ["TSTP"]


# never killed early -------------------------------------------------------------------------------


def test_no_recovery_kills_an_old_worker_before_its_deadline_and_one_after_it_does(host: FakeHost) -> None:
    spec = worker_spec()
    deploy(host, spec, "v1")
    deploy(host, spec, "v2")
    deadline = host.store.worker_stops("web")[worker("r1")].deadline
    state = observe(host.context, "web", REPOSITORY)
    standbys = host.store.standbys("web")
    for moment in (now(), deadline - timedelta(seconds=1), deadline - timedelta(microseconds=1)):
        plan = plan_recovery(state, None, standbys, moment)
        assert not any(getattr(step, "container", None) == worker("r1") for step in plan.steps), moment
    late = plan_recovery(state, None, standbys, deadline)
    assert cmd.RemoveContainer(worker("r1"), "its stop timeout has passed") in late.steps
    # Every command of the host runs a recovery: none of them touches it meanwhile.
    deploy(host, spec, "v3")
    maintenance.prune(host.context, spec)
    service.status(host.context, "web")
    assert host.engine.by_name[worker("r1")].status == "running" and worker("r1") not in host.engine.killed


def test_an_old_worker_that_finished_is_removed_and_its_record_dropped(host: FakeHost) -> None:
    spec = worker_spec()
    host.engine.quick_to_exit = True
    deploy(host, spec, "v1")
    deploy(host, spec, "v2")
    assert host.engine.by_name[worker("r1")].status == "exited"
    service.recover(host.context, "web", REPOSITORY)
    assert worker("r1") not in host.engine.by_name and worker("r1") not in host.engine.killed
    assert host.store.worker_stops("web") == {}


def test_a_stop_recorded_but_never_signalled_is_signalled_again(host: FakeHost) -> None:
    spec = worker_spec()
    deploy(host, spec, "v1")
    deploy(host, spec, "v2")
    # A crash between the record and the signal: the record says not signalled, the worker runs.
    host.store.add_worker_stop("web", worker("r1"), now() + timedelta(seconds=600))
    host.engine.by_name[worker("r1")].signals.clear()
    service.recover(host.context, "web", REPOSITORY)
    assert host.engine.by_name[worker("r1")].signals == ["TSTP"]
    assert host.store.worker_stops("web")[worker("r1")].signalled


def test_the_start_of_a_worker_never_replaces_one_that_is_finishing(host: FakeHost) -> None:
    spec = worker_spec()
    deploy(host, spec, "v1")
    deploy(host, spec, "v2")
    r1 = host.store.release("web", "r1")
    command = cmd.StartWorker("worker", "r1", r1.short_digest, _worker_container(host, "r1"))
    with pytest.raises(Exception, match="still finishing after its stop signal"):
        Interpreter(host.context, "web").run([command])
    assert host.engine.by_name[worker("r1")].status == "running"


def _worker_container(host: FakeHost, release_id: str) -> Any:
    from shipyard.domain.plan import start_worker

    release = host.store.release("web", release_id)
    return start_worker("web", release, "worker", worker(release_id), {}).container


# crashes ------------------------------------------------------------------------------------------

DEPLOY_LENGTH = (
    11  # begin, pull, start, wait, start worker, wait worker, switch, drain, stop, stop worker, finish
)


@pytest.mark.parametrize("crash_after", range(1, DEPLOY_LENGTH + 1))
def test_a_crash_after_any_command_of_a_worker_deploy_is_recovered(host: FakeHost, crash_after: int) -> None:
    spec = worker_spec()
    deploy(host, spec, "v1")
    with pytest.raises(Crash):
        deploy(host, spec, "v2", Recorder(crash_after=crash_after))
    document = service.status(host.context, "web")
    assert_workers_converged(host, spec)
    switched = crash_after >= 7  # the switch is the seventh command
    assert document["active_release"]["id"] == ("r2" if switched else "r1")
    if not switched:
        assert worker("r2") not in host.engine.by_name
        assert host.engine.by_name[worker("r1")].signals == []
    else:
        assert host.engine.by_name[worker("r1")].signals == ["TSTP"]
        assert worker("r1") not in host.engine.killed
    deploy(host, spec, "v3")
    assert_workers_converged(host, spec)
    assert host.store.app("web").active_release_id == "r3"  # type: ignore[union-attr]


def test_the_worker_deploy_has_the_commands_the_crash_test_walks(host: FakeHost) -> None:
    spec = worker_spec()
    deploy(host, spec, "v1")
    release = release_of(host, spec, "v2")
    plan = service.deploy(host.context, spec, release.pinned_image, release=release, dry_run=True).plan
    assert len(plan.steps) == DEPLOY_LENGTH


# maintenance, prune, remove, status ---------------------------------------------------------------


def test_stop_and_start_cover_the_workers(host: FakeHost) -> None:
    spec = worker_spec()
    deploy(host, spec, "v1")
    plan = maintenance.stop_app(host.context, "web")
    assert cmd.StopContainer(worker("r1"), 600) in plan.steps
    assert running_workers(host) == []
    maintenance.start_app(host.context, "web")
    assert running_workers(host) == [worker("r1")] and serving(host) == ["blue"]


def test_prune_and_remove_cover_the_workers(host: FakeHost) -> None:
    spec = app_spec(processes={"worker": WORKER}, deploy={"keep_releases": 1})
    deploy(host, spec, "v1")
    maintenance.stop_app(host.context, "web")  # r1's worker exits without a stop record
    deploy(host, spec, "v2")
    deploy(host, spec, "v3")  # r2's worker is finishing after its signal: the reaper's, not prune's
    removed = maintenance.prune(host.context, spec)
    assert worker("r1") in removed and worker("r1") not in host.engine.by_name
    assert worker("r2") not in removed and host.engine.by_name[worker("r2")].status == "running"
    maintenance.remove_app(host.context, "web")
    assert host.engine.containers("web") == []


def test_status_shows_each_process_and_a_finishing_worker(host: FakeHost) -> None:
    spec = worker_spec()
    deploy(host, spec, "v1")
    deploy(host, spec, "v2")
    document = service.status(host.context, "web")
    processes = document["processes"]
    assert [c["release"] for c in processes["web"] if c["status"] == "running"] == ["r2"]
    by_name = {c["name"]: c for c in processes["worker"]}
    assert by_name[worker("r2")]["status"] == "running" and by_name[worker("r2")]["stop_deadline"] is None
    assert by_name[worker("r1")]["status"] == "stopping" and by_name[worker("r1")]["stop_deadline"]
    assert processes == processes_document(observe(host.context, "web", REPOSITORY))


def test_the_digests_used_are_the_releases(host: FakeHost) -> None:
    spec = worker_spec()
    deploy(host, spec, "v1")
    info = {c.name: c for c in host.engine.containers("web")}
    assert info[worker("r1")].digest == DIGESTS["v1"] == info[container_name("web", "r1", "blue")].digest


def test_the_reaper_retries_while_a_deploy_holds_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.errors import LockedError
    from shipyard.host import reaper
    from shipyard.host.lock import app_lock

    home = tmp_path / "home"
    home.mkdir()
    pauses: list[float] = []
    monkeypatch.setattr(reaper.time, "sleep", pauses.append)
    with app_lock(home / "locks", "web", "tester", "deploy"), pytest.raises(LockedError):
        reaper.reap("web", home, retries=3, pause=0.5)
    assert pauses == [0.5, 0.5, 0.5]


# the agent ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("labels", "runs"), [({"role": "jobs"}, True), ({"role": "web"}, False)])
def test_the_agent_runs_a_process_only_where_its_labels_select_it(
    host: FakeHost, labels: dict[str, str], runs: bool
) -> None:
    from shipyard.agent.local_host import LocalHost
    from shipyard.fleet_api.schemas.agent import DesiredApp

    spec = worker_spec(hosts={"role": "jobs"})
    desired = DesiredApp(
        app="web",
        release_id=7,
        release="r7",
        image=REPOSITORY,
        digest=DIGESTS["v1"],
        spec=spec_snapshot(spec),
        deployment_id=3,
    )
    LocalHost(host.context, labels=labels).converge(desired, Recorder())
    assert serving(host) == ["blue"]
    assert running_workers(host) == ([worker_container_name("web", "r7", "worker")] if runs else [])
