"""What a build names and labels its image with: pure functions of the commit and the spec.

<image>:<full sha>          the tag every deploy refers to (`shipyard deploy --ref`)
<image>:<full sha>-dirty    a build of the working tree (--dirty), never mistaken for the commit
<image>:cache               pushed with each build; the next build imports its layer cache
"""

from __future__ import annotations

from datetime import datetime

from shipyard.adapters.registry import parse_image
from shipyard.domain.models import LABEL_APP
from shipyard.domain.names import TAG, is_name
from shipyard.errors import ConfigError

CACHE_TAG = "cache"
DIRTY_SUFFIX = "-dirty"
LABEL_REVISION = "org.opencontainers.image.revision"
LABEL_SOURCE = "org.opencontainers.image.source"
LABEL_CREATED = "org.opencontainers.image.created"


def commit_tag(commit: str, *, dirty: bool = False) -> str:
    return commit + DIRTY_SUFFIX if dirty else commit


def image_tags(
    image: str, commit: str, *, dirty: bool = False, extra: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """``image:<sha>`` first, then each extra tag once; an extra tag may be ``tag`` or ``image:tag``."""
    tags = [f"{image}:{commit_tag(commit, dirty=dirty)}"]
    for tag in extra:
        name = tag.removeprefix(image + ":")
        if not is_name(TAG, name):
            raise ConfigError(f"--tag {tag!r} is not a valid tag; use letters, digits, '.', '_' and '-'.")
        if name == CACHE_TAG:
            raise ConfigError(f"--tag {CACHE_TAG} is reserved for the layer cache; choose another tag.")
        tags.append(f"{image}:{name}")
    return tuple(dict.fromkeys(tags))


def cache_reference(image: str) -> str:
    return f"{image}:{CACHE_TAG}"


def image_labels(app: str, commit: str, source: str, created: datetime) -> dict[str, str]:
    """OCI labels plus shipyard's app label; ``source`` must already be free of credentials."""
    return {
        LABEL_REVISION: commit,
        LABEL_SOURCE: source,
        LABEL_CREATED: created.isoformat(timespec="seconds"),
        LABEL_APP: app,
    }


def registry_server(image: str, configured: str | None) -> str | None:
    """The registry host of ``image`` (``host:port/repo``), else registry.server."""
    return parse_image(image).registry or configured
