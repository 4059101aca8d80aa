"""Tags, labels and registry names of a build: pure functions of the commit and the spec."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shipyard.adapters.git import without_credentials
from shipyard.errors import ConfigError
from shipyard.imaging.metadata import cache_reference, image_labels, image_tags, registry_server

SHA = "3f9a0c" + "1" * 34
IMAGE = "127.0.0.1:5000/web"


def test_the_first_tag_is_the_full_commit_sha() -> None:
    assert image_tags(IMAGE, SHA) == (f"{IMAGE}:{SHA}",)


def test_a_working_tree_build_is_tagged_dirty() -> None:
    assert image_tags(IMAGE, SHA, dirty=True) == (f"{IMAGE}:{SHA}-dirty",)


def test_extra_tags_are_added_once_with_or_without_the_repository() -> None:
    tags = image_tags(IMAGE, SHA, extra=("v1.2", f"{IMAGE}:stable", "v1.2"))

    assert tags == (f"{IMAGE}:{SHA}", f"{IMAGE}:v1.2", f"{IMAGE}:stable")


@pytest.mark.parametrize("tag", ["has space", "-dash", "a/b", "x" * 129])
def test_invalid_extra_tags_are_config_errors(tag: str) -> None:
    with pytest.raises(ConfigError, match="not a valid tag"):
        image_tags(IMAGE, SHA, extra=(tag,))


def test_the_cache_tag_is_reserved() -> None:
    with pytest.raises(ConfigError, match="reserved for the layer cache"):
        image_tags(IMAGE, SHA, extra=("cache",))
    assert cache_reference(IMAGE) == f"{IMAGE}:cache"


def test_labels_carry_revision_source_creation_time_and_app() -> None:
    created = datetime(2026, 5, 1, 12, 30, 5, 123, tzinfo=UTC)

    labels = image_labels("web", SHA, "https://git.example/web.git", created)

    assert labels == {
        "org.opencontainers.image.revision": SHA,
        "org.opencontainers.image.source": "https://git.example/web.git",
        "org.opencontainers.image.created": "2026-05-01T12:30:05+00:00",
        "shipyard.app": "web",
    }


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://ci:ghp_token@git.example/web.git", "https://git.example/web.git"),
        ("https://oauth2@git.example:8443/web.git", "https://git.example:8443/web.git"),
        ("ssh://git:pw@git.example/web.git", "ssh://git@git.example/web.git"),
        ("git@git.example:team/web.git", "git@git.example:team/web.git"),
        ("/srv/git/web.git", "/srv/git/web.git"),
        ("https://git.example/web.git", "https://git.example/web.git"),
    ],
)
def test_source_urls_lose_their_credentials(url: str, expected: str) -> None:
    assert without_credentials(url) == expected


def test_registry_server_comes_from_the_image_else_from_the_config() -> None:
    assert registry_server(IMAGE, "other:5000") == "127.0.0.1:5000"
    assert registry_server("team/web", "registry.example") == "registry.example"
    assert registry_server("web", None) is None
