"""Scanning an image for secrets: every file of every layer, deleted ones included, and its config.

    report = scan_image(session, "registry:5000/web:3f9a...", scan_rules(known_values))

The image comes from the local engine as a ``docker save`` stream (pulled first if the engine
does not have it), read once; nothing is written to disk.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from typing import IO, Any

from shipyard.errors import NotFoundError
from shipyard.imaging.detectors import Match, Rule, match_stream
from shipyard.imaging.docker_session import DockerSession
from shipyard.imaging.findings import CONFIG_PATH, Finding, ScanReport, deleted_in
from shipyard.imaging.image_archive import ImageLayout, read_image_archive
from shipyard.imaging.scan_cache import CleanLayers


@dataclass
class _Collector:
    """The LayerVisitor of a scan: matches each file, notes whiteouts, counts what it read."""

    rules: tuple[Rule, ...]
    matches: list[tuple[str, str, Match]] = field(default_factory=list)
    whiteouts: list[tuple[str, str]] = field(default_factory=list)
    files: int = 0
    bytes_read: int = 0

    def file(self, layer: str, path: str, content: IO[bytes], size: int) -> None:
        self.files += 1
        self.bytes_read += size
        for match in match_stream(content, self.rules):
            self.matches.append((layer, path, match))

    def whiteout(self, layer: str, path: str) -> None:
        self.whiteouts.append((layer, path))


def scan_archive(stream: IO[bytes], rules: tuple[Rule, ...], image: str) -> ScanReport:
    """Scan a ``docker save`` archive read from ``stream``."""
    started = time.monotonic()
    collector = _Collector(rules)
    layout = read_image_archive(stream, collector)
    findings = _layer_findings(collector, layout) + _config_findings(layout.config, rules)
    return ScanReport(
        image=image,
        findings=tuple(findings),
        layers=len(layout.layers),
        files=collector.files,
        bytes_scanned=collector.bytes_read,
        seconds=time.monotonic() - started,
        rules=sorted({rule.kind for rule in rules}),
        layer_digests=tuple(layer.digest for layer in layout.layers),
    )


def scan_image(
    session: DockerSession,
    image: str,
    rules: tuple[Rule, ...],
    *,
    pull: bool = False,
    name: str | None = None,
    clean_layers: CleanLayers | None = None,
) -> ScanReport:
    """Scan ``image`` from the local engine (reported as ``name``); with ``pull``, fetch it if missing.

    With ``clean_layers``, an image whose every layer an earlier scan found clean has only its
    config scanned, and the layers found clean now are remembered.
    """
    shown = name or image
    if clean_layers is not None:
        known = _scan_known_clean(session, image, rules, clean_layers, shown)
        if known is not None:
            return known
    report = _scan_saved(session, image, rules, shown, pull)
    if clean_layers is not None:
        clean_layers.remember(report.clean_layer_digests())
    return report


def _scan_saved(
    session: DockerSession, image: str, rules: tuple[Rule, ...], shown: str, pull: bool
) -> ScanReport:
    try:
        with session.saved_image(image) as stream:
            return scan_archive(stream, rules, shown)
    except NotFoundError:
        if not pull:
            raise
    session.pull(image)
    with session.saved_image(image) as stream:
        return scan_archive(stream, rules, shown)


def _scan_known_clean(
    session: DockerSession, image: str, rules: tuple[Rule, ...], clean_layers: CleanLayers, shown: str
) -> ScanReport | None:
    started = time.monotonic()
    document, history = session.image_metadata(image)
    diff_ids = [str(digest) for digest in document.get("RootFS", {}).get("Layers", [])]
    if not clean_layers.all_clean(diff_ids):
        return None
    config = json.dumps({"config": document.get("Config"), "history": history}).encode()
    return ScanReport(
        image=shown,
        findings=tuple(_config_findings(config, rules)),
        layers=len(diff_ids),
        seconds=time.monotonic() - started,
        rules=sorted({rule.kind for rule in rules}),
        layer_digests=tuple(diff_ids),
        layers_known_clean=len(diff_ids),
    )


def _layer_findings(collector: _Collector, layout: ImageLayout) -> list[Finding]:
    whiteouts = [
        (layer.index, path) for name, path in collector.whiteouts for layer in layout.positions(name)
    ]
    findings: list[Finding] = []
    for name, path, match in collector.matches:
        for layer in layout.positions(name):
            findings.append(
                Finding(
                    kind=match.rule.kind,
                    label=match.rule.label,
                    preview=match.preview,
                    path=path,
                    layer_index=layer.index,
                    layer_digest=layer.digest,
                    created_by=layer.created_by,
                    deleted_in_layer=deleted_in(layer.index, path, whiteouts),
                )
            )
    return sorted(findings, key=lambda f: (f.layer_index or 0, f.path, f.kind, f.label))


def _config_findings(config: bytes, rules: tuple[Rule, ...]) -> list[Finding]:
    """Build args and ENV values land in the config's history and env, not in a layer."""
    return [
        Finding(
            kind=match.rule.kind,
            label=match.rule.label,
            preview=match.preview,
            path=CONFIG_PATH,
            layer_index=None,
        )
        for match in match_stream(io.BytesIO(_config_strings(config)), rules)
    ]


def _config_strings(config: bytes) -> bytes:
    """Every string of the config JSON, unescaped (a PEM value in ENV is stored with \\n)."""
    strings: list[str] = []

    def collect(value: Any) -> None:
        if isinstance(value, str):
            strings.append(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                strings.append(str(key))
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    collect(json.loads(config))
    return "\n".join(strings).encode()
