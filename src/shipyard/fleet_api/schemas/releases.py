"""Release bodies: an immutable image digest plus the full spec snapshot."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, field_validator

from shipyard.fleet_api.schemas.common import Body, Line

Signature = Annotated[str, Field(pattern=r"^ed25519:[0-9a-f]{16}:[A-Za-z0-9+/]{86}==$", max_length=160)]
MAX_SPEC_BYTES = 64 * 1024  # a shipyard.yml snapshot is a few kilobytes
GitSha = Annotated[str, Field(pattern=r"^[0-9a-f]{7,64}$", examples=["0" * 40])]
Digest = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$", examples=["sha256:" + "0" * 64])]


class ReleaseCreate(Body):
    image: Line = Field(
        min_length=1, max_length=255, description="repository without tag, e.g. registry:5000/web"
    )
    digest: Digest
    spec: dict[str, Any] = Field(
        description="spec snapshot (shipyard.domain.spec.spec_snapshot), at most 64 KiB as JSON"
    )
    signature: Signature | None = Field(
        default=None,
        description="signature by a CI key over the release (shipyard.signing); the controller signs "
        "releases that come without one when it has a signing key",
    )
    git_sha: GitSha | None = Field(default=None, description="the commit the image was built from")

    @field_validator("spec")
    @classmethod
    def spec_is_bounded(cls, spec: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(spec, separators=(",", ":")).encode())
        if size > MAX_SPEC_BYTES:
            raise ValueError(f"the spec is {size} bytes as JSON; at most {MAX_SPEC_BYTES} are accepted")
        return spec

    @field_validator("spec")
    @classmethod
    def _finite_numbers(cls, spec: dict[str, Any]) -> dict[str, Any]:
        # JSON's Infinity and NaN cannot be stored (PostgreSQL's JSON refuses them), wherever they are.
        pending: list[tuple[str, Any]] = [("", spec)]
        while pending:
            path, value = pending.pop()
            if isinstance(value, dict):
                pending.extend((f"{path}.{key}" if path else str(key), item) for key, item in value.items())
            elif isinstance(value, list):
                pending.extend((f"{path}.{index}", item) for index, item in enumerate(value))
            elif isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{path}: numbers in the spec must be finite (not Infinity or NaN)")
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
    signature: str | None = None
    git_sha: str | None = None
