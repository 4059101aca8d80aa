"""Types shared by several API bodies."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field

Role = Literal["viewer", "deployer", "admin"]
# pydantic-core's regex engine: `$` is the end of the text (a trailing newline does not match), as
# shipyard.domain.names.FLEET_NAME with fullmatch.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=NAME_PATTERN)]
# The same name as a path segment or a query filter.
NameInPath = Annotated[str, Path(min_length=1, max_length=64, pattern=NAME_PATTERN)]
NameQuery = Annotated[str | None, Query(min_length=1, max_length=64, pattern=NAME_PATTERN)]


class Body(BaseModel):
    """Requests reject unknown keys so a typo is an error, not a silently ignored option."""

    model_config = ConfigDict(extra="forbid")


class ErrorOut(BaseModel):
    detail: str
    kind: str = Field(description="the error class, e.g. NotFoundError")


def release_name(release_id: int) -> str:
    return f"r{release_id}"
