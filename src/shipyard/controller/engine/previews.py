"""The preview engine: what a pull request event, a command or a reconciler tick does to an app's previews.

Like engine/rollout.py it sees plain dataclasses and returns decisions as data; store/previews.py loads
the rows into views and stores the decisions, the server carries out the side effects (wake the job
worker, cancel a build, drop a database). The rules:
- a preview is keyed by repository and PR number, never by branch name; one live preview per PR;
  a GitLab merge request is a PR numbered by its iid (merge_request_event);
- opened, reopened or synchronize (or `shipyard preview up`): a build of the head commit, the TTL
  renewed; the same commit again while it is being built or served changes nothing (a duplicate
  delivery); a newer commit cancels the build of the older one;
- closed (or `shipyard preview down`): the preview is torn down at once: out of the hosts' desired
  state, its build cancelled; the reconciler then drops its database and sealed secrets (finish);
- at most `max` live previews per app: a new one evicts the oldest unpinned (replace-oldest) or is
  refused (refuse); with every live preview pinned it is refused either way;
- the reconciler's tick: expire previews whose TTL passed (unless pinned), finish teardowns once no
  build runs, and bring an app back to `max` (if it was lowered) by removing the oldest unpinned.
Every decision is idempotent: applying the same event twice decides nothing new the second time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shipyard.domain.previews import preview_app_name, preview_host_name
from shipyard.domain.spec import WEB_PROCESS, AppSpec, PreviewPlacement, PreviewsSpec

QUEUED, BUILDING, DEPLOYING, READY, FAILED = "queued", "building", "deploying", "ready", "failed"
CLOSING, CLOSED = "closing", "closed"
STATUSES = (QUEUED, BUILDING, DEPLOYING, READY, FAILED, CLOSING, CLOSED)
LIVE = frozenset({QUEUED, BUILDING, DEPLOYING, READY, FAILED})
# A build of these is under way or done: the same commit again is a duplicate, not a new build.
CURRENT = frozenset({QUEUED, BUILDING, DEPLOYING, READY})

OPENED, REOPENED, SYNCHRONIZE, CLOSED_EVENT = "opened", "reopened", "synchronize", "closed"
PUSH_ACTIONS = frozenset({OPENED, REOPENED, SYNCHRONIZE})
PULL_REQUEST_ACTIONS = PUSH_ACTIONS | {CLOSED_EVENT}
# GitLab's object_attributes.action of a merge request event; an update is a push only with new commits.
MR_OPEN, MR_REOPEN, MR_UPDATE, MR_CLOSE, MR_MERGE = "open", "reopen", "update", "close", "merge"
MERGE_REQUEST_PUSH_ACTIONS = frozenset({MR_OPEN, MR_REOPEN, MR_UPDATE})
MERGE_REQUEST_ACTIONS = MERGE_REQUEST_PUSH_ACTIONS | {MR_CLOSE, MR_MERGE}


@dataclass(frozen=True)
class PreviewView:
    id: int
    repository: str
    pr: int
    sha: str
    status: str
    created_at: datetime
    expires_at: datetime
    fork: bool = False
    pinned: bool = False
    job_id: int | None = None
    job_active: bool = False  # its job is queued or running
    database: bool = False  # a database was handed to it and not dropped yet

    @property
    def live(self) -> bool:
        return self.status in LIVE


@dataclass(frozen=True)
class Limits:
    """What the engine needs of the app's PreviewsSpec."""

    max: int
    when_full: str  # replace-oldest | refuse
    ttl_seconds: int


# An app whose latest release has no `previews:` any more: the reconciler removes every preview of it.
OFF = Limits(max=0, when_full="refuse", ttl_seconds=0)


# Events
@dataclass(frozen=True)
class Push:
    """A head commit to preview: opened, reopened, synchronize, or `shipyard preview up`."""

    repository: str
    pr: int
    sha: str
    fork: bool = False


@dataclass(frozen=True)
class Close:
    """The PR closed (merged or not), or `shipyard preview down`."""

    repository: str | None  # None: whichever repository the live preview of `pr` has
    pr: int


@dataclass(frozen=True)
class Pin:
    pr: int
    pinned: bool


@dataclass(frozen=True)
class Tick:
    """The reconciler's periodic pass."""


Event = Push | Close | Pin | Tick


# Decisions
@dataclass(frozen=True)
class Create:
    """A new preview record, queued for a build of `sha`."""

    repository: str
    pr: int
    sha: str
    fork: bool
    expires_at: datetime


@dataclass(frozen=True)
class Build:
    """A new build of an existing live preview (a push): its commit, status queued, TTL renewed."""

    preview_id: int
    sha: str
    expires_at: datetime


@dataclass(frozen=True)
class CancelBuild:
    preview_id: int
    job_id: int


@dataclass(frozen=True)
class TearDown:
    """Out of the desired state now (status closing); the database and secrets go at the finish."""

    preview_id: int
    reason: str


