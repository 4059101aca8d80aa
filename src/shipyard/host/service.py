"""The host's use cases: deploy, rollback, recover, status. Observe -> plan -> interpret -> record.

Each public function is one command a user (or the agent) runs; all of them are safe to run again
after a crash at any point, because each starts by recovering the host to one serving slot.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from shipyard.adapters.registry import Credentials, parse_image, registry_credentials
from shipyard.adapters.registry import resolve_digest as registry_digest
from shipyard.domain.commands import (
    RemoveContainer,
    StartContainer,
    StartWorker,
    StopContainer,
    SwitchBackend,
    container_name,
)
from shipyard.domain.models import AppState, HistoryKind, ImageRef, Release
from shipyard.domain.plan import Plan, SwapContext, plan_proxy, plan_recovery, plan_swap
from shipyard.domain.plan import run_task as plan_task
from shipyard.domain.spec import AppSpec, RegistrySpec
from shipyard.errors import ConfigError, LockedError, NotFoundError, ShipyardError
from shipyard.host.context import HostContext
from shipyard.host.interpreter import Interpreter, Reporter, SilentReporter, port_taken
from shipyard.host.lock import app_lock
from shipyard.host.observe import observe
from shipyard.host.oplog import host_logger
from shipyard.host.policy import HostPolicy
from shipyard.host.records import utcnow
from shipyard.host.status_view import status_document
from shipyard.secrets.masking import mask


@dataclass
class Outcome:
    release: Release | None
    plan: Plan
    history_id: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    recovered: list[str] = field(default_factory=list)


def host_registry_credentials(spec: RegistrySpec, config_dir: Path | None) -> Credentials | None:
    """The registry login on a host: names from the environment, files where the build reads them
    (relative to the directory of shipyard.yml; the path the host's policy judges)."""
    return registry_credentials(spec, None, config_dir)


def resolve_digest(spec: AppSpec, ref: ImageRef, context: HostContext) -> str:
    """The digest to deploy: from the registry, or (for a digest already on the host) no registry needed."""
    if ref.digest and context.engine.image_present(f"{ref.name}@{ref.digest}"):
        return ref.digest
    return registry_digest(spec.registry, ref, host_registry_credentials(spec.registry, context.config_dir))


@contextmanager
def locked(context: HostContext, app: str, what: str, wait: bool) -> Iterator[None]:
    with app_lock(context.lock_dir, app, context.actor, what, wait=wait):
        yield


def recover(context: HostContext, app: str, repository: str | None = None) -> tuple[AppState, list[str]]:
    """Bring the app back to exactly one serving slot; return the fresh state and what was done."""
    done: list[str] = []
    state = observe(context, app, repository)
    proxy_plan = plan_proxy(state)
    if not proxy_plan.empty:
        Interpreter(context, app).run(proxy_plan.steps)
        done += proxy_plan.describe()
        state = observe(context, app, repository)
    pending_release = None
    if state.pending and state.pending.release_id:
        try:
            pending_release = context.store.release(app, state.pending.release_id)
        except NotFoundError:
            pending_release = None
    plan = plan_recovery(state, pending_release, context.store.standbys(app), utcnow())
    if not plan.empty:
        Interpreter(context, app).run(plan.steps)
        done += plan.describe()
        state = observe(context, app, repository)
    return state, done


def check_listen_free(context: HostContext, spec: AppSpec) -> None:
    """A new app's listen address: no other app's, and no other process's."""
    for record in context.store.apps():
        if record.app != spec.app and record.spec.proxy.listen == spec.proxy.listen:
            raise ConfigError(
                f"{spec.proxy.listen} is already the listen address of {record.app}; pick another."
            )
    if port_taken(spec.listen_host, spec.listen_port):
        raise ConfigError(
            f"proxy.listen {spec.proxy.listen} is already taken by another process; "
            "free it or change proxy.listen."
        )


def make_release(
    context: HostContext, spec: AppSpec, ref: ImageRef, digest: str, *, save: bool = True
) -> Release:
    """The release for this digest and spec: the recorded one, or a new one (recorded when `save`)."""
    existing = context.store.find_release(spec.app, digest, spec)
    if existing is not None:
        return existing
    release = Release(
        id=context.store.next_release_id(spec.app),
        app=spec.app,
        image=ref.name,
        digest=digest,
        app_spec=spec,
        created_at=utcnow(),
        created_by=context.actor,
        tag=ref.tag,
    )
    if save:
        context.store.save_release(release)
    return release


def deploy(
    context: HostContext,
    spec: AppSpec,
    image: str,
    *,
    secrets: dict[str, str] | None = None,
    dry_run: bool = False,
    wait: bool = False,
    reporter: Reporter | None = None,
    release: Release | None = None,
    policy: HostPolicy | None = None,
    host_labels: Mapping[str, str] | None = None,
) -> Outcome:
    """Make `image` (or `release`) the serving release, its workers rolled too; `host_labels` (a
    fleet host's) select which processes run here, None runs them all."""
    ref = parse_image(image) if release is None else parse_image(release.pinned_image)
    if policy is not None:  # before anything reads a credential, asks a registry or runs a step
        policy.enforce(spec, str(ref), release=release.id if release else None)
    if release is None and ref.name != spec.image and ref.repository != spec.image:
        raise ConfigError(
            f"{ref.name} is not this app's image {spec.image}; deploy {spec.image}:TAG instead."
        )
    digest = release.digest if release else resolve_digest(spec, ref, context)
    # This host alone (no release from a controller): it runs the release phase itself, before the swap.
    swap = replace(
        _swap_context(context, "deploy", secrets, policy, host_labels), release_phase=release is None
    )
    if dry_run:
        target = release or make_release(context, spec, ref, digest, save=False)
        return Outcome(target, _dry_plan(context, target, swap, pull_allowed=True))
    with locked(context, spec.app, f"deploy {ref}", wait):
        target = release or make_release(context, spec, ref, digest)
        return _swap(context, target, swap, reporter, pull_allowed=True)


def _swap_context(
    context: HostContext,
    kind: HistoryKind,
    secrets: dict[str, str] | None,
    policy: HostPolicy | None,
    host_labels: Mapping[str, str] | None = None,
) -> SwapContext:
    return SwapContext(
        kind, context.actor, secrets or {}, policy.rules.hooks.user if policy else None, host_labels
    )


def _dry_plan(context: HostContext, release: Release, swap: SwapContext, *, pull_allowed: bool) -> Plan:
    """The swap's commands on the host as it is now (a run first repairs a crash, if any, then plans
    the same way)."""
    state = observe(context, release.app, release.image)
    return plan_swap(release, state, swap, pull_allowed=pull_allowed)


def _swap(
    context: HostContext,
    release: Release,
    swap: SwapContext,
    reporter: Reporter | None,
    *,
    pull_allowed: bool,
) -> Outcome:
    spec = release.app_spec
    if context.store.app(spec.app) is None and spec.preview is None:  # a preview has no listen of its own
        check_listen_free(context, spec)
    state, recovered = recover(context, spec.app, release.image)
    plan = plan_swap(release, state, swap, pull_allowed=pull_allowed)
    if plan.empty:
        return Outcome(release, plan, recovered=recovered)
    if not pull_allowed and release.digest not in state.images_present:
        raise NotFoundError(
            f"the image of release {release.id} ({release.short_digest}) is no longer on this host; "
            f"deploy {release.pinned_image} instead."
        )
    interpreter = Interpreter(
        context,
        spec.app,
        registry_auth=_registry_auth(spec.registry, context.config_dir) if pull_allowed else None,
        reporter=reporter or SilentReporter(),
    )
    try:
        interpreter.run(plan.steps)
    except ShipyardError as exc:
        _undo(interpreter, plan, release)
        if interpreter.history_id is not None:
            context.store.finish(interpreter.history_id, "failed", str(exc))
        raise
    except BaseException:
        # Interrupted (Ctrl-C): the record stays 'running' so the next command finishes or undoes it.
        raise
    return Outcome(release, plan, interpreter.history_id, interpreter.timings, recovered)


def run_task(
    context: HostContext,
    release: Release,
    kind: str,
    argv: list[str],
    *,
    secrets: dict[str, str],
    on_line: Callable[[str], None],
    timeout: float,
    name: str,
) -> int:
    """A command once in a throwaway container of `release` (pulled first when missing); its exit code.

    No lock: it touches neither slot, haproxy nor the host's records."""
    if not context.engine.image_present(release.pinned_image):
        auth = _registry_auth(release.app_spec.registry, context.config_dir)
        context.engine.pull(release.image, release.digest, auth, lambda _event: None)
    command = plan_task(kind, release, argv, secrets, timeout, name=name)
    return context.engine.run_once(command.container, on_line, command.timeout)


RUN_TIMEOUT = 3600.0  # seconds a one-off command on this host may run


def run_in_active(
    context: HostContext,
    app: str,
    argv: list[str],
    *,
    secrets: dict[str, str],
    on_line: Callable[[str], None],
) -> int:
    """`shipyard run` on this host: argv in a new container of the app's active release; its exit code."""
    record = context.store.app(app)
    if record is None or record.active_release_id is None:
        raise NotFoundError(f"{app} has no active release on this host; deploy it first.")
    release = context.store.release(app, record.active_release_id)
    name = f"{app}-{release.id}-run-{os.getpid()}"
    host_logger(context.home / "shipyard.log", app=app, actor=context.actor).info(
        "run", release=release.id, argv=mask(" ".join(argv))
    )
    return run_task(
        context, release, "run", argv, secrets=secrets, on_line=on_line, timeout=RUN_TIMEOUT, name=name
    )


def active_container(context: HostContext, app: str) -> str:
    """The name of the app's serving container on this host (for `shipyard exec`)."""
    record = context.store.app(app)
    if record is None or record.active_release_id is None or record.active_slot is None:
        raise NotFoundError(f"{app} has no active release on this host; deploy it first.")
    name = container_name(app, record.active_release_id, record.active_slot)
    status, _ = context.engine.status(name)
    if status != "running":
        raise NotFoundError(f"{app}'s serving container {name} is {status}; start it with 'shipyard start'.")
    host_logger(context.home / "shipyard.log", app=app, actor=context.actor).info("exec", container=name)
    return name


def _registry_auth(spec: RegistrySpec, config_dir: Path | None) -> dict[str, str] | None:
    credentials = host_registry_credentials(spec, config_dir)
    return credentials.docker_auth() if credentials else None


def _undo(interpreter: Interpreter, plan: Plan, release: Release) -> None:
    """After a failure before the switch: remove the new container so it never receives a request."""
    started = [step for step in plan.steps if isinstance(step, StartContainer | StartWorker)]
    switch = next((step for step in plan.steps if isinstance(step, SwitchBackend)), None)
    record = interpreter.context.store.app(release.app)
    if (
        switch is not None
        and record is not None
        and record.active_release_id == release.id
        and record.active_slot == switch.to_slot
    ):
        return  # the switch happened; the new release serves, only a later step failed
    for step in started:
        name = step.container.name
        interpreter.run_isolated(
            [StopContainer(name, 5), RemoveContainer(name, "its deploy failed before the switch")]
        )


def rollback(
    context: HostContext,
    spec: AppSpec,
    release_id: str | None = None,
    *,
    dry_run: bool = False,
    wait: bool = False,
    secrets: dict[str, str] | None = None,
    reporter: Reporter | None = None,
    policy: HostPolicy | None = None,
    host_labels: Mapping[str, str] | None = None,
) -> Outcome:
    """Swap back to `release_id` (or the previous release), its workers with it."""
    target = (
        context.store.release(spec.app, release_id) if release_id else previous_release(context, spec.app)
    )
    if policy is not None:  # the policy may have changed since the release last ran here
        policy.enforce(target.app_spec, target.pinned_image, release=target.id)
    swap = _swap_context(context, "rollback", secrets, policy, host_labels)
    if dry_run:
        return Outcome(target, _dry_plan(context, target, swap, pull_allowed=False))
    with locked(context, spec.app, f"rollback to {target.id}", wait):
        return _swap(context, target, swap, reporter, pull_allowed=False)


def previous_release(context: HostContext, app: str) -> Release:
    record = context.store.app(app)
    active = record.active_release_id if record else None
    for entry in context.store.history(app, limit=200):
        if entry.status == "succeeded" and entry.release_id and entry.release_id != active:
            return context.store.release(app, entry.release_id)
    raise NotFoundError(
        f"{app} has no earlier release on this host to roll back to; see 'shipyard releases'."
    )


def status(context: HostContext, app: str) -> dict[str, Any]:
    """The app's state, repaired first when no deploy is running (a crash is recovered here too)."""
    record = context.store.app(app)
    repository = record.spec.image if record is not None else None
    recovered: list[str] = []
    try:
        with locked(context, app, "status", wait=False):
            state, recovered = recover(context, app, repository)
    except LockedError:
        # A deploy is running: report what is, and leave repairs to it.
        state = observe(context, app, repository)
    return status_document(context, app, state, recovered)
