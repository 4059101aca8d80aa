"""Schedules, pure: cron in a time zone, the job grammar, and what a due run does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shipyard.controller.engine import schedule
from shipyard.errors import ConfigError

SHA = "c" * 40


def test_the_next_run_is_read_in_the_schedules_time_zone() -> None:
    after = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)  # 21:00 in Tokyo
    assert schedule.next_run("0 3 * * *", "Asia/Tokyo", after) == datetime(2026, 11, 29, 18, 0, tzinfo=UTC)
    assert schedule.next_run("0 3 * * *", "UTC", after) == datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


def test_daylight_saving_time_moves_the_utc_time_not_the_local_one() -> None:
    winter = schedule.next_run("0 9 * * *", "Europe/Paris", datetime(2026, 1, 10, tzinfo=UTC))
    summer = schedule.next_run("0 9 * * *", "Europe/Paris", datetime(2026, 7, 10, tzinfo=UTC))
    assert (winter.hour, summer.hour) == (8, 7)


def test_bad_cron_expressions_and_zones_are_one_clear_sentence() -> None:
    for expression in ("0 3 * *", "61 * * * *", "@daily", "every day", "0 3 * * * *"):
        with pytest.raises(ConfigError, match="five fields"):
            schedule.check_cron(expression)
    assert schedule.check_cron("  0  3 * * 1-5 ") == "0 3 * * 1-5"
    for name in ("Asia/Tokio", "../etc/passwd", ""):
        with pytest.raises(ConfigError, match="IANA"):
            schedule.zone(name)


def test_the_job_grammar() -> None:
    assert schedule.parse_job(["deploy", "--ref", SHA, "--env", "production"]) == schedule.ScheduledJob(
        "deploy", "production", SHA
    )
    assert schedule.parse_job(["rebuild", "--env=staging"]) == schedule.ScheduledJob("rebuild", "staging")
    assert schedule.parse_job(["prune", "--env", "staging"]) == schedule.ScheduledJob("prune", "staging")
    refused = {
        ("deploy", "--env", "production"): "--ref",
        ("deploy", "--ref", "abc123", "--env", "production"): "40-character",
        ("rebuild", "--ref", SHA, "--env", "staging"): "takes no --ref",
        ("rebuild",): "--env",
        ("prune", "--ref", SHA, "--env", "staging"): "takes no --ref",
        ("prune",): "--env",
        ("vacuum", "--env", "staging"): "cannot be scheduled",
        ("rebuild", "--env"): "needs a value",
        ("rebuild", "--force", "--env", "x"): "not an option",
        (): "name the job",
    }
    for words, message in refused.items():
        with pytest.raises(ConfigError, match=message):
            schedule.parse_job(list(words))


NOW = datetime(2026, 11, 29, 3, 0, 5, tzinfo=UTC)


def test_a_run_on_time_runs_and_overlap_decides_when_the_last_job_is_busy() -> None:
    on_time = {"due_at": NOW - timedelta(seconds=5), "now": NOW, "missed": "run-once"}
    assert schedule.decide(**on_time, overlap="skip", previous_status=None).run
    assert schedule.decide(**on_time, overlap="skip", previous_status="succeeded").run
    busy = schedule.decide(**on_time, overlap="skip", previous_status="running")
    assert not busy.run and "still running" in busy.reason
    assert schedule.decide(**on_time, overlap="queue", previous_status="queued").run


def test_runs_missed_while_the_controller_was_down_run_once_or_are_skipped() -> None:
    late = {"due_at": NOW - timedelta(hours=6), "now": NOW, "overlap": "skip", "previous_status": None}
    once = schedule.decide(**late, missed="run-once")
    assert once.run and "missed" in once.reason
    skipped = schedule.decide(**late, missed="skip")
    assert not skipped.run and "controller was down" in skipped.reason
