"""The agents' two hot endpoints, answered without the framework's routing and dependency resolution.

At a thousand agents nearly every request is a long-poll of GET /api/v1/agent/desired or a
POST /api/v1/agent/report from an agent whose token the controller already knows. This ASGI layer in
front of the application answers exactly those with the same functions the routes call
(agent.desired_body, agent.store_report), and reads the token, the query and the body with the same
rules (fastapi's bearer parsing, DesiredQuery, agent.report_in), so it accepts exactly what the routes
accept. Everything else goes on to the application, unchanged: other paths, an unknown token (first
contact, a removed host), a query or body that does not validate (the application then answers 401 or
422 as documented), so behaviour is the same either way, only cheaper on the common path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import ValidationError
from starlette.datastructures import Headers, QueryParams
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipyard.controller.server.api import agent
from shipyard.controller.server.api.agent import desired_body, report_in, store_report
from shipyard.controller.server.api.deps import AgentCaller
from shipyard.controller.server.api.errors import answer_for
from shipyard.controller.server.context import ControllerContext
from shipyard.fleet_api.schemas.agent import AgentReport, DesiredQuery

DESIRED, REPORT = "/api/v1/agent/desired", "/api/v1/agent/report"
MAX_REPORT_BYTES = 1 << 20  # larger bodies take the application's path (and its limits)
JSON_HEADERS = [(b"content-type", b"application/json")]


def route_of(router: APIRouter, endpoint: Callable[..., Any]) -> BaseRoute:
    return next(route for route in router.routes if getattr(route, "endpoint", None) is endpoint)


def _bearer(scope: Scope) -> str | None:
    """The bearer token as the routes' HTTPBearer reads it (the first Authorization header)."""
    scheme, token = get_authorization_scheme_param(Headers(scope=scope).get("authorization"))
    return token if scheme.lower() == "bearer" and token else None


def _desired_query(scope: Scope) -> DesiredQuery | None:
    """The query as the route validates it (the last value of a repeated key); None when it does not."""
    try:
        return DesiredQuery.model_validate(dict(QueryParams(scope["query_string"])))
    except ValidationError:
        return None


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The request body, and whether it is complete (reading stops past MAX_REPORT_BYTES)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
        if size > MAX_REPORT_BYTES:
            return b"".join(chunks), False


def _replaying(body: bytes, complete: bool, receive: Receive) -> Receive:
    """A receive() that hands the part of the body already read to the application first."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": not complete}

    return replay


class AgentHotPath:
    def __init__(self, app: ASGIApp, context: ControllerContext) -> None:
        self._app, self._context = app, context
        # The routes these requests would have matched: the latency metrics name them alike.
        self._routes = {
            (DESIRED, "GET"): route_of(agent.router, agent.desired),
            (REPORT, "POST"): route_of(agent.router, agent.report),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in (DESIRED, REPORT):
            await self._app(scope, receive, send)
            return
        agent = self._known_agent(scope)
        if agent is None:
            await self._app(scope, receive, send)
        elif scope["path"] == DESIRED and scope["method"] == "GET":
            await self._desired(agent, scope, receive, send)
        elif scope["path"] == REPORT and scope["method"] == "POST":
            await self._report(agent, scope, receive, send)
        else:
            await self._app(scope, receive, send)

    def _known_agent(self, scope: Scope) -> AgentCaller | None:
        token = _bearer(scope)
        known = self._context.agent_tokens.get(token) if token else None
        if known is None:
            return None
        client = scope.get("client")
        return AgentCaller.of(known, client[0] if client else None)

    async def _desired(self, agent: AgentCaller, scope: Scope, receive: Receive, send: Send) -> None:
        query = _desired_query(scope)
        if query is None:
            await self._app(scope, receive, send)
            return
        await self._answer(
            scope, receive, send, lambda: desired_body(agent, self._context, query.wait, query.version)
        )

    async def _report(self, agent: AgentCaller, scope: Scope, receive: Receive, send: Send) -> None:
        body, complete = await _read_body(receive)
        report = report_in(Headers(scope=scope).get("content-type"), body) if complete else None
        if report is None:
            await self._app(scope, _replaying(body, complete, receive), send)
            return
        await self._answer(scope, receive, send, lambda: self._ack(report, agent))

    async def _ack(self, report: AgentReport, agent: AgentCaller) -> bytes:
        return (await store_report(report, agent, self._context)).model_dump_json().encode()

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, produce: Callable[[], Awaitable[bytes]]
    ) -> None:
        scope["route"] = self._routes[(scope["path"], scope["method"])]
        try:
            body = await produce()
        except Exception as exc:  # the application's own handlers decide the answer (4xx, 503)
            response = await answer_for(Request(scope, receive), exc)
            await response(scope, receive, send)
            return
        headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
