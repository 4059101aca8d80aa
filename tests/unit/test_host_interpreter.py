"""The host's use cases on in-memory fakes: every command kind, the swap, a crash after each command
of a deploy, maintenance, prune, remove, and a dry run that prints exactly what then runs."""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from host_fakes import DIGESTS, REPOSITORY, FakeHost, app_spec, fake_host, now

from shipyard.adapters.registry import parse_image
from shipyard.domain import commands as cmd
from shipyard.domain.commands import Command, backend_name, container_name, worker_container_name
from shipyard.domain.models import Release
from shipyard.domain.plan import run_task, start_container, start_worker, switch_to, wait_healthy
from shipyard.domain.preview_host import PreviewSettings
from shipyard.domain.spec import AppSpec, ProcessHealthSpec, parse_spec, spec_snapshot
from shipyard.errors import ConfigError, DeployFailedError, NotFoundError
from shipyard.host import maintenance, service
from shipyard.host.interpreter import Interpreter
from shipyard.host.observe import observe


@pytest.fixture
def host(tmp_path: Path) -> Iterator[FakeHost]:
    fake = fake_host(tmp_path / "home")
    yield fake
    fake.close()


class Crash(BaseException):
    """The process dies (SIGKILL): nothing after this point runs, no cleanup, no record."""


@dataclass
class Recorder:
    """A Reporter remembering what ran; crashes the process after `crash_after` commands."""

    crash_after: int | None = None
    ran: list[str] = field(default_factory=list)

    def step_started(self, step: Command) -> None:
        pass

    def step_finished(self, step: Command, seconds: float, note: str) -> None:
        self.ran.append(step.describe())
        if self.crash_after is not None and len(self.ran) >= self.crash_after:
            raise Crash(step.describe())

    def pull_progress(self, event: dict[str, Any]) -> None:
        pass


def release_of(host: FakeHost, spec: AppSpec, version: str) -> Release:
    ref = parse_image(f"{REPOSITORY}@{DIGESTS[version]}")
    return service.make_release(host.context, spec, ref, DIGESTS[version])


def deploy(host: FakeHost, spec: AppSpec, version: str, reporter: Recorder | None = None) -> service.Outcome:
    release = release_of(host, spec, version)
    return service.deploy(host.context, spec, release.pinned_image, release=release, reporter=reporter)


def serving(host: FakeHost, app: str = "web") -> list[str]:
    return host.proxy.serving(backend_name(app))


def assert_converged(host: FakeHost, spec: AppSpec) -> None:
    """One slot serves, the active release's container runs there and nothing else runs, no record
    is left 'running', and haproxy's config agrees with the store."""
    record = host.store.app(spec.app)
    assert record is not None and record.active_slot is not None and record.active_release_id
    assert serving(host, spec.app) == [record.active_slot]
    active = container_name(spec.app, record.active_release_id, record.active_slot)
    assert host.engine.running(spec.app) == [active]
    assert all(entry.status != "running" for entry in host.store.history(spec.app))
    configured = {app.name: app.active_slot for app in host.proxy.config}
    assert configured[spec.app] == record.active_slot


# every command kind -------------------------------------------------------------------------------


