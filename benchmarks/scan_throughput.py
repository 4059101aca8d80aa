"""Throughput of `shipyard scan` in MB/s of layer data, against the ceiling of `docker save` alone.

    .venv/bin/python benchmarks/scan_throughput.py [--megabytes 300] [--files 4000] [--repeat 3]

The image is built by BuildKit on the default engine, FROM scratch with a static busybox: one
layer of random data, one of text (a repeated licence), and one of many small files. Each scan
streams `docker save` once and runs every rule (private keys, AWS and GitHub tokens) plus
``--known`` secret values over every byte.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from shipyard.adapters.buildkit import find_docker_cli, image_argv
from shipyard.imaging.detectors import scan_rules
from shipyard.imaging.docker_session import docker_session
from shipyard.imaging.scanner import scan_image
from shipyard.lab.single_host import unique_name
from shipyard.lab.testapp import busybox_path

DOCKERFILE = """\
FROM scratch
COPY rootfs/ /
ENV PATH=/bin
RUN dd if=/dev/urandom of=/random.bin bs=1M count={random_mb} 2>/dev/null
COPY text/ /text/
RUN mkdir /small && i=0 && while [ $i -lt {files} ]; do head -c 4096 /random.bin >/small/f$i; i=$((i+1)); done
"""


def build_image(root: Path, args: argparse.Namespace, tag: str) -> None:
    context = root / "context"
    (context / "rootfs" / "bin").mkdir(parents=True)
    shutil.copy2(busybox_path(), context / "rootfs" / "bin" / "busybox")
    for applet in ("sh", "dd", "head", "mkdir"):
        (context / "rootfs" / "bin" / applet).symlink_to("busybox")
    licence = Path("/usr/share/common-licenses/GPL-3").read_bytes()
    (context / "text").mkdir()
    (context / "text" / "licences.txt").write_bytes(
        licence * (args.megabytes // 3 * 1_000_000 // len(licence))
    )
    random_mb = args.megabytes - args.megabytes // 3 - args.files * 4096 // 1_000_000
    (context / "Dockerfile").write_text(DOCKERFILE.format(random_mb=random_mb, files=args.files))
    cli = find_docker_cli()
    environment = {**os.environ, "DOCKER_BUILDKIT": "1"}
    subprocess.run([cli.path, "build", "--quiet", "--tag", tag, str(context)], env=environment, check=True)


def save_only(image: str) -> tuple[float, int]:
    """Seconds and bytes of `docker save` read and thrown away: the ceiling of any scan."""
    started = time.monotonic()
    total = 0
    with subprocess.Popen(image_argv(find_docker_cli(), "save", image), stdout=subprocess.PIPE) as process:
        assert process.stdout is not None
        while chunk := process.stdout.read(1 << 20):
            total += len(chunk)
    return time.monotonic() - started, total


def scan_once(image: str, known: int) -> tuple[float, int, int]:
    values = {f"SECRET_{n}": f"value-{n}-{os.urandom(8).hex()}" for n in range(known)}
    with docker_session(find_docker_cli()) as session:
        started = time.monotonic()
        report = scan_image(session, image, scan_rules(values))
    return time.monotonic() - started, report.bytes_scanned, report.files


def main() -> None:
    parser = argparse.ArgumentParser(description="scan throughput of shipyard scan")
    parser.add_argument("--megabytes", type=int, default=300, help="layer data in the image")
    parser.add_argument("--files", type=int, default=4000, help="small files in the last layer")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sy-scan-bench-"))
    tag = f"shipyard-scan-bench:{unique_name('')}"
    try:
        build_image(root, args, tag)
        seconds, size = min(save_only(tag) for _ in range(args.repeat))
        rows = [
            [
                "docker save, read and discarded",
                "-",
                f"{size / 1e6:.0f}",
                f"{seconds:.2f}",
                f"{size / 1e6 / seconds:.0f}",
            ]
        ]
        for known in (0, 20):
            runs = [scan_once(tag, known) for _ in range(args.repeat)]
            seconds = statistics.median(run[0] for run in runs)
            scanned, files = runs[0][1], runs[0][2]
            name = f"shipyard scan, patterns + {known} known values"
            rows.append(
                [name, str(files), f"{scanned / 1e6:.0f}", f"{seconds:.2f}", f"{scanned / 1e6 / seconds:.0f}"]
            )
            print(f"  {name}: {scanned / 1e6 / seconds:.0f} MB/s", flush=True)
        print("\n| run | files | MB | seconds | MB/s |\n|---|---|---|---|---|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    finally:
        subprocess.run(
            [find_docker_cli().path, "image", "rm", "--force", tag], capture_output=True, check=False
        )
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
