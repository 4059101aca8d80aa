"""The dashboard served by the controller itself: server-rendered pages under /ui, htmx and SSE."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.staticfiles import StaticFiles

from shipyard.controller.server.ui import jobs
from shipyard.controller.server.ui.routes import HERE, SharedRenders, router


def install(app: FastAPI) -> None:
    app.state.ui_shared_renders = SharedRenders()
    app.include_router(router)
    app.include_router(jobs.router)
    app.mount("/ui/static", StaticFiles(directory=str(HERE / "static")), name="ui-static")
    app.add_api_route("/", lambda: RedirectResponse("/ui", status_code=307), include_in_schema=False)