def command_examples(host: FakeHost, spec: AppSpec) -> dict[type, tuple[Command, Callable[[], bool]]]:
    """One command of each kind with what it must have done, on a host serving v1 in blue."""
    deploy(host, spec, "v1")
    v1 = host.store.release("web", "r1")
    v2 = release_of(host, spec, "v2")
    state = observe(host.context, "web", REPOSITORY)
    blue, green = container_name("web", "r1", "blue"), container_name("web", "r2", "green")
    other = app_spec("api")
    worker_process = {"command": ["work"], "health": {"running_for": 0.01}}
    with_worker_spec = parse_spec({**spec_snapshot(spec), "processes": {"worker": worker_process}})
    with_worker = service.make_release(
        host.context, with_worker_spec, parse_image(v2.pinned_image), v2.digest
    )
    worker = worker_container_name("web", with_worker.id, "worker")
    # A preview holds the pool's first backend: the pool is in the config from the next write on.
    host.store.allocate_preview("web-pr-1", "pr-1.web.preview.test", PreviewSettings(slots=2))
    return {
        cmd.BeginHistory: (
            cmd.BeginHistory("web", "deploy", "r2", "r1", "green", "blue", "tester"),
            lambda: host.store.pending("web") is not None,
        ),
        cmd.Pull: (cmd.Pull(REPOSITORY, DIGESTS["v2"]), lambda: host.engine.image_present(v2.pinned_image)),
        cmd.StartContainer: (
            start_container("web", v2, "green", {}),
            lambda: host.engine.running("web") == sorted([blue, green]),
        ),
        cmd.WaitHealthy: (wait_healthy("web", v2, "green"), lambda: bool(host.health.probed)),
        cmd.SwitchBackend: (
            switch_to(state, v2, "green", "blue"),
            lambda: serving(host) == ["green"] and host.store.app("web").active_release_id == "r2",  # type: ignore[union-attr]
        ),
        cmd.Drain: (
            cmd.Drain("app_web", "blue", 1.0),
            lambda: host.proxy.servers["app_web"]["blue"].admin == "maint",
        ),
        cmd.StopContainer: (
            cmd.StopContainer(blue, 1, "app_web", "blue"),
            lambda: blue not in host.engine.running("web"),
        ),
        cmd.StartWorker: (
            start_worker("web", with_worker, "worker", worker, {}),
            lambda: worker in host.engine.running("web"),
        ),
        cmd.WaitWorkerHealthy: (
            cmd.WaitWorkerHealthy("worker", with_worker.id, worker, ProcessHealthSpec(exec=["true"])),
            lambda: host.engine.execs == [(worker, ("true",))],
        ),
        cmd.StopWorker: (
            cmd.StopWorker("web", "worker", worker, "TSTP", 30),
            lambda: (
                host.engine.by_name[worker].signals == ["TSTP"]
                and host.store.worker_stops("web")[worker].signalled
            ),
        ),
        cmd.KeepStandby: (
            cmd.KeepStandby("web", blue, "r1", 30),
            lambda: blue in host.store.standbys("web") and host.reaper.spawned[-1] == ("web", 30),
        ),
        cmd.RemoveContainer: (cmd.RemoveContainer(blue, "test"), lambda: blue not in host.engine.by_name),
        cmd.RemoveImage: (
            cmd.RemoveImage(v1.pinned_image),
            lambda: v1.pinned_image in host.engine.removed_images,
        ),
        cmd.RunHook: (
            cmd.RunHook("post-deploy", "r2", "true", ("true",), {"PATH": "/usr/bin:/bin"}),
            lambda: True,  # the real subprocess ran and exited 0, or apply() raised
        ),
        cmd.RunTask: (
            run_task("release", v2, ["bin/migrate"], {}, 60.0),
            lambda: [spec.entrypoint for spec in host.engine.ran_once] == [["bin/migrate"]],
        ),
        cmd.FinishHistory: (
            cmd.FinishHistory("succeeded"),
            lambda: host.store.pending("web") is None and host.store.history("web")[0].status == "succeeded",
        ),
        cmd.EnterMaintenance: (
            cmd.EnterMaintenance("web", "app_web"),
            lambda: host.store.app("web").maintenance and serving(host) == [],  # type: ignore[union-attr]
        ),
        cmd.LeaveMaintenance: (
            cmd.LeaveMaintenance("web", "app_web", "green", ("127.0.0.1", spec.port + 1), v2),
            lambda: not host.store.app("web").maintenance and serving(host) == ["green"],  # type: ignore[union-attr]
        ),
        cmd.RegisterApp: (
            cmd.RegisterApp(other, new=True, proxy_running=True),
            lambda: "app_api" in host.proxy.servers and host.store.app("api") is not None,
        ),
        cmd.UnregisterApp: (
            cmd.UnregisterApp("api", last=False, proxy_running=True),
            lambda: "app_api" not in host.proxy.servers and host.store.app("api") is None,
        ),
        cmd.RoutePreview: (
            cmd.RoutePreview("web-pr-1", "pr-1.web.preview.test", "preview_0"),
            lambda: (
                host.proxy.routes() == {"pr-1.web.preview.test": "preview_0"}
                and host.store.preview_allocations()[0].routed
                and host.proxy.pool is not None
                and host.proxy.pool.routes == {"pr-1.web.preview.test": "preview_0"}
            ),
        ),
        cmd.UnroutePreview: (
            cmd.UnroutePreview("web-pr-1", "pr-1.web.preview.test", "preview_0"),
            lambda: (
                host.proxy.routes() == {}
                and host.proxy.servers["preview_0"]["blue"].admin == "maint"
                and not host.store.preview_allocations()[0].routed
                and host.proxy.events[-1] == "del map pr-1.web.preview.test"
            ),
        ),
        cmd.EnsureProxy: (
            cmd.EnsureProxy("test"),
            lambda: host.proxy.running() and serving(host) == ["green"],
        ),
        cmd.ForgetApp: (
            cmd.ForgetApp("web"),
            lambda: host.store.releases("web") == [] and host.store.app("web") is None,
        ),
    }


