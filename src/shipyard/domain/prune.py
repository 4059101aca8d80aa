"""What a prune removes on one host, pure: from the host's releases, containers and images.

Kept: the newest `keep_releases` releases, the active release, the previous release (the one a
rollback without an argument returns to), and any release with a running container. Everything else
goes: its containers, and its image unless a kept release uses the same image (a redeploy of one
digest makes two releases of one image). Only images present on the host are listed, so a second
prune reports nothing instead of the same names again.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from shipyard.domain.models import ContainerInfo, Release


@dataclass(frozen=True)
class PruneSelection:
    kept_releases: frozenset[str]
    containers: tuple[str, ...]
    images: tuple[str, ...]

    @property
    def removed(self) -> list[str]:
        """Container names, then image references, in the order they are removed."""
        return [*self.containers, *self.images]


def kept_release_ids(
    newest_first: Sequence[str],
    *,
    keep_releases: int,
    active: str | None,
    previous: str | None,
    running: Collection[str],
) -> frozenset[str]:
    kept = set(newest_first[:keep_releases]) | set(running)
    kept |= {release for release in (active, previous) if release is not None}
    return frozenset(kept)


def select_prune(
    releases_newest_first: Sequence[Release],
    containers: Sequence[ContainerInfo],
    *,
    keep_releases: int,
    active: str | None,
    previous: str | None,
    present_images: Collection[str],
) -> PruneSelection:
    kept = kept_release_ids(
        [release.id for release in releases_newest_first],
        keep_releases=keep_releases,
        active=active,
        previous=previous,
        running=[c.release_id for c in containers if c.running],
    )
    kept_images = {r.pinned_image for r in releases_newest_first if r.id in kept}
    doomed_containers = tuple(c.name for c in containers if c.release_id not in kept)
    doomed_images: list[str] = []
    for release in releases_newest_first:
        image = release.pinned_image
        if release.id in kept or image in kept_images or image not in present_images:
            continue
        if image not in doomed_images:
            doomed_images.append(image)
    return PruneSelection(kept, doomed_containers, tuple(doomed_images))


def human_bytes(count: int | None) -> str:
    """1536 -> '1.5 KiB'; None (never measured) -> '-'."""
    if count is None:
        return "-"
    if count < 1024:
        return f"{count} B"
    size = float(count)
    units = ["KiB", "MiB", "GiB", "TiB"]
    while True:
        size, unit = size / 1024, units.pop(0)
        if size < 1024 or not units:
            return f"{size:.1f} {unit}"
