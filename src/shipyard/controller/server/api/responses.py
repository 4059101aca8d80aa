"""The error answers each route declares in the OpenAPI document, all with the ErrorOut body.

FastAPI documents only success and its own 422 shape; these declarations make the document say what
the API really answers, so clients and contract tests can rely on it.
"""

from __future__ import annotations

from typing import Any

from shipyard.fleet_api.schemas.common import ErrorOut

DESCRIPTIONS = {
    400: "the body could not be read as JSON",
    401: "the bearer token is missing, unknown, revoked or expired",
    403: "the token's role does not allow this",
    404: "the named record does not exist",
    409: "the request conflicts with the current state (a lock, a running deployment, a duplicate)",
    413: "the request body is larger than the controller accepts",
    422: "the path, query or body is invalid; `errors` lists each problem",
    503: "the controller database is unavailable; retry shortly",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route or router: each status with the error body and what it means."""
    return {status: {"model": ErrorOut, "description": DESCRIPTIONS[status]} for status in statuses}


# Every route behind an API token; routes add what else they may answer.
API_TOKEN = errors(401, 403, 503)
# A route with a JSON body: unreadable, too large or invalid.
BODY = errors(400, 413, 422)
# A route whose path or query parameters are validated.
PARAMS = errors(422)