def test_every_command_kind_runs_through_the_interpreter(host: FakeHost) -> None:
    examples = command_examples(host, app_spec())
    assert set(examples) == set(typing.get_args(Command)), "a command kind without an example here"
    interpreter = Interpreter(host.context, "web")
    for kind, (command, done) in examples.items():
        if kind is cmd.EnsureProxy:
            host.proxy.kill()
        interpreter.run([command])
        assert done(), f"{kind.__name__} did not do its work"
    assert len(interpreter.timings) >= len(examples)  # one timing per command, none overwritten


def test_timings_of_two_commands_of_one_kind_are_both_kept(host: FakeHost) -> None:
    interpreter = Interpreter(host.context, "web")
    interpreter.run([cmd.RemoveContainer("a", "x"), cmd.RemoveContainer("b", "x")])
    assert set(interpreter.timings) == {"Remove", "Remove#2"}


# the swap -----------------------------------------------------------------------------------------


def test_first_deploy_registers_the_app_and_serves_blue(host: FakeHost) -> None:
    spec = app_spec()
    outcome = deploy(host, spec, "v1")
    assert_converged(host, spec)
    assert serving(host) == ["blue"] and host.engine.pulls == [f"{REPOSITORY}@{DIGESTS['v1']}"]
    assert host.proxy.events[0] == "start"
    assert "cutover" in outcome.timings
    history = host.store.history("web")
    assert [(e.kind, e.status) for e in history] == [("deploy", "succeeded")]
    assert any(line.startswith("switch haproxy to the blue slot") for line in history[0].steps)


def test_second_deploy_swaps_to_green_and_stops_blue(host: FakeHost) -> None:
    spec = app_spec()
    deploy(host, spec, "v1")
    deploy(host, spec, "v2")
    assert_converged(host, spec)
    assert serving(host) == ["green"]
    assert host.engine.by_name[container_name("web", "r1", "blue")].status == "exited"


def test_a_second_app_joins_with_a_seamless_reload(host: FakeHost) -> None:
    web, api = app_spec(), app_spec("api")
    deploy(host, web, "v1")
    deploy(host, api, "v1")
    assert host.proxy.events.count("start") == 1 and "reload" in host.proxy.events
    assert serving(host, "web") == ["blue"] and serving(host, "api") == ["blue"]


def test_a_new_app_on_another_apps_listen_address_is_refused(host: FakeHost) -> None:
    web = app_spec()
    deploy(host, web, "v1")
    clash = app_spec("api", proxy={"listen": web.proxy.listen})
    with pytest.raises(ConfigError, match="already the listen address of web"):
        deploy(host, clash, "v1")
    assert host.store.app("api") is None and "app_api" not in host.proxy.servers


def test_an_unhealthy_release_never_serves_and_is_removed(host: FakeHost) -> None:
    spec = app_spec()
    deploy(host, spec, "v1")
    host.health.failing.add(f"http://127.0.0.1:{spec.port + 1}/up")
    with pytest.raises(DeployFailedError, match="failed its health check"):
        deploy(host, spec, "v2")
    assert_converged(host, spec)
    assert serving(host) == ["blue"] and container_name("web", "r2", "green") not in host.engine.by_name
    assert host.store.history("web")[0].status == "failed"


