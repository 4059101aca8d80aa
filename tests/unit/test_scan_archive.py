"""Scanning `docker save` archives built here byte by byte, in both layouts docker writes."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field

import pytest

from shipyard.errors import BuildError
from shipyard.imaging.detectors import scan_rules
from shipyard.imaging.findings import CONFIG_PATH
from shipyard.imaging.scanner import scan_archive
from shipyard.secrets.masking import forget_registered_secrets

PEM = b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"


@pytest.fixture(autouse=True)
def _forget_masks() -> None:
    forget_registered_secrets()


@dataclass
class Layer:
    created_by: str
    files: dict[str, bytes] = field(default_factory=dict)
    whiteouts: list[str] = field(default_factory=list)

    def tar(self) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            for path, data in self.files.items():
                add(archive, path, data)
            for path in self.whiteouts:
                add(archive, path, b"")
        return buffer.getvalue()


def add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def config(layers: list[Layer], env: list[str] | None = None) -> bytes:
    history = [{"created_by": "ENV PATH=/bin", "empty_layer": True}]
    for layer in layers:
        history.append({"created_by": layer.created_by})
    diff_ids = ["sha256:" + hashlib.sha256(layer.tar()).hexdigest() for layer in layers]
    document = {
        "config": {"Env": env or []},
        "history": history,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    return json.dumps(document).encode()


def classic_archive(layers: list[Layer], env: list[str] | None = None, duplicate_last: bool = False) -> bytes:
    """The layout of docker 20.10-24: <id>/layer.tar, <config>.json, manifest.json last."""
    buffer = io.BytesIO()
    names = []
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for number, layer in enumerate(layers):
            name = f"{number:064x}/layer.tar"
            add(archive, name, layer.tar())
            add(archive, f"{number:064x}/json", b"{}")
            names.append(name)
        if duplicate_last:
            link = tarfile.TarInfo(f"{len(layers):064x}/layer.tar")
            link.type = tarfile.SYMTYPE
            link.linkname = f"../{len(layers) - 1:064x}/layer.tar"
            archive.addfile(link)
            names.append(link.name)
        add(archive, "cafe.json", config(layers, env))
        add(archive, "manifest.json", json.dumps([{"Config": "cafe.json", "Layers": names}]).encode())
    return buffer.getvalue()


def oci_archive(layers: list[Layer], gzip_layers: bool = False) -> bytes:
    """The layout of docker 25+: everything under blobs/sha256/, plus a docker manifest.json."""
    buffer = io.BytesIO()
    names = []
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        add(archive, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        for layer in layers:
            blob = gzip.compress(layer.tar()) if gzip_layers else layer.tar()
            name = "blobs/sha256/" + hashlib.sha256(blob).hexdigest()
            add(archive, name, blob)
            names.append(name)
        document = config(layers)
        config_name = "blobs/sha256/" + hashlib.sha256(document).hexdigest()
        add(archive, config_name, document)
        add(archive, "manifest.json", json.dumps([{"Config": config_name, "Layers": names}]).encode())
    return buffer.getvalue()


CLASSIC_MISTAKE = [
    Layer("COPY rootfs/ / # buildkit", {"bin/busybox": b"\x7fELF" + b"\0" * 5000}),
    Layer("COPY id_rsa /root/.ssh/id_rsa # buildkit", {"root/.ssh/id_rsa": PEM}),
    Layer("RUN /bin/sh -c rm /root/.ssh/id_rsa # buildkit", {}, ["root/.ssh/.wh.id_rsa"]),
]


@pytest.mark.parametrize("layout", [classic_archive, oci_archive])
def test_a_key_deleted_by_a_later_layer_is_found_in_its_own_layer(layout: object) -> None:
    archive = layout(CLASSIC_MISTAKE)  # type: ignore[operator]

    report = scan_archive(io.BytesIO(archive), scan_rules({}), "web:1")

    assert len(report.findings) == 1
    finding = report.findings[0]
    assert (finding.kind, finding.path, finding.layer_index) == ("private-key", "/root/.ssh/id_rsa", 1)
    assert finding.layer_digest == "sha256:" + hashlib.sha256(CLASSIC_MISTAKE[1].tar()).hexdigest()
    assert finding.created_by == "COPY id_rsa /root/.ssh/id_rsa # buildkit"
    assert finding.deleted_in_layer == 2
    assert "deleted in layer 2, but still in the image" in finding.describe()
    assert "made by: COPY id_rsa /root/.ssh/id_rsa" in finding.describe()
    assert (report.layers, report.files) == (3, 2)


def test_an_opaque_directory_whiteout_deletes_everything_below_it() -> None:
    layers = [
        Layer("COPY secrets/ /etc/app/", {"etc/app/creds": AWS_KEY.encode()}),
        Layer("RUN rm -rf /etc/app && mkdir /etc/app", {}, ["etc/app/.wh..wh..opq"]),
    ]

    report = scan_archive(io.BytesIO(classic_archive(layers)), scan_rules({}), "web:1")

    assert [(f.kind, f.deleted_in_layer, f.preview) for f in report.findings] == [
        ("aws-access-key-id", 1, "AKIA***")
    ]


def test_known_values_and_the_image_config_are_scanned() -> None:
    layers = [Layer("COPY . /app", {"app/.env": b"DATABASE_URL=postgres://app:hunter2@db/app\n"})]
    archive = classic_archive(layers, env=["GITHUB_TOKEN=ghp_" + "x1" * 18])

    report = scan_archive(
        io.BytesIO(archive), scan_rules({"DATABASE_URL": "postgres://app:hunter2@db/app"}), "w"
    )

    described = sorted((f.kind, f.where()) for f in report.findings)
    assert described == [
        ("github-token", CONFIG_PATH),
        ("known-secret", f"layer 0 ({report.findings[0].layer_digest[:19]}) /app/.env"),
    ]
    assert "hunter2" not in json.dumps(report.to_json())


def test_empty_layer_history_entries_do_not_shift_instructions() -> None:
    layers = [Layer("COPY a /a", {"a": b"a"}), Layer("COPY key /k", {"k": PEM})]

    finding = scan_archive(io.BytesIO(classic_archive(layers)), scan_rules({}), "w").findings[0]

    assert (finding.layer_index, finding.created_by) == (1, "COPY key /k")


def test_a_layer_saved_twice_as_a_symlink_is_reported_at_both_positions() -> None:
    layers = [Layer("COPY a /a", {"a": b"a"}), Layer("COPY key /k", {"k": PEM})]

    findings = scan_archive(
        io.BytesIO(classic_archive(layers, duplicate_last=True)), scan_rules({}), "w"
    ).findings

    assert [f.layer_index for f in findings] == [1, 2]


def test_compressed_oci_layers_are_read() -> None:
    layers = [Layer("COPY key /k", {"k": b"x" * (2 << 20) + PEM})]

    report = scan_archive(io.BytesIO(oci_archive(layers, gzip_layers=True)), scan_rules({}), "w")

    assert [f.path for f in report.findings] == ["/k"]
    assert report.bytes_scanned == (2 << 20) + len(PEM)


def test_a_clean_image_reports_what_it_read() -> None:
    layers = [Layer("COPY app /app", {"app/main": b"print('hi')\n" * 1000})]

    report = scan_archive(io.BytesIO(classic_archive(layers)), scan_rules({}), "web:1")

    assert report.clean and report.files == 1 and report.bytes_scanned == 12000
    assert "web:1: no secrets found in 1 layers, 1 files" in report.summary()


def test_something_that_is_not_an_image_archive_is_a_build_error() -> None:
    with pytest.raises(BuildError, match="not a readable tar"):
        scan_archive(io.BytesIO(b"Error response from daemon"), scan_rules({}), "w")
    empty = io.BytesIO()
    with tarfile.open(fileobj=empty, mode="w"):
        pass
    with pytest.raises(BuildError, match=r"manifest\.json"):
        scan_archive(io.BytesIO(empty.getvalue()), scan_rules({}), "w")
