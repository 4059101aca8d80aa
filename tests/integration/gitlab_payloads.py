"""Webhook deliveries shaped like GitLab's documented payloads (Webhook events: push, merge request)."""

from __future__ import annotations

import json
import uuid
from typing import Any

ZERO_SHA = "0" * 40
PROJECT = {
    "id": 15,
    "name": "web",
    "path_with_namespace": "acme/web",
    "git_ssh_url": "git@example.com:acme/web.git",
    "git_http_url": "https://example.com/acme/web.git",
    "default_branch": "main",
}


def push(branch: str, after: str, *, timestamp: str = "2026-11-29T12:00:00+00:00") -> dict[str, Any]:
    return {
        "object_kind": "push",
        "event_name": "push",
        "before": "95790bf891e76fee5e1747ab589903a6a1f80f22",
        "after": after,
        "ref": f"refs/heads/{branch}",
        "ref_protected": True,
        "checkout_sha": None if after == ZERO_SHA else after,
        "user_id": 4,
        "user_name": "John Smith",
        "user_username": "jsmith",
        "project_id": 15,
        "project": PROJECT,
        "commits": [
            {
                "id": after,
                "message": "change",
                "title": "change",
                "timestamp": timestamp,
                "author": {"name": "John Smith", "email": "jsmith@example.com"},
                "added": [],
                "modified": ["app.py"],
                "removed": [],
            }
        ],
        "total_commits_count": 1,
        "repository": {"name": "web", "url": "git@example.com:acme/web.git"},
    }


def tag_push(tag: str, after: str) -> dict[str, Any]:
    return {
        **push("unused", after),
        "object_kind": "tag_push",
        "event_name": "tag_push",
        "ref": f"refs/tags/{tag}",
    }


def merge_request(
    target: str, merge_sha: str | None, *, action: str = "merge", state: str = "merged", iid: int = 1
) -> dict[str, Any]:
    return {
        "object_kind": "merge_request",
        "event_type": "merge_request",
        "user": {"id": 1, "name": "Administrator", "username": "root"},
        "project": PROJECT,
        "object_attributes": {
            "id": 99,
            "iid": iid,
            "target_branch": target,
            "source_branch": "feature",
            "state": state,
            "action": action,
            "merge_status": "can_be_merged",
            "merge_commit_sha": merge_sha,
            "last_commit": {"id": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"},
            "updated_at": "2026-11-29 12:00:00 UTC",
        },
        "repository": {"name": "web", "url": "git@example.com:acme/web.git"},
    }


FORK_PROJECT = {
    **PROJECT,
    "id": 2001,
    "path_with_namespace": "someone/web",
    "git_ssh_url": "git@example.com:someone/web.git",
    "git_http_url": "https://example.com/someone/web.git",
}
MR_STATES = {"open": "opened", "reopen": "opened", "update": "opened", "close": "closed", "merge": "merged"}


def merge_request_hook(
    action: str,
    iid: int,
    last_commit: str,
    *,
    oldrev: str | None = None,
    fork: bool = False,
    target: str = "main",
    merge_sha: str | None = None,
) -> dict[str, Any]:
    """A "Merge Request Hook" as GitLab documents it (Webhook events: merge request events): `action`
    open, reopen, update (with `oldrev` when commits were pushed), close, merge, approved, ...; from a
    branch of the project itself or (fork=True) of a fork."""
    source = FORK_PROJECT if fork else PROJECT
    state = MR_STATES.get(action, "opened")
    timestamp = "2026-11-29T12:00:00+00:00"
    attributes: dict[str, Any] = {
        "id": 90 + iid,
        "iid": iid,
        "title": f"Feature {iid}",
        "description": "",
        "state": state,
        "state_id": {"opened": 1, "closed": 2, "merged": 3}[state],
        "action": action,
        "source_branch": f"feature-{iid}",
        "target_branch": target,
        "source_project_id": source["id"],
        "target_project_id": PROJECT["id"],
        "author_id": 51,
        "assignee_ids": [6],
        "reviewer_ids": [],
        "created_at": "2026-11-29 11:00:00 UTC",
        "updated_at": "2026-11-29 12:00:00 UTC",
        "merge_status": "can_be_merged",
        "detailed_merge_status": "mergeable",
        "merge_commit_sha": merge_sha,
        "draft": False,
        "work_in_progress": False,
        "blocking_discussions_resolved": True,
        "first_contribution": fork,
        "url": f"https://example.com/acme/web/-/merge_requests/{iid}",
        "source": source,
        "target": PROJECT,
        "last_commit": {
            "id": last_commit,
            "message": f"Feature {iid}\n",
            "title": f"Feature {iid}",
            "timestamp": timestamp,
            "url": f"https://example.com/acme/web/-/commit/{last_commit}",
            "author": {"name": "Jane Doe", "email": "jane@example.com"},
        },
        "labels": [],
    }
    if oldrev is not None:  # GitLab sets it only on an update that pushed commits
        attributes["oldrev"] = oldrev
    changes = {"updated_at": {"previous": "2026-11-29 11:00:00 UTC", "current": "2026-11-29 12:00:00 UTC"}}
    return {
        "object_kind": "merge_request",
        "event_type": "merge_request",
        "user": {"id": 1, "name": "Administrator", "username": "root", "email": "admin@example.com"},
        "project": PROJECT,
        "object_attributes": attributes,
        "labels": [],
        "changes": changes,
        "repository": {
            "name": "web",
            "url": "git@example.com:acme/web.git",
            "description": "",
            "homepage": "https://example.com/acme/web",
        },
        "assignees": [{"id": 6, "name": "John Smith", "username": "jsmith"}],
        "reviewers": [],
    }


def headers(token: str, event: str, delivery: str | None = None) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Gitlab-Event": event,
        "X-Gitlab-Token": token,
        "X-Gitlab-Event-UUID": delivery or str(uuid.uuid4()),
        "X-Gitlab-Instance": "https://gitlab.example.com",
    }


def body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()