@dataclass(frozen=True)
class Finish:
    """A closing preview whose build is over: drop its database (if any), its sealed secrets; closed."""

    preview_id: int
    destroy_database: bool


@dataclass(frozen=True)
class SetPinned:
    preview_id: int
    pinned: bool


@dataclass(frozen=True)
class Refuse:
    reason: str


@dataclass(frozen=True)
class Ignore:
    reason: str


Decision = Create | Build | CancelBuild | TearDown | Finish | SetPinned | Refuse | Ignore


def _live(previews: Sequence[PreviewView]) -> list[PreviewView]:
    return [preview for preview in previews if preview.live]


def _of_pr(previews: Sequence[PreviewView], pr: int) -> PreviewView | None:
    return next((preview for preview in _live(previews) if preview.pr == pr), None)


def _cancel(preview: PreviewView) -> list[Decision]:
    return [CancelBuild(preview.id, preview.job_id)] if preview.job_active and preview.job_id else []


def _tear_down(preview: PreviewView, reason: str) -> list[Decision]:
    return [*_cancel(preview), TearDown(preview.id, reason)]


def _oldest_first(previews: Sequence[PreviewView]) -> list[PreviewView]:
    return sorted(previews, key=lambda preview: (preview.created_at, preview.id))


def decide(previews: Sequence[PreviewView], limits: Limits, now: datetime, event: Event) -> list[Decision]:
    """The decisions for `event`, given every preview record of the app (live and closed)."""
    if isinstance(event, Push):
        return _push(previews, limits, now, event)
    if isinstance(event, Close):
        return _close(previews, event)
    if isinstance(event, Pin):
        return _pin(previews, event)
    return _tick(previews, limits, now)


def _push(previews: Sequence[PreviewView], limits: Limits, now: datetime, push: Push) -> list[Decision]:
    expires_at = now + timedelta(seconds=limits.ttl_seconds)
    existing = _of_pr(previews, push.pr)
    if existing is not None and existing.repository != push.repository:
        return [
            Refuse(
                f"pr-{push.pr} already has a live preview from {existing.repository}; "
                f"take it down first ('shipyard preview down --pr {push.pr}')."
            )
        ]
    if existing is not None:
        if existing.sha == push.sha and existing.status in CURRENT:
            return [Ignore(f"pr-{push.pr} is already {existing.status} at {push.sha[:12]}")]
        return [*_cancel(existing), Build(existing.id, push.sha, expires_at)]
    live = _live(previews)
    decisions: list[Decision] = []
    if len(live) >= limits.max:
        if limits.when_full == "refuse":
            return [
                Refuse(
                    f"the app already has {len(live)} previews (previews.max is {limits.max}); "
                    "take one down with 'shipyard preview down' or raise previews.max."
                )
            ]
        unpinned = _oldest_first([preview for preview in live if not preview.pinned])
        excess = len(live) - limits.max + 1
        if len(unpinned) < excess:
            return [
                Refuse(
                    f"the app's {len(live)} previews are pinned (previews.max is {limits.max}); "
                    "unpin one with 'shipyard preview pin --unpin' or raise previews.max."
                )
            ]
        for evicted in unpinned[:excess]:
            decisions += _tear_down(evicted, f"replaced by pr-{push.pr} (previews.max is {limits.max})")
    return [*decisions, Create(push.repository, push.pr, push.sha, push.fork, expires_at)]


def _close(previews: Sequence[PreviewView], close: Close) -> list[Decision]:
    existing = _of_pr(previews, close.pr)
    if existing is None or (close.repository is not None and existing.repository != close.repository):
        return [Ignore(f"pr-{close.pr} has no live preview")]
    return _tear_down(existing, f"pr-{close.pr} closed")


def _pin(previews: Sequence[PreviewView], pin: Pin) -> list[Decision]:
    existing = _of_pr(previews, pin.pr)
    if existing is None:
        return [Refuse(f"pr-{pin.pr} has no live preview; list them with 'shipyard previews'.")]
    if existing.pinned == pin.pinned:
        return [Ignore(f"pr-{pin.pr} is already {'pinned' if pin.pinned else 'unpinned'}")]
    return [SetPinned(existing.id, pin.pinned)]


def _tick(previews: Sequence[PreviewView], limits: Limits, now: datetime) -> list[Decision]:
    decisions: list[Decision] = []
    staying: list[PreviewView] = []
    for preview in previews:
        if limits == OFF and preview.live:
            decisions += _tear_down(preview, "the app's config no longer has previews:")
        elif preview.status == CLOSING:
            # A build still running is stopped first; its end may still create what the finish drops.
            decisions += _cancel(preview) or [Finish(preview.id, preview.database)]
        elif preview.live and not preview.pinned and preview.expires_at <= now:
            decisions += _tear_down(preview, f"its TTL ({limits.ttl_seconds} s since the last push) passed")
        elif preview.live:
            staying.append(preview)
    excess = len(staying) - limits.max
    if excess > 0:
        unpinned = _oldest_first([preview for preview in staying if not preview.pinned])
        for evicted in unpinned[:excess]:
            decisions += _tear_down(evicted, f"over previews.max ({limits.max})")
    return decisions


