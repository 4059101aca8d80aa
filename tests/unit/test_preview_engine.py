"""The preview engine as data: events and ticks in, decisions out (controller/engine/previews.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shipyard.controller.engine import previews as engine
from shipyard.controller.engine.previews import (
    Build,
    CancelBuild,
    Close,
    Create,
    Finish,
    Ignore,
    Limits,
    Pin,
    PreviewView,
    Push,
    Refuse,
    SetPinned,
    TearDown,
    Tick,
    decide,
)
from shipyard.domain.spec import AppSpec, EnvSpec, PreviewPlacement

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
REPO = "https://github.com/acme/web.git"
FORK = "https://github.com/someone/web.git"
SHA = ["%040x" % (0xA0 + i) for i in range(8)]
LIMITS = Limits(max=3, when_full="replace-oldest", ttl_seconds=3600)
EXPIRES = NOW + timedelta(seconds=3600)


def preview(
    id: int, pr: int, status: str = engine.READY, *, age: int = 0, sha: str = SHA[0], **fields: object
) -> PreviewView:
    view = PreviewView(
        id=id,
        repository=REPO,
        pr=pr,
        sha=sha,
        status=status,
        created_at=NOW - timedelta(minutes=age),
        expires_at=NOW + timedelta(minutes=30),
    )
    return replace(view, **fields)  # type: ignore[arg-type]


def test_an_opened_pr_gets_a_new_preview_with_its_ttl() -> None:
    assert decide([], LIMITS, NOW, Push(REPO, 7, SHA[1])) == [Create(REPO, 7, SHA[1], False, EXPIRES)]


def test_a_fork_pr_is_created_marked_as_a_fork() -> None:
    assert decide([], LIMITS, NOW, Push(FORK, 7, SHA[1], fork=True)) == [
        Create(FORK, 7, SHA[1], True, EXPIRES)
    ]


def test_a_push_rebuilds_and_renews_the_ttl() -> None:
    ready = preview(1, 7, sha=SHA[0])
    assert decide([ready], LIMITS, NOW, Push(REPO, 7, SHA[1])) == [Build(1, SHA[1], EXPIRES)]


def test_a_push_while_building_cancels_the_older_build() -> None:
    building = preview(1, 7, engine.BUILDING, sha=SHA[0], job_id=11, job_active=True)
    assert decide([building], LIMITS, NOW, Push(REPO, 7, SHA[1])) == [
        CancelBuild(1, 11),
        Build(1, SHA[1], EXPIRES),
    ]


@pytest.mark.parametrize("status", [engine.QUEUED, engine.BUILDING, engine.DEPLOYING, engine.READY])
def test_a_duplicate_delivery_of_the_same_commit_changes_nothing(status: str) -> None:
    current = preview(1, 7, status, sha=SHA[2], job_id=11, job_active=status != engine.READY)
    decisions = decide([current], LIMITS, NOW, Push(REPO, 7, SHA[2]))
    assert len(decisions) == 1 and isinstance(decisions[0], Ignore)
    assert "already" in decisions[0].reason


def test_the_same_commit_again_after_a_failure_builds_again() -> None:
    failed = preview(1, 7, engine.FAILED, sha=SHA[2])
    assert decide([failed], LIMITS, NOW, Push(REPO, 7, SHA[2])) == [Build(1, SHA[2], EXPIRES)]


def test_a_pr_number_of_another_repository_is_refused_while_the_first_lives() -> None:
    decisions = decide([preview(1, 7)], LIMITS, NOW, Push(FORK, 7, SHA[1]))
    assert len(decisions) == 1 and isinstance(decisions[0], Refuse)
    assert REPO in decisions[0].reason and "preview down" in decisions[0].reason


def test_close_tears_down_at_once() -> None:
    assert decide([preview(1, 7)], LIMITS, NOW, Close(REPO, 7)) == [TearDown(1, "pr-7 closed")]


def test_close_arriving_while_building_cancels_the_build_and_tears_down() -> None:
    building = preview(1, 7, engine.BUILDING, job_id=11, job_active=True)
    assert decide([building], LIMITS, NOW, Close(REPO, 7)) == [CancelBuild(1, 11), TearDown(1, "pr-7 closed")]


def test_close_half_a_second_after_open_leaves_nothing_to_build() -> None:
    opened = decide([], LIMITS, NOW, Push(REPO, 7, SHA[1]))
    assert opened == [Create(REPO, 7, SHA[1], False, EXPIRES)]
    queued = preview(1, 7, engine.QUEUED, sha=SHA[1], job_id=11, job_active=True)
    later = NOW + timedelta(seconds=0.5)
    assert decide([queued], LIMITS, later, Close(REPO, 7)) == [CancelBuild(1, 11), TearDown(1, "pr-7 closed")]


def test_a_close_keyed_by_another_repository_touches_nothing() -> None:
    decisions = decide([preview(1, 7)], LIMITS, NOW, Close(FORK, 7))
    assert decisions == [Ignore("pr-7 has no live preview")]


def test_a_duplicate_close_or_a_close_of_an_unknown_pr_is_ignored() -> None:
    closing = preview(1, 7, engine.CLOSING)
    assert decide([closing], LIMITS, NOW, Close(REPO, 7)) == [Ignore("pr-7 has no live preview")]
    assert decide([], LIMITS, NOW, Close(REPO, 9)) == [Ignore("pr-9 has no live preview")]


def test_preview_down_without_a_repository_takes_the_live_one() -> None:
    assert decide([preview(1, 7)], LIMITS, NOW, Close(None, 7)) == [TearDown(1, "pr-7 closed")]


def test_reopen_after_close_creates_a_new_preview() -> None:
    closed = preview(1, 7, engine.CLOSED)
    assert decide([closed], LIMITS, NOW, Push(REPO, 7, SHA[3])) == [Create(REPO, 7, SHA[3], False, EXPIRES)]


def test_stacked_prs_are_separate_previews_even_on_the_same_commit() -> None:
    base = preview(1, 7, sha=SHA[1])
    # PR 8 is stacked on PR 7's branch and starts at the same commit: it gets its own preview.
    assert decide([base], LIMITS, NOW, Push(REPO, 8, SHA[1])) == [Create(REPO, 8, SHA[1], False, EXPIRES)]
    stacked = preview(2, 8, sha=SHA[1])
    # Merging PR 7 closes it alone.
    assert decide([base, stacked], LIMITS, NOW, Close(REPO, 7)) == [TearDown(1, "pr-7 closed")]


def test_max_reached_replaces_the_oldest_unpinned() -> None:
    live = [preview(1, 1, age=30, pinned=True), preview(2, 2, age=20), preview(3, 3, age=10)]
    decisions = decide(live, LIMITS, NOW, Push(REPO, 4, SHA[1]))
    assert decisions == [
        TearDown(2, "replaced by pr-4 (previews.max is 3)"),
        Create(REPO, 4, SHA[1], False, EXPIRES),
    ]


def test_replacing_a_preview_being_built_cancels_its_build() -> None:
    live = [preview(1, 1, engine.BUILDING, age=30, job_id=5, job_active=True), preview(2, 2), preview(3, 3)]
    decisions = decide(live, LIMITS, NOW, Push(REPO, 4, SHA[1]))
    assert decisions[:2] == [CancelBuild(1, 5), TearDown(1, "replaced by pr-4 (previews.max is 3)")]


def test_max_reached_with_refuse_refuses() -> None:
    live = [preview(1, 1), preview(2, 2), preview(3, 3)]
    decisions = decide(live, replace(LIMITS, when_full="refuse"), NOW, Push(REPO, 4, SHA[1]))
    assert len(decisions) == 1 and isinstance(decisions[0], Refuse)
    assert "previews.max is 3" in decisions[0].reason


def test_max_reached_with_everything_pinned_refuses_even_when_replacing() -> None:
    live = [preview(i, i, pinned=True) for i in (1, 2, 3)]
    decisions = decide(live, LIMITS, NOW, Push(REPO, 4, SHA[1]))
    assert len(decisions) == 1 and isinstance(decisions[0], Refuse)
    assert "pinned" in decisions[0].reason and "--unpin" in decisions[0].reason


def test_closed_previews_do_not_count_toward_max() -> None:
    live = [preview(1, 1, engine.CLOSED), preview(2, 2, engine.CLOSING), preview(3, 3), preview(4, 4)]
    assert decide(live, LIMITS, NOW, Push(REPO, 5, SHA[1])) == [Create(REPO, 5, SHA[1], False, EXPIRES)]


def test_a_push_to_an_existing_preview_at_max_evicts_nothing() -> None:
    live = [preview(1, 1), preview(2, 2), preview(3, 3)]
    assert decide(live, LIMITS, NOW, Push(REPO, 2, SHA[4])) == [Build(2, SHA[4], EXPIRES)]


def test_pin_and_unpin() -> None:
    assert decide([preview(1, 7)], LIMITS, NOW, Pin(7, True)) == [SetPinned(1, True)]
    assert decide([preview(1, 7, pinned=True)], LIMITS, NOW, Pin(7, False)) == [SetPinned(1, False)]
    again = decide([preview(1, 7, pinned=True)], LIMITS, NOW, Pin(7, True))
    assert again == [Ignore("pr-7 is already pinned")]
    unknown = decide([preview(1, 7, engine.CLOSED)], LIMITS, NOW, Pin(7, True))
    assert len(unknown) == 1 and isinstance(unknown[0], Refuse)


def test_tick_expires_by_ttl_unless_pinned() -> None:
    expired = preview(1, 1, expires_at=NOW - timedelta(seconds=1))
    pinned = preview(2, 2, expires_at=NOW - timedelta(days=1), pinned=True)
    fresh = preview(3, 3)
    assert decide([expired, pinned, fresh], LIMITS, NOW, Tick()) == [
        TearDown(1, "its TTL (3600 s since the last push) passed")
    ]


def test_tick_expires_a_failed_preview_and_cancels_a_build_past_its_ttl() -> None:
    failed = preview(1, 1, engine.FAILED, expires_at=NOW)
    stuck = preview(2, 2, engine.BUILDING, expires_at=NOW, job_id=9, job_active=True)
    decisions = decide([failed, stuck], LIMITS, NOW, Tick())
    reason = "its TTL (3600 s since the last push) passed"
    assert decisions == [TearDown(1, reason), CancelBuild(2, 9), TearDown(2, reason)]


def test_tick_finishes_teardowns_once_no_build_runs() -> None:
    done = preview(1, 1, engine.CLOSING, database=True)
    without_database = preview(2, 2, engine.CLOSING)
    still_building = preview(3, 3, engine.CLOSING, job_id=8, job_active=True)
    assert decide([done, without_database, still_building], LIMITS, NOW, Tick()) == [
        Finish(1, True),
        Finish(2, False),
        CancelBuild(3, 8),
    ]


def test_tick_leaves_closed_previews_alone_and_is_idempotent() -> None:
    closed = preview(1, 1, engine.CLOSED, expires_at=NOW - timedelta(days=3))
    assert decide([closed, preview(2, 2)], LIMITS, NOW, Tick()) == []


def test_tick_brings_a_lowered_max_back_by_removing_the_oldest_unpinned() -> None:
    live = [preview(1, 1, age=40), preview(2, 2, age=30, pinned=True), preview(3, 3, age=20), preview(4, 4)]
    decisions = decide(live, replace(LIMITS, max=2), NOW, Tick())
    assert decisions == [TearDown(1, "over previews.max (2)"), TearDown(3, "over previews.max (2)")]


def test_tick_over_max_with_everything_pinned_removes_nothing() -> None:
    live = [preview(i, i, pinned=True) for i in (1, 2, 3)]
    assert decide(live, replace(LIMITS, max=1), NOW, Tick()) == []


def test_a_lost_close_is_caught_by_the_ttl() -> None:
    # The close webhook never came: the next tick past the TTL tears the preview down, then finishes it.
    opened = preview(1, 7, expires_at=NOW + timedelta(seconds=3600), database=True)
    assert decide([opened], LIMITS, NOW, Tick()) == []
    later = NOW + timedelta(seconds=3601)
    assert decide([opened], LIMITS, later, Tick()) == [
        TearDown(1, "its TTL (3600 s since the last push) passed")
    ]
    assert decide([replace(opened, status=engine.CLOSING)], LIMITS, later, Tick()) == [Finish(1, True)]


def test_previews_removed_from_the_config_tear_everything_down_even_pinned() -> None:
    live = [preview(1, 1, pinned=True), preview(2, 2, engine.BUILDING, job_id=3, job_active=True)]
    reason = "the app's config no longer has previews:"
    assert decide(live, engine.OFF, NOW, Tick()) == [
        TearDown(1, reason),
        CancelBuild(2, 3),
        TearDown(2, reason),
    ]


def _payload(
    action: str, head_repo: object, *, number: object = 7, sha: object = SHA[1]
) -> dict[str, object]:
    base = {"full_name": "acme/web"}
    head = {"sha": sha, "repo": head_repo}
    return {"action": action, "pull_request": {"number": number, "head": head, "base": {"repo": base}}}


def test_pull_request_deliveries_become_pushes_and_closes() -> None:
    own = {"full_name": "acme/web"}
    for action in ("opened", "reopened", "synchronize"):
        assert engine.pull_request_event(_payload(action, own), REPO) == Push(REPO, 7, SHA[1])
    assert engine.pull_request_event(_payload("closed", own), REPO) == Close(REPO, 7)
    assert engine.pull_request_event(_payload("labeled", own), REPO) is None


def test_a_head_in_another_or_a_deleted_repository_is_a_fork() -> None:
    fork = engine.pull_request_event(_payload("opened", {"full_name": "someone/web"}), REPO)
    assert fork == Push(REPO, 7, SHA[1], fork=True)
    deleted = engine.pull_request_event(_payload("synchronize", None), REPO)
    assert deleted == Push(REPO, 7, SHA[1], fork=True)


@pytest.mark.parametrize(
    ("number", "sha", "said"),
    [(None, SHA[1], "number"), (True, SHA[1], "number"), (0, SHA[1], "number"), (7, "main", "sha")],
)
def test_a_malformed_pull_request_is_a_reason_not_an_event(number: object, sha: object, said: str) -> None:
    reason = engine.pull_request_event(
        _payload("opened", {"full_name": "acme/web"}, number=number, sha=sha), REPO
    )
    assert isinstance(reason, str) and said in reason


def _commit_spec() -> AppSpec:
    return AppSpec.model_validate(
        {
            "app": "web",
            "image": "registry:5000/web",
            "env": {"clear": {"MODE": "x"}, "secret": ["API_KEY", "DATABASE_URL"]},
            "build": {"secrets": ["NPM_TOKEN"]},
            "processes": {"worker": {"command": ["sleep", "1"]}},
            "pipelines": [{"branch": "release", "environment": "production"}],
            "previews": {"domain": "preview.test", "resources": {"memory": "128m", "cpus": 0.25}},
        }
    )


def test_a_preview_spec_is_the_commit_spec_placed_for_its_pr() -> None:
    commit = _commit_spec()
    assert commit.previews is not None
    spec = engine.preview_spec(
        commit, app="web", pr=7, repository=REPO, settings=commit.previews, fork=False, database=True
    )
    assert spec.app == "web-pr-7" and spec.image == commit.image
    assert spec.preview == PreviewPlacement(repository=REPO, pr=7, host_name="pr-7.web.preview.test")
    assert spec.previews is None and spec.pipelines == [] and "worker" not in spec.processes
    assert spec.resources.memory == "128m" and spec.resources.cpus == 0.25
    assert spec.env.secret == ["API_KEY", "DATABASE_URL"] and spec.env.clear == {"MODE": "x"}
    assert [s.id for s in spec.build.secrets] == ["NPM_TOKEN"]


def test_a_preview_without_a_database_gets_no_database_url_added() -> None:
    commit = _commit_spec().model_copy(update={"env": EnvSpec(secret=["API_KEY"])})
    assert commit.previews is not None
    spec = engine.preview_spec(
        commit, app="web", pr=7, repository=REPO, settings=commit.previews, fork=False, database=False
    )
    assert spec.env.secret == ["API_KEY"]


def test_a_fork_preview_names_no_secret_and_builds_without_build_secrets() -> None:
    commit = _commit_spec()
    assert commit.previews is not None
    spec = engine.preview_spec(
        commit, app="web", pr=8, repository=REPO, settings=commit.previews, fork=True, database=True
    )
    assert spec.env.secret == [] and spec.build.secrets == [] and spec.env.clear == {"MODE": "x"}
