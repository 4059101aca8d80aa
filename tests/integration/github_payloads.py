"""Webhook deliveries shaped like GitHub's documented payloads (octokit/webhooks schemas), signed."""

from __future__ import annotations

import json
import uuid
from typing import Any

from shipyard.controller.engine.github import signature_of

ZERO_SHA = "0" * 40
# The pipelines of the hooks the webhook tests set up: which branch ships to which environment.
PIPELINES = [{"branch": "release", "environment": "production"}, {"branch": "main", "environment": "staging"}]


def push(branch: str, after: str, *, timestamp: str = "2026-11-29T12:00:00Z", **extra: Any) -> dict[str, Any]:
    return {
        "ref": f"refs/heads/{branch}",
        "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "after": after,
        "created": False,
        "deleted": False,
        "forced": False,
        "base_ref": None,
        "compare": "https://github.com/acme/web/compare/6113728f27ae...",
        "commits": [{"id": after, "message": "change", "timestamp": timestamp}],
        "head_commit": {"id": after, "message": "change", "timestamp": timestamp},
        "repository": {"id": 186853002, "name": "web", "full_name": "acme/web", "default_branch": "main"},
        "pusher": {"name": "octocat", "email": "octocat@github.com"},
        "sender": {"login": "octocat", "id": 1},
        **extra,
    }


def merged_pull_request(base: str, merge_sha: str, *, number: int = 7) -> dict[str, Any]:
    return {
        "action": "closed",
        "number": number,
        "pull_request": {
            "number": number,
            "state": "closed",
            "merged": True,
            "merged_at": "2026-11-29T12:00:00Z",
            "merge_commit_sha": merge_sha,
            "head": {"ref": "feature", "sha": "6113728f27ae82c7b1a177c8d03f9e96e0adf246"},
            "base": {"ref": base, "sha": "6113728f27ae82c7b1a177c8d03f9e96e0adf246"},
        },
        "repository": {"id": 186853002, "name": "web", "full_name": "acme/web"},
        "sender": {"login": "octocat", "id": 1},
    }


def pull_request(
    action: str, number: int, head_sha: str, *, fork: bool = False, merged: bool = False
) -> dict[str, Any]:
    """opened, reopened, synchronize or closed, from the base repository or (fork=True) a fork."""
    base_repo = {"id": 186853002, "name": "web", "full_name": "acme/web", "fork": False}
    head_repo = {"id": 2001, "name": "web", "full_name": "someone/web", "fork": True} if fork else base_repo
    return {
        "action": action,
        "number": number,
        "pull_request": {
            "number": number,
            "state": "closed" if action == "closed" else "open",
            "merged": merged,
            "merge_commit_sha": head_sha if merged else None,
            "head": {"ref": f"feature-{number}", "sha": head_sha, "repo": head_repo},
            "base": {"ref": "main", "sha": "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "repo": base_repo},
        },
        "repository": base_repo,
        "sender": {"login": "octocat", "id": 1},
    }


def ping() -> dict[str, Any]:
    return {
        "zen": "Design for failure.",
        "hook_id": 109948940,
        "hook": {"type": "Repository", "active": True},
    }


def signed(
    secret: str, event: str, payload: dict[str, Any] | bytes, delivery: str | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body and headers GitHub would send."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/044aadd",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "109948940",
        "X-Hub-Signature-256": signature_of(secret, body),
    }
    return body, headers
