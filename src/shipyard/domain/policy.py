"""The host's own policy: what a release may ask of this host, whoever wrote the release.

The controller decides what runs; the host decides what it allows. The policy is a file on the host
(``/etc/shipyard/agent-policy.yml``) that neither the controller nor a deployer can change. Every key
has a secure default, so an absent key (or an absent file, for the agent) never widens what is allowed.

``check(policy, spec)`` is pure: paths are compared as written and, when the caller resolved them on
the host (symlinks, ``~``, relative paths), as resolved; both must be allowed.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, field_validator

from shipyard.domain.names import ENV_NAME, is_name
from shipyard.domain.spec import AppSpec, Section, validated_document
from shipyard.errors import ConfigError

DEFAULT_POLICY_PATH = Path("/etc/shipyard/agent-policy.yml")
DEFAULT_SECRET_PREFIX = "SHIPYARD_SECRET_"
DEFAULT_REGISTRY_CREDENTIAL_DIR = "/etc/shipyard/registry"
DEFAULT_MAINTENANCE_PAGE_DIR = "/etc/shipyard/pages"
ANY_REGISTRY = "*"

# Variables holding shipyard's own tokens and keys: never handed to a release, whatever the policy says.
NEVER_HANDED_OVER = frozenset(
    {
        "SHIPYARD_TOKEN",
        "SHIPYARD_JOIN_TOKEN",
        "SHIPYARD_AGENT_TOKEN",
        "SHIPYARD_ADMIN_TOKEN",
        "SHIPYARD_MASTER_KEY",
    }
)

# Host paths a volume may mount only when the policy lists that exact path: listing a parent directory
# does not allow them, and a volume holding one of them (a parent) or inside one needs its own entry.
PROTECTED_PATHS = (
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/var/run/docker",
    "/run/docker",
    "/var/run/containerd",
    "/run/containerd",
    "/var/lib/docker",
    "/var/lib/containerd",
    "/etc/shipyard",
    "/var/lib/shipyard",
    "/proc",
    "/sys",
    "/dev",
)

NAMED_VOLUME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]+\Z")
REGISTRY_ENTRY = re.compile(
    r"\A(\*|[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?|\[[0-9a-f:]+\](:[0-9]{1,5})?)\Z"
)


def normalise(path: str) -> str | None:
    """The absolute path with `.`, `..` and repeated slashes folded; None for a relative path."""
    if not path.startswith("/"):
        return None
    folded = posixpath.normpath(path)
    return "/" + folded.lstrip("/")  # normpath keeps a leading `//`


def within(path: str, parent: str) -> bool:
    return path == parent or parent == "/" or path.startswith(parent + "/")


def _absolute_paths(values: list[str], key: str) -> list[str]:
    paths = []
    for value in values:
        path = normalise(value)
        if path is None:
            raise ValueError(f"{value!r} must be an absolute path (for {key})")
        paths.append(path)
    return paths


USER_NAME = re.compile(r"\A([a-z_][a-z0-9_-]{0,31}|[0-9]{1,10})\Z")


class HooksPolicy(Section):
    allow: bool = Field(default=False, description="run the release's hooks on this host")
    user: str | None = Field(
        default=None, description="run hooks as this user (name or uid), not as shipyard's"
    )

    @field_validator("user")
    @classmethod
    def _user_name(cls, value: str | None) -> str | None:
        if value is not None and not USER_NAME.match(value):
            raise ValueError(f"{value!r} must be a user name like nobody, or a numeric uid")
        return value


class TasksPolicy(Section):
    """Commands run once in a throwaway container of a release: `release:` phases and `shipyard run`."""

    release_phase: bool = Field(
        default=True, description="run a release's own `release:` command (checked like the rest of it)"
    )
    run: bool = Field(default=False, description="run one-off commands a deployer sends (`shipyard run`)")


class VolumesPolicy(Section):
    host_paths: list[str] = Field(default_factory=list, description="host paths volumes may mount")
    named: bool = Field(default=True, description="docker-managed named volumes")

    @field_validator("host_paths")
    @classmethod
    def _absolute(cls, value: list[str]) -> list[str]:
        return _absolute_paths(value, "volumes.host_paths")


class EnvPolicy(Section):
    secret_prefixes: list[str] = Field(default_factory=lambda: [DEFAULT_SECRET_PREFIX])

    @field_validator("secret_prefixes")
    @classmethod
    def _prefixes(cls, value: list[str]) -> list[str]:
        for prefix in value:
            if not is_name(ENV_NAME, prefix):
                raise ValueError(f"{prefix!r} must be the start of a variable name, like SHIPYARD_SECRET_")
        return value


class FilesPolicy(Section):
    registry_credentials: list[str] = Field(default_factory=lambda: [DEFAULT_REGISTRY_CREDENTIAL_DIR])
    maintenance_pages: list[str] = Field(default_factory=lambda: [DEFAULT_MAINTENANCE_PAGE_DIR])

    @field_validator("registry_credentials", "maintenance_pages")
    @classmethod
    def _absolute(cls, value: list[str]) -> list[str]:
        return _absolute_paths(value, "files")


class AgentPolicy(Section):
    hooks: HooksPolicy = Field(default_factory=HooksPolicy)
    tasks: TasksPolicy = Field(default_factory=TasksPolicy)
    volumes: VolumesPolicy = Field(default_factory=VolumesPolicy)
    registries: list[str] | None = Field(
        default=None, description="registries images may come from; absent: loopback registries only"
    )
    env: EnvPolicy = Field(default_factory=EnvPolicy)
    files: FilesPolicy = Field(default_factory=FilesPolicy)

    @field_validator("registries")
    @classmethod
    def _registry_names(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        names = [name.lower() for name in value]
        for name in names:
            if not REGISTRY_ENTRY.match(name):
                raise ValueError(f"{name!r} must be a registry host[:port], like registry.example.com:5000")
        return names


@dataclass(frozen=True)
class Violation:
    """One thing the policy refuses: the rule, the key of the release's spec, and why, in one sentence."""

    rule: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message} (rule {self.rule})"


