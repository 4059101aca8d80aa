"""The images the suite deploys: healthy versions and each way a new version can fail its health check."""

from __future__ import annotations

from shipyard.lab.single_host import PushedImages, Registry, push_images
from shipyard.lab.testapp import Behaviour

VARIANTS: dict[str, tuple[str, Behaviour]] = {
    "v1": ("v1", "ok"),
    "v2": ("v2", "ok"),
    "v3": ("v3", "ok"),
    "crash": ("crash", "crash"),
    "hang": ("hang", "hang"),
    "slow": ("slow", "slow-start"),
    "wrong-port": ("wrong-port", "wrong-port"),
}
# The recording app (recording_app.py), tag -> version: counts requests by id, keeps websockets.
RECORDING_VARIANTS: dict[str, str] = {"rec-v1": "v1", "rec-v2": "v2"}


def push_test_images(docker_url: str, registry: Registry, name: str) -> PushedImages:
    """Every VARIANTS tag and every RECORDING_VARIANTS tag of `registry.address/name`, built and pushed."""
    return push_images(docker_url, registry, name, VARIANTS, RECORDING_VARIANTS)
