"""A controller release made local: the spec bound to this host's address, as the host store keeps it.

On a machine with several lab hosts (one network namespace), each host listens on its own loopback
address, so `bind` and the host part of `proxy.listen` are this host's address; the ports stay.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from shipyard.domain.models import Release
from shipyard.domain.names import APP_NAME, DIGEST, HOST, IMAGE_REPOSITORY, is_name
from shipyard.errors import ConfigError
from shipyard.fleet_api.schemas.agent import DesiredApp
from shipyard.fleet_api.schemas.common import MAX_ID

CONTROLLER_ACTOR = "controller"
# The controller's release names: r followed by a database id (at most 2^63-1, 19 digits).
RELEASE_NAME = re.compile(r"r[0-9]{1,19}")


def localized_snapshot(snapshot: dict[str, Any], address: str | None) -> dict[str, Any]:
    """The snapshot with `bind` and the listen host replaced by `address` (unchanged when None)."""
    if not address:
        return snapshot
    proxy = dict(snapshot.get("proxy") or {})
    port = str(proxy.get("listen", "127.0.0.1:8080")).rpartition(":")[2]
    proxy["listen"] = f"{address}:{port}"
    return {**snapshot, "bind": address, "proxy": proxy}


def _checked(desired: DesiredApp) -> None:
    """The names that become container names, labels, image references and file names, matched whole."""
    for what, pattern, value in (
        ("app", APP_NAME, desired.app),
        ("release", RELEASE_NAME, desired.release),
        ("image", IMAGE_REPOSITORY, desired.image),
        ("digest", DIGEST, desired.digest),
    ):
        if not is_name(pattern, value):
            raise ConfigError(
                f"the controller's desired state names the {what} {value!r}, which is not a valid {what} "
                "name; nothing was changed on this host."
            )


def host_release(desired: DesiredApp, address: str | None, now: datetime) -> Release:
    _checked(desired)
    if address and not is_name(HOST, address):
        raise ConfigError(
            f"the agent's --address {address!r} is not a host name or IPv4 address; restart it with one."
        )
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
    # The controller's ids fit a signed 64-bit integer; anything else cannot be one of its releases.
    if release_id and RELEASE_NAME.fullmatch(release_id) and int(release_id[1:]) <= MAX_ID:
        return int(release_id[1:])
    return None