def _integer(value: Any) -> int | None:
    """`value` when it is a JSON integer (not a boolean, which Python counts as one)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _is_sha(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 40 and all(c in "0123456789abcdef" for c in value)


def pull_request_event(payload: Mapping[str, Any], repository: str) -> Push | Close | str | None:
    """What a GitHub pull_request delivery means for previews: a Push or a Close of the PR of
    `repository` (the hook's: the base repository, where PR numbers live); None for other actions
    (edited, labeled, ...); the reason, for a payload that does not say what it should."""
    action = payload.get("action")
    if action not in PULL_REQUEST_ACTIONS:
        return None
    pull = payload.get("pull_request")
    number = _integer(pull.get("number")) if isinstance(pull, Mapping) else None
    if not isinstance(pull, Mapping) or number is None or number < 1:
        return f"pull_request {action} without a pull request number"
    if action == CLOSED_EVENT:
        return Close(repository, number)
    head = pull.get("head")
    sha = head.get("sha") if isinstance(head, Mapping) else None
    if not isinstance(head, Mapping) or not _is_sha(sha):
        return f"pull request #{number} {action} without a head commit sha"
    base = pull.get("base")
    head_repo = head.get("repo")
    base_repo = base.get("repo") if isinstance(base, Mapping) else None
    # A head in another repository (or one deleted since) is a fork's: its preview gets no secrets.
    same = (
        isinstance(head_repo, Mapping)
        and isinstance(base_repo, Mapping)
        and isinstance(head_repo.get("full_name"), str)
        and head_repo.get("full_name") == base_repo.get("full_name")
    )
    return Push(repository, number, str(sha), fork=not same)


def merge_request_event(payload: Mapping[str, Any], repository: str) -> Push | Close | str | None:
    """What a GitLab "Merge Request Hook" delivery means for previews: a Push or a Close of the merge
    request `object_attributes.iid` of `repository` (the hook's: the target project, where GitLab keeps
    refs/merge-requests/N/head); None for other actions (approved, ...) and for an update without new
    commits (GitLab sets `oldrev` only when commits were pushed); the reason, for a payload that does
    not say what it should."""
    attributes = payload.get("object_attributes")
    if not isinstance(attributes, Mapping):
        return "merge request event without object_attributes"
    action = attributes.get("action")
    if action not in MERGE_REQUEST_ACTIONS:
        return None
    if action == MR_UPDATE and not attributes.get("oldrev"):
        return None  # a new title, labels, assignees, ...: nothing to build
    number = _integer(attributes.get("iid"))
    if number is None or number < 1:
        return f"merge request {action} without a merge request iid"
    if action not in MERGE_REQUEST_PUSH_ACTIONS:
        return Close(repository, number)
    last_commit = attributes.get("last_commit")
    sha = last_commit.get("id") if isinstance(last_commit, Mapping) else None
    if not _is_sha(sha):
        return f"merge request !{number} {action} without a last commit sha"
    # A source project other than the target (or one deleted since) is a fork's: no secrets for it.
    source = _integer(attributes.get("source_project_id"))
    target = _integer(attributes.get("target_project_id"))
    return Push(repository, number, str(sha), fork=source is None or source != target)


DATABASE_URL = "DATABASE_URL"


def preview_spec(
    spec: AppSpec, *, app: str, pr: int, repository: str, settings: PreviewsSpec, fork: bool, database: bool
) -> AppSpec:
    """The spec of a preview's release: the commit's spec as the hosts' contract wants it.

    The app is the preview app (`APP-pr-N`) placed by `preview`, limited by `previews.resources`, with
    the web process only and no previews of its own. Its secrets are the commit's env.secret names (and
    DATABASE_URL with a database); a fork's preview names none, so its hosts are handed none.
    """
    data = spec.model_dump(mode="json", exclude_none=True)
    secret = [] if fork else list(dict.fromkeys([*spec.env.secret, *([DATABASE_URL] if database else [])]))
    data.update(
        app=preview_app_name(app, pr),
        preview=PreviewPlacement(
            repository=repository, pr=pr, host_name=preview_host_name(app, pr, settings.domain)
        ).model_dump(mode="json"),
        resources=settings.resources.model_dump(mode="json", exclude_none=True),
        processes={name: value for name, value in data.get("processes", {}).items() if name == WEB_PROCESS},
        env={**data.get("env", {}), "secret": secret},
        pipelines=[],
    )
    data.pop("previews", None)
    if fork:  # the build of a fork's commit is handed no build secrets either
        data["build"] = {**data.get("build", {}), "secrets": []}
    return AppSpec.model_validate(data)
