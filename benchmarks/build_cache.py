"""Build times of `shipyard build`: cold, no-change, last-layer change, and fresh engines with and
without the registry layer cache.

    .venv/bin/python benchmarks/build_cache.py [--loops 6000000] [--megabytes 48] [--repeat 3]

Everything is real and local: a docker-registry with htpasswd auth on 127.0.0.1, the default
Docker Engine's BuildKit for nothing but a reference run, and extra engines (own data-root, own
socket) as "fresh" builders. The app is a git repository whose Dockerfile starts with an
expensive RUN (random data plus a busybox shell loop) and ends with a COPY of one small file.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from _load import git

from shipyard.domain.spec import load_spec
from shipyard.imaging.pipeline import BuildOptions, BuildOutcome, build_image
from shipyard.lab.engine import ExtraEngine, start_extra_engine, stop_extra_engine
from shipyard.lab.single_host import Registry, start_local_registry, unique_name
from shipyard.lab.testapp import busybox_path

DOCKERFILE = """\
FROM scratch
COPY rootfs/ /
ENV PATH=/bin
RUN dd if=/dev/urandom of=/data.bin bs=1M count={megabytes} 2>/dev/null \\
 && i=0 && while [ $i -lt {loops} ]; do i=$((i+1)); done \\
 && sha256sum /data.bin > /data.sha256
COPY release.txt /release.txt
"""


@dataclass
class StepCounter:
    """A BuildProgress that counts the Dockerfile steps BuildKit ran and those it took from cache."""

    headers: set[str] = field(default_factory=set)
    cached: set[str] = field(default_factory=set)

    def phase(self, text: str) -> None:
        pass

    def log_line(self, line: str) -> None:
        number, _, rest = line.partition(" ")
        if rest.startswith("[") and "/" in rest.split("]")[0] and "internal" not in rest:
            self.headers.add(number)
        elif rest == "CACHED":
            self.cached.add(number)

    def summary(self) -> str:
        cached = len(self.cached & self.headers)
        return f"{len(self.headers) - cached} run, {cached} cached"


@dataclass
class Bench:
    root: Path
    registry: Registry
    repo: Path = field(init=False)

    def __post_init__(self) -> None:
        self.repo = self.root / "app"

    def git(self, *args: str) -> str:
        return git(self.repo, *args)

    def make_repo(self, dockerfile: str, image: str) -> None:
        bin_dir = self.repo / "rootfs" / "bin"
        bin_dir.mkdir(parents=True)
        shutil.copy2(busybox_path(), bin_dir / "busybox")
        for applet in ("sh", "dd", "sha256sum", "cat"):
            (bin_dir / applet).symlink_to("busybox")
        (self.repo / "Dockerfile").write_text(dockerfile)
        (self.repo / "release.txt").write_text("1\n")
        registry = {"username_env": "BENCH_REG_USER", "password_env": "BENCH_REG_PASS"}
        (self.repo / "shipyard.yml").write_text(
            yaml.safe_dump({"app": "bench", "image": image, "registry": registry})
        )
        self.git("init", "-q")
        self.commit("initial")

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def change_last_layer(self) -> str:
        release = self.repo / "release.txt"
        release.write_text(str(int(release.read_text()) + 1) + "\n")
        return self.commit("next release")

    def build(
        self, engine: ExtraEngine, *, push: bool = False, cache: bool = True
    ) -> tuple[float, str, BuildOutcome]:
        os.environ["DOCKER_HOST"] = engine.base_url
        os.environ["XDG_CACHE_HOME"] = str(engine.root / "cache")  # each builder has its own scan cache
        spec = load_spec(self.repo / "shipyard.yml")
        spec = spec.model_copy(update={"build": spec.build.model_copy(update={"cache": cache})})
        counter = StepCounter()
        started = time.monotonic()
        outcome = build_image(BuildOptions(spec=spec, config_dir=self.repo, push=push), counter)
        return time.monotonic() - started, counter.summary(), outcome

    def cli_build(self, engine: ExtraEngine) -> float:
        environment = {
            **os.environ,
            "DOCKER_HOST": engine.base_url,
            "XDG_CACHE_HOME": str(engine.root / "cache"),
        }
        argv = [
            sys.executable,
            "-m",
            "shipyard.cli.main",
            "build",
            "--config",
            str(self.repo / "shipyard.yml"),
        ]
        started = time.monotonic()
        subprocess.run(argv, env=environment, check=True, capture_output=True)
        return time.monotonic() - started


@contextmanager
def engine(root: Path) -> Iterator[ExtraEngine]:
    started = start_extra_engine(root)
    try:
        yield started
    finally:
        stop_extra_engine(started)


def phases(outcome: BuildOutcome) -> str:
    return " ".join(f"{name} {seconds:.2f}" for name, seconds in outcome.timings.items())


def run(args: argparse.Namespace, root: Path) -> list[list[str]]:
    registry = start_local_registry(root)
    os.environ.update({"BENCH_REG_USER": registry.username, "BENCH_REG_PASS": registry.password})
    bench = Bench(root, registry)
    bench.make_repo(
        DOCKERFILE.format(loops=args.loops, megabytes=args.megabytes),
        f"{registry.address}/{unique_name('bench')}",
    )
    rows: list[list[str]] = []

    def row(name: str, measured: tuple[float, str, BuildOutcome]) -> None:
        seconds, steps, outcome = measured
        rows.append([name, f"{seconds:.2f}", steps, phases(outcome)])
        print(f"  {name}: {seconds:.2f} s ({steps})", flush=True)

    try:
        with engine(root / "a") as builder:
            row("cold build + push (empty engine, no cache yet)", bench.build(builder, push=True))
            runs = [bench.build(builder) for _ in range(args.repeat)]
            row(
                f"no-change rebuild (median of {args.repeat})",
                sorted(runs, key=lambda r: r[0])[len(runs) // 2],
            )
            cli = statistics.median(bench.cli_build(builder) for _ in range(args.repeat))
            rows.append(
                [
                    f"no-change rebuild, `shipyard build` wall clock (median of {args.repeat})",
                    f"{cli:.2f}",
                    "",
                    "",
                ]
            )
            bench.change_last_layer()
            row("rebuild after a change in the last layer", bench.build(builder, push=True))
        bench.change_last_layer()
        with engine(root / "b") as fresh:
            row("fresh engine, registry cache off (build.cache: false)", bench.build(fresh, cache=False))
        with engine(root / "c") as fresh:
            row("fresh engine, registry cache on (--cache-from <image>:cache)", bench.build(fresh))
    finally:
        registry.server.stop()
    return rows


def print_table(rows: list[list[str]]) -> None:
    header = ["scenario", "seconds", "Dockerfile steps", "phases (s)"]
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for line in rows:
        print("| " + " | ".join(line) + " |")
    uncached, cached = float(rows[-2][1]), float(rows[-1][1])
    print(f"\nfresh engine speed-up with the registry cache: {uncached / cached:.1f}x")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--loops", type=int, default=6_000_000, help="shell loop iterations of the expensive RUN"
    )
    parser.add_argument("--megabytes", type=int, default=48, help="random data written by the expensive RUN")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the no-change rebuild")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="sy-bench-"))  # short: unix socket paths hold 107 bytes
    print(f"build cache benchmark in {root} (loops={args.loops}, megabytes={args.megabytes})", flush=True)
    try:
        print_table(run(args, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
