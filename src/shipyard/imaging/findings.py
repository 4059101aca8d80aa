"""What a scan reports: each secret found, where (layer, path) and which instruction put it there.

Values are never held here, only a masked preview (``AKIA***``, ``ghp_***``, a PEM header, or
nothing for a known secret, which is named instead).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CONFIG_PATH = "(image config: history, env, labels)"


@dataclass(frozen=True)
class Finding:
    kind: str  # private-key | aws-access-key-id | github-token | known-secret
    label: str  # "private key", "value of secret DATABASE_URL"
    preview: str
    path: str
    layer_index: int | None  # None: found in the image config, not in a layer
    layer_digest: str = ""
    created_by: str = ""
    deleted_in_layer: int | None = None

    def where(self) -> str:
        if self.layer_index is None:
            return CONFIG_PATH
        return f"layer {self.layer_index} ({self.layer_digest[:19]}) {self.path}"

    def describe(self) -> str:
        shown = f" {self.preview}" if self.preview else ""
        text = f"{self.label}{shown} in {self.where()}"
        if self.created_by:
            text += f", made by: {instruction(self.created_by)}"
        if self.deleted_in_layer is not None:
            text += f" (deleted in layer {self.deleted_in_layer}, but still in the image)"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "label": self.label,
            "preview": self.preview,
            "path": self.path,
            "layer_index": self.layer_index,
            "layer_digest": self.layer_digest,
            "created_by": self.created_by,
            "instruction": instruction(self.created_by),
            "deleted_in_layer": self.deleted_in_layer,
        }


def instruction(created_by: str, width: int = 100) -> str:
    """``/bin/sh -c #(nop) COPY file:ab.. in /x`` or ``COPY id_rsa /x # buildkit`` -> the instruction."""
    text = created_by.removesuffix("# buildkit").strip()
    text = text.replace("/bin/sh -c #(nop) ", "").strip()
    if text.startswith("/bin/sh -c "):
        text = "RUN " + text
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclass(frozen=True)
class ScanReport:
    image: str
    findings: tuple[Finding, ...] = ()
    layers: int = 0
    files: int = 0
    bytes_scanned: int = 0
    seconds: float = 0.0
    rules: list[str] = field(default_factory=list)
    layer_digests: tuple[str, ...] = ()
    layers_known_clean: int = 0  # layers not read again: an earlier scan with the same rules found them clean

    @property
    def clean(self) -> bool:
        return not self.findings

    def summary(self) -> str:
        verdict = "no secrets found" if self.clean else f"{len(self.findings)} secret(s) found"
        if self.layers_known_clean == self.layers and self.layers:
            return f"{self.image}: {verdict}; its {self.layers} layers were found clean by an earlier scan"
        return (
            f"{self.image}: {verdict} in {self.layers} layers, {self.files} files, "
            f"{self.bytes_scanned / 1e6:.1f} MB ({self.seconds:.2f} s)"
        )

    def clean_layer_digests(self) -> list[str]:
        dirty = {finding.layer_digest for finding in self.findings}
        return [digest for digest in self.layer_digests if digest and digest not in dirty]

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "clean": self.clean,
            "findings": [finding.to_json() for finding in self.findings],
            "layers": self.layers,
            "files": self.files,
            "bytes_scanned": self.bytes_scanned,
            "seconds": round(self.seconds, 3),
            "rules": self.rules,
            "layers_known_clean": self.layers_known_clean,
        }


def deleted_in(layer_index: int, path: str, whiteouts: list[tuple[int, str]]) -> int | None:
    """The first later layer whose whiteout deletes ``path`` (or a directory above it)."""
    for index, deleted in sorted(whiteouts):
        if index <= layer_index:
            continue
        if deleted == path or path.startswith(deleted if deleted.endswith("/") else deleted + "/"):
            return index
    return None