def test_rollback_to_a_warm_standby_is_only_the_switch(host: FakeHost) -> None:
    spec = app_spec(deploy={"standby": 60})
    deploy(host, spec, "v1")
    deploy(host, spec, "v2")
    assert host.reaper.spawned == [("web", 60)]
    recorder = Recorder()
    outcome = service.rollback(host.context, spec, reporter=recorder)
    assert outcome.release is not None and outcome.release.id == "r1"
    assert not any(line.startswith("start release") for line in recorder.ran)
    assert serving(host) == ["blue"]


# a crash after each command -----------------------------------------------------------------------


def _second_deploy_length() -> int:
    return 8  # begin, pull, start, wait, switch, drain, stop, finish: checked by the test below


def test_the_second_deploy_has_the_commands_the_crash_test_walks(tmp_path: Path) -> None:
    fake = fake_host(tmp_path / "home")
    spec = app_spec()
    deploy(fake, spec, "v1")
    release = release_of(fake, spec, "v2")
    plan = service.deploy(fake.context, spec, release.pinned_image, release=release, dry_run=True).plan
    assert len(plan.steps) == _second_deploy_length()
    fake.close()


@pytest.mark.parametrize("crash_after", range(1, _second_deploy_length() + 1))
def test_a_crash_after_any_command_of_a_deploy_is_recovered(host: FakeHost, crash_after: int) -> None:
    spec = app_spec()
    deploy(host, spec, "v1")
    with pytest.raises(Crash):
        deploy(host, spec, "v2", Recorder(crash_after=crash_after))
    document = service.status(host.context, "web")  # status repairs, as after a real crash
    assert_converged(host, spec)
    active = document["active_release"]["id"]
    assert active == ("r2" if crash_after >= 5 else "r1")  # the switch is the fifth command
    deploy(host, spec, "v3")  # and the next deploy goes through
    assert_converged(host, spec)
    assert host.store.app("web").active_release_id == "r3"  # type: ignore[union-attr]


def test_haproxy_killed_is_restarted_with_the_active_slot(host: FakeHost) -> None:
    spec = app_spec()
    deploy(host, spec, "v1")
    deploy(host, spec, "v2")
    host.proxy.kill()
    _, done = service.recover(host.context, "web", REPOSITORY)
    assert done == ["start haproxy (haproxy is not running; restart it with the active slot)"]
    assert_converged(host, spec)


def test_an_expired_standby_is_stopped_by_recovery(host: FakeHost) -> None:
    spec = app_spec(deploy={"standby": 60})
    deploy(host, spec, "v1")
    deploy(host, spec, "v2")
    standby = container_name("web", "r1", "blue")
    host.store.add_standby("web", standby, "r1", now() - timedelta(seconds=1))
    service.recover(host.context, "web", REPOSITORY)
    assert host.engine.running("web") == [container_name("web", "r2", "green")]


# dry runs -----------------------------------------------------------------------------------------


def test_a_deploys_dry_run_is_exactly_what_then_runs(host: FakeHost) -> None:
    spec = app_spec(hooks={"pre-deploy": ["true"]})
    deploy(host, spec, "v1")
    release = release_of(host, spec, "v2")
    planned = service.deploy(host.context, spec, release.pinned_image, release=release, dry_run=True)
    assert serving(host) == ["blue"] and host.engine.pulls == [f"{REPOSITORY}@{DIGESTS['v1']}"]
    recorder = Recorder()
    deploy(host, spec, "v2", recorder)
    assert recorder.ran == planned.plan.describe()


def test_maintenance_dry_runs_are_exactly_what_then_runs(host: FakeHost) -> None:
    spec = app_spec()
    deploy(host, spec, "v1")
    planned = maintenance.stop_app(host.context, "web", dry_run=True)
    assert serving(host) == ["blue"]
    assert maintenance.stop_app(host.context, "web").describe() == planned.describe()
    planned = maintenance.start_app(host.context, "web", dry_run=True)
    assert host.engine.running("web") == []
    assert maintenance.start_app(host.context, "web").describe() == planned.describe()


