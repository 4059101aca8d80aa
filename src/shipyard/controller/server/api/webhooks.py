"""POST /hooks/github/{app} and /hooks/gitlab/{app}: verify the raw body, store the delivery, answer.

The body is read with a limit (413 beyond it, nothing more buffered); the signature is checked before
anything parses the body; the delivery and any job it queues (or preview it tears down) are committed
before the 202 goes out.
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
from starlette.types import ASGIApp, Receive, Scope, Send

from shipyard.controller.engine import github, gitlab
from shipyard.controller.errors import UnauthorizedError
from shipyard.controller.server import previews
from shipyard.controller.server.api.deps import source_ip
from shipyard.controller.server.api.errors import KIND_BY_STATUS, answer_for
from shipyard.controller.server.api.responses import errors
from shipyard.controller.server.context import ControllerContext
from shipyard.controller.server.settings import body_limit_for
from shipyard.controller.store import hooks
from shipyard.errors import NotFoundError
from shipyard.fleet_api.schemas.pipeline import HOOK_APP_PATTERN, DeliveryAnswer

router = APIRouter(tags=["webhooks"])

DEFAULT_LIMIT = 1024 * 1024
HEADER_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
SIGNATURE_PATTERN = r"^sha256=[0-9a-f]{64}$"
# Matched whole: pydantic's `$` is the end of the text, Python's also allows a trailing newline.
HEADER_VALUE = re.compile(HEADER_PATTERN.strip("^$"))
APP_NAME = re.compile(HOOK_APP_PATTERN.strip("^$"))
GITLAB_EVENT_PATTERN = r"^[A-Za-z][A-Za-z ]{0,63}$"  # "Push Hook", "Merge Request Hook"
GITLAB_EVENT = re.compile(GITLAB_EVENT_PATTERN.strip("^$"))
KIND_BY_STATUS_HERE = {400: "BadRequestError", 404: NotFoundError.__name__, 401: UnauthorizedError.__name__}
REJECTED_REASON = {"github": "bad signature", "gitlab": "bad token"}
UNVERIFIED = {
    "github": "the X-Hub-Signature-256 signature does not match the hook's secret.",
    "gitlab": "the X-Gitlab-Token does not match the hook's secret token.",
}
CLASSIFY = {"github": github.classify, "gitlab": gitlab.classify}


def _header(name: str, pattern: str, description: str) -> dict[str, Any]:
    schema = {"type": "string", "pattern": pattern}
    return {"name": name, "in": "header", "required": True, "schema": schema, "description": description}


# The body is read as bytes and verified before anything parses it, and the route checks the app and
# headers itself (a refusal is 400 or 404, never FastAPI's 422): so FastAPI declares none of them, and
# the document describes them here for clients and contract tests.
APP_PARAMETER: dict[str, Any] = {
    "name": "app",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": HOOK_APP_PATTERN},
    "description": "the app whose hook receives the delivery (another name is answered 404)",
}


def _openapi_extra(provider: str, headers: list[dict[str, Any]], checked: str) -> dict[str, Any]:
    return {
        "parameters": [APP_PARAMETER, *headers],
        "requestBody": {
            "required": True,
            "description": f"{provider}'s payload as sent (content type application/json); {checked}",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
    }


GITHUB_EXTRA = _openapi_extra(
    "GitHub",
    [
        _header("X-GitHub-Delivery", HEADER_PATTERN, "the delivery's id (GitHub's GUID)"),
        _header("X-GitHub-Event", HEADER_PATTERN, "the event: push, pull_request, ping, ..."),
        _header(
            "X-Hub-Signature-256",
            SIGNATURE_PATTERN,
            "HMAC-SHA256 of the raw body under the hook's secret, as GitHub computes it",
        ),
    ],
    "its signature is checked on these exact bytes before they are parsed",
)
GITLAB_EXTRA = _openapi_extra(
    "GitLab",
    [
        _header("X-Gitlab-Event-UUID", HEADER_PATTERN, "the delivery's id (or Idempotency-Key)"),
        _header("X-Gitlab-Event", GITLAB_EVENT_PATTERN, "the event: Push Hook, Merge Request Hook, ..."),
        {
            "name": "X-Gitlab-Token",
            "in": "header",
            "required": True,
            "schema": {"type": "string"},
            "description": "the hook's secret token, compared in constant time before the body is parsed",
        },
    ],
    "the token is checked before the body is parsed",
)


def _responses(bad_request: str, unverified: str) -> dict[int | str, dict[str, Any]]:
    answers: dict[int | str, dict[str, Any]] = {
        200: {"model": DeliveryAnswer, "description": "a ping: the hook is set up"},
        202: {"model": DeliveryAnswer, "description": "the delivery is stored (and its job queued, if any)"},
        **errors(400, 401, 404, 413, 503),
    }
    answers[400] = {**answers[400], "description": bad_request}
    answers[401] = {**answers[401], "description": unverified}
    answers[404] = {**answers[404], "description": "no hook of this provider is registered for the app"}
    return answers


GITHUB_RESPONSES = _responses(
    "X-GitHub-Delivery or X-GitHub-Event is missing or malformed, or the signed body is not a JSON object",
    "X-Hub-Signature-256 is missing or does not match",
)
GITLAB_RESPONSES = _responses(
    "X-Gitlab-Event or its delivery id is missing or malformed, or the body is not a JSON object",
    "X-Gitlab-Token is missing or does not match",
)


class BodyTooLarge(Exception):
    pass


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:  # not "²", a digit to isdigit
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(status: int, detail: str, **extra: Any) -> JSONResponse:
    """An answer with the error body's `kind` on a refusal (status 400 and up)."""
    if status >= 400:
        extra["kind"] = KIND_BY_STATUS_HERE.get(status) or KIND_BY_STATUS.get(status, "HTTPError")
    return JSONResponse({"detail": detail, **extra}, status_code=status)