def check(
    policy: AgentPolicy,
    spec: AppSpec,
    *,
    image: str | None = None,
    real_paths: Mapping[str, str] | None = None,
    protected: Iterable[str] = (),
    private: Iterable[str] = (),
    stored_secrets: Collection[str] = (),
) -> list[Violation]:
    """Everything in `spec` (deployed as `image`) that `policy` refuses; empty when it may run.

    `real_paths` maps paths of the spec and of the policy to what they resolve to on this host.
    `protected` adds paths a volume may mount only when listed exactly (this host's Docker socket);
    `private` are this host's own files (its state directory, its token): no rule allows them.
    `stored_secrets` are env.secret names resolved from the encrypted store rather than the process
    environment, so the prefix rule does not apply to them.
    """
    resolved = dict(real_paths or {})
    guarded = [*PROTECTED_PATHS, *_absolute_only(protected)]
    own = _absolute_only(private)
    return [
        *_hooks(policy, spec),
        *_volumes(policy, spec, resolved, guarded, own),
        *_registries(policy, spec, image),
        *_environment(policy, spec, stored_secrets),
        *_files(policy, spec, resolved, own),
    ]


def task_violation(policy: AgentPolicy, kind: str) -> Violation | None:
    """Why this host refuses a task of `kind` (run | release | exec), or None when it runs it.
    An exec session follows the rule of one-off commands: both run whatever a deployer typed."""
    if kind == "release" and not policy.tasks.release_phase:
        return Violation(
            "tasks",
            "release",
            "release phases are off on this host; set tasks.release_phase: true in the policy",
        )
    if kind == "exec" and not policy.tasks.run:
        return Violation(
            "tasks",
            "run",
            "one-off commands are off on this host; set tasks.run: true in the policy to allow shipyard run "
            "and shipyard exec --env",
        )
    if kind == "run" and not policy.tasks.run:
        return Violation(
            "tasks",
            "run",
            "one-off commands are off on this host; set tasks.run: true in the policy to allow shipyard run",
        )
    return None


def _absolute_only(paths: Iterable[str]) -> list[str]:
    return [path for path in (normalise(p) for p in paths) if path is not None]


