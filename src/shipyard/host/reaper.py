"""Stops a warm standby when its time is up: a detached process started after a swap.

It only runs the ordinary recovery (which stops expired standbys) once the standby has expired; if
a deploy holds the lock then, that deploy's own recovery does the work instead.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.errors import ShipyardError

if TYPE_CHECKING:
    from shipyard.host.context import HostContext


def spawn_reaper(context: HostContext, app: str, seconds: float) -> None:
    argv = [sys.executable, "-m", "shipyard.host.reaper", "--app", app, "--home", str(context.home)]
    argv += ["--after", f"{seconds + 0.5:.1f}"]
    env = dict(os.environ)
    if context.docker_url:
        env["DOCKER_HOST"] = context.docker_url
    subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def reap(app: str, home: Path) -> None:
    from shipyard.host.context import HostContext
    from shipyard.host.service import locked, recover

    if not home.exists():
        return
    context = HostContext(home=home)
    try:
        with locked(context, app, "stop expired standby", wait=False):
            recover(context, app)
    finally:
        context.close()


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
