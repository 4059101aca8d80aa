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
