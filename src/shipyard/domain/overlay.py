"""Environment overlays: `shipyard.<env>.yml` deep-merged over `shipyard.yml`. Pure: no I/O.

Mappings merge key by key, recursively; any other value (a scalar, a list) in the overlay replaces
the base's whole; an explicit `null` in the overlay removes the key, so its default applies again.
Every leaf of the result remembers which file set it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_ORIGIN = "default"


@dataclass(frozen=True)
class Layer:
    """One parsed config file: its name as shown to people, and its top-level mapping."""

    name: str
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Merged:
    data: dict[str, Any]
    # Dotted key path of every leaf (a scalar or a list) -> the name of the file that set it.
    origins: dict[str, str] = field(default_factory=dict)

    def origin(self, path: str) -> str:
        return self.origins.get(path, DEFAULT_ORIGIN)


def merge_layers(layers: list[Layer]) -> Merged:
    """Later layers win; `origins` says, per leaf, which layer's value survived."""
    data: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for layer in layers:
        _merge_into(data, layer.data, layer.name, "", origins)
    return Merged(data, origins)


def _merge_into(
    target: dict[str, Any], overlay: Mapping[str, Any], origin: str, prefix: str, origins: dict[str, str]
) -> None:
    for key, value in overlay.items():
        path = f"{prefix}{key}"
        if value is None:
            target.pop(key, None)
            _forget(origins, path)
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge_into(target[key], value, origin, f"{path}.", origins)
        else:
            _forget(origins, path)
            target[key] = _copy(value)
            _record(origins, path, value, origin)


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def _record(origins: dict[str, str], path: str, value: Any, origin: str) -> None:
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            _record(origins, f"{path}.{key}", item, origin)
    else:
        origins[path] = origin


def _forget(origins: dict[str, str], path: str) -> None:
    for key in [k for k in origins if k == path or k.startswith(f"{path}.")]:
        del origins[key]


def overlay_name(base_name: str, env: str) -> str:
    """`shipyard.yml` + `production` -> `shipyard.production.yml` (any base name, same rule)."""
    stem, dot, suffix = base_name.rpartition(".")
    if not dot:
        return f"{base_name}.{env}"
    return f"{stem}.{env}.{suffix}"
