"""`shipyard job-worker`: jobs queued by a controller without a worker run in a process of their own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from controller_fixtures import ADMIN, Harness, controller_settings, running_controller, wait_for
from github_payloads import push, signed

pytestmark = pytest.mark.integration

SECRET = "a-webhook-secret-0123456789"
SHA = f"{0xB7:040x}"


def nice_of(pid: int) -> int:
    """The nice value in /proc/PID/stat (field 19)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])


def job(harness: Harness, job_id: int) -> dict[str, Any]:
    return dict(harness.http.get(f"/api/v1/jobs/{job_id}", headers=ADMIN).json())


def test_a_niced_job_worker_process_runs_the_jobs_the_controller_queues(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'controller.db'}"
    with running_controller(controller_settings(database, run_jobs=False)) as harness:
        hook = {
            "app": "web",
            "repository": "file:///srv/git/web.git",
            "secret": SECRET,
            "pipelines": [{"branch": "release", "environment": "production"}],
        }
        assert harness.http.post("/api/v1/hooks", json=hook, headers=ADMIN).status_code == 201
        body, headers = signed(SECRET, "push", push("release", SHA))
        job_id = harness.http.post("/hooks/github/web", content=body, headers=headers).json()["job_id"]
        assert job(harness, job_id)["status"] == "queued"  # no worker in the controller's process

        command = [sys.executable, "-m", "shipyard.cli.main", "job-worker", "--db", database, "--nice", "5"]
        worker = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ}
        )
        try:
            wait_for(
                lambda: job(harness, job_id)["status"] not in ("queued", "running"),
                timeout=60,
                what="the job",
            )
            assert nice_of(worker.pid) == nice_of(os.getpid()) + 5
            finished = job(harness, job_id)
            # The repository does not exist: the worker process ran the job, which failed at fetch.
            assert finished["status"] == "failed" and finished["message"].startswith("fetch failed"), finished
        finally:
            worker.send_signal(signal.SIGTERM)
            output, _ = worker.communicate(timeout=30)
        assert worker.returncode == 0, output
        assert "job worker started" in output and "job worker stopped" in output
