"""GitLab merge request deliveries for previews, pure (engine/previews.py merge_request_event), and
which deliveries the hooks hand to the preview engine (store/hooks.py preview_event)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "integration"))

from github_payloads import pull_request
from gitlab_payloads import merge_request_hook, push

from shipyard.controller.engine import previews as engine
from shipyard.controller.engine.previews import Close, Push
from shipyard.controller.store import hooks
from shipyard.controller.store.previews import head_ref

REPO = "https://gitlab.example.com/acme/web.git"
SHA = ["%040x" % (0xC0 + i) for i in range(4)]


def test_open_and_reopen_build_the_last_commit() -> None:
    for action in ("open", "reopen"):
        assert engine.merge_request_event(merge_request_hook(action, 7, SHA[1]), REPO) == Push(
            REPO, 7, SHA[1]
        )


def test_an_update_builds_only_when_commits_were_pushed() -> None:
    pushed = merge_request_hook("update", 7, SHA[2], oldrev=SHA[1])
    assert engine.merge_request_event(pushed, REPO) == Push(REPO, 7, SHA[2])
    retitled = merge_request_hook("update", 7, SHA[2])  # a title, labels, assignees: no oldrev
    assert "oldrev" not in retitled["object_attributes"]
    assert engine.merge_request_event(retitled, REPO) is None


def test_close_and_merge_close_the_preview() -> None:
    assert engine.merge_request_event(merge_request_hook("close", 7, SHA[1]), REPO) == Close(REPO, 7)
    merged = merge_request_hook("merge", 7, SHA[1], merge_sha=SHA[3])
    assert engine.merge_request_event(merged, REPO) == Close(REPO, 7)


@pytest.mark.parametrize("action", ["approved", "unapproved", "approval", "unapproval", None])
def test_other_actions_mean_nothing_for_previews(action: str | None) -> None:
    payload = merge_request_hook("open", 7, SHA[1])
    payload["object_attributes"]["action"] = action
    assert engine.merge_request_event(payload, REPO) is None


def test_a_source_project_other_than_the_target_is_a_fork() -> None:
    fork = engine.merge_request_event(merge_request_hook("open", 8, SHA[1], fork=True), REPO)
    assert fork == Push(REPO, 8, SHA[1], fork=True)
    deleted = merge_request_hook("update", 8, SHA[2], oldrev=SHA[1], fork=True)
    deleted["object_attributes"]["source_project_id"] = None  # the fork was deleted since
    assert engine.merge_request_event(deleted, REPO) == Push(REPO, 8, SHA[2], fork=True)


def _without(payload: dict[str, Any], field: str) -> dict[str, Any]:
    del payload["object_attributes"][field]
    return payload


@pytest.mark.parametrize(
    ("payload", "said"),
    [
        (
            _without(merge_request_hook("open", 7, SHA[1]), "iid"),
            "merge request open without a merge request iid",
        ),
        (
            _without(merge_request_hook("close", 7, SHA[1]), "iid"),
            "merge request close without a merge request iid",
        ),
        (merge_request_hook("open", 0, SHA[1]), "without a merge request iid"),
        (merge_request_hook("open", True, SHA[1]), "without a merge request iid"),
        (merge_request_hook("open", 7, "main"), "merge request !7 open without a last commit sha"),
        (merge_request_hook("update", 7, SHA[1][:12], oldrev=SHA[0]), "!7 update without a last commit sha"),
        (merge_request_hook("reopen", 7, SHA[1].upper()), "!7 reopen without a last commit sha"),
        (_without(merge_request_hook("open", 7, SHA[1]), "last_commit"), "without a last commit sha"),
        ({"object_kind": "merge_request"}, "merge request event without object_attributes"),
    ],
)
def test_a_malformed_merge_request_is_one_sentence_not_an_event(payload: dict[str, Any], said: str) -> None:
    reason = engine.merge_request_event(payload, REPO)
    assert isinstance(reason, str) and said in reason and "\n" not in reason


def _received(provider: str, event: str) -> hooks.Received:
    return hooks.Received(provider, "web", "delivery-1", event, "127.0.0.1")


def test_the_hooks_hand_pull_and_merge_requests_to_previews_and_nothing_else() -> None:
    opened = merge_request_hook("open", 7, SHA[1])
    assert hooks.preview_event(_received("gitlab", "Merge Request Hook"), opened, REPO) == Push(
        REPO, 7, SHA[1]
    )
    github = pull_request("opened", 7, SHA[1])
    assert hooks.preview_event(_received("github", "pull_request"), github, REPO) == Push(REPO, 7, SHA[1])
    # The header and the payload's object_kind must agree, as for the pipelines' classify.
    assert hooks.preview_event(_received("gitlab", "Push Hook"), opened, REPO) is None
    assert hooks.preview_event(_received("gitlab", "Merge Request Hook"), push("main", SHA[1]), REPO) is None
    assert hooks.preview_event(_received("github", "Merge Request Hook"), opened, REPO) is None
    assert hooks.preview_event(_received("gitlab", "pull_request"), github, REPO) is None


def test_a_preview_jobs_branch_label_is_the_providers_head_ref() -> None:
    assert head_ref("gitlab", 7) == "merge-requests/7/head"
    assert head_ref("github", 7) == "pull/7/head"
    assert head_ref(None, 7) == "pull/7/head"  # `preview up` for an app without a hook
