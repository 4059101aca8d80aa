"""Bodies of the previews API: a preview per pull request (never a secret of it)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from shipyard.fleet_api.schemas.common import Body, Line, Name

PullRequest = Annotated[int, Field(ge=1, le=99_999_999, description="the pull request's number")]
Sha = Annotated[str, Field(pattern=r"^[0-9a-f]{40}$", description="a full commit sha")]


class PreviewUp(Body):
    app: Name
    pr: PullRequest
    ref: Sha = Field(description="the commit to preview (the PR's head)")
    repository: Line | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="git URL of the PR's (base) repository; default: the app's hook's repository",
    )


class PreviewPin(Body):
    pinned: bool = Field(default=True, description="false: unpin (the TTL applies again)")


class PreviewOut(BaseModel):
    id: int
    app: str
    preview_app: str = Field(description="the app name its hosts run it under (APP-pr-N)")
    repository: str
    pr: int
    sha: str
    fork: bool
    status: str = Field(description="queued | building | deploying | ready | failed | closing | closed")
    message: str
    host_name: str
    url: str
    pinned: bool
    database: bool = Field(description="a database was handed to it and is still to be dropped")
    release_id: int | None
    job_id: int | None
    age_seconds: int
    ttl_left_seconds: int | None = Field(description="None when pinned or no longer live")
    expires_at: datetime
    created_by: str
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class PreviewAnswer(BaseModel):
    detail: str = Field(description="what was done, or why nothing was")
    preview: PreviewOut | None = None
    job_id: int | None = Field(default=None, description="the build queued, if any")
