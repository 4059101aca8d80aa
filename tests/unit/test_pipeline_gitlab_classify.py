"""GitLab deliveries, pure: the token check and what each event means for the pipelines."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "integration"))

from github_payloads import PIPELINES
from gitlab_payloads import ZERO_SHA, merge_request, push, tag_push

from shipyard.controller.engine import gitlab
from shipyard.controller.engine.github import IGNORE, SHIP

SHA = "b" * 40


def test_the_token_matches_any_accepted_secret_and_nothing_else() -> None:
    secrets = ["new-secret-0123456789", "old-secret-0123456789"]
    assert gitlab.verify_token("new-secret-0123456789", secrets)
    assert gitlab.verify_token("old-secret-0123456789", secrets)
    assert gitlab.verify_token(" new-secret-0123456789\n", secrets)  # as pasted, whitespace stripped
    assert not gitlab.verify_token("new-secret-012345678", secrets)
    assert not gitlab.verify_token("", secrets)
    assert not gitlab.verify_token(None, secrets)
    assert not gitlab.verify_token("new-secret-0123456789", [])


def test_a_push_to_a_pipeline_branch_ships_its_after_commit_with_its_time() -> None:
    verdict = gitlab.classify("Push Hook", push("release", SHA), PIPELINES)
    assert (verdict.action, verdict.environment, verdict.branch, verdict.sha) == (
        SHIP,
        "production",
        "release",
        SHA,
    )
    assert verdict.commit_time is not None and verdict.commit_time.year == 2026


def test_a_merged_merge_request_ships_its_merge_commit() -> None:
    verdict = gitlab.classify("Merge Request Hook", merge_request("main", SHA, iid=12), PIPELINES)
    assert (verdict.action, verdict.environment, verdict.sha) == (SHIP, "staging", SHA)
    assert "!12" in verdict.reason
    assert verdict.commit_time is not None and verdict.commit_time.tzinfo is not None


def test_what_ships_nothing_is_ignored_with_the_reason() -> None:
    cases = {
        "Push Hook": [
            (push("release", ZERO_SHA), "deleted"),
            (push("feature", SHA), "no pipeline"),
        ],
        "Tag Push Hook": [(tag_push("v1", SHA), "does not ship")],
        "Merge Request Hook": [
            (merge_request("release", None, action="open", state="opened"), "not merged"),
            (merge_request("feature", SHA), "no pipeline"),
            (merge_request("release", None), "without a merge_commit_sha"),
        ],
        "Issue Hook": [({"object_kind": "issue"}, "does not ship")],
    }
    for event, payloads in cases.items():
        for payload, reason in payloads:
            verdict = gitlab.classify(event, payload, PIPELINES)
            assert verdict.action == IGNORE and reason in verdict.reason, (event, verdict)


def test_the_event_header_and_the_object_kind_must_agree() -> None:
    # A push body sent under the merge request header is not read as a push.
    assert gitlab.classify("Merge Request Hook", push("release", SHA), PIPELINES).action == IGNORE
