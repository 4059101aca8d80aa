"""`shipyard build`: a commit -> an image, scanned for secrets, then (optionally) pushed.

resolve the commit, the build secrets and the registry login     (fail before building)
copy the commit out of git                                       (or the working tree, --dirty)
build with BuildKit: secrets as --secret files, layer cache from <image>:cache
scan every layer; any secret found -> SecretLeakError, nothing pushed
push <image>:<sha>, the extra tags and <image>:cache; report the digest
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from shipyard.adapters import git
from shipyard.adapters.buildkit import BuildRequest, DockerCli, find_docker_cli
from shipyard.adapters.registry import Credentials, registry_credentials
from shipyard.domain.spec import AppSpec
from shipyard.errors import ConfigError, SecretLeakError
from shipyard.imaging import metadata
from shipyard.imaging.build_secrets import known_secret_values, resolve_build_secrets, secret_files
from shipyard.imaging.detectors import scan_rules
from shipyard.imaging.docker_session import DockerSession, docker_session
from shipyard.imaging.findings import ScanReport
from shipyard.imaging.scan_cache import CleanLayers, default_cache_dir
from shipyard.imaging.scanner import scan_image
from shipyard.imaging.source import BuildSource, prepared_source
from shipyard.secrets.factory import open_store


class BuildProgress(Protocol):
    def phase(self, text: str) -> None: ...

    def log_line(self, line: str) -> None: ...


class SilentProgress:
    def phase(self, text: str) -> None:
        pass

    def log_line(self, line: str) -> None:
        pass


@dataclass(frozen=True)
class BuildOptions:
    spec: AppSpec
    config_dir: Path  # the directory of shipyard.yml: the secret store and relative paths live there
    env: str = "production"
    ref: str = "HEAD"
    dirty: bool = False
    push: bool = False
    extra_tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class BuildOutcome:
    image: str
    commit: str
    tags: tuple[str, ...]
    image_id: str
    labels: dict[str, str]
    scan: ScanReport | None = None
    digest: str | None = None
    pushed: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "commit": self.commit,
            "tags": list(self.tags),
            "image_id": self.image_id,
            "labels": self.labels,
            "digest": self.digest,
            "pushed": list(self.pushed),
            "scan": self.scan.to_json() if self.scan else None,
            "timings_ms": {name: round(seconds * 1000, 1) for name, seconds in self.timings.items()},
        }


@dataclass(frozen=True)
class _Inputs:
    """Everything resolved before the build starts, so a missing secret or ref fails fast."""

    cli: DockerCli
    commit: str
    tags: tuple[str, ...]
    build_values: dict[str, str]
    credentials: Credentials | None
    server: str | None
    known_values: dict[str, str]


def build_image(options: BuildOptions, progress: BuildProgress | None = None) -> BuildOutcome:
    progress = progress or SilentProgress()
    spec, timings = options.spec, _Timings()
    inputs = _resolve_inputs(options)
    with (
        prepared_source(options.config_dir, spec.build, inputs.commit, dirty=options.dirty) as source,
        docker_session(inputs.cli, inputs.server, inputs.credentials) as session,
    ):
        with timings.measure("build"):
            session.ensure_login()  # the cache import needs it, and a refused login fails before building
            where = "the working tree at" if source.dirty else "commit"
            progress.phase(f"building {inputs.tags[0]} from {where} {inputs.commit[:12]}")
            image_id, labels = _run_build(session, options, source, inputs, progress)
        report = None
        if spec.build.scan:
            with timings.measure("scan"):
                progress.phase("scanning every layer for secrets")
                report = _scan(session, inputs, image_id)
        pushed: tuple[str, ...] = ()
        digest: str | None = None
        if options.push:
            with timings.measure("push"):
                pushed, digest = _push(session, spec, inputs.tags, progress)
    return BuildOutcome(
        inputs.tags[0], inputs.commit, inputs.tags, image_id, labels, report, digest, pushed, timings.seconds
    )


def _resolve_inputs(options: BuildOptions) -> _Inputs:
    spec = options.spec
    if options.dirty and options.ref != "HEAD":
        raise ConfigError("--dirty builds the working tree on top of HEAD; it cannot be combined with --ref.")
    commit = git.resolve_commit(options.ref, options.config_dir)
    cli = find_docker_cli(spec.build.docker)
    store = open_store(spec.secrets, options.config_dir, options.env)
    build_values = resolve_build_secrets(spec.build.secrets, store, options.config_dir)
    credentials = registry_credentials(spec.registry, store, options.config_dir, required=options.push)
    return _Inputs(
        cli=cli,
        commit=commit,
        tags=metadata.image_tags(spec.image, commit, dirty=options.dirty, extra=options.extra_tags),
        build_values=build_values,
        credentials=credentials,
        server=metadata.registry_server(spec.image, spec.registry.server),
        known_values=known_secret_values(store, build_values, credentials),
    )


def _run_build(
    session: DockerSession,
    options: BuildOptions,
    source: BuildSource,
    inputs: _Inputs,
    progress: BuildProgress,
) -> tuple[str, dict[str, str]]:
    spec = options.spec
    labels = metadata.image_labels(spec.app, source.commit, source.source_url, datetime.now(UTC))
    args = {**spec.build.args, **({"BUILDKIT_INLINE_CACHE": "1"} if spec.build.cache else {})}
    with secret_files(inputs.build_values, outside=source.context) as files, _id_file() as id_file:
        request = BuildRequest(
            context=source.context,
            dockerfile=source.dockerfile,
            tags=(*inputs.tags, *_cache_tags(spec)),
            image_id_file=id_file,
            labels=labels,
            args=args,
            secret_files=files,
            cache_from=_cache_tags(spec),
            target=spec.build.target,
            # An engine without the default bridge (a lab host) runs RUN steps on the host network.
            network=None if session.has_bridge_network() else "host",
        )
        return session.build(request, on_line=progress.log_line), labels


def _scan(session: DockerSession, inputs: _Inputs, image_id: str) -> ScanReport:
    """The scan of the new image; SecretLeakError on any finding, so nothing gets pushed."""
    rules = scan_rules(inputs.known_values)
    clean_layers = CleanLayers(default_cache_dir(), rules)
    report = scan_image(session, image_id, rules, name=inputs.tags[0], clean_layers=clean_layers)
    if report.clean:
        return report
    count = len(report.findings)
    raise SecretLeakError(
        f"{count} secret{'s' if count > 1 else ''} found in the layers of {inputs.tags[0]}, "
        "so nothing was pushed; remove them from the context and pass them as build secrets (docs/build.md).",
        details=[finding.describe() for finding in report.findings],
    )


def _push(
    session: DockerSession, spec: AppSpec, tags: tuple[str, ...], progress: BuildProgress
) -> tuple[tuple[str, ...], str | None]:
    references = [*tags, *_cache_tags(spec)]
    digest = None
    for reference in references:
        progress.phase(f"pushing {reference}")
        reported = session.push(reference)
        digest = digest or reported
    return tuple(references), digest


def _cache_tags(spec: AppSpec) -> tuple[str, ...]:
    """<image>:cache, carrying inline cache metadata for the next build (only with build.cache)."""
    return (metadata.cache_reference(spec.image),) if spec.build.cache else ()


@contextmanager
def _id_file() -> Iterator[Path]:
    descriptor, name = tempfile.mkstemp(prefix="shipyard-image-id-")
    os.close(descriptor)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


class _Timings:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def measure(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = time.monotonic() - started
