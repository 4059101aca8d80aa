"""Schedules on SQLite and PostgreSQL: the API, the next run in a time zone, due runs, overlap, missed runs.

The scheduler's round (schedule_store.run_due) is called with chosen times, as the controller's
scheduler thread calls it with the clock's; the job worker is off, so queued jobs stay queued.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from controller_fixtures import ADMIN, Harness, controller_settings, running_controller, wait_for
from github_payloads import push, signed

from shipyard.controller.server.context import ControllerContext
from shipyard.controller.server.pipeline.scheduler import Scheduler
from shipyard.controller.store import schedule_store
from shipyard.controller.store.pipeline_models import Job

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]

SECRET = "a-webhook-secret-0123456789"
SHA = ["%040x" % (0xC0 + i) for i in range(4)]
PIPELINES = [{"branch": "release", "environment": "production"}]


def context_of(harness: Harness) -> ControllerContext:
    context: ControllerContext = harness.http.app.state.context  # type: ignore[attr-defined]
    return context


def add_hook(harness: Harness) -> None:
    hook = {"app": "web", "repository": "file:///srv/git/web.git", "secret": SECRET, "pipelines": PIPELINES}
    assert harness.http.post("/api/v1/hooks", json=hook, headers=ADMIN).status_code == 201


def add_schedule(harness: Harness, **fields: Any) -> dict[str, Any]:
    body = {
        "app": "web",
        "cron": "0 3 * * *",
        "timezone": "Asia/Tokyo",
        "environment": "production",
        **fields,
    }
    answer = harness.http.post("/api/v1/schedules", json=body, headers=ADMIN)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def run_due(harness: Harness, now: datetime) -> list[int]:
    with context_of(harness).db.transaction() as session:
        return schedule_store.run_due(session, now=now)


def schedules(harness: Harness) -> dict[int, dict[str, Any]]:
    return {s["id"]: s for s in harness.http.get("/api/v1/schedules", headers=ADMIN).json()}


def job(harness: Harness, job_id: int) -> dict[str, Any]:
    return dict(harness.http.get(f"/api/v1/jobs/{job_id}", headers=ADMIN).json())


def set_status(harness: Harness, job_id: int, status: str) -> None:
    with context_of(harness).db.transaction() as session:
        row = session.get(Job, job_id)
        assert row is not None
        row.status = status


def test_schedules_show_their_next_run_in_their_time_zone(harness: Harness) -> None:
    created = add_schedule(harness, action="deploy", ref=SHA[0])
    next_run = datetime.fromisoformat(created["next_run_at"])
    assert (next_run.astimezone(UTC).hour, next_run.minute) == (18, 0)  # 03:00 in Tokyo
    assert created["next_run_local"].endswith("03:00 JST")
    assert (created["overlap"], created["missed"]) == ("skip", "run-once")
    bad = {
        "cron": ("0 3 * *", "five fields"),
        "timezone": ("Mars/Olympus", "IANA"),
    }
    for key, (value, message) in bad.items():
        body = {
            "app": "web",
            "cron": "0 3 * * *",
            "action": "rebuild",
            "environment": "production",
            key: value,
        }
        answer = harness.http.post("/api/v1/schedules", json=body, headers=ADMIN)
        assert answer.status_code == 422 and message in answer.json()["detail"], answer.text
    no_ref = {"app": "web", "cron": "0 3 * * *", "action": "deploy", "environment": "production"}
    answer = harness.http.post("/api/v1/schedules", json=no_ref, headers=ADMIN)
    assert answer.status_code == 422 and "--ref" in answer.json()["detail"]
    assert list(schedules(harness)) == [created["id"]]
    assert harness.http.delete(f"/api/v1/schedules/{created['id']}", headers=ADMIN).status_code == 204
    assert harness.http.delete(f"/api/v1/schedules/{created['id']}", headers=ADMIN).status_code == 404
    assert {"schedule.add", "schedule.remove"} <= {e.action for e in harness.admin.audit()}


def test_a_due_deploy_queues_its_job_and_overlap_skip_waits_for_it(harness: Harness) -> None:
    add_hook(harness)
    created = add_schedule(harness, action="deploy", ref=SHA[0])
    due = datetime.fromisoformat(created["next_run_at"])
    assert run_due(harness, due - timedelta(seconds=1)) == []
    [job_id] = run_due(harness, due + timedelta(seconds=3))
    queued = job(harness, job_id)
    assert (queued["sha"], queued["environment"], queued["branch"], queued["status"]) == (
        SHA[0],
        "production",
        "release",
        "queued",
    )
    assert queued["trigger"] == f"schedule {created['id']}"
    listed = schedules(harness)[created["id"]]
    assert listed["last_job_id"] == job_id and "run on time" in listed["last_result"]
    assert datetime.fromisoformat(listed["next_run_at"]) == due + timedelta(days=1)
    # The next day, the job is still queued: overlap skip records the run as skipped.
    assert run_due(harness, due + timedelta(days=1, seconds=3)) == []
    assert "still queued" in schedules(harness)[created["id"]]["last_result"]


def test_overlap_queue_adds_a_job_behind_the_running_one(harness: Harness) -> None:
    add_hook(harness)
    created = add_schedule(harness, action="deploy", ref=SHA[1], overlap="queue")
    due = datetime.fromisoformat(created["next_run_at"])
    [first] = run_due(harness, due)
    set_status(harness, first, "running")
    [second] = run_due(harness, due + timedelta(days=1))
    assert second != first and job(harness, second)["status"] == "queued"


def test_a_rebuild_ships_the_commit_the_environment_runs(harness: Harness) -> None:
    add_hook(harness)
    created = add_schedule(harness, action="rebuild")
    due = datetime.fromisoformat(created["next_run_at"])
    assert run_due(harness, due) == []  # nothing shipped yet: recorded, no job
    assert "nothing to rebuild" in schedules(harness)[created["id"]]["last_result"]
    body, headers = signed(SECRET, "push", push("release", SHA[2]))
    shipped = harness.http.post("/hooks/github/web", content=body, headers=headers).json()["job_id"]
    set_status(harness, shipped, "succeeded")
    [rebuild] = run_due(harness, due + timedelta(days=1))
    assert job(harness, rebuild)["sha"] == SHA[2] and rebuild != shipped


def test_runs_missed_while_down_run_once_or_are_skipped(harness: Harness) -> None:
    add_hook(harness)
    once = add_schedule(harness, action="deploy", ref=SHA[0], cron="*/10 * * * *")
    skip = add_schedule(harness, action="deploy", ref=SHA[1], cron="*/10 * * * *", missed="skip")
    due = datetime.fromisoformat(once["next_run_at"])
    back = due + timedelta(hours=5, minutes=3)  # thirty runs were missed
    queued = run_due(harness, back)
    assert len(queued) == 1 and job(harness, queued[0])["sha"] == SHA[0]
    listed = schedules(harness)
    assert "run once for the runs missed" in listed[once["id"]]["last_result"]
    assert "missed while the controller was down" in listed[skip["id"]]["last_result"]
    following = back.replace(second=0, microsecond=0) + timedelta(minutes=10 - back.minute % 10)
    for row in listed.values():
        assert datetime.fromisoformat(row["next_run_at"]) == following  # the next one after now


def test_the_scheduler_thread_round_uses_the_controllers_clock(harness: Harness) -> None:
    add_hook(harness)
    created = add_schedule(harness, action="deploy", ref=SHA[3], cron="* * * * *", timezone="UTC")
    context = context_of(harness)
    woken: list[bool] = []
    scheduler = Scheduler(context, interval=60, on_queued=lambda: woken.append(True))
    with context.db.transaction() as session:  # as if the minute had come
        row = session.get(schedule_store.Schedule, created["id"])
        assert row is not None
        row.next_run_at = context.now() - timedelta(seconds=1)
    [job_id] = scheduler.run_once()
    assert woken == [True] and job(harness, job_id)["sha"] == SHA[3]


def test_the_controller_runs_the_scheduler_beside_its_job_worker(controller_db_url: str) -> None:
    """With jobs on, the lifespan's scheduler thread starts the due job and the worker runs it."""
    settings = controller_settings(controller_db_url, run_jobs=True, job_lease=5.0)
    with running_controller(settings) as running:
        hook = {
            "app": "web",
            "repository": "file:///nonexistent/web.git",  # the job fails at fetch: it ran
            "secret": SECRET,
            "pipelines": PIPELINES,
        }
        assert running.http.post("/api/v1/hooks", json=hook, headers=ADMIN).status_code == 201
        created = add_schedule(running, action="deploy", ref=SHA[0], cron="0 0 1 1 *", timezone="UTC")
        context = context_of(running)
        with context.db.transaction() as session:  # due now rather than next January
            row = session.get(schedule_store.Schedule, created["id"])
            assert row is not None
            row.next_run_at = context.now() - timedelta(seconds=1)

        def finished_job() -> bool:
            job_id = schedules(running)[created["id"]]["last_job_id"]
            return job_id is not None and job(running, job_id)["status"] == "failed"

        wait_for(finished_job, timeout=60, what="the scheduled job to run")
        ran = job(running, schedules(running)[created["id"]]["last_job_id"])
        assert ran["trigger"] == f"schedule {created['id']}" and ran["step"] == "fetch"
