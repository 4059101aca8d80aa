"""POST /hooks/github/{app} and /hooks/gitlab/{app}: verify, store the delivery, then answer.

The body is read with a limit (413 beyond it, nothing more buffered); the signature is checked before
anything parses the body; the delivery and any job it queues are committed before the 202 goes out.
Nothing here waits on a build: the worker picks the job up.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from shipyard.controller.api.deps import source_ip
from shipyard.controller.context import ControllerContext
from shipyard.controller.pipeline import github, gitlab, hooks
from shipyard.controller.settings import body_limit_for

router = APIRouter(tags=["webhooks"])

DEFAULT_LIMIT = 1024 * 1024
HEADER_VALUE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
APP_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
GITLAB_EVENT = re.compile(r"^[A-Za-z][A-Za-z ]{0,63}$")  # "Push Hook", "Merge Request Hook"
REJECTED_REASON = {"github": "bad signature", "gitlab": "bad token"}
UNVERIFIED = {
    "github": "the X-Hub-Signature-256 signature does not match the hook's secret.",
    "gitlab": "the X-Gitlab-Token does not match the hook's secret token.",
}


class BodyTooLarge(Exception):
    pass


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(status: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status)


@dataclass(frozen=True)
class _Reply:
    status: int
    detail: str
    verdict: str = ""
    job_id: int | None = None


def _store(
    context: ControllerContext, received: hooks.Received, body: bytes, verify: Callable[[list[str]], bool]
) -> _Reply:
    with context.db.transaction() as session:
        hook = hooks.find_hook(session, received.app, lock=True)  # NotFoundError -> 404
        if hook.provider != received.provider:
            return _Reply(
                404, f"app {received.app!r}'s hook is a {hook.provider} hook, not {received.provider}."
            )
        if not verify(hooks.accepted_secrets(hook)):
            hooks.record_rejected(session, received, REJECTED_REASON[received.provider])
            return _Reply(401, UNVERIFIED[received.provider])
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            payload = None
        if not isinstance(payload, dict):
            hooks.record(session, received, hooks.Outcome(hooks.REJECTED, "the body is not a JSON object"))
            return _Reply(400, "the body is not a JSON object; send the payload as application/json.")
        outcome = hooks.handle(session, hook, received, payload, context.now())
    status = 200 if outcome.verdict == hooks.PING else 202
    return _Reply(status, outcome.reason[: hooks.REASON_LIMIT], outcome.verdict, outcome.job_id)


async def _read_body(request: Request, provider: str) -> bytes | JSONResponse:
    limit = body_limit_for(request.url.path, DEFAULT_LIMIT)
    try:
        return await read_limited(request, limit)
    except BodyTooLarge:
        return _answer(
            413, f"the payload is larger than {limit // (1024 * 1024)} MiB; {provider} never sends more."
        )


async def _reply(
    request: Request, received: hooks.Received, body: bytes, verify: Callable[[list[str]], bool]
) -> JSONResponse:
    context: ControllerContext = request.app.state.context
    reply = await run_in_threadpool(_store, context, received, body, verify)
    if reply.job_id is not None and reply.verdict == hooks.ACCEPTED:
        worker = getattr(request.app.state, "job_worker", None)
        if worker is not None:
            worker.wake()
    return _answer(reply.status, reply.detail, verdict=reply.verdict, job_id=reply.job_id)


@router.post("/hooks/github/{app}", summary="GitHub webhook (signed with the hook's secret)")
async def github_hook(app: str, request: Request) -> JSONResponse:
    if not APP_NAME.match(app):
        return _answer(404, f"no hook is registered at {request.url.path}.")
    body = await _read_body(request, "GitHub")
    if isinstance(body, JSONResponse):
        return body
    delivery_id = request.headers.get("x-github-delivery", "")
    event = request.headers.get("x-github-event", "")
    if not HEADER_VALUE.match(delivery_id) or not HEADER_VALUE.match(event):
        return _answer(
            400, "X-GitHub-Delivery and X-GitHub-Event headers are required (as GitHub sends them)."
        )
    received = hooks.Received("github", app, delivery_id, event, source_ip(request))
    signature = request.headers.get("x-hub-signature-256")
    return await _reply(
        request, received, body, lambda secrets: github.verify_signature(signature, body, secrets)
    )


@router.post("/hooks/gitlab/{app}", summary="GitLab webhook (X-Gitlab-Token is the hook's secret)")
async def gitlab_hook(app: str, request: Request) -> JSONResponse:
    if not APP_NAME.match(app):
        return _answer(404, f"no hook is registered at {request.url.path}.")
    body = await _read_body(request, "GitLab")
    if isinstance(body, JSONResponse):
        return body
    delivery_id = request.headers.get("x-gitlab-event-uuid") or request.headers.get("idempotency-key", "")
    event = request.headers.get("x-gitlab-event", "")
    if not HEADER_VALUE.match(delivery_id) or not GITLAB_EVENT.match(event):
        return _answer(
            400, "X-Gitlab-Event and X-Gitlab-Event-UUID (or Idempotency-Key) headers are required."
        )
    received = hooks.Received("gitlab", app, delivery_id, event, source_ip(request))
    token = request.headers.get("x-gitlab-token")
    return await _reply(request, received, body, lambda secrets: gitlab.verify_token(token, secrets))
