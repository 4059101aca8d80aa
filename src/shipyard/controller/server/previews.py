"""Previews on the controller: acting on an event, finishing teardowns, the store and databases they use.

The API comes through `act`, the reconciler through `reconcile`, a webhook delivery through the hook's
transaction (store/hooks.py): each decides (engine) and stores (store/previews.py) in one transaction;
the side effects follow it: the job worker woken for a queued build, the hosts' long-polls, the
rollout loop and the reconciler woken when a preview left the desired state, teardowns finished.

A preview's secrets come from one store only: the controller's store of `previews.environment` (under
its secrets root, opened with the app's `secrets:` settings). The pull request's commit cannot name
another one, and the reconciler reads the same store to drop a database long after the build.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import cast

import structlog

from shipyard.controller.engine import previews as engine
from shipyard.controller.server.context import ControllerContext, PreviewDatabasesFactory
from shipyard.controller.store import previews as store
from shipyard.controller.store.models import App
from shipyard.controller.store.pipeline_models import Preview
from shipyard.domain.previews import PreviewDatabases
from shipyard.domain.spec import AppSpec, PreviewDatabaseSpec, PreviewsSpec
from shipyard.errors import ShipyardError
from shipyard.secrets.factory import open_store
from shipyard.secrets.store import SecretStore

log = structlog.get_logger("shipyard.controller.previews")
DATABASES_MODULE = "shipyard.adapters.preview_databases"


def preview_store(context: ControllerContext, spec: AppSpec, settings: PreviewsSpec) -> SecretStore:
    """The store of `previews.environment` that previews read, and nothing else."""
    return open_store(spec.secrets, context.settings.secrets_root, settings.environment)


def databases(
    context: ControllerContext, spec: PreviewDatabaseSpec, secret: Callable[[str], str]
) -> PreviewDatabases:
    """The PreviewDatabases of `spec`: the context's factory, else the adapter, imported on first use."""
    factory = context.preview_databases
    if factory is None:
        module = importlib.import_module(DATABASES_MODULE)
        factory = cast(PreviewDatabasesFactory, module.preview_databases)
    return factory(spec, secret)


def act(context: ControllerContext, app: str, event: engine.Event, actor: store.Actor) -> store.Applied:
    """Decide on `event` for the app's previews and store it; then the side effects."""
    with context.db.transaction() as session:
        app_row = store.find_app(session, app)
        settings = store.previews_spec(session, app_row)
        limits = store.limits_of(settings)
        applied = store.decide_and_apply(
            session, app_row, limits, event, actor, context.now(), settings.domain
        )
    after(context, applied)
    return applied


def after(context: ControllerContext, applied: store.Applied) -> None:
    """The side effects of stored decisions: wake the worker and the hosts' long-polls."""
    if applied.desired_changed:
        torn_down(context)
    if applied.queued and context.wake_jobs is not None:
        context.wake_jobs()


def torn_down(context: ControllerContext) -> None:
    """A preview left the desired state: wake the hosts' long-polls (and other replicas'), the rollout
    loop (its deployments were aborted) and the reconciler, which finishes the teardown now."""
    context.notifier.notify()
    context.driver.request_tick()
    if context.wake_preview_reconciler is not None:
        context.wake_preview_reconciler()


def finish(context: ControllerContext, app: str, finish: engine.Finish) -> bool:
    """Drop a closing preview's database and sealed secrets, then close it; True once closed.

    A database that cannot be dropped yet leaves the preview closing with the reason in its message;
    the next reconciler pass tries again (both steps are idempotent)."""
    with context.db.read() as session:
        row = session.get(Preview, finish.preview_id)
        if row is None or row.status != engine.CLOSING:
            return False
        pr, spec = row.pr, store.latest_spec(session, row.app_id)
        reason = store.teardown_reason(session, app, pr)
    settings = spec.previews if spec is not None else None
    if finish.destroy_database:
        if spec is None or settings is None or settings.database is None:
            _note(
                context, finish.preview_id, "its database cannot be dropped: the app has no previews.database"
            )
            return False
        try:
            store_ = preview_store(context, spec, settings)
            databases(context, settings.database, store_.get).destroy(app, pr)
        except ShipyardError as exc:
            _note(context, finish.preview_id, f"dropping its database failed ({exc.message}); retried")
            return False
    with context.db.transaction() as session:
        dropped = store.forget_secrets(session, app, pr)
        # The teardown's reason stays in the closed preview's message: `shipyard previews` says why it went.
        done = "torn down" + (f" ({reason})" if reason else "")
        done += ", database dropped" if finish.destroy_database else ""
        done += f", {dropped} sealed secret envelope(s) deleted" if dropped else ""
        store.mark_closed(session, finish.preview_id, now=context.now(), message=done)
    context.notifier.notify()
    return True


def _note(context: ControllerContext, preview_id: int, message: str) -> None:
    log.warning("preview teardown not finished", preview=preview_id, reason=message)
    with context.db.transaction() as session:
        row = session.get(Preview, preview_id)
        if row is not None and row.status == engine.CLOSING:
            row.message = message


def reconcile(context: ControllerContext) -> int:
    """One reconciler pass over every app with previews; how many decisions it carried out."""
    with context.db.read() as session:
        app_ids = store.apps_with_previews(session)
    done = 0
    for app_id in app_ids:
        try:
            done += _reconcile_app(context, app_id)
        except Exception:  # one app's trouble must not stop the others' teardowns
            log.exception("reconciling previews failed", app=app_id)
    return done


def _reconcile_app(context: ControllerContext, app_id: int) -> int:
    actor = store.Actor("controller")
    with context.db.transaction() as session:
        app_row = session.get_one(App, app_id)
        name = app_row.name
        spec = store.latest_spec(session, app_id)
        # Without previews: in the app's latest release, every preview of it goes (engine.OFF).
        settings = spec.previews if spec is not None else None
        limits = store.limits_of(settings) if settings is not None else engine.OFF
        applied = store.decide_and_apply(session, app_row, limits, engine.Tick(), actor, context.now())
    after(context, applied)
    finished = sum(finish(context, name, decision) for decision in applied.finish)
    return len(applied.preview_ids) + finished
