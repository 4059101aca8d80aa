"""Release bodies: an immutable image digest plus the full spec snapshot."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, field_validator

from shipyard.controller.schemas.common import Body, Line

Digest = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$", examples=["sha256:" + "0" * 64])]


class ReleaseCreate(Body):
    image: Line = Field(
        min_length=1, max_length=255, description="repository without tag, e.g. registry:5000/web"
    )
    digest: Digest
    spec: dict[str, Any] = Field(description="spec snapshot (shipyard.domain.spec.spec_snapshot)")

    @field_validator("spec")
    @classmethod
    def _finite_numbers(cls, spec: dict[str, Any]) -> dict[str, Any]:
        # JSON's Infinity and NaN cannot be stored (PostgreSQL's JSON refuses them), wherever they are.
        pending: list[Any] = [spec]
        while pending:
            value = pending.pop()
            if isinstance(value, dict):
                pending.extend(value.values())
            elif isinstance(value, list):
                pending.extend(value)
            elif isinstance(value, float) and not math.isfinite(value):
                raise ValueError("numbers in the spec must be finite (not Infinity or NaN)")
        return spec


class ReleaseOut(BaseModel):
    id: int
    name: str = Field(description="display name, r<id>")
    app: str
    image: str
    digest: str
    spec: dict[str, Any]
    created_by: str
    created_at: datetime
