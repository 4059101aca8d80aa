"""Pure parts of the dashboard: traffic samples, haproxy counters, SVG pictures, report fingerprints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shipyard.adapters.haproxy import backend_counters
from shipyard.agent.ports import LocalApp
from shipyard.agent.reporting import app_report
from shipyard.controller.server.traffic import MINUTES_KEPT, TrafficSamples
from shipyard.controller.server.ui import svg
from shipyard.controller.store.models import Deployment, DeploymentHost, Host
from shipyard.controller.store.reports import ReportMemory
from shipyard.fleet_api.schemas.agent import AgentReport, DesiredApp, TrafficCounters

NOW = datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC)
EVIL = '<script>alert("x")</script>'


def counters(requests: int, errors: int) -> TrafficCounters:
    return TrafficCounters(requests=requests, responses_5xx=errors)


def test_first_report_is_a_baseline_then_increases_add_up_per_minute_across_hosts() -> None:
    samples = TrafficSamples()
    samples.record(1, "web", counters(1000, 10), NOW)
    samples.record(2, "web", counters(50, 0), NOW)
    samples.record(1, "web", counters(1100, 12), NOW + timedelta(seconds=10))
    samples.record(2, "web", counters(80, 1), NOW + timedelta(seconds=20))
    samples.record(1, "web", counters(1150, 12), NOW + timedelta(minutes=1))
    hour = samples.last_hour("web", NOW + timedelta(minutes=1))
    assert len(hour) == MINUTES_KEPT
    assert (hour[-2].requests, hour[-2].errors_5xx) == (130, 3)
    assert (hour[-1].requests, hour[-1].errors_5xx) == (50, 0)
    assert all(sample.requests == 0 for sample in hour[:-2])
    assert all(sample.requests == 0 for sample in samples.last_hour("api", NOW))  # an app without reports


def test_a_restarted_haproxy_counts_from_zero_and_old_minutes_fall_out() -> None:
    samples = TrafficSamples()
    samples.record(1, "web", counters(500, 5), NOW)
    samples.record(1, "web", counters(20, 1), NOW + timedelta(seconds=5))  # counters went down
    assert sum(s.requests for s in samples.last_hour("web", NOW)) == 20
    later = NOW + timedelta(minutes=MINUTES_KEPT)
    samples.record(1, "web", counters(30, 1), later)
    assert sum(s.requests for s in samples.last_hour("web", later)) == 10


STAT = """# pxname,svname,qcur,scur,stot,req_tot,hrsp_5xx,status
web_front,FRONTEND,0,0,900,900,0,OPEN
web,blue,0,0,400,,3,UP
web,green,0,0,300,,1,MAINT
web,BACKEND,0,1,700,700,4,UP
api,BACKEND,0,0,5,5,0,UP
"""


def test_backend_counters_come_from_the_backend_row() -> None:
    assert backend_counters(STAT, "web") == (700, 4)
    assert backend_counters(STAT, "api") == (5, 0)
    assert backend_counters(STAT, "missing") is None
    assert backend_counters("", "web") is None
    old = "# pxname,svname,stot\nweb,BACKEND,42\n"  # no req_tot nor hrsp_5xx: sessions, no errors
    assert backend_counters(old, "web") == (42, 0)


def test_reports_carry_the_observed_counters_and_repeat_without_them() -> None:
    desired = DesiredApp(
        app="web",
        release_id=3,
        release="r3",
        image="r/web",
        digest="sha256:" + "0" * 64,
        spec={},
        deployment_id=1,
    )
    local = LocalApp("3", True, True, counters(10, 1))
    report = app_report(desired, local, "succeeded")
    assert report.counters == counters(10, 1)
    again = report.model_copy(update={"counters": counters(99, 2)})
    assert ReportMemory.fingerprint(AgentReport(apps=[report])) == ReportMemory.fingerprint(
        AgentReport(apps=[again])
    )
    changed = again.model_copy(update={"health": "unhealthy"})
    assert ReportMemory.fingerprint(AgentReport(apps=[changed])) != ReportMemory.fingerprint(
        AgentReport(apps=[again])
    )


def deployment(
    status: str, *, rollback_of: int | None = None, hosts: int = 0, current: int = 1
) -> Deployment:
    found = Deployment(
        id=7,
        release_id=3,
        status=status,
        rollback_of=rollback_of,
        created_at=NOW,
        current_wave=current,
        total_waves=2,
    )
    for index in range(hosts):
        host = Host(name=f"h{index}" if index else EVIL)
        found.hosts.append(
            DeploymentHost(
                host=host, wave=1 + index % 2, outcome="succeeded" if index else "failed", step=EVIL
            )
        )
    return found


def test_timeline_colours_outcomes_and_draws_a_succeeded_rollback_as_one() -> None:
    drawn = svg.timeline(
        [deployment("succeeded"), deployment("failed"), deployment("succeeded", rollback_of=6)]
    )
    assert drawn.count("<rect") == 3
    assert 'data-status="succeeded"' in drawn and 'data-status="failed"' in drawn
    assert 'data-status="rollback"' in drawn and svg.colour("rollback") in drawn


def test_waves_draw_a_square_per_host_and_escape_every_text() -> None:
    drawn = svg.waves(deployment("running", hosts=3))
    assert drawn.count('data-outcome="succeeded"') == 2 and drawn.count('data-outcome="failed"') == 1
    assert "<script>" not in drawn and "&lt;script&gt;" in drawn
    assert "w1" in drawn and "w2" in drawn and 'stroke="#1565c0"' in drawn  # the running wave is framed


def test_sparkline_scales_to_the_busiest_minute_and_says_its_totals() -> None:
    samples = TrafficSamples()
    samples.record(1, "web", counters(0, 0), NOW)
    samples.record(1, "web", counters(40, 4), NOW + timedelta(seconds=1))
    drawn = svg.sparkline(samples.last_hour("web", NOW))
    assert "last hour: 40 requests, 4 5xx" in drawn and drawn.count("<polyline") == 2
    assert "118.0,2.0" in drawn or "120.0,2.0" in drawn  # the last minute reaches the top


def test_large_waves_are_drawn_as_grids_with_every_host() -> None:
    found = Deployment(id=8, release_id=3, status="running", created_at=NOW, current_wave=2, total_waves=2)
    for index in range(400):
        found.hosts.append(
            DeploymentHost(host=Host(name=f"h{index}"), wave=1 + index // 200, outcome="waiting")
        )
    drawn = svg.waves(found)
    assert drawn.count('data-outcome="waiting"') == 400
    assert 'width="6"' in drawn and "w1" in drawn and "w2" in drawn


def test_progress_lists_all_hosts_of_small_deployments_and_the_running_wave_of_large_ones() -> None:
    from shipyard.controller.server.ui.routes import progress_values

    small = deployment("running", hosts=3)
    assert len(progress_values(small)["rows"]) == 3
    large = Deployment(id=9, release_id=3, status="running", created_at=NOW, current_wave=2, total_waves=3)
    for index in range(120):
        wave = 1 + index // 40
        outcome = (
            "failed" if index == 0 else "succeeded" if wave == 1 else "pending" if wave == 2 else "waiting"
        )
        large.hosts.append(DeploymentHost(host=Host(name=f"h{index:03d}"), wave=wave, outcome=outcome))
    values = progress_values(large)
    assert [row.host.name for row in values["rows"]][:2] == ["h000", "h040"] and len(values["rows"]) == 41
    assert values["others"] == {"succeeded": 39, "waiting": 40}
