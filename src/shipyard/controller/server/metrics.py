"""Prometheus metrics: request latency, plus deployment and host counts read at scrape time.

Request labels come from a closed set whatever a client sends: the matched route's template (not the
path), a known method or "other", and the status code.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from shipyard.controller.store.db import Database
from shipyard.controller.store.models import Deployment, Host

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else "other"


class StateCollector(Collector):
    """Counts come from the database so every controller process reports the same truth."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        deployments = GaugeMetricFamily("shipyard_deployments", "Deployments by status", labels=["status"])
        hosts = GaugeMetricFamily("shipyard_hosts", "Registered hosts by status", labels=["status"])
        with self._db.read() as session:
            for status, count in session.execute(
                select(Deployment.status, func.count()).group_by(Deployment.status)
            ):
                deployments.add_metric([status], count)
            for status, count in session.execute(select(Host.status, func.count()).group_by(Host.status)):
                hosts.add_metric([status], count)
        yield deployments
        yield hosts


class ControllerMetrics:
    """One registry per app instance, so several apps in one process (tests) do not collide."""

    def __init__(self, db: Database) -> None:
        self.registry = CollectorRegistry()
        self.request_seconds = Histogram(
            "shipyard_controller_request_seconds",
            "Time to answer an API request",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.registry.register(StateCollector(db))

        # id(route) -> its full template: a route included under a prefix may not carry the prefix itself
        self._templates: dict[int, str] = {}
        # (method, route, status) -> its histogram child: labels() checks and locks on every call, and
        # every agent request is observed; the label set is closed, so this stays small
        self._observers: dict[tuple[str, str, str], Any] = {}

    def name_routes(self, routes: Iterable[Any], prefix: str = "") -> None:
        """Label requests matching these routes with prefix + the route's path template."""
        for route in routes:
            path = getattr(route, "path", None)
            if isinstance(path, str):
                self._templates.setdefault(id(route), prefix + path)

    def route_label(self, scope: Any) -> str:
        """The template of the route that matched, e.g. /api/v1/hosts/{name}; "unmatched" for none."""
        return self._templates.get(id(scope.get("route")), "unmatched")

    def observe_request(self, scope: Any, status: int, seconds: float) -> None:
        labels = (method_label(scope["method"]), self.route_label(scope), str(status))
        observer = self._observers.get(labels)
        if observer is None:
            observer = self._observers[labels] = self.request_seconds.labels(*labels)
        observer.observe(seconds)
