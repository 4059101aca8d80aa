"""Stops a warm standby when its time is up, and removes an old worker after its stop timeout (killing
it only then if it still runs): a detached process started after a swap (see
shipyard.host.reaper_process, which spawns it).

It only runs the ordinary recovery (which stops expired standbys and reaps old workers) once the time
is up; if a deploy holds the lock then, it tries again for a minute, and that deploy's own recovery
or the next command's does the work otherwise.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from shipyard.errors import LockedError, ShipyardError

# A deploy holding the lock when the reaper comes is retried for a while: an old worker past its stop
# timeout should not wait for the next command to be removed.
LOCKED_RETRIES = 30
LOCKED_PAUSE = 2.0


def reap(app: str, home: Path, *, retries: int = LOCKED_RETRIES, pause: float = LOCKED_PAUSE) -> None:
    # Imported after the sleep, so the reaper does not compete with the rollback that spawned it.
    from shipyard.host.context import HostContext
    from shipyard.host.service import locked, recover

    if not home.exists():
        return
    for attempt in range(retries + 1):
        try:
            with HostContext(home=home) as context, locked(context, app, "reap", wait=False):
                recover(context, app)
            return
        except LockedError:
            if attempt == retries:
                raise
            time.sleep(pause)


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
