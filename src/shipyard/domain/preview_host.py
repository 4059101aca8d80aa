"""Previews on a host, pure: the pool of pre-declared haproxy backends and the slot ports a host hands out.

haproxy cannot add a backend while it runs, so each host's config carries a shared previews frontend
and `slots` backends declared in advance (`preview_0` ...); a preview takes a free one and a free pair
of ports from the host's range, both recorded in the host's store and given back at its teardown.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from shipyard.errors import ConfigError, ShipyardError

DEFAULT_PREVIEWS_LISTEN = "127.0.0.1:8800"
DEFAULT_PREVIEW_SLOTS = 32
DEFAULT_PREVIEW_PORTS = "20000-20999"
MAX_PREVIEW_SLOTS = 1000
PORT_RANGE = re.compile(r"([0-9]{1,5})-([0-9]{1,5})")
LISTEN = re.compile(r"([0-9A-Za-z.-]+):([0-9]{1,5})")


def pool_backend(index: int) -> str:
    """The name of the pool's backend number `index` (what the previews map points a host name at)."""
    return f"preview_{index}"


@dataclass(frozen=True)
class PreviewSettings:
    """How this host serves previews: the shared frontend's address, the pool size, the port range."""

    listen: str = DEFAULT_PREVIEWS_LISTEN
    slots: int = DEFAULT_PREVIEW_SLOTS
    first_port: int = 20000
    last_port: int = 20999

    @property
    def ports(self) -> str:
        return f"{self.first_port}-{self.last_port}"


def preview_settings(listen: str, slots: int, ports: str) -> PreviewSettings:
    """The agent's flags checked: one sentence naming the wrong one and how to fix it."""
    if LISTEN.fullmatch(listen) is None or not 0 < int(listen.rpartition(":")[2]) < 65536:
        raise ConfigError(f"--previews-listen {listen!r} is not HOST:PORT; give one such as 127.0.0.1:8800.")
    if not 1 <= slots <= MAX_PREVIEW_SLOTS:
        raise ConfigError(f"--preview-slots {slots} is out of range; give 1 to {MAX_PREVIEW_SLOTS}.")
    found = PORT_RANGE.fullmatch(ports)
    if found is None:
        raise ConfigError(
            f"--preview-ports {ports!r} is not a range FIRST-LAST; give one such as 20000-20999."
        )
    first, last = int(found[1]), int(found[2])
    if not (1024 <= first < last < 65536):
        raise ConfigError(
            f"--preview-ports {ports} must be two ports from 1024 to 65535, the first below the last."
        )
    return PreviewSettings(listen, slots, first, last)


@dataclass(frozen=True)
class PreviewAllocation:
    """What a preview holds on this host: a pool backend, its two slot ports (blue = port, green =
    port + 1), the host name it answers, and whether the previews map routes that name yet."""

    app: str
    host_name: str
    index: int
    port: int
    routed: bool = False

    @property
    def backend(self) -> str:
        return pool_backend(self.index)


class PreviewPoolFull(ShipyardError):
    pass


def choose_allocation(
    app: str, host_name: str, settings: PreviewSettings, taken: Collection[PreviewAllocation]
) -> PreviewAllocation:
    """The lowest free pool backend and the lowest free port pair of the range."""
    indexes = {allocation.index for allocation in taken}
    ports = {allocation.port for allocation in taken}
    index = next((i for i in range(settings.slots) if i not in indexes), None)
    if index is None:
        raise PreviewPoolFull(
            f"this host runs {settings.slots} previews already, all of its --preview-slots; close one or "
            "restart the agent with more slots."
        )
    port = next((p for p in range(settings.first_port, settings.last_port, 2) if p not in ports), None)
    if port is None:
        raise PreviewPoolFull(
            f"the preview ports {settings.ports} of this host are all taken; close a preview or widen "
            "--preview-ports."
        )
    return PreviewAllocation(app, host_name.lower(), index, port)