def _hooks(policy: AgentPolicy, spec: AppSpec) -> list[Violation]:
    if policy.hooks.allow:
        return []
    phases = {
        "pre-deploy": spec.hooks.pre_deploy,
        "post-swap": spec.hooks.post_swap,
        "post-deploy": spec.hooks.post_deploy,
    }
    return [
        Violation(
            "hooks",
            f"hooks.{phase}",
            "hooks are off on this host; remove them from the release or set hooks.allow: true in the policy",
        )
        for phase, commands in phases.items()
        if commands
    ]


def _forms(path: str, resolved: Mapping[str, str]) -> list[str]:
    """The path as written (when absolute) and as resolved on the host (when known)."""
    forms = [form for form in (normalise(path), normalise(resolved.get(path, ""))) if form is not None]
    return list(dict.fromkeys(forms))


def _entries(paths: list[str], resolved: Mapping[str, str]) -> list[str]:
    return list(dict.fromkeys(form for path in paths for form in _forms(path, resolved)))


def _sensitive(path: str, protected: Iterable[str]) -> bool:
    return path == "/" or any(within(path, guarded) or within(guarded, path) for guarded in protected)


def _inside(path: str, protected: Iterable[str]) -> list[str]:
    """The protected paths strictly inside `path`: a volume of `path` exposes them too."""
    return [guarded for guarded in protected if guarded != path and within(guarded, path)]


def _host_path_allowed(path: str, entries: list[str], protected: list[str]) -> bool:
    if path == "/":
        return "/" in entries
    if path in entries:
        return all(guarded in entries for guarded in _inside(path, protected))
    return not _sensitive(path, protected) and any(within(path, entry) for entry in entries)


def _host_path_hint(path: str, entries: list[str], protected: list[str]) -> str:
    held = [guarded for guarded in _inside(path, protected) if guarded not in entries]
    if path != "/" and held:
        return f"it holds {', '.join(held)}; list {path} and each of those itself in volumes.host_paths"
    if _sensitive(path, protected):
        return f"list {path} itself in volumes.host_paths to allow it"
    return "add it (or a parent directory) to volumes.host_paths in the policy"


def _volumes(
    policy: AgentPolicy, spec: AppSpec, resolved: Mapping[str, str], protected: list[str], own: list[str]
) -> list[Violation]:
    violations = []
    entries = _entries(policy.volumes.host_paths, resolved)
    protected = [*protected, *own]
    for index, volume in enumerate(spec.volumes):
        key = f"volumes.{index}"
        source = volume.split(":", 1)[0]
        if not source.startswith("/"):
            if not NAMED_VOLUME.match(source):
                violations.append(
                    Violation("host-paths", key, f"{source!r} must be an absolute host path or a volume name")
                )
            elif not policy.volumes.named:
                violations.append(
                    Violation(
                        "named-volumes", key, "named volumes are off; set volumes.named: true in the policy"
                    )
                )
            continue
        for form in _forms(source, resolved):
            shown = source if form == normalise(source) else f"{source} (resolving to {form})"
            # Only an explicitly listed / may expose the host's own files (it exposes everything).
            if any(within(form, path) or (within(path, form) and form != "/") for path in own):
                message = f"host path {shown} holds this host's own state; never mounted"
            elif not _host_path_allowed(form, entries, protected):
                message = f"host path {shown} is not allowed; {_host_path_hint(form, entries, protected)}"
            else:
                continue
            violations.append(Violation("host-paths", key, message))
            break
    return violations


