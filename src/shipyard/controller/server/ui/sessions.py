"""Dashboard sessions: a random id in an HttpOnly cookie, its sha256 and the signed-in token's id here.

The cookie never holds an API token. A session ends at sign-out, at expiry, or when its token is revoked;
each carries its own CSRF token, which every form posts back.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from shipyard.controller.errors import UnauthorizedError
from shipyard.controller.store.models import ApiToken, Base
from shipyard.controller.store.tokens import AGENT_PREFIX, ROLE_RANK, find_api_token

SESSION_LIFETIME = timedelta(hours=8)
COOKIE_NAME = "shipyard_session"


class UiSession(Base):
    __tablename__ = "ui_sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column(index=True)


@dataclass(frozen=True)
class SignedIn:
    """Who is signed in, as the pages need it: never the token itself."""

    name: str
    role: str
    csrf_token: str

    def may(self, role: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def sign_in(session: Session, token: str, *, now: datetime) -> str:
    """A new session for an API token; returns the id to put in the cookie."""
    token = token.strip()
    if not token:
        raise UnauthorizedError("enter an API token to sign in; an admin creates one with `shipyard token`.")
    if token.startswith(AGENT_PREFIX):
        raise UnauthorizedError("an agent token cannot sign in to the dashboard; use an API token.")
    row = find_api_token(session, token)
    session_id = secrets.token_urlsafe(32)
    session.execute(delete(UiSession).where(UiSession.expires_at <= now))  # expired ones go on the way
    session.add(
        UiSession(
            id_hash=_hash(session_id),
            token_id=row.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    return session_id


def signed_in(session: Session, session_id: str | None, *, now: datetime) -> SignedIn | None:
    """The live session's user; None when there is none, it expired or its token was revoked."""
    if not session_id:
        return None
    found = session.execute(
        select(UiSession, ApiToken)
        .join(ApiToken, ApiToken.id == UiSession.token_id)
        .where(UiSession.id_hash == _hash(session_id))
    ).first()
    if found is None:
        return None
    ui_session, token = found
    if ui_session.expires_at <= now or token.revoked_at is not None:
        return None
    return SignedIn(name=token.name, role=token.role, csrf_token=ui_session.csrf_token)


def sign_out(session: Session, session_id: str | None) -> None:
    if session_id:
        session.execute(delete(UiSession).where(UiSession.id_hash == _hash(session_id)))


def csrf_matches(user: SignedIn, posted: str | None) -> bool:
    return bool(posted) and hmac.compare_digest(user.csrf_token.encode(), (posted or "").encode())
