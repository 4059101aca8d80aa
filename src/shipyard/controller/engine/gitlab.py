"""GitLab webhooks, pure: the token check and what an event means for an app's pipelines.

GitLab does not sign its deliveries: it sends the hook's secret token in `X-Gitlab-Token`, compared
here in constant time against every accepted secret. Events are named by `X-Gitlab-Event` ("Push
Hook", "Merge Request Hook", ...) and the payload's `object_kind`; classify returns the same Verdict
as github.classify, so admission and storage do not care which provider spoke. GitLab's "Test"
button sends a real event (a push by default), handled as such. No I/O here.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from shipyard.controller.engine.github import IGNORE, SHIP, Verdict, _parse_time, merge_verdict, push_verdict

PUSH_EVENT, MERGE_REQUEST_EVENT = "Push Hook", "Merge Request Hook"


def verify_token(header: str | None, secrets: Sequence[str]) -> bool:
    """True when `header` is one of `secrets` (both during a rotation); every secret is compared."""
    if not header:
        return False
    given = header.strip().encode()
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(given, secret.strip().encode())
    return matched


def _parse_gitlab_time(value: Any) -> datetime | None:
    """ISO 8601, or the '2026-11-29 12:00:00 UTC' form some GitLab payloads use."""
    if isinstance(value, str) and value.endswith(" UTC"):
        value = value[: -len(" UTC")].replace(" ", "T") + "+00:00"
    return _parse_time(value)


def _ignore(reason: str) -> Verdict:
    return Verdict(IGNORE, reason)


def classify(event: str, payload: Mapping[str, Any], pipelines: Sequence[Mapping[str, str]]) -> Verdict:
    """What a delivery of `event` (the X-Gitlab-Event header) with `payload` does for the app."""
    kind = payload.get("object_kind")
    if event == PUSH_EVENT and kind == "push":
        return _classify_push(payload, pipelines)
    if event == MERGE_REQUEST_EVENT and kind == "merge_request":
        return _classify_merge_request(payload, pipelines)
    return _ignore(f"event {event!r} ({kind!r}) does not ship anything")


def _classify_push(payload: Mapping[str, Any], pipelines: Sequence[Mapping[str, str]]) -> Verdict:
    verdict = push_verdict(payload, pipelines, deleted=False)
    if verdict.action != SHIP:
        return verdict
    after = verdict.sha
    commits = payload.get("commits")
    head = (
        next(
            (c for c in commits if isinstance(c, Mapping) and c.get("id") == after),
            None,
        )
        if isinstance(commits, list)
        else None
    )
    commit_time = _parse_gitlab_time(head.get("timestamp")) if head is not None else None
    return replace(verdict, commit_time=commit_time)


def _classify_merge_request(payload: Mapping[str, Any], pipelines: Sequence[Mapping[str, str]]) -> Verdict:
    attributes = payload.get("object_attributes")
    if not isinstance(attributes, Mapping):
        return _ignore("merge request event without object_attributes")
    number = attributes.get("iid", "?")
    action, state = attributes.get("action"), attributes.get("state")
    if action != "merge" or state != "merged":
        return _ignore(f"merge request !{number} {action or state}, not merged")
    branch = attributes.get("target_branch")
    if not isinstance(branch, str):
        return _ignore(f"merge request !{number} without a target branch")
    return merge_verdict(
        f"merge request !{number}",
        branch,
        attributes.get("merge_commit_sha"),
        _parse_gitlab_time(attributes.get("updated_at")),
        pipelines,
    )
