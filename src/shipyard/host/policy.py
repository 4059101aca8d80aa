"""The agent policy on this host: the file read, paths resolved, and a release refused before any step.

The rules themselves are pure (shipyard.domain.policy); this module adds what only the host knows:
which file holds the policy, where symlinks and relative paths lead, and this host's own files.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from pathlib import Path

from shipyard.domain.policy import (
    DEFAULT_POLICY_PATH,
    AgentPolicy,
    Violation,
    check,
    load_policy,
    policy_paths,
    spec_paths,
)
from shipyard.domain.spec import AppSpec
from shipyard.errors import PolicyError

POLICY_ENV = "SHIPYARD_POLICY"


@dataclass(frozen=True)
class HostPolicy:
    """The rules, where they came from, and this host's own paths no rule can open up."""

    rules: AgentPolicy
    source: str
    protected: tuple[str, ...] = ()
    private: tuple[str, ...] = ()
    stored_secrets: frozenset[str] = field(default_factory=frozenset)
    # the directory of shipyard.yml: relative registry files are judged where the login reads them
    config_dir: Path | None = None

    def violations(self, spec: AppSpec, image: str | None = None) -> list[Violation]:
        from shipyard.adapters.registry import registry_file_path  # httpx: only when a policy is judged

        paths = [*spec_paths(spec), *policy_paths(self.rules)]
        real_paths = {path: os.path.realpath(os.path.expanduser(path)) for path in paths}
        for name in (spec.registry.username_file, spec.registry.password_file):
            if name:
                where = registry_file_path(name, self.config_dir)
                if where is None:  # relative without a shipyard.yml: refused as not absolute
                    real_paths.pop(name, None)
                else:
                    real_paths[name] = os.path.realpath(where)
        return check(
            self.rules,
            spec,
            image=image,
            real_paths=real_paths,
            protected=[resolved for path in self.protected for resolved in _both(path)],
            private=[resolved for path in self.private for resolved in _both(path)],
            stored_secrets=self.stored_secrets,
        )

    def enforce(self, spec: AppSpec, image: str | None = None, *, release: str | None = None) -> None:
        """Raise PolicyError naming every rule and key the release breaks; nothing has run yet."""
        violations = self.violations(spec, image)
        if not violations:
            return
        what = f"release {release} of {spec.app}" if release else f"this deploy of {spec.app}"
        raise PolicyError(
            f"this host's policy ({self.source}) refuses {what}: "
            + "; ".join(str(v) for v in violations)
            + "; nothing was changed.",
            details=[str(v) for v in violations],
        )

    def with_stored_secrets(self, names: Collection[str]) -> HostPolicy:
        return replace(self, stored_secrets=frozenset(names))

    def for_config(self, config: Path) -> HostPolicy:
        """This policy judging relative registry files next to `config` (shipyard.yml)."""
        return replace(self, config_dir=config.resolve().parent)


def _both(path: str) -> list[str]:
    """The path as given and as resolved, so a symlinked state directory stays guarded."""
    absolute = os.path.abspath(os.path.expanduser(path))
    return list(dict.fromkeys([absolute, os.path.realpath(absolute)]))


def docker_socket(docker_url: str | None) -> str | None:
    url = docker_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    return url.removeprefix("unix://") if url.startswith("unix://") else None


def agent_policy(path: Path | None, *, home: Path, token_file: Path, docker_url: str | None) -> HostPolicy:
    """The agent's policy: `path`, else the default file, else the built-in defaults (secure ones)."""
    chosen = path or DEFAULT_POLICY_PATH
    if path is None and not chosen.exists():
        rules, source = AgentPolicy(), f"built-in defaults, no {chosen}"
    else:
        rules, source = load_policy(chosen), str(chosen)
    socket = docker_socket(docker_url)
    return HostPolicy(
        rules,
        source,
        protected=(socket,) if socket else (),
        private=(str(home), str(token_file), str(chosen)),
    )


def cli_policy(path: Path | None, *, home: Path) -> HostPolicy | None:
    """The single-host CLI's policy: `path` (or SHIPYARD_POLICY), else the default file when it exists."""
    if path is None and not DEFAULT_POLICY_PATH.exists():
        return None
    chosen = path or DEFAULT_POLICY_PATH
    socket = docker_socket(None)
    return HostPolicy(
        load_policy(chosen),
        str(chosen),
        protected=(socket,) if socket else (),
        private=(str(home), str(chosen)),
    )
