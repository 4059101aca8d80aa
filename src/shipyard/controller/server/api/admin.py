"""Locks, the audit log, API tokens and join tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy import select

from shipyard.controller.server.api.deps import Admin, Context, Deployer, ResourceId, Viewer
from shipyard.controller.server.api.responses import API_TOKEN, BODY, PARAMS, errors
from shipyard.controller.server.api.views import audit_out, lock_out, token_out
from shipyard.controller.store import audit, locks, tokens
from shipyard.controller.store.models import ApiToken
from shipyard.errors import NotFoundError
from shipyard.fleet_api.schemas.admin import (
    AuditOut,
    JoinTokenCreate,
    JoinTokenCreated,
    LockCreate,
    LockOut,
    TokenCreate,
    TokenCreated,
    TokenOut,
)
from shipyard.fleet_api.schemas.common import LINE_PATTERN, NAME_PATTERN

router = APIRouter(tags=["admin"], responses=API_TOKEN)
PathName = Annotated[str, Path(min_length=1, max_length=64, pattern=NAME_PATTERN)]
LineFilter = Annotated[str | None, Query(min_length=1, max_length=128, pattern=LINE_PATTERN)]


@router.get("/locks", summary="List held locks (viewer)")
def list_locks(_caller: Viewer, context: Context) -> list[LockOut]:
    with context.db.read() as session:
        return [lock_out(lock) for lock in locks.list_locks(session)]


@router.post(
    "/locks",
    status_code=201,
    summary="Lock an app in an environment (deployer)",
    responses={**BODY, **errors(404, 409)},
)
def lock(body: LockCreate, caller: Deployer, context: Context) -> LockOut:
    with context.db.transaction() as session:
        held = locks.acquire(
            session,
            app=body.app,
            environment=body.environment,
            reason=body.reason,
            actor=caller.name,
            source_ip=caller.source_ip,
        )
        return lock_out(held)


@router.delete(
    "/locks/{app}/{environment}",
    status_code=204,
    summary="Unlock (deployer)",
    responses={**PARAMS, **errors(404)},
)
def unlock(app: PathName, environment: PathName, caller: Deployer, context: Context) -> None:
    with context.db.transaction() as session:
        locks.release(
            session, app=app, environment=environment, actor=caller.name, source_ip=caller.source_ip
        )
    context.driver.tick_after_commit()  # a queued deployment may start now


@router.get("/audit", summary="The audit log, newest first (viewer)", responses=PARAMS)
def list_audit(
    _caller: Viewer,
    context: Context,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    action: LineFilter = None,
    actor: LineFilter = None,
) -> list[AuditOut]:
    with context.db.read() as session:
        return [audit_out(entry) for entry in audit.entries(session, limit=limit, action=action, actor=actor)]


@router.get("/tokens", summary="List API tokens, never their secrets (admin)")
def list_tokens(_caller: Admin, context: Context) -> list[TokenOut]:
    with context.db.read() as session:
        return [token_out(row) for row in session.scalars(select(ApiToken).order_by(ApiToken.id))]


@router.post(
    "/tokens",
    status_code=201,
    summary="Create an API token with a role (admin)",
    responses={**BODY, **errors(409)},
)
def create_token(body: TokenCreate, caller: Admin, context: Context) -> TokenCreated:
    with context.db.transaction() as session:
        row, token = tokens.create_api_token(
            session, name=body.name, role=body.role, created_by=caller.name, apps=body.apps
        )
        audit.record(
            session,
            actor=caller.name,
            action="token.create",
            target=body.name,
            source_ip=caller.source_ip,
            role=body.role,
            apps=body.apps,
        )
        return TokenCreated(**token_out(row).model_dump(), token=token)


@router.delete(
    "/tokens/{token_id}",
    status_code=204,
    summary="Revoke an API token (admin)",
    responses={**PARAMS, **errors(404)},
)
def revoke_token(token_id: ResourceId, caller: Admin, context: Context) -> None:
    with context.db.transaction() as session:
        row = session.get(ApiToken, token_id)
        if row is None or row.revoked_at is not None:
            raise NotFoundError(f"API token {token_id} does not exist or is already revoked.")
        row.revoked_at = context.now()
        audit.record(
            session, actor=caller.name, action="token.revoke", target=row.name, source_ip=caller.source_ip
        )


@router.post(
    "/join-tokens",
    status_code=201,
    summary="Create a one-time join token for a host group (admin)",
    responses={**BODY, **errors(409)},
)
def create_join_token(body: JoinTokenCreate, caller: Admin, context: Context) -> JoinTokenCreated:
    with context.db.transaction() as session:
        row, token = tokens.create_join_token(
            session, group=body.group, created_by=caller.name, now=context.now(), expires_in=body.expires_in
        )
        audit.record(
            session,
            actor=caller.name,
            action="join_token.create",
            target=body.group,
            source_ip=caller.source_ip,
        )
        return JoinTokenCreated(id=row.id, group=row.group, expires_at=row.expires_at, token=token)
