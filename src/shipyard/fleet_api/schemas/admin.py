"""Locks, audit entries and tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, model_validator

from shipyard.fleet_api.schemas.common import Body, Line, Name, Role, Text

MAX_JOIN_TOKEN_LIFETIME = 366 * 24 * 3600.0  # seconds; a host that joins later needs a new token


class LockCreate(Body):
    app: Name
    environment: Name
    reason: Text = Field(min_length=1, max_length=500)


class LockOut(BaseModel):
    app: str
    environment: str
    holder: str
    reason: str
    since: datetime


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    source_ip: str | None
    detail: dict[str, Any]


class TokenCreate(Body):
    name: Line = Field(min_length=1, max_length=128)
    role: Role
    apps: list[Name] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="ci tokens only, and required for them: the apps the token may ship",
    )

    @model_validator(mode="after")
    def apps_only_for_ci(self) -> TokenCreate:
        if self.role == "ci" and not self.apps:
            raise ValueError("a ci token needs the apps it may ship: pass apps (--app APP, repeatable)")
        if self.role != "ci" and self.apps is not None:
            raise ValueError(f"apps scope only ci tokens; a {self.role} token reaches every app")
        return self


class TokenOut(BaseModel):
    id: int
    name: str
    role: str
    created_by: str
    created_at: datetime
    revoked: bool
    apps: list[str] | None = Field(default=None, description="the apps a ci token may ship")


class TokenCreated(TokenOut):
    token: str = Field(description="shown only in this response; store it now")


class JoinTokenCreate(Body):
    group: Name = Field(description="host group the new host joins; the environment of the same name")
    expires_in: float | None = Field(
        default=3600.0,
        gt=0,
        le=MAX_JOIN_TOKEN_LIFETIME,
        description="seconds (at most a year); null for never",
    )


class JoinTokenCreated(BaseModel):
    id: int
    group: str
    expires_at: datetime | None
    token: str = Field(description="one-time; shown only in this response")
