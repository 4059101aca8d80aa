"""Reading an image archive (``docker save``) as one stream: every file of every layer, in one pass.

Both layouts docker writes are read: the classic one (``manifest.json``, ``<id>/layer.tar``,
``<config>.json``) and the OCI one (``blobs/sha256/<digest>``). Layers are visited as they come
in the stream, before the manifest that orders them (docker writes it last), so a visitor gets
each file with its layer's archive name; ``ImageLayout`` maps those names to positions, digests
and the Dockerfile instruction of each layer once the stream is read.

A file deleted by a later layer is still in its own layer's tar, so it is visited like any other;
the deletion itself (a ``.wh.<name>`` whiteout entry) is reported to the visitor too.
"""

from __future__ import annotations

import io
import json
import posixpath
import tarfile
from dataclasses import dataclass
from typing import IO, Any, Protocol

from shipyard.errors import BuildError

SMALL_MEMBER_BYTES = 1 << 20  # JSON documents are read into memory; anything bigger is a layer
STREAM_BUFFER = 1 << 20  # tarfile reads streams in 10 KiB records by default: slow in Python
WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"


class LayerVisitor(Protocol):
    def file(self, layer: str, path: str, content: IO[bytes], size: int) -> None: ...

    def whiteout(self, layer: str, path: str) -> None:
        """``path`` (a file or directory of lower layers; for an opaque directory, ``dir/``) is deleted."""
        ...


@dataclass(frozen=True)
class LayerInfo:
    index: int
    archive_name: str
    digest: str
    created_by: str


@dataclass(frozen=True)
class ImageLayout:
    layers: tuple[LayerInfo, ...]
    config: bytes

    def positions(self, archive_name: str) -> list[LayerInfo]:
        return [layer for layer in self.layers if layer.archive_name == archive_name]


def read_image_archive(stream: IO[bytes], visitor: LayerVisitor) -> ImageLayout:
    documents: dict[str, bytes] = {}
    links: dict[str, str] = {}
    try:
        with tarfile.open(fileobj=stream, mode="r|", bufsize=STREAM_BUFFER) as archive:
            for member in archive:
                if member.issym():
                    links[member.name] = posixpath.normpath(
                        posixpath.join(posixpath.dirname(member.name), member.linkname)
                    )
                elif member.isreg():
                    _read_member(archive, member, visitor, documents)
    except tarfile.TarError as exc:
        raise BuildError(
            f"the image archive is not a readable tar ({exc}); check the image and try again."
        ) from exc
    return _layout(documents, links)


def _read_member(
    archive: tarfile.TarFile, member: tarfile.TarInfo, visitor: LayerVisitor, documents: dict[str, bytes]
) -> None:
    content = archive.extractfile(member)
    if content is None:
        return
    if member.name.endswith("/layer.tar") or member.size > SMALL_MEMBER_BYTES:
        _read_layer(member.name, content, visitor)
        return
    data = content.read()
    if member.name.endswith(".json") or (member.name.startswith("blobs/") and data[:1] == b"{"):
        documents[member.name] = data
    if member.name.startswith("blobs/") and data[:1] != b"{":
        _read_layer(member.name, io.BytesIO(data), visitor)


def _read_layer(name: str, content: IO[bytes], visitor: LayerVisitor) -> None:
    with tarfile.open(fileobj=content, mode="r|*", bufsize=STREAM_BUFFER) as layer:
        for entry in layer:
            path = posixpath.normpath("/" + entry.name.lstrip("/"))
            directory, base = posixpath.split(path)
            if base == OPAQUE_WHITEOUT:
                visitor.whiteout(name, directory.rstrip("/") + "/")
            elif base.startswith(WHITEOUT_PREFIX):
                visitor.whiteout(name, posixpath.join(directory, base[len(WHITEOUT_PREFIX) :]))
            elif entry.isreg():
                data = layer.extractfile(entry)
                if data is not None:
                    visitor.file(name, path, data, entry.size)


def _layout(documents: dict[str, bytes], links: dict[str, str]) -> ImageLayout:
    manifest = _json(documents, "manifest.json")
    if not isinstance(manifest, list) or not manifest or not isinstance(manifest[0], dict):
        raise BuildError("the image archive has no usable manifest.json; save the image again.")
    entry: dict[str, Any] = manifest[0]
    config_name = links.get(entry.get("Config", ""), entry.get("Config", ""))
    config = _json(documents, config_name)
    diff_ids = list(config.get("rootfs", {}).get("diff_ids", []))
    history = [h for h in config.get("history", []) if not h.get("empty_layer")]
    layers = []
    for index, name in enumerate(entry.get("Layers", [])):
        step = history[index] if len(history) == len(entry["Layers"]) else {}
        layers.append(
            LayerInfo(
                index=index,
                archive_name=links.get(name, name),
                digest=str(diff_ids[index]) if index < len(diff_ids) else "",
                created_by=str(step.get("created_by", "")),
            )
        )
    return ImageLayout(layers=tuple(layers), config=documents[config_name])


def _json(documents: dict[str, bytes], name: str) -> Any:
    if name not in documents:
        raise BuildError(f"the image archive lacks {name or 'its config'}; save the image again.")
    try:
        return json.loads(documents[name])
    except ValueError as exc:
        raise BuildError(f"{name} in the image archive is not JSON; save the image again.") from exc
