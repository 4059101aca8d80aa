"""The client maps every HTTP failure into the shipyard error hierarchy in one place."""

from __future__ import annotations

import httpx
import pytest

from shipyard.errors import (
    ConfigError,
    ControllerAuthError,
    ControllerError,
    LockedError,
    NotFoundError,
    ShipyardError,
)
from shipyard.fleet_api.client import ControllerClient, PermissionDeniedError, TokenRejectedError


def client_answering(status: int, body: dict[str, str]) -> ControllerClient:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, json=body))
    return ControllerClient(
        "http://controller", "sya_x", http=httpx.Client(base_url="http://controller", transport=transport)
    )


@pytest.mark.parametrize(
    ("status", "kind", "error"),
    [
        (404, "NotFoundError", NotFoundError),
        (409, "LockedError", LockedError),
        (409, "ConflictError", ControllerError),
        (422, "ValidationError", ConfigError),
        (401, "UnauthorizedError", TokenRejectedError),
        (403, "ForbiddenError", PermissionDeniedError),
        (500, "InternalError", ControllerError),
    ],
)
def test_http_errors_become_shipyard_errors(status: int, kind: str, error: type[ShipyardError]) -> None:
    with pytest.raises(error, match="the reason"):
        client_answering(status, {"detail": "the reason", "kind": kind}).get_deployment(1)


def test_connection_errors_become_controller_errors() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    http = httpx.Client(base_url="http://controller", transport=httpx.MockTransport(refuse))
    with pytest.raises(ControllerError, match="cannot reach the controller"):
        ControllerClient("http://controller", "sya_x", http=http).hosts()


def test_the_token_is_sent_as_bearer_and_never_in_the_url() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    http = httpx.Client(base_url="http://controller", transport=httpx.MockTransport(record))
    ControllerClient("http://controller", "sya_secret", http=http).hosts()
    assert seen[0].headers["Authorization"] == "Bearer sya_secret"
    assert "sya_secret" not in str(seen[0].url)


def test_refusals_are_told_apart_from_outages() -> None:
    with pytest.raises(TokenRejectedError) as unauthorized:
        client_answering(401, {"detail": "unknown token", "kind": "UnauthorizedError"}).hosts()
    with pytest.raises(PermissionDeniedError) as forbidden:
        client_answering(403, {"detail": "needs admin", "kind": "ForbiddenError"}).hosts()
    assert isinstance(unauthorized.value, ControllerAuthError) and isinstance(
        forbidden.value, ControllerAuthError
    )
    assert not isinstance(unauthorized.value, PermissionDeniedError)
    assert "refused the token" in str(unauthorized.value)
    with pytest.raises(ControllerError) as unavailable:
        client_answering(503, {"detail": "database unavailable", "kind": "ControllerError"}).hosts()
    assert not isinstance(unavailable.value, ControllerAuthError)


def test_delete_host_sends_delete_to_the_host() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    http = httpx.Client(base_url="http://controller", transport=httpx.MockTransport(record))
    ControllerClient("http://controller", "sya_x", http=http).delete_host("h1")
    assert (seen[0].method, seen[0].url.path) == ("DELETE", "/api/v1/hosts/h1")
