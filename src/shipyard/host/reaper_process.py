"""The Reaper port on a real host: a detached `python -m shipyard.cli.standby_keeper` per warm
standby, which serves rollbacks to it while it waits (and is the plain reaper when it cannot)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ReaperProcess:
    home: Path
    docker_url: str | None = None

    def spawn(self, app: str, seconds: float) -> None:
        argv = [sys.executable, "-m", "shipyard.cli.standby_keeper", "--app", app, "--home", str(self.home)]
        argv += ["--after", f"{seconds + 0.5:.1f}"]
        env = dict(os.environ)
        if self.docker_url:
            env["DOCKER_HOST"] = self.docker_url
        subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
