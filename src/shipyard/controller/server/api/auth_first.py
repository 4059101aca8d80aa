"""Authentication before the body: a request that may carry one is refused with 401 unread.

The framework reads and parses a body before it resolves the dependencies that check the token, so an
unauthenticated client could make the controller read (and parse) a body of up to --max-body bytes.
This layer checks the bearer token first, with the same functions and messages as the route
dependencies (api/deps.py), which still decide everything else (roles, token kinds: 403).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from shipyard.controller.errors import UnauthorizedError
from shipyard.controller.server.api.deps import bearer, bearer_token, lookup_agent
from shipyard.controller.server.api.errors import answer_for
from shipyard.controller.server.context import ControllerContext
from shipyard.controller.store import tokens

API_PATHS = "/api/v1/"
AGENT_PATHS = "/api/v1/agent/"
REGISTER_PATHS = frozenset({"/api/v1/agent/register", "/api/v1/hosts/register"})
METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class AuthenticateBeforeBody:
    def __init__(self, app: ASGIApp, context: ControllerContext) -> None:
        self._app, self._context = app, context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in METHODS_WITH_BODY
            or not scope["path"].startswith(API_PATHS)
        ):
            await self._app(scope, receive, send)
            return
        request = Request(scope)
        try:
            token = bearer_token(await bearer(request))
            await self._check(scope["path"], token)
        except UnauthorizedError as exc:
            response = await answer_for(request, exc)
            # The body is never read: the connection closes after the answer.
            response.headers["connection"] = "close"
            await response(scope, receive, send)
            return
        await self._app(scope, receive, send)

    async def _check(self, path: str, token: str) -> None:
        context = self._context
        if path in REGISTER_PATHS:
            await run_in_threadpool(self._check_join_token, token)
        elif path.startswith(AGENT_PATHS):
            if context.agent_tokens.get(token) is None:
                context.agent_tokens.put(token, await run_in_threadpool(lookup_agent, context, token))
        elif not token.startswith(tokens.AGENT_PREFIX):  # an agent token here is answered 403 later
            await run_in_threadpool(self._check_api_token, token)

    def _check_join_token(self, token: str) -> None:
        with self._context.db.read() as session:
            tokens.check_join_token(session, token, now=self._context.now())

    def _check_api_token(self, token: str) -> None:
        with self._context.db.read() as session:
            tokens.find_api_token(session, token)
