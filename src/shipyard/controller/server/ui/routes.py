"""The dashboard's pages and actions under /ui: thin handlers over queries.py and the controller's modules.

Reading works without JavaScript; buttons are plain forms (htmx only refreshes parts of pages). Every POST
checks the session, its CSRF token and the role, whatever the page showed.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable, Hashable
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sse_starlette.event import ServerSentEvent
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from shipyard.controller.engine.rollout import ACTIVE
from shipyard.controller.errors import ForbiddenError, status_for
from shipyard.controller.server.api.deps import Context, get_context, source_ip
from shipyard.controller.server.context import ControllerContext
from shipyard.controller.server.ui import queries, svg
from shipyard.controller.server.ui.sessions import COOKIE_NAME, SESSION_LIFETIME, SignedIn, csrf_matches
from shipyard.controller.server.ui.sessions import sign_in as open_session
from shipyard.controller.server.ui.sessions import sign_out as close_session
from shipyard.controller.server.ui.sessions import signed_in as session_user
from shipyard.controller.store import deployments, locks
from shipyard.domain import names
from shipyard.errors import ShipyardError

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals["svg"] = svg
templates.env.filters["when"] = lambda at: f"{at:%Y-%m-%d %H:%M:%S} UTC" if at else "—"
router = APIRouter(include_in_schema=False)
LOGIN_CSRF_COOKIE = "shipyard_login_csrf"
# Scripts only from the controller itself: even a value that escaped escaping could not run.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
Field = Annotated[str, Form()]


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def render(request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, values, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response


def current_user(context: ControllerContext, request: Request) -> SignedIn | None:
    with context.db.read() as session:
        return session_user(session, request.cookies.get(COOKIE_NAME), now=context.now())


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/ui/login?next={quote(target, safe='')}", status_code=303)


def error_page(request: Request, user: SignedIn | None, error: ShipyardError) -> HTMLResponse:
    return render(request, "error.html", status_for(error), user=user, message=error.message)


def authorize(context: ControllerContext, request: Request, csrf_token: str, role: str) -> SignedIn:
    """The signed-in user allowed to POST this: raises ForbiddenError (403) otherwise."""
    user = current_user(context, request)
    if user is None:
        raise ForbiddenError("sign in again: this form's session is over.")
    if not csrf_matches(user, csrf_token):
        raise ForbiddenError("the form's CSRF token is missing or wrong; reload the page and try again.")
    if not user.may(role):
        raise ForbiddenError(f"this needs the {role} role; {user.name!r} has the {user.role} role.")
    return user


def page(
    request: Request, context: ControllerContext, name: str, read: Callable[[Any], dict[str, Any]]
) -> Response:
    """A page for a signed-in user: `read` gets a database session and returns the template's values."""
    user = current_user(context, request)
    if user is None:
        return _to_login(request)
    try:
        with context.db.read() as session:
            values = read(session)
            return render(request, name, user=user, **values)
    except ShipyardError as exc:
        return error_page(request, user, exc)


def action(
    request: Request,
    context: ControllerContext,
    csrf_token: str,
    role: str,
    run: Callable[[SignedIn], str],
) -> Response:
    """Run a POST for an authorized user, then redirect to the page `run` returns (or show why not)."""
    try:
        user = authorize(context, request, csrf_token, role)
    except ShipyardError as exc:
        return error_page(request, current_user(context, request), exc)
    try:
        target = run(user)
    except ShipyardError as exc:
        return error_page(request, user, exc)
    except OperationalError:
        return render(request, "error.html", 503, user=user, message="the database is unavailable; retry.")
    return RedirectResponse(target, status_code=303)


# --- sign-in ---------------------------------------------------------------------------------------------


@router.get("/ui/login")
def login_form(request: Request, next: str = "/ui") -> HTMLResponse:
    csrf = secrets.token_urlsafe(32)
    response = render(request, "login.html", user=None, csrf_token=csrf, next=_local(next), message="")
    response.set_cookie(
        LOGIN_CSRF_COOKIE, csrf, httponly=True, samesite="strict", secure=_secure(request), path="/ui/login"
    )
    return response


def _local(target: str) -> str:
    """Only paths of the dashboard itself: a sign-in link must not send anyone elsewhere."""
    return target if target.startswith("/ui") and not target.startswith("//") else "/ui"