@dataclass(frozen=True)
class _Reply:
    status: int
    detail: str
    verdict: str = ""
    job_id: int | None = None
    previews_changed: bool = False


def _store(
    context: ControllerContext, received: hooks.Received, body: bytes, verify: Callable[[list[str]], bool]
) -> _Reply:
    """Verify, classify, store. Most deliveries queue nothing (other branches, tags, pings): they
    cost one read and one prepared insert, no ORM and no lock on the hook. Only a delivery that
    ships a commit takes the hook's lock, for the duplicate checks and its job's admission."""
    with context.db.core_read() as connection:
        keys = hooks.hook_keys(connection, received.app)  # NotFoundError -> 404
    if keys.provider != received.provider:
        return _Reply(404, f"app {received.app!r}'s hook is a {keys.provider} hook, not {received.provider}.")
    if not verify(keys.secrets):
        with context.db.transaction() as session:
            hooks.record_rejected(session, received, REJECTED_REASON[received.provider])
        return _Reply(401, UNVERIFIED[received.provider])
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        payload = None
    if not isinstance(payload, dict):
        outcome = hooks.Outcome(hooks.REJECTED, "the body is not a JSON object")
        with context.db.core_transaction() as connection:
            hooks.insert_delivery(connection, received, outcome, context.now())
        return _Reply(400, "the body is not a JSON object; send the payload as application/json.")
    verdict = CLASSIFY[received.provider](received.event, payload, keys.pipelines)
    if verdict.action != github.SHIP and not _may_concern_previews(received, payload):
        outcome = hooks.Outcome(
            hooks.PING if verdict.action == github.PING else hooks.IGNORED, verdict.reason
        )
        with context.db.core_transaction() as connection:
            hooks.insert_delivery(connection, received, outcome, context.now())
    else:
        with context.db.transaction() as session:
            hook = hooks.find_hook(session, received.app, lock=True)
            outcome = hooks.handle(session, hook, received, payload, context.now())
    status = 200 if outcome.verdict == hooks.PING else 202
    return _Reply(
        status,
        hooks.printable_reason(outcome.reason),
        outcome.verdict,
        outcome.job_id,
        outcome.previews_changed,
    )


def _may_concern_previews(received: hooks.Received, payload: dict[str, Any]) -> bool:
    """A pull_request opened, reopened, synchronize or closed, or a GitLab merge request opened,
    reopened, updated with new commits, closed or merged: it takes the hook's lock like a commit does,
    since it may build, replace or tear down a preview (store/previews.py decides). The repository
    only labels the event, which is parsed again under the lock."""
    return hooks.preview_event(received, payload, repository="") is not None


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
    if reply.previews_changed:
        previews.torn_down(context)
    if reply.job_id is not None and reply.verdict == hooks.ACCEPTED:
        worker = getattr(request.app.state, "job_worker", None)
        if worker is not None:
            worker.wake()
    return _answer(reply.status, reply.detail, verdict=reply.verdict, job_id=reply.job_id)


