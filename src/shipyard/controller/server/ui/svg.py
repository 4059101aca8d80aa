"""Pictures drawn on the server as inline SVG: pure functions of the data, every text escaped."""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape

from shipyard.controller.server.traffic import MinuteSample
from shipyard.controller.store.models import Deployment

COLOURS = {
    "succeeded": "#2e7d32",
    "failed": "#c62828",
    "rolled_back": "#ef6c00",
    "rollback": "#ef6c00",
    "aborted": "#757575",
    "running": "#1565c0",
    "paused": "#f9a825",
    "queued": "#90a4ae",
    "waiting": "#cfd8dc",
    "in_progress": "#1565c0",
    "monitoring": "#0288d1",
}


def colour(status: str) -> str:
    return COLOURS.get(status, "#9e9e9e")


def deployment_kind(deployment: Deployment) -> str:
    """What the timeline shows: a succeeded rollback is drawn as a rollback."""
    if deployment.rollback_of is not None and deployment.status == "succeeded":
        return "rollback"
    return deployment.status


def timeline(deployments: Sequence[Deployment]) -> Markup:
    """Deployments of one environment, oldest on the left; colour says success, failure or rollback."""
    step, height = 14, 28
    width = max(step * len(deployments), step)
    parts = [
        f'<svg class="timeline" role="img" aria-label="deployment timeline" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for index, deployment in enumerate(deployments):
        kind = deployment_kind(deployment)
        when = f"{deployment.created_at:%Y-%m-%d %H:%M}" if deployment.created_at else ""
        label = escape(f"deployment {deployment.id}: r{deployment.release_id} {kind} {when}")
        parts.append(
            f'<a href="/ui/deployments/{deployment.id}"><rect x="{index * step + 2}" y="4" '
            f'width="{step - 4}" height="{height - 8}" rx="2" fill="{colour(kind)}" '
            f'data-status="{escape(kind)}">'
            f"<title>{label}</title></rect></a>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def waves(deployment: Deployment) -> Markup:
    """One block per wave, one square per host coloured by the host's outcome; the running wave framed.

    Small waves are a column of squares; large ones a grid of small squares (up to 1,024 hosts a wave).
    """
    by_wave: dict[int, list[tuple[str, str, str]]] = {}
    for row in sorted(deployment.hosts, key=lambda row: (row.wave, row.host.name)):
        by_wave.setdefault(row.wave, []).append((row.host.name, row.outcome, row.step))
    # Waves are numbered from 1; 0 means none has started yet.
    count = max(deployment.total_waves, max(by_wave, default=0), 1)
    tallest = max((len(hosts) for hosts in by_wave.values()), default=1)
    if tallest <= 20:
        cell, gap, across, down = 16, 4, 1, tallest
    else:
        cell, gap = 6, 1
        across = min(math.ceil(math.sqrt(tallest)), 32)
        down = min(math.ceil(tallest / across), 32)
    block = across * (cell + gap) + 10
    width, height = count * block + 4, down * (cell + gap) + 24
    parts = [
        f'<svg class="waves" role="img" aria-label="waves" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for wave in range(1, count + 1):
        left = (wave - 1) * block + 6
        if wave == deployment.current_wave and deployment.status in ("running", "paused"):
            parts.append(
                f'<rect x="{left - 4}" y="1" width="{block - 2}" height="{height - 2}" fill="none" '
                f'stroke="#1565c0" stroke-width="2" rx="3"/>'
            )
        parts.append(f'<text x="{left}" y="{height - 6}" font-size="10">w{wave}</text>')
        for index, (host, outcome, step) in enumerate(by_wave.get(wave, [])[: across * down]):
            x, y = left + (index % across) * (cell + gap), 4 + (index // across) * (cell + gap)
            # Small waves name each host; in a grid the table below lists the running wave's hosts.
            label = escape(f"{host}: {outcome}" + (f" ({step})" if step else "")) if across == 1 else ""
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" rx="1" fill="{colour(outcome)}" '
                f'data-outcome="{escape(outcome)}">'
                + (f"<title>{label}</title></rect>" if label else "</rect>")
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def sparkline(samples: Sequence[MinuteSample]) -> Markup:
    """Requests (blue) and 5xx responses (red) per minute over the samples, scaled to the busiest minute."""
    width, height = 120, 24
    top = max((sample.requests for sample in samples), default=0) or 1
    step = width / max(len(samples) - 1, 1)

    def points(values: Sequence[int]) -> str:
        return " ".join(
            f"{index * step:.1f},{height - 2 - (value / top) * (height - 4):.1f}"
            for index, value in enumerate(values)
        )

    total = sum(sample.requests for sample in samples)
    errors = sum(sample.errors_5xx for sample in samples)
    label = escape(f"last hour: {total} requests, {errors} 5xx")
    return Markup(
        f'<svg class="sparkline" role="img" aria-label="{label}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg"><title>{label}</title>'
        f'<polyline fill="none" stroke="#1565c0" stroke-width="1.5" '
        f'points="{points([s.requests for s in samples])}"/>'
        f'<polyline fill="none" stroke="#c62828" stroke-width="1.5" '
        f'points="{points([s.errors_5xx for s in samples])}"/></svg>'
    )
