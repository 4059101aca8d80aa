"""The job engine: pure rules for admitting, claiming, finishing and recovering pipeline jobs.

Like engine/rollout.py it sees plain dataclasses and returns decisions; store/job_store.py maps them to
rows and the worker runs the steps. The rules:
- one job per app, environment and commit sha: a second delivery of the same commit makes none;
- a newer commit of a branch supersedes the branch's queued older jobs; a commit older than one
  already queued, running or shipped is recorded as superseded and never runs;
- one running job per app and environment, the oldest queued one next;
- a worker whose lease ran out leaves its job interrupted, retried once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from shipyard.controller.errors import ConflictError

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
CANCELLED, SUPERSEDED, INTERRUPTED = "cancelled", "superseded", "interrupted"
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, SUPERSEDED, INTERRUPTED)
FINISHED = frozenset({SUCCEEDED, FAILED, CANCELLED, SUPERSEDED, INTERRUPTED})
# An interrupted job is run once more; the retry itself, interrupted, fails for good.
MAX_ATTEMPTS = 2


@dataclass(frozen=True)
class JobView:
    id: int
    environment: str
    branch: str
    sha: str
    status: str
    commit_time: datetime | None = None
    attempt: int = 1
    lease_until: datetime | None = None


@dataclass(frozen=True)
class Candidate:
    """A commit a delivery asks to ship; not a job yet."""

    environment: str
    branch: str
    sha: str
    commit_time: datetime | None = None


@dataclass(frozen=True)
class Admission:
    create: bool  # False: the commit already has a job, nothing is created
    status: str = QUEUED  # the new job's status: queued, or superseded when it is older than another
    reason: str = ""
    existing: int | None = None  # the job the commit already has
    supersede: tuple[int, ...] = ()  # queued older jobs of the branch, superseded by the new one


def _order(commit_time: datetime | None, job_id: int) -> tuple[float, int]:
    return (commit_time.timestamp() if commit_time else float("-inf"), job_id)


def admit(candidate: Candidate, jobs: Sequence[JobView], next_id: int) -> Admission:
    """What a new commit does, given the app's jobs; `next_id` orders it after every existing job."""
    same_place = [job for job in jobs if job.environment == candidate.environment]
    for job in same_place:
        if job.sha == candidate.sha:
            return Admission(
                False, reason=f"commit {candidate.sha[:12]} already has job {job.id}", existing=job.id
            )
    branch = [job for job in same_place if job.branch == candidate.branch]
    mine = _order(candidate.commit_time, next_id)
    newer = [
        job
        for job in branch
        if job.status in (QUEUED, RUNNING, SUCCEEDED)
        and job.commit_time is not None
        and candidate.commit_time is not None
        and _order(job.commit_time, job.id) > mine
    ]
    if newer:
        return Admission(
            True,
            SUPERSEDED,
            reason=f"job {newer[0].id} ships a newer commit of {candidate.branch}",
        )
    older_queued = tuple(job.id for job in branch if job.status == QUEUED)
    return Admission(True, QUEUED, supersede=older_queued)


def claimable(jobs: Sequence[JobView]) -> list[JobView]:
    """Queued jobs that may start now, oldest first: none where a job of that environment runs."""
    busy = {job.environment for job in jobs if job.status == RUNNING}
    ready: list[JobView] = []
    for job in sorted(jobs, key=lambda job: job.id):
        if job.status == QUEUED and job.environment not in busy:
            ready.append(job)
            busy.add(job.environment)
    return ready


def lease_expired(job: JobView, now: datetime) -> bool:
    return job.status == RUNNING and (job.lease_until is None or job.lease_until <= now)


@dataclass(frozen=True)
class Recovery:
    """What becomes of a job whose worker stopped renewing its lease."""

    status: str
    message: str
    retry: bool


LEASE_LAPSED = "the worker stopped renewing its lease"


def recover(job: JobView, cause: str = LEASE_LAPSED) -> Recovery:
    """A job whose worker died (its lease lapsed) or stopped it on the way out (`cause` says which)."""
    if job.attempt < MAX_ATTEMPTS:
        return Recovery(INTERRUPTED, f"{cause}; retried once", True)
    return Recovery(INTERRUPTED, f"{cause} on attempt {job.attempt}; not retried", False)


def cancel(job: JobView) -> str:
    """The status a cancel leads to: cancelled at once when queued; a running job is stopped by its
    worker (its running command too) and then ends cancelled."""
    if job.status == QUEUED:
        return CANCELLED
    if job.status == RUNNING:
        return RUNNING
    raise ConflictError(f"job {job.id} already finished ({job.status}); nothing to cancel.")


def check_retry(job: JobView) -> None:
    if job.status not in FINISHED:
        raise ConflictError(f"job {job.id} is {job.status}; only a finished job can be retried.")
    if job.status == SUCCEEDED:
        raise ConflictError(f"job {job.id} succeeded; push a new commit or roll back instead of retrying it.")
