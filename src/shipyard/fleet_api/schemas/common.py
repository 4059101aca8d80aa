"""Types shared by several API bodies."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

# ci: creates releases and deployments of the apps the token is scoped to, nothing else.
Role = Literal["viewer", "deployer", "admin", "ci"]
# Ids fit a signed 64-bit integer (SQLite's INTEGER, PostgreSQL's bigint); larger ones cannot exist.
MAX_ID = 2**63 - 1
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
# pydantic-core's regex engine: `$` is the end of the text (a trailing newline does not match), as
# shipyard.domain.names.FLEET_NAME with fullmatch.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=NAME_PATTERN)]
# Free text: one line without control characters, or several lines; never NUL (PostgreSQL cannot store it).
LINE_PATTERN = r"^[^\x00-\x1f\x7f]*$"
Line = Annotated[str, Field(pattern=LINE_PATTERN)]
Text = Annotated[str, Field(pattern=r"^[^\x00]*$")]


class Body(BaseModel):
    """Requests reject unknown keys so a typo is an error, not a silently ignored option.

    Numbers must be finite: JSON's Infinity and NaN are refused rather than stored."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Problem(BaseModel):
    loc: list[str | int] = Field(description="where: body, query or path, then the key path")
    msg: str
    type: str


class ErrorOut(BaseModel):
    """The body of every error answer (4xx and 5xx)."""

    detail: str = Field(description="one sentence: what is wrong and how to fix it")
    kind: str = Field(description="the error class, e.g. NotFoundError")
    errors: list[Problem] | None = Field(default=None, description="each invalid input (422 only)")


def release_name(release_id: int) -> str:
    return f"r{release_id}"
