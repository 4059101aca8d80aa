"""What a prune removes on one host, as data: releases, containers and images in, removals out."""

from __future__ import annotations

from datetime import UTC, datetime

from shipyard.domain.models import ContainerInfo, Release
from shipyard.domain.prune import human_bytes, select_prune

REPO = "127.0.0.1:5000/web"


def release(number: int, digest_byte: str | None = None) -> Release:
    digest = "sha256:" + (digest_byte or str(number % 10)) * 64
    return Release(f"r{number}", "web", REPO, digest, {}, datetime(2026, 1, number, tzinfo=UTC), "t")


def container(number: int, slot: str = "blue", status: str = "exited") -> ContainerInfo:
    return ContainerInfo(f"c{number}", f"web-r{number}-{slot}", "web", slot, f"r{number}", "", status)  # type: ignore[arg-type]


def newest_first(*numbers: int) -> list[Release]:
    return [release(n) for n in numbers]


def test_the_newest_keep_releases_stay_and_older_containers_and_images_go() -> None:
    releases = newest_first(5, 4, 3, 2, 1)
    chosen = select_prune(
        releases,
        [container(5, status="running"), container(4), container(2), container(1)],
        keep_releases=2,
        active="r5",
        previous="r4",
        present_images={r.pinned_image for r in releases},
    )
    assert chosen.kept_releases == {"r5", "r4"}
    assert chosen.containers == ("web-r2-blue", "web-r1-blue")
    assert chosen.images == tuple(r.pinned_image for r in releases[2:])
    assert chosen.removed == [*chosen.containers, *chosen.images]


def test_the_active_and_previous_releases_stay_even_when_older_than_keep_releases() -> None:
    releases = newest_first(6, 5, 4, 3)
    # after a rollback to r3, with r4 the release a second rollback returns to
    chosen = select_prune(
        releases,
        [container(3, status="running"), container(4), container(5), container(6)],
        keep_releases=1,
        active="r3",
        previous="r4",
        present_images={r.pinned_image for r in releases},
    )
    assert chosen.kept_releases == {"r6", "r3", "r4"}
    assert chosen.containers == ("web-r5-blue",)
    assert chosen.images == (releases[1].pinned_image,)


def test_a_running_container_keeps_its_release() -> None:
    releases = newest_first(3, 2, 1)
    chosen = select_prune(
        releases,
        [container(1, "green", status="running")],
        keep_releases=1,
        active="r3",
        previous=None,
        present_images={r.pinned_image for r in releases},
    )
    assert chosen.kept_releases == {"r3", "r1"}
    assert chosen.containers == () and chosen.images == (releases[1].pinned_image,)


def test_an_image_shared_with_a_kept_release_stays_and_absent_images_are_not_listed() -> None:
    shared = [release(4, "a"), release(3), release(2, "a"), release(1)]  # r4 redeployed r2's image
    chosen = select_prune(
        shared,
        [],
        keep_releases=1,
        active="r4",
        previous=None,
        present_images={shared[0].pinned_image, shared[1].pinned_image},  # r1's image is gone already
    )
    assert chosen.images == (shared[1].pinned_image,)
    again = select_prune(
        shared, [], keep_releases=1, active="r4", previous=None, present_images={shared[0].pinned_image}
    )
    assert again.removed == []


def test_free_disk_is_shown_in_binary_units() -> None:
    assert [human_bytes(n) for n in (None, 0, 1023, 1536, 5 * 2**30, 3 * 2**50)] == [
        "-",
        "0 B",
        "1023 B",
        "1.5 KiB",
        "5.0 GiB",
        "3072.0 TiB",
    ]
