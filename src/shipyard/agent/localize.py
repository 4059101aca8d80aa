"""A controller release made local: the spec bound to this host's address, as the host store keeps it.

On a machine with several lab hosts (one network namespace), each host listens on its own loopback
address, so `bind` and the host part of `proxy.listen` are this host's address; the ports stay.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shipyard.controller.schemas.agent import DesiredApp
from shipyard.controller.schemas.common import MAX_ID
from shipyard.domain.models import Release

CONTROLLER_ACTOR = "controller"


def localized_snapshot(snapshot: dict[str, Any], address: str | None) -> dict[str, Any]:
    """The snapshot with `bind` and the listen host replaced by `address` (unchanged when None)."""
    if not address:
        return snapshot
    proxy = dict(snapshot.get("proxy") or {})
    port = str(proxy.get("listen", "127.0.0.1:8080")).rpartition(":")[2]
    proxy["listen"] = f"{address}:{port}"
    return {**snapshot, "bind": address, "proxy": proxy}


def host_release(desired: DesiredApp, address: str | None, now: datetime) -> Release:
    return Release(
        id=desired.release,
        app=desired.app,
        image=desired.image,
        digest=desired.digest,
        spec=localized_snapshot(desired.spec, address),
        created_at=now,
        created_by=CONTROLLER_ACTOR,
    )


def release_number(release_id: str | None) -> int | None:
    """`r12` -> 12, the controller's id of a release; None for a release made on this host."""
    digits = release_id[1:] if release_id and release_id.startswith("r") else ""
    # ASCII digits within the controller's id range; anything else cannot be one of its releases.
    if digits.isascii() and digits.isdigit() and len(digits) <= len(str(MAX_ID)) and int(digits) <= MAX_ID:
        return int(digits)
    return None
