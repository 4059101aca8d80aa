"""Types shared by several API bodies."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["viewer", "deployer", "admin"]
# Ids fit a signed 64-bit integer (SQLite's INTEGER, PostgreSQL's bigint); larger ones cannot exist.
MAX_ID = 2**63 - 1
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]


class Body(BaseModel):
    """Requests reject unknown keys so a typo is an error, not a silently ignored option.

    Numbers must be finite: JSON's Infinity and NaN are refused rather than stored."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ErrorOut(BaseModel):
    detail: str
    kind: str = Field(description="the error class, e.g. NotFoundError")


def release_name(release_id: int) -> str:
    return f"r{release_id}"
