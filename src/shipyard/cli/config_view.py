"""`shipyard config`: the merged config as YAML, each key followed by the file that set it."""

from __future__ import annotations

from typing import Any

import yaml

from shipyard.domain.overlay import DEFAULT_ORIGIN, Merged

INDENT = "  "


def annotated_yaml(document: dict[str, Any], merged: Merged) -> str:
    """`document` (the validated config, defaults included) as YAML; a comment names each key's origin."""
    lines: list[str] = []
    _emit(document, merged, "", 0, lines)
    return "\n".join(lines) + "\n"


def _emit(mapping: dict[str, Any], merged: Merged, prefix: str, depth: int, lines: list[str]) -> None:
    for key, value in mapping.items():
        path = f"{prefix}{key}"
        pad = INDENT * depth
        if isinstance(value, dict) and value:
            lines.append(f"{pad}{_scalar(key)}:")
            _emit(value, merged, f"{path}.", depth + 1, lines)
        elif isinstance(value, list) and value and any(isinstance(item, dict | list) for item in value):
            lines.append(f"{pad}{_scalar(key)}:{_comment(merged, path)}")
            block = yaml.safe_dump(value, sort_keys=False, default_flow_style=False).rstrip("\n")
            lines += [f"{pad}{INDENT}{line}" for line in block.splitlines()]
        else:
            lines.append(f"{pad}{_scalar(key)}: {_scalar(value)}{_comment(merged, path)}")


def _scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("\n...").strip()


def _comment(merged: Merged, path: str) -> str:
    origin = _origin(merged, path)
    return "" if origin == DEFAULT_ORIGIN else f"  # {origin}"


def _origin(merged: Merged, path: str) -> str:
    """A leaf's own origin, or (for a list or mapping set whole) that of its first recorded child."""
    if path in merged.origins:
        return merged.origins[path]
    for key, origin in merged.origins.items():
        if key.startswith(f"{path}."):
            return origin
    return DEFAULT_ORIGIN
