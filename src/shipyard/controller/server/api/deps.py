"""Request dependencies: the controller context and bearer-token authentication by role."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from shipyard.controller.errors import ForbiddenError, UnauthorizedError
from shipyard.controller.server.agent_auth import KnownAgent
from shipyard.controller.server.context import ControllerContext
from shipyard.controller.store.hosts import find_agent_host
from shipyard.controller.store.tokens import AGENT_PREFIX, CI_ROLE, ROLE_RANK, find_api_token
from shipyard.fleet_api.schemas.common import MAX_ID

bearer = HTTPBearer(auto_error=False, description="API token, agent token or (to register) a join token")


def get_context(request: Request) -> ControllerContext:
    context: ControllerContext = request.app.state.context
    return context


Context = Annotated[ControllerContext, Depends(get_context)]
# A numeric id in a path: larger than any stored id can be is a 422, not a database error.
ResourceId = Annotated[int, Path(ge=1, le=MAX_ID)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


@dataclass(frozen=True)
class Caller:
    name: str
    role: str
    source_ip: str | None
    apps: tuple[str, ...] | None = None  # a ci token's scope; None: every app

    def check_app(self, app: str) -> None:
        """ForbiddenError unless this caller may ship `app` (a ci token outside its scope)."""
        if self.apps is not None and app not in self.apps:
            raise ForbiddenError(
                f"the ci token {self.name!r} may ship only {', '.join(self.apps)}, not {app!r}; "
                "create a token scoped to that app."
            )


@dataclass(frozen=True)
class AgentCaller:
    host_id: int
    host: str
    source_ip: str | None
    group: str = ""

    @classmethod
    def of(cls, known: KnownAgent, source_ip: str | None) -> AgentCaller:
        return cls(host_id=known.host_id, host=known.host, source_ip=source_ip, group=known.group)


def source_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def bearer_token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials:
        raise UnauthorizedError("this endpoint needs 'Authorization: Bearer <token>'.")
    return credentials.credentials


def require(
    role: str, *, or_ci: bool = False
) -> Callable[[Request, ControllerContext, HTTPAuthorizationCredentials | None], Caller]:
    """The caller, when its token has `role` or above (or, with `or_ci`, is a ci token: scoped to apps)."""

    def dependency(request: Request, context: Context, credentials: Credentials) -> Caller:
        return api_caller(context, bearer_token(credentials), role, source_ip(request), or_ci=or_ci)

    return dependency


def api_caller(
    context: ControllerContext, token: str, role: str, source_ip: str | None, *, or_ci: bool = False
) -> Caller:
    """The caller of an API token with `role` or above (a WebSocket checks its token with this too)."""
    if token.startswith(AGENT_PREFIX):
        raise ForbiddenError("an agent token only reaches the /api/v1/agent endpoints; use an API token.")
    with context.db.read() as session:
        row = find_api_token(session, token)
        name, granted, apps = row.name, row.role, row.apps
    if granted == CI_ROLE and or_ci:
        return Caller(name=name, role=granted, source_ip=source_ip, apps=tuple(apps or ()))
    if ROLE_RANK[granted] < ROLE_RANK[role]:
        raise ForbiddenError(f"this needs the {role} role; the token {name!r} has the {granted} role.")
    return Caller(name=name, role=granted, source_ip=source_ip)


def lookup_agent(context: ControllerContext, token: str) -> KnownAgent:
    with context.db.read() as session:
        host = find_agent_host(session, token)
        return KnownAgent(host_id=host.id, host=host.name, group=host.group)


async def require_agent(request: Request, context: Context, credentials: Credentials) -> AgentCaller:
    """The calling host; agent tokens are remembered briefly, so the hot path reads no database."""
    token = bearer_token(credentials)
    known = context.agent_tokens.get(token)
    if known is None:
        known = await run_in_threadpool(lookup_agent, context, token)
        context.agent_tokens.put(token, known)
    return AgentCaller.of(known, source_ip(request))


Viewer = Annotated[Caller, Depends(require("viewer"))]
Deployer = Annotated[Caller, Depends(require("deployer"))]
Admin = Annotated[Caller, Depends(require("admin"))]
# Creating releases and deployments, and reading them back: also a ci token, within its apps.
Shipper = Annotated[Caller, Depends(require("deployer", or_ci=True))]
ShipperViewer = Annotated[Caller, Depends(require("viewer", or_ci=True))]
Agent = Annotated[AgentCaller, Depends(require_agent)]