@router.post("/ui/login")
def login(
    request: Request,
    context: Context,
    token: Field = "",
    csrf_token: Field = "",
    next: Field = "/ui",
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(expected.encode(), csrf_token.encode()):
        return error_page(
            request, None, ForbiddenError("the sign-in form expired; reload the sign-in page and try again.")
        )
    try:
        with context.db.transaction() as session:
            session_id = open_session(session, token, now=context.now())
    except ShipyardError as exc:
        csrf = secrets.token_urlsafe(32)
        refused = render(
            request,
            "login.html",
            status_for(exc),
            user=None,
            csrf_token=csrf,
            next=_local(next),
            message=exc.message,
        )
        refused.set_cookie(
            LOGIN_CSRF_COOKIE,
            csrf,
            httponly=True,
            samesite="strict",
            secure=_secure(request),
            path="/ui/login",
        )
        return refused
    response = RedirectResponse(_local(next), status_code=303)
    response.set_cookie(
        COOKIE_NAME,
        session_id,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/ui",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/ui/login")
    return response


@router.post("/ui/logout")
def logout(request: Request, context: Context, csrf_token: Field = "") -> Response:
    user = current_user(context, request)
    if user is not None and not csrf_matches(user, csrf_token):
        return error_page(request, user, ForbiddenError("the form's CSRF token is missing or wrong."))
    with context.db.transaction() as session:
        close_session(session, request.cookies.get(COOKIE_NAME))
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE_NAME, path="/ui")
    return response


# --- pages -----------------------------------------------------------------------------------------------


def overview_values(context: ControllerContext, session: Any) -> dict[str, Any]:
    summary = queries.overview(session, context.now())
    traffic = {app: context.traffic.last_hour(app, context.now()) for app in summary.apps}
    return {"overview": summary, "traffic": traffic}


@router.get("/ui")
def overview(request: Request, context: Context) -> Response:
    return page(request, context, "overview.html", lambda session: overview_values(context, session))


def overview_grid(context: ControllerContext) -> tuple[str, bool]:
    with context.db.read() as session:
        values = overview_values(context, session)
    return templates.get_template("_overview.html").render(svg=svg, **values), False


# How often open overviews refresh, and so how old their shared render may be.
OVERVIEW_REFRESH_S = 5