def image_registry(image: str) -> str:
    """The registry host of an image reference, as docker reads it (docker.io when none is named)."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first.lower()
    return "docker.io"


def loopback_registry(registry: str) -> bool:
    host = registry
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def registry_allowed(policy: AgentPolicy, registry: str) -> bool:
    if policy.registries is None:
        return loopback_registry(registry)
    return ANY_REGISTRY in policy.registries or registry.lower() in policy.registries


def _registries(policy: AgentPolicy, spec: AppSpec, image: str | None) -> list[Violation]:
    named = [("image", image_registry(spec.image))]
    if image is not None:
        named.append(("image", image_registry(image.partition("@")[0])))
    if spec.registry.server:
        named.append(("registry.server", spec.registry.server.lower()))
    allowed = (
        "loopback registries only (the policy lists none)"
        if policy.registries is None
        else ", ".join(policy.registries) or "none"
    )
    violations = []
    for key, registry in dict.fromkeys(named):
        if not registry_allowed(policy, registry):
            violations.append(
                Violation(
                    "registries",
                    key,
                    f"registry {registry} is not allowed (allowed: {allowed}); "
                    "add it to registries in the policy",
                )
            )
    return violations


def _environment(policy: AgentPolicy, spec: AppSpec, stored_secrets: Collection[str]) -> list[Violation]:
    read: list[tuple[str, str]] = [
        (f"env.secret.{index}", name)
        for index, name in enumerate(spec.env.secret)
        if name not in stored_secrets
    ]
    for field_name in ("username_env", "password_env"):
        name = getattr(spec.registry, field_name)
        if name:
            read.append((f"registry.{field_name}", name))
    prefixes = policy.env.secret_prefixes
    violations = []
    for key, name in read:
        if name in NEVER_HANDED_OVER:
            violations.append(
                Violation("env-secret", key, f"{name} holds a shipyard token or key and is never handed over")
            )
        elif not name.startswith(tuple(prefixes)):
            listed = ", ".join(prefixes) or "none"
            violations.append(
                Violation(
                    "env-secret",
                    key,
                    f"{name} does not start with an allowed prefix ({listed}); rename it or add a prefix "
                    "to env.secret_prefixes in the policy",
                )
            )
    return violations


def _files(
    policy: AgentPolicy, spec: AppSpec, resolved: Mapping[str, str], own: list[str]
) -> list[Violation]:
    wanted = [
        ("registry-files", "registry.username_file", spec.registry.username_file, "registry_credentials"),
        ("registry-files", "registry.password_file", spec.registry.password_file, "registry_credentials"),
        ("maintenance-page", "proxy.maintenance_page", spec.proxy.maintenance_page, "maintenance_pages"),
    ]
    violations = []
    for rule, key, path, setting in wanted:
        if not path:
            continue
        directories = _entries(getattr(policy.files, setting), resolved)
        forms = _forms(path, resolved)
        if not forms:
            violations.append(Violation(rule, key, f"{path} must be an absolute path"))
            continue
        for form in forms:
            shown = path if form == normalise(path) else f"{path} (resolving to {form})"
            if any(within(form, path) for path in own):
                message = f"{shown} is one of this host's own files; never read for a release"
            elif not any(within(form, directory) and form != directory for directory in directories):
                listed = ", ".join(directories) or "none"
                message = (
                    f"{shown} is not under an allowed directory ({listed}); see files.{setting} in the policy"
                )
            else:
                continue
            violations.append(Violation(rule, key, message))
            break
    return violations


def spec_paths(spec: AppSpec) -> list[str]:
    """The host paths a spec names: what a caller resolves on the host before check()."""
    sources = [volume.split(":", 1)[0] for volume in spec.volumes]
    files = [spec.registry.username_file, spec.registry.password_file, spec.proxy.maintenance_page]
    return [path for path in [*sources, *files] if path and (path in files or path.startswith("/"))]


def policy_paths(policy: AgentPolicy) -> list[str]:
    return [*policy.volumes.host_paths, *policy.files.registry_credentials, *policy.files.maintenance_pages]


def parse_policy(data: Any, *, source: str = "agent-policy.yml") -> AgentPolicy:
    """Validate already-parsed YAML; an empty document is the default policy."""
    if data is None:
        data = {}
    return validated_document(AgentPolicy, data, source=source, keys="'hooks:' and 'volumes:'")


def load_policy(path: Path) -> AgentPolicy:
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise ConfigError(
            f"the policy file {path} does not exist; create it or pass another --policy."
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read the policy file {path}: {exc.strerror}.") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path} is not valid YAML{where}; fix the syntax and try again.") from exc
    return parse_policy(data, source=str(path))
