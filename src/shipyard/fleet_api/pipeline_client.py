"""The controller client's pipeline calls: hooks, deliveries, jobs, and a job's log followed live.

follow_log reads the server-sent events of /jobs/{id}/events and reconnects with Last-Event-ID after
a dropped connection, so no line is shown twice or lost.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from shipyard.errors import ControllerError
from shipyard.fleet_api.client import API, ControllerClient, error_for
from shipyard.fleet_api.schemas.pipeline import (
    DeliveryOut,
    HookOut,
    JobOut,
    LogLineOut,
    NotificationOut,
    NotifyOut,
    ScheduleOut,
)
from shipyard.fleet_api.schemas.previews import PreviewAnswer, PreviewOut

RECONNECT_S = 1.0
MAX_RECONNECTS = 30


class PipelineClient(ControllerClient):
    def __enter__(self) -> PipelineClient:
        return self

    def add_hook(
        self,
        app: str,
        repository: str,
        secret: str,
        pipelines: list[dict[str, str]],
        *,
        provider: str = "github",
        deploy_key_secret: str | None = None,
    ) -> HookOut:
        body = {
            "provider": provider,
            "app": app,
            "repository": repository,
            "secret": secret,
            "pipelines": pipelines,
            "deploy_key_secret": deploy_key_secret,
        }
        return self._one(HookOut, "POST", "/hooks", json=body)

    def previews(self, app: str | None = None, *, all: bool = False) -> list[PreviewOut]:
        return self._many(PreviewOut, "/previews", app=app, all="true" if all else None)

    def preview_up(self, app: str, pr: int, ref: str, repository: str | None = None) -> PreviewAnswer:
        body = {"app": app, "pr": pr, "ref": ref, "repository": repository}
        return self._one(PreviewAnswer, "POST", "/previews", json=body)

    def preview_down(self, app: str, pr: int) -> PreviewAnswer:
        return self._one(PreviewAnswer, "DELETE", f"/previews/{app}/{pr}")

    def preview_pin(self, app: str, pr: int, *, pinned: bool = True) -> PreviewAnswer:
        return self._one(PreviewAnswer, "POST", f"/previews/{app}/{pr}/pin", json={"pinned": pinned})

    def schedules(self, app: str | None = None) -> list[ScheduleOut]:
        return self._many(ScheduleOut, "/schedules", app=app)

    def add_schedule(self, body: dict[str, Any]) -> ScheduleOut:
        return self._one(ScheduleOut, "POST", "/schedules", json=body)

    def remove_schedule(self, schedule_id: int) -> None:
        self._call("DELETE", f"/schedules/{schedule_id}")

    def notify_targets(self) -> list[NotifyOut]:
        return self._many(NotifyOut, "/notify")

    def add_notify(self, url: str, format_: str, app: str | None) -> NotifyOut:
        return self._one(NotifyOut, "POST", "/notify", json={"url": url, "format": format_, "app": app})

    def remove_notify(self, target_id: int) -> None:
        self._call("DELETE", f"/notify/{target_id}")

    def notifications(self, limit: int = 50) -> list[NotificationOut]:
        return self._many(NotificationOut, "/notifications", limit=limit)

    def hooks(self) -> list[HookOut]:
        return self._many(HookOut, "/hooks")

    def remove_hook(self, app: str) -> None:
        self._call("DELETE", f"/hooks/{app}")

    def rotate_hook(self, app: str, secret: str | None) -> HookOut:
        body = {"secret": secret} if secret is not None else {}
        return self._one(HookOut, "POST", f"/hooks/{app}/rotate", json=body)

    def deliveries(self, app: str | None = None, limit: int = 50) -> list[DeliveryOut]:
        return self._many(DeliveryOut, "/hooks/deliveries", app=app, limit=limit)

    def jobs(
        self, *, app: str | None = None, environment: str | None = None, limit: int = 50
    ) -> list[JobOut]:
        return self._many(JobOut, "/jobs", app=app, environment=environment, limit=limit)

    def job(self, job_id: int) -> JobOut:
        return self._one(JobOut, "GET", f"/jobs/{job_id}")

    def job_log(self, job_id: int, after: int = 0) -> list[LogLineOut]:
        return self._many(LogLineOut, f"/jobs/{job_id}/log", after=after)

    def cancel_job(self, job_id: int) -> JobOut:
        return self._one(JobOut, "POST", f"/jobs/{job_id}/cancel")

    def retry_job(self, job_id: int) -> JobOut:
        return self._one(JobOut, "POST", f"/jobs/{job_id}/retry")

    def follow_log(self, job_id: int, on_line: Callable[[LogLineOut], None]) -> JobOut:
        """Every log line as it is written, then the finished job."""
        last_id: str | None = None
        for _attempt in range(MAX_RECONNECTS):
            try:
                for event, event_id, data in self._events(f"{API}/jobs/{job_id}/events", last_id):
                    if event == "log":
                        on_line(LogLineOut.model_validate(json.loads(data)))
                        last_id = event_id or last_id
                    elif event == "end":
                        return JobOut.model_validate(json.loads(data))
            except (httpx.TransportError, ControllerError):
                self.move_on()  # a replica gone or a dropped connection: resume where it stopped
            time.sleep(RECONNECT_S)
        raise ControllerError(f"lost the log stream of job {job_id}; see it with 'shipyard job {job_id}'.")

    def _events(self, path: str, last_id: str | None) -> Iterator[tuple[str, str | None, str]]:
        headers = {"Accept": "text/event-stream"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        with self._http.stream(
            "GET", path, headers=headers, timeout=httpx.Timeout(10.0, read=60.0)
        ) as response:
            if not response.is_success:
                response.read()
                raise error_for(response)
            yield from parse_events(response.iter_lines())


def parse_events(lines: Iterator[str]) -> Iterator[tuple[str, str | None, str]]:
    """(event, id, data) of each server-sent event; comments (pings) skipped."""
    event, event_id = "message", None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield event, event_id, "\n".join(data)
            event, event_id, data = "message", None, []
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            event = value
        elif field == "id":
            event_id = value
        elif field == "data":
            data.append(value)


__all__ = ["PipelineClient", "parse_events"]