@router.get("/ui/fragments/overview")
async def overview_fragment(request: Request) -> Response:
    """The overview's grid for htmx to swap in: rendered once per change or refresh period for everyone."""
    context = get_context(request)
    if await run_in_threadpool(current_user, context, request) is None:
        return Response("sign in first", status_code=401, media_type="text/plain")
    loop = asyncio.get_running_loop()
    version = (context.notifier.generation, int(loop.time() // OVERVIEW_REFRESH_S))
    html, _ = await shared_renders(request).get("overview", version, lambda: overview_grid(context))
    return HTMLResponse(html, headers=SECURITY_HEADERS)


@router.get("/ui/environments/{app}/{environment}")
def environment(app: str, environment: str, request: Request, context: Context) -> Response:
    def read(session: Any) -> dict[str, Any]:
        found = queries.environment_page(session, app, environment)
        return {"env": found, "traffic": context.traffic.last_hour(found.app, context.now())}

    return page(request, context, "environment.html", read)


@router.get("/ui/deployments/{deployment_id}")
def deployment(deployment_id: int, request: Request, context: Context) -> Response:
    return page(
        request,
        context,
        "deployment.html",
        lambda session: {
            **progress_values(queries.deployment_page(session, deployment_id)),
            "active": ACTIVE,
        },
    )


@router.get("/ui/hosts")
def hosts(request: Request, context: Context) -> Response:
    return page(request, context, "hosts.html", lambda session: {"hosts": queries.hosts_page(session)})


@router.get("/ui/audit")
def audit(
    request: Request,
    context: Context,
    action: str = "",
    actor: str = "",
    target: str = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Response:
    def read(session: Any) -> dict[str, Any]:
        entries = queries.audit_page(session, action=action, actor=actor, target=target, limit=limit)
        filters = {"action": action, "actor": actor, "target": target}
        return {"entries": entries, "filters": filters, "actions": queries.audit_actions(session)}

    return page(request, context, "audit.html", read)


# --- live deployment progress ----------------------------------------------------------------------------


Rendered = TypeVar("Rendered")


class SharedRenders:
    """Fragments that are the same for every viewer (a deployment's progress, the overview's grid),
    rendered once per version however many dashboards ask; the others wait for that render."""

    MAX_ENTRIES = 256

    def __init__(self) -> None:
        self._entries: dict[Hashable, tuple[Hashable, Any, bool]] = {}
        self._locks: dict[Hashable, asyncio.Lock] = {}

    async def get(
        self, key: Hashable, version: Hashable, render: Callable[[], tuple[Rendered, bool]]
    ) -> tuple[Rendered, bool]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] == version:
                return cast(Rendered, entry[1]), entry[2]
            html, finished = await run_in_threadpool(render)
            if len(self._entries) >= self.MAX_ENTRIES:
                oldest = next(iter(self._entries))
                self._entries.pop(oldest)
                self._locks.pop(oldest, None)
            self._entries[key] = (version, html, finished)
            return html, finished


# Up to this many hosts the progress lists every host; beyond, those of the running wave and the failed.
HOSTS_LISTED = 50


def progress_values(deployment: Any) -> dict[str, Any]:
    rows = sorted(deployment.hosts, key=lambda row: (row.wave, row.host.name))
    if len(rows) <= HOSTS_LISTED:
        return {"deployment": deployment, "rows": rows, "others": {}}
    shown = [row for row in rows if row.wave == deployment.current_wave or row.outcome == "failed"]
    others: dict[str, int] = {}
    for row in rows:
        if row.wave != deployment.current_wave and row.outcome != "failed":
            others[row.outcome] = others.get(row.outcome, 0) + 1
    return {"deployment": deployment, "rows": shown, "others": others}


def progress_html(context: ControllerContext, deployment_id: int) -> tuple[str, bool]:
    with context.db.read() as session:
        found = queries.deployment_page(session, deployment_id)
        html = templates.get_template("_progress.html").render(svg=svg, **progress_values(found))
        return html, found.status not in ACTIVE


def progress_event(context: ControllerContext, deployment_id: int) -> tuple[bytes, bool]:
    """The SSE message, encoded once for every dashboard that follows the deployment."""
    html, finished = progress_html(context, deployment_id)
    return ServerSentEvent(data=html, event="progress").encode(), finished


def shared_renders(request: Request) -> SharedRenders:
    cache: SharedRenders = request.app.state.ui_shared_renders
    return cache


# Another controller process may change a deployment without notifying this one: re-read this often.
RECHECK_S = 5.0
MIN_UPDATE_GAP_S = 1.0


@router.get("/ui/deployments/{deployment_id}/progress")
def progress(deployment_id: int, request: Request, context: Context) -> Response:
    if current_user(context, request) is None:
        return Response("sign in first", status_code=401, media_type="text/plain")
    try:
        html, _finished = progress_html(context, deployment_id)
    except ShipyardError as exc:
        return Response(exc.message, status_code=status_for(exc), media_type="text/plain")
    return HTMLResponse(html, headers=SECURITY_HEADERS)


@router.get("/ui/deployments/{deployment_id}/events")
async def progress_events(deployment_id: int, request: Request) -> Response:
    """Server-Sent Events: the deployment's progress fragment, sent whenever it changes."""
    context = get_context(request)
    if await run_in_threadpool(current_user, context, request) is None:
        return Response("sign in first", status_code=401, media_type="text/plain")
    cache = shared_renders(request)
    loop = asyncio.get_running_loop()

    async def events() -> AsyncIterator[bytes | dict[str, str]]:
        sent = b""
        while True:
            snapshot = context.notifier.snapshot()
            version = (context.notifier.generation, int(loop.time() // RECHECK_S))
            try:
                event, finished = await cache.get(
                    ("progress", deployment_id), version, lambda: progress_event(context, deployment_id)
                )
            except ShipyardError as exc:
                yield {"event": "gone", "data": exc.message}
                return
            if event != sent:
                sent = event
                yield event
                # At most one update a second: a burst of reports becomes one render and one send.
                await asyncio.sleep(MIN_UPDATE_GAP_S)
            if finished:  # nothing changes anymore: keep the stream open (no reconnects), idle
                await asyncio.sleep(3600)
                return
            await context.notifier.wait(snapshot, RECHECK_S)

    return EventSourceResponse(events(), ping=15, headers={"Cache-Control": "no-store"})


# --- actions ---------------------------------------------------------------------------------------------


def _env_path(app: str, environment: str) -> str:
    return f"/ui/environments/{quote(app, safe='')}/{quote(environment, safe='')}"


def _kick(context: ControllerContext) -> None:
    """One engine tick so the next page already shows the first wave."""
    context.driver.tick()
    context.notifier.notify()


def _on_deployment(context: ControllerContext, change: Callable[[Session], int]) -> str:
    """Apply `change` in one transaction, tick the engine, and go to the deployment it touched."""
    with context.db.transaction() as session:
        deployment_id = change(session)
    _kick(context)
    return f"/ui/deployments/{deployment_id}"


@router.post("/ui/environments/{app}/{environment}/deploy")
def deploy(
    app: str,
    environment: str,
    request: Request,
    context: Context,
    release_id: Field = "",
    csrf_token: Field = "",
) -> Response:
    def run(user: SignedIn) -> str:
        if not names.is_name(names.RELEASE_REF, release_id.strip()):
            raise ShipyardError("choose a release to deploy (its number, e.g. r12).")
        number = int(release_id.strip().removeprefix("r"))

        def start(session: Session) -> int:
            return deployments.create_deployment(
                session,
                release_id=queries.release_of(session, app, number),
                environment=environment,
                queue=False,
                actor=user.name,
                source_ip=source_ip(request),
                now=context.now(),
            ).id

        return _on_deployment(context, start)

    return action(request, context, csrf_token, "deployer", run)


@router.post("/ui/environments/{app}/{environment}/rollback")
def rollback(
    app: str, environment: str, request: Request, context: Context, csrf_token: Field = ""
) -> Response:
    def run(user: SignedIn) -> str:
        def start(session: Session) -> int:
            return deployments.rollback(
                session,
                app=app,
                environment=environment,
                release_id=None,
                actor=user.name,
                source_ip=source_ip(request),
                now=context.now(),
            ).id

        return _on_deployment(context, start)

    return action(request, context, csrf_token, "deployer", run)


@router.post("/ui/environments/{app}/{environment}/lock")
def lock(
    app: str, environment: str, request: Request, context: Context, reason: Field = "", csrf_token: Field = ""
) -> Response:
    def run(user: SignedIn) -> str:
        if not reason.strip():
            raise ShipyardError(
                "give a reason for the lock: others will read it when their deploy is refused."
            )
        if len(reason) > 500:
            raise ShipyardError("the lock's reason is too long: keep it under 500 characters.")
        with context.db.transaction() as session:
            locks.acquire(
                session,
                app=app,
                environment=environment,
                reason=reason.strip(),
                actor=user.name,
                source_ip=source_ip(request),
            )
        context.notifier.notify()
        return _env_path(app, environment)

    return action(request, context, csrf_token, "deployer", run)


@router.post("/ui/environments/{app}/{environment}/unlock")
def unlock(
    app: str, environment: str, request: Request, context: Context, csrf_token: Field = ""
) -> Response:
    def run(user: SignedIn) -> str:
        with context.db.transaction() as session:
            locks.release(
                session, app=app, environment=environment, actor=user.name, source_ip=source_ip(request)
            )
        _kick(context)  # a queued deployment may start now
        return _env_path(app, environment)

    return action(request, context, csrf_token, "deployer", run)


@router.post("/ui/deployments/{deployment_id}/{change}")
def transition(
    deployment_id: int, change: str, request: Request, context: Context, csrf_token: Field = ""
) -> Response:
    def run(user: SignedIn) -> str:
        if change not in ("pause", "resume", "abort"):
            raise ShipyardError(f"{change!r} is not something a deployment does; use pause, resume or abort.")

        def apply(session: Session) -> int:
            deployments.transition(
                session,
                deployment_id,
                change,
                actor=user.name,
                source_ip=source_ip(request),
                now=context.now(),
            )
            return deployment_id

        return _on_deployment(context, apply)

    return action(request, context, csrf_token, "deployer", run)
