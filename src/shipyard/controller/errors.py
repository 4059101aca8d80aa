"""Controller-side refinements of the shipyard error hierarchy, and their HTTP status codes.

The API maps every ShipyardError to a 4xx answer in one place (server/api/errors.py) using STATUS_BY_ERROR;
the client maps the codes back into the same classes.
"""

from __future__ import annotations

from shipyard.errors import ConfigError, LockedError, NotFoundError, ShipyardError


class UnauthorizedError(ShipyardError):
    """The bearer token is missing, unknown, revoked or expired."""


class ForbiddenError(ShipyardError):
    """The token is valid but its role does not allow this action."""


class ConflictError(ShipyardError):
    """The request contradicts the current state, e.g. pausing a finished deployment."""


STATUS_BY_ERROR: tuple[tuple[type[ShipyardError], int], ...] = (
    (UnauthorizedError, 401),
    (ForbiddenError, 403),
    (NotFoundError, 404),
    (LockedError, 409),
    (ConflictError, 409),
    (ConfigError, 422),
)


def status_for(error: ShipyardError) -> int:
    for kind, status in STATUS_BY_ERROR:
        if isinstance(error, kind):
            return status
    return 400
