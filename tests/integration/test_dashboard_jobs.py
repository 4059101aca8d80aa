"""The pipeline on the dashboard (SQLite and PostgreSQL): queue, a job's log resuming after a reconnect
(Last-Event-ID), deliveries with their verdict and the redeliver button, roles and CSRF."""

from __future__ import annotations

from datetime import timedelta

import pytest
from controller_fixtures import ADMIN_TOKEN, Harness
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from test_dashboard import CSRF, EVIL, context_of, sign_in

from shipyard.controller.store import catalog
from shipyard.controller.store.pipeline_models import Delivery, Job, JobLogLine

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]


def seed(harness: Harness) -> dict[str, int]:
    """A failed job with a log, a queued one, and deliveries: accepted (with the job) and rejected.
    The `harness` fixture's controller runs no job worker, so the queued job stays queued."""
    context = context_of(harness)
    now = context.now()
    with context.db.transaction() as session:
        app = catalog.ensure_app(session, "web")
        common = {"app_id": app.id, "environment": "production", "repository": "https://git.example/web.git"}
        failed = Job(
            **common, branch="main", sha="a" * 40, trigger="push", status="failed", message=EVIL,
            created_by="github", created_at=now - timedelta(minutes=5), finished_at=now,
        )  # fmt: skip
        queued = Job(
            **common, branch="main", sha="b" * 40, trigger="push", status="queued", created_by="github"
        )
        session.add_all([failed, queued])
        session.flush()
        session.add_all(
            [JobLogLine(job_id=failed.id, step="build", line=f"line {n} {EVIL}", at=now) for n in range(1, 6)]
        )
        session.add_all(
            [
                Delivery(
                    provider="github", app="web", delivery_id="d-1", event="push", verdict="accepted",
                    job_id=failed.id, received_at=now,
                ),
                Delivery(
                    provider="github", app="web", delivery_id="d-2", event="push", verdict="rejected",
                    reason="bad signature", received_at=now,
                ),
            ]
        )  # fmt: skip
        session.flush()
        lines = session.scalars(select(JobLogLine.id).order_by(JobLogLine.id)).all()
        deliveries = session.scalars(select(Delivery.id).order_by(Delivery.id)).all()
        return {
            "failed": failed.id,
            "queued": queued.id,
            "third_line": lines[2],
            "accepted": deliveries[0],
            "rejected": deliveries[1],
        }


def test_queue_log_and_deliveries_are_shown_escaped(harness: Harness) -> None:
    ids = seed(harness)
    http = harness.http
    sign_in(http, ADMIN_TOKEN)
    jobs = http.get("/ui/jobs").text
    queue = jobs.split('id="queue"')[1].split("</table>")[0]
    assert f'href="/ui/jobs/{ids["queued"]}"' in queue and f'href="/ui/jobs/{ids["failed"]}"' not in queue
    assert (
        "bad signature" in jobs
        and "verdict-rejected" in jobs
        and "Preview environments do not exist yet" in jobs
    )
    assert jobs.count("Redeliver") == 1  # only a delivery that made a job
    page = http.get(f"/ui/jobs/{ids['failed']}").text
    assert page.count("[build] line") == 5 and "<script>alert" not in page and "&lt;script&gt;" in page + jobs
    assert "<script>alert" not in jobs


def test_the_log_stream_resumes_after_last_event_id(harness: Harness) -> None:
    ids = seed(harness)
    http = harness.http
    sign_in(http, ADMIN_TOKEN)
    seen: list[str] = []
    headers = {"Last-Event-ID": str(ids["third_line"])}
    with http.stream("GET", f"/ui/jobs/{ids['failed']}/events", headers=headers) as events:
        for line in events.iter_lines():
            seen.append(line)
            if line.startswith("event: end"):
                break
    ids_sent = [int(line.split(":", 1)[1]) for line in seen if line.startswith("id:")]
    assert ids_sent[0] == ids["third_line"] + 1 and len([i for i in seen if i.startswith("event: log")]) == 2
    assert any("line 5" in line for line in seen)
    assert TestClient(http.app).get(f"/ui/jobs/{ids['failed']}/events").status_code == 401
    assert http.get("/ui/jobs/999/events").status_code == 404
    # Bounded like the API's event stream: not a 500 for a digit int() cannot read or an id past 2^63-1.
    for bad in (b"\xb2", str(2**63).encode()):  # b"\xb2" reads as "²" (headers are latin-1)
        answer = http.get(f"/ui/jobs/{ids['failed']}/events", headers={"Last-Event-ID": bad})
        assert answer.status_code == 422, answer.text
    assert http.get(f"/ui/jobs/{2**63}/events").status_code == 422


def test_redeliver_queues_the_commit_again_and_refuses_without_a_job(harness: Harness) -> None:
    ids = seed(harness)
    http = harness.http
    csrf = sign_in(http, ADMIN_TOKEN)
    again = http.post(
        f"/ui/deliveries/{ids['accepted']}/redeliver", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert again.status_code == 303
    new_job = int(again.headers["location"].rsplit("/", 1)[1])
    with context_of(harness).db.read() as session:
        job = session.get(Job, new_job)
        assert job is not None and job.status == "queued" and job.sha == "a" * 40
    refused = http.post(f"/ui/deliveries/{ids['rejected']}/redeliver", data={"csrf_token": csrf})
    assert refused.status_code == 400 and "redeliver it from the provider" in refused.text
    assert http.post(f"/ui/deliveries/{ids['accepted']}/redeliver", data={}).status_code == 403
    cancelled = http.post(
        f"/ui/jobs/{ids['queued']}/cancel", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert cancelled.status_code == 303


def test_a_viewer_sees_no_job_buttons_and_cannot_redeliver(harness: Harness) -> None:
    ids = seed(harness)
    viewer = harness.admin.create_token("auditor", "viewer")
    http = harness.http
    csrf = sign_in(http, viewer.token)
    assert "Redeliver" not in http.get("/ui/jobs").text
    assert "Retry" not in http.get(f"/ui/jobs/{ids['failed']}").text
    answer = http.post(f"/ui/deliveries/{ids['accepted']}/redeliver", data={"csrf_token": csrf})
    assert answer.status_code == 403
    with context_of(harness).db.read() as session:
        assert session.scalar(select(func.count(Job.id))) == 2
    assert CSRF.search(http.get("/ui/jobs").text)
