"""GitHub webhooks, pure: the signature check and what an event means for an app's pipelines.

verify_signature runs on the raw body before anything parses it; classify turns a parsed payload into
a Verdict (ship a commit to an environment, or ignore it and say why). No I/O here.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

SIGNATURE_PREFIX = "sha256="
ZERO_SHA = "0" * 40
BRANCH_REF = "refs/heads/"

SHIP, IGNORE, PING = "ship", "ignore", "ping"


def signature_of(secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 value GitHub sends for `body` signed with `secret`."""
    digest = hmac.new(secret.strip().encode(), body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify_signature(header: str | None, body: bytes, secrets: Sequence[str]) -> bool:
    """True when `header` is the HMAC-SHA256 of `body` under any of `secrets` (both during a rotation)."""
    if not header or not header.startswith(SIGNATURE_PREFIX):
        return False
    given = header.strip().encode()
    matched = False
    for secret in secrets:
        # Every secret is compared, in constant time, so the timing does not tell which one matched.
        matched |= hmac.compare_digest(given, signature_of(secret, body).encode())
    return matched


@dataclass(frozen=True)
class Verdict:
    action: str  # ship | ignore | ping
    reason: str
    branch: str = ""
    environment: str = ""
    sha: str = ""
    commit_time: datetime | None = None


def _ignore(reason: str) -> Verdict:
    return Verdict(IGNORE, reason)


def _environment_of(branch: str, pipelines: Sequence[Mapping[str, str]]) -> str | None:
    return next((p["environment"] for p in pipelines if p.get("branch") == branch), None)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _is_sha(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 40 and all(c in "0123456789abcdef" for c in value)


def classify(event: str, payload: Mapping[str, Any], pipelines: Sequence[Mapping[str, str]]) -> Verdict:
    """What a delivery of `event` with `payload` does, given the app's pipelines."""
    if event == "ping":
        return Verdict(PING, "ping: the hook is set up")
    if event == "push":
        return _classify_push(payload, pipelines)
    if event == "pull_request":
        return _classify_pull_request(payload, pipelines)
    return _ignore(f"event {event!r} does not ship anything")


def push_verdict(
    payload: Mapping[str, Any], pipelines: Sequence[Mapping[str, str]], *, deleted: bool
) -> Verdict:
    """A push as both providers send it (ref, after); the caller reads the commit time its own way."""
    ref = payload.get("ref")
    if not isinstance(ref, str):
        return _ignore("push without a ref")
    if not ref.startswith(BRANCH_REF):
        return _ignore(f"push to {ref}, not to a branch")
    branch = ref[len(BRANCH_REF) :]
    after = payload.get("after")
    if deleted or after == ZERO_SHA:
        return _ignore(f"branch {branch} was deleted")
    environment = _environment_of(branch, pipelines)
    if environment is None:
        return _ignore(f"branch {branch} has no pipeline")
    if not _is_sha(after):
        return _ignore("push without a commit sha in 'after'")
    return Verdict(SHIP, f"push to {branch}", branch, environment, str(after))


def merge_verdict(
    what: str, branch: str, sha: Any, merged_at: datetime | None, pipelines: Sequence[Mapping[str, str]]
) -> Verdict:
    """A merge of `what` ("pull request #3") into `branch`, as both providers judge it."""
    environment = _environment_of(branch, pipelines)
    if environment is None:
        return _ignore(f"{what} merged into {branch}, which has no pipeline")
    if not _is_sha(sha):
        return _ignore(f"{what} merged without a merge_commit_sha")
    return Verdict(SHIP, f"{what} merged into {branch}", branch, environment, str(sha), merged_at)


def _classify_push(payload: Mapping[str, Any], pipelines: Sequence[Mapping[str, str]]) -> Verdict:
    verdict = push_verdict(payload, pipelines, deleted=payload.get("deleted") is True)
    if verdict.action != SHIP:
        return verdict
    head = payload.get("head_commit")
    commit_time = _parse_time(head.get("timestamp")) if isinstance(head, Mapping) else None
    return replace(verdict, commit_time=commit_time)


def _classify_pull_request(payload: Mapping[str, Any], pipelines: Sequence[Mapping[str, str]]) -> Verdict:
    pull = payload.get("pull_request")
    if not isinstance(pull, Mapping):
        return _ignore("pull_request event without a pull_request")
    number = pull.get("number", payload.get("number", "?"))
    if payload.get("action") != "closed" or pull.get("merged") is not True:
        return _ignore(f"pull request #{number} {payload.get('action')}, not merged")
    base = pull.get("base")
    branch = base.get("ref") if isinstance(base, Mapping) else None
    if not isinstance(branch, str):
        return _ignore(f"pull request #{number} without a base branch")
    return merge_verdict(
        f"pull request #{number}",
        branch,
        pull.get("merge_commit_sha"),
        _parse_time(pull.get("merged_at")),
        pipelines,
    )
