"""Bearer tokens: API tokens with a role, one-time join tokens and per-host agent tokens.

Tokens are 32 random bytes, so a plain sha256 is enough to store them: there is nothing to brute-force.
Only the hash is kept; the token itself appears once, in the response that creates it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from shipyard.controller.errors import UnauthorizedError
from shipyard.controller.store.models import ApiToken, JoinToken

# ci ranks below viewer: it reaches only the routes that name it (releases and deployments of its apps).
ROLE_RANK = {"ci": 0, "viewer": 1, "deployer": 2, "admin": 3}
CI_ROLE = "ci"
API_PREFIX, AGENT_PREFIX, JOIN_PREFIX = "sya_", "syg_", "syj_"


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_token(
    session: Session, *, name: str, role: str, created_by: str, apps: list[str] | None = None
) -> tuple[ApiToken, str]:
    token = new_token(API_PREFIX)
    row = ApiToken(name=name, role=role, token_hash=hash_token(token), created_by=created_by, apps=apps)
    session.add(row)
    session.flush()
    return row, token


def find_api_token(session: Session, token: str) -> ApiToken:
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None or row.revoked_at is not None:
        raise UnauthorizedError("the API token is unknown or revoked; create one with an admin token.")
    return row


def bootstrap_admin(session: Session, token: str) -> bool:
    """Store the operator's admin token, on first start only (while no API token exists)."""
    if session.scalar(select(ApiToken.id).limit(1)) is not None:
        return False
    session.add(
        ApiToken(name="bootstrap-admin", role="admin", token_hash=hash_token(token), created_by="bootstrap")
    )
    return True


def create_join_token(
    session: Session, *, group: str, created_by: str, now: datetime, expires_in: float | None
) -> tuple[JoinToken, str]:
    token = new_token(JOIN_PREFIX)
    expires_at = now + timedelta(seconds=expires_in) if expires_in is not None else None
    row = JoinToken(group=group, token_hash=hash_token(token), created_by=created_by, expires_at=expires_at)
    session.add(row)
    session.flush()
    return row, token


def _usable(row: JoinToken | None, now: datetime) -> JoinToken:
    if row is None or row.used_at is not None:
        raise UnauthorizedError("the join token is unknown or already used; ask an admin for a new one.")
    if row.expires_at is not None and row.expires_at <= now:
        raise UnauthorizedError("the join token expired; ask an admin for a new one.")
    return row


def check_join_token(session: Session, token: str, *, now: datetime) -> None:
    """Raises UnauthorizedError unless `token` could register a host now (it stays unused)."""
    _usable(session.scalar(select(JoinToken).where(JoinToken.token_hash == hash_token(token))), now)


def consume_join_token(session: Session, token: str, *, host_name: str, now: datetime) -> JoinToken:
    query = select(JoinToken).where(JoinToken.token_hash == hash_token(token)).with_for_update()
    row = _usable(session.scalar(query), now)
    row.used_at, row.used_by = now, host_name
    return row