async def _app_and_body(request: Request, provider: str) -> tuple[str, bytes] | JSONResponse:
    """The app named in the path and the raw body, or the answer refusing the delivery."""
    app: str = request.path_params["app"]
    if not APP_NAME.fullmatch(app):
        return _answer(404, f"no hook is registered at {request.url.path}.")
    body = await _read_body(request, provider)
    if isinstance(body, JSONResponse):
        return body
    return app, body


@router.post(
    "/hooks/github/{app}",
    status_code=202,
    summary="GitHub webhook (signed with the hook's secret)",
    response_model=DeliveryAnswer,
    responses=GITHUB_RESPONSES,
    openapi_extra=GITHUB_EXTRA,
)
async def github_hook(request: Request) -> JSONResponse:
    read = await _app_and_body(request, "GitHub")
    if isinstance(read, JSONResponse):
        return read
    app, body = read
    delivery_id = request.headers.get("x-github-delivery", "")
    event = request.headers.get("x-github-event", "")
    if not HEADER_VALUE.fullmatch(delivery_id) or not HEADER_VALUE.fullmatch(event):
        return _answer(
            400, "X-GitHub-Delivery and X-GitHub-Event headers are required (as GitHub sends them)."
        )
    received = hooks.Received("github", app, delivery_id, event, source_ip(request))
    signature = request.headers.get("x-hub-signature-256")
    return await _reply(
        request, received, body, lambda secrets: github.verify_signature(signature, body, secrets)
    )


@router.post(
    "/hooks/gitlab/{app}",
    status_code=202,
    summary="GitLab webhook (X-Gitlab-Token is the hook's secret)",
    response_model=DeliveryAnswer,
    responses=GITLAB_RESPONSES,
    openapi_extra=GITLAB_EXTRA,
)
async def gitlab_hook(request: Request) -> JSONResponse:
    read = await _app_and_body(request, "GitLab")
    if isinstance(read, JSONResponse):
        return read
    app, body = read
    delivery_id = request.headers.get("x-gitlab-event-uuid") or request.headers.get("idempotency-key", "")
    event = request.headers.get("x-gitlab-event", "")
    if not HEADER_VALUE.fullmatch(delivery_id) or not GITLAB_EVENT.fullmatch(event):
        return _answer(
            400, "X-Gitlab-Event and X-Gitlab-Event-UUID (or Idempotency-Key) headers are required."
        )
    received = hooks.Received("gitlab", app, delivery_id, event, source_ip(request))
    token = request.headers.get("x-gitlab-token")
    return await _reply(request, received, body, lambda secrets: gitlab.verify_token(token, secrets))


HOOK_PATH = re.compile(r"/hooks/(github|gitlab)/([^/]+)")
ENDPOINTS = {"github": github_hook, "gitlab": gitlab_hook}


class WebhookHotPath:
    """POST /hooks/{github,gitlab}/{app} answered by the route's own function without the framework's
    routing and dependency resolution, which cost more than verifying and storing the delivery. Bodies
    are still bounded by RequestBodyLimit outside; errors get the application's answers (answer_for)."""

    def __init__(self, app: ASGIApp, context: ControllerContext) -> None:
        self._app, self._context = app, context
        # The latency metrics name these requests after the route they would have matched.
        self._routes = {
            provider: next(r for r in router.routes if getattr(r, "endpoint", None) is endpoint)
            for provider, endpoint in ENDPOINTS.items()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        matched = HOOK_PATH.fullmatch(scope["path"]) if scope["type"] == "http" else None
        if matched is None or scope["method"] != "POST":
            await self._app(scope, receive, send)
            return
        provider, app = matched.groups()
        scope["route"] = self._routes[provider]
        scope["path_params"] = {"app": app}
        request = Request(scope, receive)
        try:
            response = await ENDPOINTS[provider](request)
        except Exception as exc:  # the application's handlers decide the answer (404, 503, 500)
            response = await answer_for(request, exc)
        await response(scope, receive, send)
