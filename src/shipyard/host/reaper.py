"""Stops a warm standby when its time is up: a detached process started after a swap (see
shipyard.host.reaper_process, which spawns it).

It only runs the ordinary recovery (which stops expired standbys) once the standby has expired; if
a deploy holds the lock then, that deploy's own recovery does the work instead.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from shipyard.errors import ShipyardError


def reap(app: str, home: Path) -> None:
    # Imported after the sleep, so the reaper does not compete with the rollback that spawned it.
    from shipyard.host.context import HostContext
    from shipyard.host.service import locked, recover

    if not home.exists():
        return
    with HostContext(home=home) as context, locked(context, app, "stop expired standby", wait=False):
        recover(context, app)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--app", required=True)
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--after", required=True, type=float)
    args = parser.parse_args()
    time.sleep(args.after)
    with contextlib.suppress(ShipyardError):
        reap(args.app, args.home)


if __name__ == "__main__":
    main()
