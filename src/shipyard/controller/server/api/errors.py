"""One place that turns failures into HTTP answers: ShipyardError -> 4xx, never a stack trace.

An unexpected exception is answered 500 with a reference that the one log line of its traceback
also holds; the log renders tracebacks without local variables and masks credentials (shipyard.logs).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipyard.controller.errors import UnauthorizedError, status_for
from shipyard.errors import ShipyardError

log = structlog.get_logger("shipyard.controller")


KIND_BY_STATUS = {401: UnauthorizedError.__name__, 413: "PayloadTooLargeError"}


def _answer(status: int, detail: str, kind: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"detail": detail, "kind": kind, **extra}, status_code=status, headers=headers)


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if part not in ("body", "query", "path")) or "body"


async def shipyard_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ShipyardError)
    return _answer(status_for(exc), exc.message, type(exc).__name__)


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [f"{_location(tuple(e['loc']))}: {e['msg']}" for e in exc.errors()]
    detail = "invalid request: " + "; ".join(problems)
    errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return _answer(422, detail, "ValidationError", errors=errors)


async def http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    kind = KIND_BY_STATUS.get(exc.status_code, "HTTPError")
    return _answer(exc.status_code, str(exc.detail), kind)


async def integrity_error(request: Request, exc: Exception) -> JSONResponse:
    # Two requests raced for the same unique name; the loser gets a conflict, not a crash.
    log.info("integrity conflict", path=request.url.path, error=type(exc).__name__)
    return _answer(
        409, "that record was created or changed concurrently; retry the request.", "ConflictError"
    )


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.error("database unavailable", path=request.url.path, error=type(exc).__name__)
    return _answer(503, "the controller database is unavailable; retry shortly.", "ControllerError")


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    reference = uuid.uuid4().hex[:12]
    log.exception("unexpected error", path=request.url.path, method=request.method, reference=reference)
    return _answer(
        500,
        f"internal controller error (reference {reference}); see the controller log.",
        "InternalError",
        reference=reference,
    )


Handler = Callable[[Request, Exception], Awaitable[JSONResponse]]
# Most specific first: answer_for() takes the first that matches.
HANDLERS: list[tuple[type[Exception], Handler]] = [
    (ShipyardError, shipyard_error),
    (RequestValidationError, validation_error),
    (HTTPException, http_error),
    (IntegrityError, integrity_error),
    (OperationalError, database_unavailable),
    (Exception, unexpected_error),
]


async def answer_for(request: Request, exc: Exception) -> JSONResponse:
    """The answer the application's exception handlers give for `exc` (for code outside the routes)."""
    handler = next(handler for kind, handler in HANDLERS if isinstance(exc, kind))
    return await handler(request, exc)


def install(app: FastAPI) -> None:
    for kind, handler in HANDLERS:
        app.add_exception_handler(kind, handler)


class UnexpectedErrors:
    """Answers an exception that escaped the routes' handlers, and logs it once.

    Starlette's outermost layer would answer it too, then re-raise it for the server to log a second
    traceback; caught here, it never reaches the server.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._app(scope, receive, tracked_send)
        except Exception as exc:
            if started:  # too late to answer: the server logs it and closes the connection
                raise
            response = await answer_for(Request(scope), exc)
            await response(scope, receive, send)
