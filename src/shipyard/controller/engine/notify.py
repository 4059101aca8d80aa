"""Outgoing notifications, pure: the events, the bodies (Slack-compatible or plain JSON), the backoff.

Events: job.started, job.<status> when a job ends (succeeded, failed, cancelled, interrupted),
deployment.started, deployment.<status> when it ends (succeeded, failed, aborted, rolled_back).
Every text is masked (registered secrets, token shapes, `user:pass@` in URLs) before it is queued; a
target's URL, which often is itself a credential (Slack's incoming webhooks), is shown only as its
scheme and host. No I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from shipyard.secrets.masking import MASK, mask, mask_credentials

SLACK, JSON = "slack", "json"
FORMATS = (SLACK, JSON)
# Attempts of one notification before it is given up (recorded as failed); none fails a deploy.
MAX_ATTEMPTS = 6
MAX_BACKOFF_S = 300.0
URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@")
SUCCESS = frozenset({"succeeded"})
ICONS = {"started": ":arrow_forward:", "succeeded": ":white_check_mark:"}


def backoff(attempts: int, base: float) -> float:
    """Seconds before attempt `attempts + 1`: base, 2 x base, 4 x base ..., at most MAX_BACKOFF_S."""
    return float(min(base * 2 ** max(attempts - 1, 0), MAX_BACKOFF_S))


def redact(text: str) -> str:
    return URL_CREDENTIALS.sub(rf"\1{MASK}@", mask_credentials(mask(text)))


def shown_url(url: str) -> str:
    """A target's URL as listed and logged: scheme and host, never the path that holds its token."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/…"


def check_url(url: str) -> str:
    from shipyard.errors import ConfigError

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{shown_url(url)} is not an http(s) URL; notifications are posted to http(s).")
    return url


def event_payload(event: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The stored payload of an event: plain values, every text redacted."""
    clean = {key: redact(value) if isinstance(value, str) else value for key, value in fields.items()}
    return {"event": event, **clean}


def _headline(payload: Mapping[str, Any]) -> str:
    kind, _, status = str(payload["event"]).partition(".")
    what = f"job {payload.get('job_id')}" if kind == "job" else f"deployment {payload.get('deployment_id')}"
    where = f"{payload.get('app')} -> {payload.get('environment')}"
    sha = payload.get("sha")
    commit = f" ({str(sha)[:12]})" if sha else ""
    icon = ICONS.get(status, ":x:")
    return f"{icon} {what} {where}{commit}: {status.replace('_', ' ')}"


def body_for(format_: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """What is posted: Slack's incoming-webhook `text` (with the details), or the payload as JSON."""
    if format_ == SLACK:
        message = payload.get("message")
        text = _headline(payload) + (f"\n{message}" if message else "")
        return {"text": text}
    return dict(payload)
