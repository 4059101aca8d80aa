"""The client maps every HTTP failure into the shipyard error hierarchy in one place."""

from __future__ import annotations

import httpx
import pytest

from shipyard.controller.client import ControllerClient
from shipyard.errors import ConfigError, ControllerError, LockedError, NotFoundError, ShipyardError


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
        (401, "UnauthorizedError", ControllerError),
        (403, "ForbiddenError", ControllerError),
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
