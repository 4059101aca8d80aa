"""The hooks registry (admin): add, list, remove, rotate a secret; and the deliveries received."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from shipyard.controller.server.api.deps import Admin, Context, Viewer
from shipyard.controller.server.api.params import HookAppInPath, NameQuery
from shipyard.controller.server.api.responses import API_TOKEN, BODY, PARAMS, errors
from shipyard.controller.store import hooks
from shipyard.controller.store.pipeline_models import Delivery, Hook
from shipyard.fleet_api.schemas.pipeline import DeliveryOut, HookCreate, HookOut, HookRotate

router = APIRouter(prefix="/hooks", tags=["pipeline"], responses=API_TOKEN)


def hook_out(hook: Hook) -> HookOut:
    return HookOut(
        id=hook.id,
        provider=hook.provider,
        app=hook.app.name,
        repository=hook.repository,
        pipelines=list(hook.pipelines),
        deploy_key_secret=hook.deploy_key_secret,
        rotating=hook.previous_secret is not None,
        payload_path=f"/hooks/{hook.provider}/{hook.app.name}",
        created_by=hook.created_by,
        created_at=hook.created_at,
        rotated_at=hook.rotated_at,
    )


def delivery_out(delivery: Delivery) -> DeliveryOut:
    return DeliveryOut.model_validate(delivery, from_attributes=True)


@router.get("", summary="List hooks, never their secrets (admin)")
def list_hooks(_caller: Admin, context: Context) -> list[HookOut]:
    with context.db.read() as session:
        return [hook_out(hook) for hook in hooks.list_hooks(session)]


@router.post(
    "",
    status_code=201,
    summary="Register an app's webhook (admin)",
    responses={**BODY, **errors(409)},
)
def add_hook(body: HookCreate, caller: Admin, context: Context) -> HookOut:
    with context.db.transaction() as session:
        hook = hooks.add_hook(
            session,
            provider=body.provider,
            app=body.app,
            repository=body.repository,
            secret=body.secret,
            pipelines=[pipeline.model_dump() for pipeline in body.pipelines],
            actor=caller.name,
            source_ip=caller.source_ip,
            deploy_key_secret=body.deploy_key_secret,
        )
        return hook_out(hook)


@router.get("/deliveries", summary="Webhook deliveries received, newest first (viewer)", responses=PARAMS)
def list_deliveries(
    _caller: Viewer,
    context: Context,
    app: NameQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[DeliveryOut]:
    with context.db.read() as session:
        return [delivery_out(d) for d in hooks.deliveries(session, app=app, limit=limit)]


@router.delete(
    "/{app}",
    status_code=204,
    summary="Remove an app's hook (admin)",
    responses={**PARAMS, **errors(404)},
)
def remove_hook(app: HookAppInPath, caller: Admin, context: Context) -> None:
    with context.db.transaction() as session:
        hooks.remove_hook(session, app, actor=caller.name, source_ip=caller.source_ip)


@router.post(
    "/{app}/rotate",
    summary="Start (new secret) or end (no secret) a secret rotation (admin)",
    responses={**PARAMS, **BODY, **errors(404, 409)},
)
def rotate(app: HookAppInPath, body: HookRotate, caller: Admin, context: Context) -> HookOut:
    with context.db.transaction() as session:
        hook = hooks.rotate_secret(
            session, app, secret=body.secret, now=context.now(), actor=caller.name, source_ip=caller.source_ip
        )
        return hook_out(hook)
