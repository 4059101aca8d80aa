"""The job engine as data: admission, superseding, claiming, lease recovery, cancel and retry rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shipyard.controller.engine import jobs as engine
from shipyard.controller.engine.jobs import (
    CANCELLED,
    FAILED,
    INTERRUPTED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    SUPERSEDED,
    Candidate,
    JobView,
    admit,
    claimable,
)
from shipyard.controller.errors import ConflictError

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def job(
    job_id: int,
    sha: str,
    status: str = QUEUED,
    *,
    minutes: int = 0,
    branch: str = "main",
    env: str = "production",
) -> JobView:
    return JobView(job_id, env, branch, sha, status, T0 + timedelta(minutes=minutes))


def test_first_commit_is_queued() -> None:
    admission = admit(Candidate("production", "main", "a" * 40, T0), [], 1)
    assert (admission.create, admission.status, admission.supersede) == (True, QUEUED, ())


@pytest.mark.parametrize("status", [QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED])
def test_one_job_per_app_environment_and_sha(status: str) -> None:
    admission = admit(Candidate("production", "main", "a" * 40, T0), [job(1, "a" * 40, status)], 2)
    assert not admission.create
    assert admission.existing == 1


def test_same_sha_to_another_environment_is_its_own_job() -> None:
    admission = admit(Candidate("staging", "main", "a" * 40, T0), [job(1, "a" * 40)], 2)
    assert admission.create


def test_newer_commit_supersedes_queued_older_ones_of_its_branch_only() -> None:
    jobs = [job(1, "a" * 40, RUNNING), job(2, "b" * 40, minutes=1), job(3, "c" * 40, branch="hotfix")]
    admission = admit(Candidate("production", "main", "d" * 40, T0 + timedelta(minutes=5)), jobs, 4)
    assert admission.status == QUEUED
    assert admission.supersede == (2,)  # the running one finishes; the other branch is left alone


@pytest.mark.parametrize("status", [QUEUED, RUNNING, SUCCEEDED])
def test_an_older_commit_arriving_late_is_superseded(status: str) -> None:
    jobs = [job(1, "b" * 40, status, minutes=10)]
    admission = admit(Candidate("production", "main", "a" * 40, T0), jobs, 2)
    assert (admission.create, admission.status) == (True, SUPERSEDED)
    assert "job 1" in admission.reason


def test_without_commit_times_the_arrival_order_decides() -> None:
    jobs = [JobView(1, "production", "main", "a" * 40, QUEUED)]
    admission = admit(Candidate("production", "main", "b" * 40, None), jobs, 2)
    assert (admission.status, admission.supersede) == (QUEUED, (1,))


def test_one_running_job_per_environment_oldest_first() -> None:
    jobs = [
        job(1, "a" * 40, RUNNING),
        job(2, "b" * 40),
        job(3, "c" * 40, env="staging"),
        job(4, "d" * 40, env="staging"),
    ]
    assert [j.id for j in claimable(jobs)] == [3]
    assert [j.id for j in claimable([*jobs[1:]])] == [2, 3]


def test_an_expired_lease_interrupts_and_retries_once() -> None:
    running = JobView(1, "production", "main", "a" * 40, RUNNING, lease_until=T0)
    assert engine.lease_expired(running, T0)
    assert not engine.lease_expired(running, T0 - timedelta(seconds=1))
    first = engine.recover(running)
    assert (first.status, first.retry) == (INTERRUPTED, True)
    second = engine.recover(JobView(2, "production", "main", "a" * 40, RUNNING, attempt=2))
    assert (second.status, second.retry) == (INTERRUPTED, False)
    assert "lease" in first.message and "lease" in second.message


def test_a_job_stopped_with_its_controller_is_interrupted_and_retried_once_saying_why() -> None:
    cause = "the controller stopped during build; stopped docker build (SIGTERM)"
    first = engine.recover(job(1, "a" * 40, RUNNING), cause)
    assert (first.status, first.retry, first.message) == (INTERRUPTED, True, f"{cause}; retried once")
    second = engine.recover(JobView(2, "production", "main", "a" * 40, RUNNING, attempt=2), cause)
    assert (second.retry, second.message) == (False, f"{cause} on attempt 2; not retried")


def test_cancel_and_retry_rules() -> None:
    assert engine.cancel(job(1, "a" * 40)) == CANCELLED
    assert engine.cancel(job(1, "a" * 40, RUNNING)) == RUNNING  # its worker stops it
    with pytest.raises(ConflictError, match="already finished"):
        engine.cancel(job(1, "a" * 40, SUCCEEDED))
    engine.check_retry(job(1, "a" * 40, FAILED))
    for status in (QUEUED, RUNNING, SUCCEEDED):
        with pytest.raises(ConflictError):
            engine.check_retry(job(1, "a" * 40, status))
