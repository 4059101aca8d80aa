"""The notification sender: a thread of the controller that posts due notifications over HTTP.

A post that fails (refused, timed out, a non-2xx answer) is retried with exponential backoff up to
notify.MAX_ATTEMPTS, then recorded as failed; nothing here can fail a job or a deployment. Errors are
stored as their kind and status only: an exception's text may quote the URL, which holds the token.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import structlog

from shipyard.controller.engine import notify
from shipyard.controller.server.context import ControllerContext
from shipyard.controller.server.pipeline.periodic import PeriodicThread
from shipyard.controller.store import notify_store

log = structlog.get_logger("shipyard.controller.notify")
POST_TIMEOUT_S = 5.0
# A round claims at most CLAIM_BATCH notifications and holds them HOLD_S: longer than posting the whole
# batch may take (each post times out), so no other controller process posts one of them again.
CLAIM_BATCH = 5
HOLD_S = 60.0


class NotificationSender(PeriodicThread):
    name = "shipyard-notifier"

    def __init__(
        self,
        context: ControllerContext,
        *,
        interval: float = 1.0,
        backoff_base: float = 2.0,
        active: Callable[[], bool] = lambda: True,
    ) -> None:
        super().__init__(interval=interval, active=active)
        self._context, self._backoff_base = context, backoff_base
        self._http = httpx.Client(timeout=POST_TIMEOUT_S, follow_redirects=False)

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        self._http.close()

    def run_once(self) -> int:
        """Post every due notification once; how many were attempted."""
        with self._context.db.read() as session:  # most rounds find nothing: no write lock then
            if not notify_store.has_due(session, now=self._context.now()):
                return 0
        with self._context.db.transaction() as session:
            due = notify_store.claim_due(session, now=self._context.now(), hold=HOLD_S, limit=CLAIM_BATCH)
        for outgoing in due:
            error = self._post(outgoing)
            with self._context.db.transaction() as session:
                notify_store.record_attempt(
                    session,
                    outgoing.id,
                    error=error,
                    now=self._context.now(),
                    backoff_base=self._backoff_base,
                )
        return len(due)

    def _post(self, outgoing: notify_store.Outgoing) -> str | None:
        """None when the target took it; else why not, without the URL."""
        try:
            answer = self._http.post(outgoing.url, json=notify.body_for(outgoing.format, outgoing.payload))
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__} posting to {notify.shown_url(outgoing.url)}"
        else:
            if answer.is_success:
                return None
            error = f"HTTP {answer.status_code} from {notify.shown_url(outgoing.url)}"
        log.warning(
            "notification not delivered", notification=outgoing.id, attempt=outgoing.attempts + 1, error=error
        )
        return error
