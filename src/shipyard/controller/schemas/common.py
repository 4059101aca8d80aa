"""Types shared by several API bodies."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["viewer", "deployer", "admin"]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]


class Body(BaseModel):
    """Requests reject unknown keys so a typo is an error, not a silently ignored option."""

    model_config = ConfigDict(extra="forbid")


class ErrorOut(BaseModel):
    detail: str
    kind: str = Field(description="the error class, e.g. NotFoundError")


def release_name(release_id: int) -> str:
    return f"r{release_id}"
