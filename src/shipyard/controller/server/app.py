"""create_app: the controller's ASGI application, with its background rollout loop."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio.to_thread
import structlog
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipyard.controller.server import ui
from shipyard.controller.server.agent_auth import AgentTokenCache
from shipyard.controller.server.api import (
    admin,
    agent,
    deployments,
    errors,
    execs,
    fleet,
    logs,
    maintenance,
    ops,
    prunes,
    releases,
)
from shipyard.controller.server.api import hooks as hooks_api
from shipyard.controller.server.api import jobs as jobs_api
from shipyard.controller.server.api import previews as previews_api
from shipyard.controller.server.api import schedules as schedules_api
from shipyard.controller.server.api import tasks as tasks_api
from shipyard.controller.server.api import webhooks as webhooks_api
from shipyard.controller.server.api.auth_first import AuthenticateBeforeBody
from shipyard.controller.server.api.body_limit import RequestBodyLimit
from shipyard.controller.server.api.hot_path import AgentHotPath
from shipyard.controller.server.context import ControllerContext
from shipyard.controller.server.desired_cache import DesiredCache
from shipyard.controller.server.driver import Clock, RolloutDriver
from shipyard.controller.server.heap import settle_heap
from shipyard.controller.server.metrics import ControllerMetrics
from shipyard.controller.server.notifier import ChangeNotifier
from shipyard.controller.server.pipeline.lifecycle import start_jobs, stop_jobs
from shipyard.controller.server.replicas import start_replicas
from shipyard.controller.server.report_writer import BatchWriter
from shipyard.controller.server.settings import ControllerSettings
from shipyard.controller.store import tokens
from shipyard.controller.store.db import WORKER_THREADS, Database
from shipyard.controller.store.leadership import Leadership, LeadershipCollector
from shipyard.controller.store.models import utcnow
from shipyard.controller.store.reports import ReportMemory, store_reports
from shipyard.secrets.masking import register_secret

log = structlog.get_logger("shipyard.controller")
API_PREFIX = "/api/v1"


def build_context(settings: ControllerSettings, clock: Clock) -> ControllerContext:
    db = Database(settings.database_url)
    notifier = ChangeNotifier()
    driver = RolloutDriver(
        db,
        lost_after=settings.lost_after,
        clock=clock,
        on_change=notifier.notify,
        on_progress=notifier.notify_progress,
    )
    desired = DesiredCache(
        db, notifier, max_age=settings.recheck_interval, presence=driver.presence, clock=clock
    )
    reports = BatchWriter(db, store_reports)
    metrics = ControllerMetrics(db)
    leadership = Leadership(elected=not db.is_sqlite)  # replicas need PostgreSQL; SQLite has one process
    metrics.registry.register(LeadershipCollector(leadership))
    return ControllerContext(
        settings,
        db,
        notifier,
        driver,
        metrics,
        clock,
        desired,
        AgentTokenCache(),
        reports,
        ReportMemory(),
        leadership=leadership,
    )


def prepare_database(context: ControllerContext) -> None:
    context.db.migrate()
    token = context.settings.bootstrap_admin_token
    if token:
        with context.db.transaction() as session:
            if tokens.bootstrap_admin(session, token):
                log.info("bootstrap admin token stored")


# Reports wake the loop; this gap between woken ticks lets a burst of reports share one tick.
MIN_TICK_GAP_S = 0.2


# A replica that does not lead looks at least this often whether it was elected (the election also wakes it).
FOLLOWER_WAIT_S = 1.0


async def rollout_loop(context: ControllerContext) -> None:
    flushed_at = time.monotonic()
    while True:
        if not context.leadership.is_leader:
            flushed_at = await follower_round(context, flushed_at)
            continue
        try:
            await asyncio.to_thread(context.driver.tick)
        except Exception:  # the loop must outlive a database hiccup; the next tick retries
            log.exception("rollout tick failed")
        await asyncio.sleep(min(MIN_TICK_GAP_S, context.settings.tick_interval))
        wait = context.settings.tick_interval - MIN_TICK_GAP_S
        due = context.driver.next_due
        if due is not None:  # a monitor period ends before the timer: tick right then
            wait = min(wait, (due - context.now()).total_seconds())
        await context.driver.wait_for_request(max(0.0, wait))


async def follower_round(context: ControllerContext, flushed_at: float) -> float:
    """One wait of a replica that does not lead: pass its agents' reports on to the leader as a tick
    request, and store their last_seen times every flush interval. Returns when it last stored them."""
    asked = await context.driver.wait_for_request(FOLLOWER_WAIT_S)
    if asked and not context.leadership.is_leader and context.ask_leader_to_tick is not None:
        context.ask_leader_to_tick()
        await asyncio.sleep(MIN_TICK_GAP_S)  # a burst of reports becomes one request
    if time.monotonic() - flushed_at < context.driver.flush_interval:
        return flushed_at
    try:
        await asyncio.to_thread(context.driver.flush_presence)
    except Exception:  # kept in memory and stored on the next round
        log.exception("storing last_seen times failed")
    return time.monotonic()


def _lifespan(
    context: ControllerContext,
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
        await run_in_threadpool(prepare_database, context)
        context.notifier.bind(asyncio.get_running_loop())
        context.driver.bind(asyncio.get_running_loop())
        replicas = await run_in_threadpool(start_replicas, context)
        task = asyncio.create_task(rollout_loop(context), name="shipyard-rollout-loop")
        jobs_worker = start_jobs(app, context)
        if context.settings.settle_heap:
            settle_heap()
        try:
            yield
        finally:
            await run_in_threadpool(stop_jobs, jobs_worker)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if replicas is not None:
                await run_in_threadpool(replicas.stop)
            await context.desired.close()
            await context.reports.close()
            try:
                await run_in_threadpool(context.driver.flush_presence)
            except Exception:  # a database gone at shutdown loses at most a few seconds of last_seen
                log.exception("storing last_seen at shutdown failed")
            context.db.dispose()

    return lifespan


class LatencyMiddleware:
    """Observes every HTTP request's time to its answer; plain ASGI, so long-polls cost no extra task."""

    def __init__(self, app: ASGIApp, context: ControllerContext) -> None:
        self._app, self._context = app, context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, send_observed)
        finally:
            self._context.metrics.observe_request(scope, status, time.perf_counter() - started)


