"""Log requests carried out on this host: read the app's containers, filter, mask, send in batches.

A request arrives in the desired state; the agent answers each id once, in a thread of its own so the
loop goes on polling and swapping. Lines are read with the engine's timestamps and, when followed,
read again every second from the last one seen, until the request's follow time passes or the
controller says it no longer wants them (the CLI closed it).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from shipyard.agent.log_lines import Moment, TimedLine, seconds_of
from shipyard.agent.ports import ControllerPort, HostPort
from shipyard.errors import ControllerError, ShipyardError
from shipyard.fleet_api.schemas.logs import MAX_BATCH, MAX_LINE, DesiredLogRequest
from shipyard.secrets.masking import mask

log = structlog.get_logger("shipyard.agent")
CONTROL = re.compile(r"[\x00]")


@dataclass
class LogShipper:
    controller: ControllerPort
    host: HostPort
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    interval: float = 1.0
    threaded: bool = True
    answered: set[int] = field(default_factory=set)

    def start(self, requests: list[DesiredLogRequest]) -> None:
        """Answer each request not answered yet (ids of closed requests are forgotten)."""
        self.answered &= {request.id for request in requests}
        for request in requests:
            if request.id in self.answered:
                continue
            self.answered.add(request.id)
            # Here, in the loop's thread: the host's store is not shared with other threads.
            try:
                pattern = re.compile(request.grep) if request.grep else None
                sources = self.host.log_sources(request.app, request.process)
            except (ShipyardError, re.error) as exc:
                self._post_finished(request.id, str(exc))
                continue
            if self.threaded:
                threading.Thread(
                    target=self.ship, args=(request, sources, pattern), name=f"logs-{request.id}", daemon=True
                ).start()
            else:
                self.ship(request, sources, pattern)

    def _post_finished(self, request_id: int, message: str) -> None:
        try:
            self.controller.post_logs(request_id, [], finished=True, message=mask(message)[:2000])
        except ControllerError as exc:
            log.info("log request abandoned", request=request_id, reason=str(exc))

    def ship(
        self, request: DesiredLogRequest, sources: dict[str, str], pattern: re.Pattern[str] | None
    ) -> None:
        try:
            self._ship(request, sources, pattern)
        except ControllerError as exc:  # the controller is away: the CLI sees this host never finished
            log.info("log request abandoned", request=request.id, reason=str(exc))
        except Exception as exc:  # a thread of its own: say why, never die silently
            log.error("log request failed", request=request.id, error=str(exc))
            self._post_finished(request.id, f"reading the logs failed on this host: {exc}")

    def _ship(
        self, request: DesiredLogRequest, sources: dict[str, str], pattern: re.Pattern[str] | None
    ) -> None:
        deadline = self.clock() + request.follow
        since = self.wall_clock() - request.since if request.since else None
        last: dict[str, Moment] = {}
        wanted = self._send(request.id, self._read(sources, since, request.tail, last, pattern))
        while wanted and self.clock() < deadline:
            self.sleep(self.interval)
            wanted = self._send(request.id, self._read(sources, None, None, last, pattern))
        if wanted:
            self.controller.post_logs(request.id, [], finished=True)

    def _read(
        self,
        sources: dict[str, str],
        since: float | None,
        tail: int | None,
        last: dict[str, Moment],
        pattern: re.Pattern[str] | None,
    ) -> list[str]:
        """New lines of every container, oldest first across them, each after the last one read."""
        found: list[tuple[TimedLine, str]] = []
        for name, process in sources.items():
            start = seconds_of(last[name]) if name in last else since
            try:
                lines = self.host.container_log(name, start, tail if name not in last else None)
            except ShipyardError as exc:
                log.info("cannot read a container's log", container=name, error=str(exc))
                continue
            fresh = [line for line in lines if name not in last or line.at > last[name]]
            if fresh:
                last[name] = max(line.at for line in fresh)
            elif name not in last:
                last[name] = (int(self.wall_clock()), 0)
            found += [(line, process) for line in fresh]
        found.sort(key=lambda item: item[0].at)
        # Masked before the filter, so a pattern cannot tell whether a secret is in a line.
        texts = [
            mask(line.text if process == "web" else f"[{process}] {line.text}") for line, process in found
        ]
        return [
            CONTROL.sub(" ", text)[:MAX_LINE] for text in texts if pattern is None or pattern.search(text)
        ]

    def _send(self, request_id: int, lines: list[str]) -> bool:
        """Post the lines in batches (an empty one when there are none, to learn whether the request
        is still wanted); False once the controller no longer wants them."""
        if not lines:
            return self.controller.post_logs(request_id, [])
        for start in range(0, len(lines), MAX_BATCH):
            if not self.controller.post_logs(request_id, lines[start : start + MAX_BATCH]):
                return False
        return True