# maintenance, prune, remove -----------------------------------------------------------------------


def test_stop_answers_with_the_maintenance_page_and_start_serves_again(host: FakeHost) -> None:
    spec = app_spec()
    deploy(host, spec, "v1")
    plan = maintenance.stop_app(host.context, "web")
    assert [type(s) for s in plan.steps] == [cmd.EnterMaintenance, cmd.StopContainer]
    assert serving(host) == [] and host.engine.running("web") == []
    record = host.store.app("web")
    assert record is not None and record.maintenance
    assert next(a for a in host.proxy.config if a.name == "web").maintenance
    assert maintenance.stop_app(host.context, "web").empty  # twice: nothing more to do
    plan = maintenance.start_app(host.context, "web", secrets={})
    assert [type(s) for s in plan.steps] == [cmd.StartContainer, cmd.WaitHealthy, cmd.LeaveMaintenance]
    assert_converged(host, spec)
    assert not host.store.app("web").maintenance  # type: ignore[union-attr]


def test_start_without_an_active_release_is_refused(host: FakeHost) -> None:
    with pytest.raises(NotFoundError, match="never been deployed"):
        maintenance.start_app(host.context, "web")


def test_prune_removes_old_releases_containers_and_images(host: FakeHost) -> None:
    spec = app_spec(deploy={"keep_releases": 1})
    for version in ("v1", "v2", "v3"):
        deploy(host, spec, version)
    planned, would_remove = maintenance.prune_plan(host.context, spec, dry_run=True)
    removed = maintenance.prune(host.context, spec)
    assert removed == would_remove
    r1 = f"{REPOSITORY}@{DIGESTS['v1']}"
    assert container_name("web", "r1", "blue") in removed and r1 in removed
    assert host.engine.removed_images == [r1]
    assert container_name("web", "r1", "blue") not in host.engine.by_name
    assert [type(s) for s in planned.steps] == [cmd.RemoveContainer, cmd.RemoveImage]
    assert maintenance.prune(host.context, spec) == []  # the previous release r2 and r3 are kept
    assert_converged(host, spec)


def test_remove_takes_the_last_app_off_and_stops_haproxy(host: FakeHost) -> None:
    spec = app_spec()
    deploy(host, spec, "v1")
    deploy(host, spec, "v2")
    planned = maintenance.remove_app(host.context, "web", dry_run=True)
    assert serving(host) == ["green"]
    plan = maintenance.remove_app(host.context, "web")
    assert plan.describe() == planned.describe()
    assert isinstance(plan.steps[0], cmd.UnregisterApp) and plan.steps[0].last
    assert host.engine.by_name == {} and host.engine.present_digests(REPOSITORY) == frozenset()
    assert not host.proxy.running() and host.proxy.events[-1] == "stop"
    assert (
        host.store.app("web") is None and host.store.releases("web") == [] and host.store.history("web") == []
    )
    with pytest.raises(NotFoundError, match="not on this host"):
        maintenance.remove_app(host.context, "web")


def test_remove_of_one_app_leaves_the_other_serving(host: FakeHost) -> None:
    web, api = app_spec(), app_spec("api")
    deploy(host, web, "v1")
    deploy(host, api, "v1")
    maintenance.remove_app(host.context, "api")
    assert host.proxy.running() and "app_api" not in host.proxy.servers
    assert [a.name for a in host.proxy.config] == ["web"]
    assert_converged(host, web)
    # web's image is the same content as api's, but api's own release image is gone only if unused
    assert host.engine.running("api") == []


def test_remove_after_a_crash_midway_finishes_the_job(host: FakeHost) -> None:
    spec = app_spec()
    deploy(host, spec, "v1")
    plan = maintenance.remove_app(host.context, "web", dry_run=True)
    Interpreter(host.context, "web").run(plan.steps[:1])  # crashed after leaving haproxy
    maintenance.remove_app(host.context, "web")
    assert host.engine.by_name == {} and host.store.releases("web") == []