def framework_options() -> dict[str, Any]:
    """FastAPI's own OpenTelemetry instrumentation off where it exists: the controller keeps its own
    metrics (/metrics), and the instrumentation looks the global providers up on every request, a cost
    that shows when a thousand agents' requests arrive together."""
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}}


def create_app(settings: ControllerSettings, *, clock: Clock | None = None) -> FastAPI:
    """The controller app; the database is migrated and the rollout loop started when it starts serving."""
    context = build_context(settings, clock or utcnow)
    if settings.bootstrap_admin_token:  # an operator's token need not have a token's shape: mask it by value
        register_secret(settings.bootstrap_admin_token)
    app = FastAPI(
        title="shipyard controller",
        version="1",
        description="Fleet controller of shipyard: releases, deployments in waves, agents and audit.",
        lifespan=_lifespan(context),
        **framework_options(),
    )
    app.state.context = context
    errors.install(app)
    # Each layer added wraps the ones before: a request meets them from the last to the first.
    app.add_middleware(AuthenticateBeforeBody, context=context)
    app.add_middleware(AgentHotPath, context=context)
    app.add_middleware(webhooks_api.WebhookHotPath, context=context)
    app.add_middleware(RequestBodyLimit, max_body=settings.max_body)
    app.add_middleware(errors.UnexpectedErrors)
    app.add_middleware(LatencyMiddleware, context=context)  # outermost, so it times everything
    for module in (
        fleet,
        releases,
        deployments,
        prunes,
        tasks_api,
        execs,
        maintenance,
        admin,
        agent,
        hooks_api,
        jobs_api,
        schedules_api,
        previews_api,
    ):
        app.include_router(module.router, prefix=API_PREFIX)
        context.metrics.name_routes(module.router.routes, API_PREFIX)
    for router in (logs.router, logs.agent_router):
        app.include_router(router, prefix=API_PREFIX)
        context.metrics.name_routes(router.routes, API_PREFIX)
    app.include_router(ops.router)
    app.include_router(webhooks_api.router)
    context.metrics.name_routes(ops.router.routes)
    context.metrics.name_routes(webhooks_api.router.routes)
    ui.install(app)
    context.metrics.name_routes(app.router.routes)  # the documentation's, and copies of the above
    return app
