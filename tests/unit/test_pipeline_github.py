"""GitHub webhooks, pure: signatures over the raw body and what each documented event shape means."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "integration"))

from github_payloads import PIPELINES, ZERO_SHA, push

from shipyard.controller.engine.github import IGNORE, PING, SHIP, classify, signature_of, verify_signature

SECRET = "It's a Secret to Everybody"
SHA = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
MERGE_SHA = "e5bd3914e2e596debea16f433f57875b5b90bcd6"


def pull_request(action: str = "closed", merged: bool = True, base: str = "release") -> dict[str, Any]:
    """Shaped like GitHub's documented pull_request payload (closed, merged)."""
    return {
        "action": action,
        "number": 2,
        "pull_request": {
            "number": 2,
            "state": "closed" if action == "closed" else "open",
            "merged": merged,
            "merged_at": "2026-11-29T16:00:00Z" if merged else None,
            "merge_commit_sha": MERGE_SHA,
            "head": {"ref": "feature", "sha": SHA},
            "base": {"ref": base, "sha": "6113728f27ae82c7b1a177c8d03f9e96e0adf246"},
        },
        "repository": {"id": 186853002, "name": "web", "full_name": "acme/web"},
        "sender": {"login": "octocat", "id": 1},
    }


def test_github_documented_example_signature_verifies() -> None:
    # The example in GitHub's "Validating webhook deliveries" documentation.
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert signature_of(SECRET, b"Hello, World!") == expected
    assert verify_signature(expected, b"Hello, World!", [SECRET])


def test_signature_over_the_raw_bytes_not_a_reencoding() -> None:
    body = json.dumps(push("release", SHA), indent=2).encode()
    header = signature_of(SECRET, body)
    assert verify_signature(header, body, [SECRET])
    assert not verify_signature(header, json.dumps(push("release", SHA)).encode(), [SECRET])


def test_secret_surrounding_whitespace_is_ignored() -> None:
    body = b"{}"
    assert verify_signature(signature_of(SECRET, body), body, [f"  {SECRET}\n"])


@pytest.mark.parametrize(
    "header", [None, "", "sha1=abc", "sha256=", "sha256=" + "0" * 64, signature_of("another secret!!", b"{}")]
)
def test_bad_or_missing_signatures_fail(header: str | None) -> None:
    assert not verify_signature(header, b"{}", [SECRET])


def test_either_secret_verifies_during_a_rotation() -> None:
    body = b'{"zen": "Keep it logically awesome."}'
    new, old = "a brand new secret value", SECRET
    assert verify_signature(signature_of(old, body), body, [new, old])
    assert verify_signature(signature_of(new, body), body, [new, old])
    assert not verify_signature(signature_of(old, body), body, [new])


def test_ping() -> None:
    assert classify("ping", {"zen": "Design for failure.", "hook_id": 1}, PIPELINES).action == PING


def test_push_to_a_pipeline_branch_ships_after() -> None:
    verdict = classify("push", push("release", SHA, timestamp="2026-11-29T17:00:00+01:00"), PIPELINES)
    assert (verdict.action, verdict.branch, verdict.environment, verdict.sha) == (
        SHIP,
        "release",
        "production",
        SHA,
    )
    assert verdict.commit_time == datetime(2026, 11, 29, 16, 0, tzinfo=UTC)


def test_merged_pull_request_ships_the_merge_commit() -> None:
    verdict = classify("pull_request", pull_request(), PIPELINES)
    assert (verdict.action, verdict.environment, verdict.sha) == (SHIP, "production", MERGE_SHA)


@pytest.mark.parametrize(
    ("event", "payload", "reason"),
    [
        ("push", push("release", SHA, ref="refs/tags/v1.0.0"), "push to refs/tags/v1.0.0, not to a branch"),
        ("push", push("release", ZERO_SHA, deleted=True), "branch release was deleted"),
        ("push", push("release", ZERO_SHA), "branch release was deleted"),
        ("push", push("feature", SHA), "branch feature has no pipeline"),
        ("pull_request", pull_request(action="opened", merged=False), "pull request #2 opened, not merged"),
        ("pull_request", pull_request(merged=False), "pull request #2 closed, not merged"),
        ("pull_request", pull_request(base="feature"), "merged into feature, which has no pipeline"),
        ("issues", {"action": "opened"}, "event 'issues' does not ship anything"),
        ("push", {"ref": 12}, "push without a ref"),
        ("push", push("release", "not-a-sha"), "push without a commit sha in 'after'"),
    ],
)
def test_what_is_ignored_and_why(event: str, payload: dict[str, Any], reason: str) -> None:
    verdict = classify(event, payload, PIPELINES)
    assert verdict.action == IGNORE
    assert reason in verdict.reason
