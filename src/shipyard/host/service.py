"""The host's use cases: deploy, rollback, recover. Observe -> plan -> execute -> record.

Each public function is one command a user (or the agent) runs; all of them are safe to run again
after a crash at any point, because each starts by recovering the host to one serving slot.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.adapters.registry import Credentials, parse_image, registry_credentials
from shipyard.adapters.registry import resolve_digest as registry_digest
from shipyard.domain.models import AppState, ImageRef, Release
from shipyard.domain.plan import Plan, choose_target_slot, plan_proxy, plan_recovery, plan_swap
from shipyard.domain.spec import AppSpec, RegistrySpec, spec_from_snapshot, spec_snapshot
from shipyard.domain.steps import Remove, Start, Stop
from shipyard.errors import ConfigError, LockedError, NotFoundError, ShipyardError
from shipyard.host import proxy_sync
from shipyard.host.context import HostContext
from shipyard.host.executor import Executor, Reporter, SilentReporter, container_name, run_isolated
from shipyard.host.lock import app_lock
from shipyard.host.observe import observe
from shipyard.host.policy import HostPolicy
from shipyard.host.store import utcnow


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
        Executor(context, app).run(proxy_plan.steps)
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
        Executor(context, app).run(plan.steps)
        done += plan.describe()
        state = observe(context, app, repository)
    return state, done


def register_app(context: HostContext, spec: AppSpec) -> None:
    """First deploy of an app on this host: give it a frontend (seamless reload, or start haproxy)."""
    if context.store.app(spec.app) is None:
        _check_listen_free(context, spec)
        context.store.set_active(spec.app, None, None, spec_snapshot(spec))
    proxy_sync.write_maintenance_page(context, spec)
    proxy_sync.write_config(context)
    if context.proxy.running():
        context.proxy.reload(proxy_sync.backend_name(spec.app))
    else:
        context.proxy.start()


def _check_listen_free(context: HostContext, spec: AppSpec) -> None:
    from shipyard.host.executor import port_taken

    for record in context.store.apps():
        if spec_from_snapshot(record.spec).proxy.listen == spec.proxy.listen:
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
    snapshot = spec_snapshot(spec)
    existing = context.store.find_release(spec.app, digest, snapshot)
    if existing is not None:
        return existing
    release = Release(
        id=context.store.next_release_id(spec.app),
        app=spec.app,
        image=ref.name,
        digest=digest,
        spec=snapshot,
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
) -> Outcome:
    ref = parse_image(image) if release is None else parse_image(release.pinned_image)
    if policy is not None:  # before anything reads a credential, asks a registry or runs a step
        policy.enforce(spec, str(ref), release=release.id if release else None)
    if release is None and ref.name != spec.image and ref.repository != spec.image:
        raise ConfigError(
            f"{ref.name} is not this app's image {spec.image}; deploy {spec.image}:TAG instead."
        )
    digest = release.digest if release else resolve_digest(spec, ref, context)
    if dry_run:
        state = observe(context, spec.app, ref.name)
        target = release or make_release(context, spec, ref, digest, save=False)
        return Outcome(target, plan_swap(target, state, spec))
    with locked(context, spec.app, f"deploy {ref}", wait):
        target = release or make_release(context, spec, ref, digest)
        return _swap(
            context, spec, target, "deploy", secrets or {}, reporter, pull_allowed=True, policy=policy
        )


def _swap(
    context: HostContext,
    spec: AppSpec,
    release: Release,
    kind: str,
    secrets: dict[str, str],
    reporter: Reporter | None,
    *,
    pull_allowed: bool,
    policy: HostPolicy | None = None,
) -> Outcome:
    if context.store.app(spec.app) is None or not context.proxy.running():
        register_app(context, spec)
    state, recovered = recover(context, spec.app, release.image)
    plan = plan_swap(release, state, spec, pull_allowed=pull_allowed)
    if plan.empty:
        return Outcome(release, plan, recovered=recovered)
    if not pull_allowed and release.digest not in state.images_present:
        raise NotFoundError(
            f"the image of release {release.id} ({release.short_digest}) is no longer on this host; "
            f"deploy {release.pinned_image} instead."
        )
    history_id = context.store.begin(spec.app, kind, release.id, context.actor, state.active_release_id)
    target = choose_target_slot(state)
    context.store.mark_swap(history_id, target, state.active_slot)
    executor = Executor(
        context,
        spec.app,
        secrets=secrets,
        credentials=host_registry_credentials(spec.registry, context.config_dir),
        reporter=reporter or SilentReporter(),
        history_id=history_id,
        hook_user=policy.rules.hooks.user if policy else None,
    )
    try:
        executor.run(plan.steps)
    except ShipyardError as exc:
        _undo(executor, plan, release, target)
        context.store.finish(history_id, "failed", str(exc))
        raise
    except BaseException:
        # Interrupted (Ctrl-C): the record stays 'running' so the next command finishes or undoes it.
        raise
    context.store.finish(history_id, "succeeded")
    return Outcome(release, plan, history_id, executor.timings, recovered)


def _undo(executor: Executor, plan: Plan, release: Release, target: str) -> None:
    """After a failure before the switch: remove the new container so it never receives a request."""
    started = any(isinstance(step, Start) for step in plan.steps)
    name = container_name(release.app, release.id, target)  # type: ignore[arg-type]
    state = executor.context.store.app(release.app)
    if state is not None and state.active_release_id == release.id and state.active_slot == target:
        return  # the switch happened; the new release serves, only a later step failed
    if started:
        run_isolated(executor, [Stop(name, 5), Remove(name, "it failed to become healthy")])


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
) -> Outcome:
    target = (
        context.store.release(spec.app, release_id) if release_id else previous_release(context, spec.app)
    )
    target_spec = spec_from_snapshot(target.spec)
    if policy is not None:  # the policy may have changed since the release last ran here
        policy.enforce(target_spec, target.pinned_image, release=target.id)
    if dry_run:
        state = observe(context, spec.app, target.image)
        return Outcome(target, plan_swap(target, state, target_spec, pull_allowed=False))
    with locked(context, spec.app, f"rollback to {target.id}", wait):
        return _swap(
            context,
            target_spec,
            target,
            "rollback",
            secrets or {},
            reporter,
            pull_allowed=False,
            policy=policy,
        )


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
    from shipyard.host.status_view import status_document

    record = context.store.app(app)
    repository = None
    if record is not None:
        repository = str(record.spec.get("image"))
    recovered: list[str] = []
    try:
        with locked(context, app, "status", wait=False):
            state, recovered = recover(context, app, repository)
    except LockedError:
        # A deploy is running: report what is, and leave repairs to it.
        state = observe(context, app, repository)
    return status_document(context, app, state, recovered)
