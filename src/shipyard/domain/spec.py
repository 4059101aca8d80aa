"""The shipyard.yml schema: validated section by section, every error with its key path.

Unknown keys are errors, except keys starting with ``x-`` (YAML anchors and user notes).
Loading a file is a separate function (load_spec) from the schema, so the schema stays pure.
Every string that reaches haproxy's config, a docker argument or a file name is matched whole
(shipyard.domain.names); every number is finite and bounded (docs/config.md lists the limits).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from shipyard.domain import names
from shipyard.domain.names import APP_NAME, ENV_NAME
from shipyard.domain.overlay import Layer, Merged, merge_layers, overlay_name
from shipyard.errors import ConfigError

# Limits, documented in docs/config.md: a duration at most a day, a count of hosts at most 100000.
MAX_SECONDS = 86_400
MAX_COUNT = 100_000
MAX_CPUS = 1024
MAX_TEXT = 4096


def _plain_text(value: str) -> str:
    if names.has_control(value):
        raise ValueError("must not contain control characters such as a newline or a tab")
    return value


def _no_nul(value: str) -> str:
    if "\0" in value:
        raise ValueError("must not contain a NUL character, which no process argument or variable can hold")
    return value


def _env_name(value: str) -> str:
    if not names.is_name(ENV_NAME, value):
        raise ValueError(
            f"{value!r} is not a valid environment variable name "
            "(letters, digits and _, not starting with a digit)"
        )
    return value


def _matching(pattern: re.Pattern[str], hint: str) -> AfterValidator:
    def check(value: str) -> str:
        if not names.is_name(pattern, value):
            raise ValueError(f"must be {hint}, without spaces or control characters")
        return value

    return AfterValidator(check)


Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS)]
PositiveSeconds = Annotated[float, Field(gt=0, le=MAX_SECONDS)]
# A worker restarted this many times within this many seconds after its start is crash-looping.
DEFAULT_MAX_RESTARTS, DEFAULT_RESTART_WINDOW = 3, 60.0
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Port = Annotated[int, Field(ge=1, le=65534)]
# A file path: any printable text (spaces included), no control characters.
FilePath = Annotated[str, Field(min_length=1, max_length=MAX_TEXT), AfterValidator(_plain_text)]
# A process argument, variable value or hook command: anything but NUL (newlines are legitimate).
Argument = Annotated[str, Field(max_length=65_536), AfterValidator(_no_nul)]
EnvName = Annotated[str, AfterValidator(_env_name)]
Url = Annotated[str, _matching(names.URL, "an http:// or https:// URL")]


class Section(BaseModel):
    """A config section: unknown keys rejected, ``x-`` keys allowed and dropped."""

    # Infinity and NaN are never a sensible number of seconds, hosts or CPUs. A section's validator
    # is built when first used, so a command pays only for the documents it reads.
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False, defer_build=True
    )

    @model_validator(mode="before")
    @classmethod
    def _drop_extension_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
        return data


class RegistrySpec(Section):
    server: (
        Annotated[str, _matching(names.HOST_PORT, "a registry host[:port] such as registry:5000")] | None
    ) = None
    username_env: EnvName | None = None
    username_file: FilePath | None = None
    password_env: EnvName | None = None
    password_file: FilePath | None = None
    insecure: bool = Field(default=False, description="use plain HTTP (loopback registries)")

    @model_validator(mode="before")
    @classmethod
    def _no_inline_credentials(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("username", "password"):
                if key in data:
                    raise ValueError(
                        f"inline '{key}' is not allowed; "
                        f"use {key}_env or {key}_file so it stays out of the file"
                    )
        return data


# Methods a request of which may be sent again after it reached a server: safe ones always, PUT and
# DELETE only when the app lists them (idempotent by HTTP's rules, but not every app honours that).
REPLAYABLE_METHODS = ("GET", "HEAD", "OPTIONS", "PUT", "DELETE")
# ASCII digits only (\d would take any Unicode digit); applied with fullmatch.
SIZE = re.compile(r"([0-9]{1,12})([kmg]?)")
MAX_BODY_BYTES = 1 << 40
SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


class RetriesSpec(Section):
    """When haproxy may send a failed request again (to the other slot during a swap)."""

    attempts: Annotated[int, Field(ge=0, le=10)] = Field(
        default=3, description="retries after the first attempt; 0 never retries"
    )
    methods: list[str] = Field(
        default_factory=lambda: ["GET", "HEAD", "OPTIONS"],
        description="methods replayed after a server closed without answering; others: connection failures",
    )
    response_timeout: bool = Field(
        default=False, description="also replay those methods after a server timeout"
    )

    @field_validator("methods")
    @classmethod
    def _idempotent_methods(cls, value: list[str]) -> list[str]:
        methods = [method.upper() for method in value]
        for method in methods:
            if method not in REPLAYABLE_METHODS:
                raise ValueError(
                    f"{method!r} cannot be replayed: a server may already have handled it, so a replay could "
                    f"apply it twice; list only {', '.join(REPLAYABLE_METHODS)}"
                )
        return list(dict.fromkeys(methods))


class TimeoutsSpec(Section):
    http_request: PositiveSeconds = Field(
        default=10.0, description="seconds a client has to send its request head"
    )


class ProxySpec(Section):
    listen: str = "127.0.0.1:8080"
    maintenance_page: FilePath | None = Field(
        default=None, description="path to an HTML file served with 503"
    )
    retries: RetriesSpec = Field(default_factory=RetriesSpec)
    timeouts: TimeoutsSpec = Field(default_factory=TimeoutsSpec)
    max_body: str | None = Field(default=None, description="largest request body accepted, like 100m")

    @field_validator("max_body", mode="before")
    @classmethod
    def _body_size(cls, value: Any) -> Any:
        if value is None:
            return None
        text = str(value).lower()
        match = SIZE.fullmatch(text)
        if match is None or int(match.group(1)) == 0:
            raise ValueError("must be a size like 512k, 100m or 1g")
        if int(match.group(1)) * SIZE_UNITS[match.group(2)] > MAX_BODY_BYTES:
            raise ValueError("must be at most 1024g")
        return text

    @property
    def max_body_bytes(self) -> int | None:
        if self.max_body is None:
            return None
        match = SIZE.fullmatch(self.max_body)
        assert match is not None  # validated above
        return int(match.group(1)) * SIZE_UNITS[match.group(2)]

    @field_validator("listen")
    @classmethod
    def _address_and_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if (
            not sep
            or not names.is_name(names.LISTEN_HOST, host)
            or not re.fullmatch(r"[0-9]{1,5}", port)
            or not 1 <= int(port) <= 65535
        ):
            raise ValueError(
                "must be address:port, for example 127.0.0.1:8080, without spaces or control characters"
            )
        return value


class HealthcheckSpec(Section):
    path: str = "/up"
    interval: PositiveSeconds = 0.2
    timeout: PositiveSeconds = 2.0
    healthy_threshold: Annotated[int, Field(ge=1, le=100)] = 2
    deadline: PositiveSeconds = 30.0

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with /")
        if not names.is_name(names.URL_PATH, value):
            raise ValueError(
                "must be a URL path such as /up (letters, digits and -._~!$&()*+,;=:@%/?), "
                "without spaces, quotes, # or control characters"
            )
        return value


class EnvSpec(Section):
    clear: dict[str, Argument] = Field(default_factory=dict)
    secret: list[str] = Field(default_factory=list, description="names read from the secret store or env")

    @field_validator("clear", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: "" if v is None else str(v) for k, v in value.items()}
        return value

    @field_validator("clear")
    @classmethod
    def _clear_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            _env_name(name)
        return value

    @field_validator("secret")
    @classmethod
    def _secret_names(cls, value: list[str]) -> list[str]:
        for name in value:
            _env_name(name)
        return value


class DeploySpec(Section):
    drain_timeout: Seconds = 10.0
    stop_timeout: Annotated[int, Field(ge=0, le=MAX_SECONDS)] = 10
    keep_releases: Annotated[int, Field(ge=1, le=1000)] = 3
    standby: Seconds = 0.0


class HooksSpec(Section):
    pre_deploy: list[Argument] = Field(default_factory=list, alias="pre-deploy")
    post_swap: list[Argument] = Field(default_factory=list, alias="post-swap")
    post_deploy: list[Argument] = Field(default_factory=list, alias="post-deploy")
    timeout: PositiveSeconds = Field(default=300.0, description="seconds each hook command may run")

    @field_validator("pre_deploy", "post_swap", "post_deploy", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class ResourcesSpec(Section):
    memory: str | None = None
    cpus: Annotated[float, Field(gt=0, le=MAX_CPUS)] | None = None

    @field_validator("memory")
    @classmethod
    def _memory_size(cls, value: str | None) -> str | None:
        if value is not None and not names.is_name(names.MEMORY, value):
            raise ValueError("must be a size like 256m or 1g")
        return value


BuildName = Annotated[str, _matching(names.BUILD_NAME, "letters, digits, '.', '_' and '-'")]


class BuildSecretSpec(Section):
    """One build secret: `{id, env|file|secret}`, or a plain name `NPM_TOKEN` meaning the
    secret-store entry of that name mounted with that id (the short form other tools accept)."""

    id: BuildName
    env: EnvName | None = None
    file: FilePath | None = None
    secret: EnvName | None = Field(default=None, description="name in the encrypted secret store")

    @model_validator(mode="before")
    @classmethod
    def _plain_name(cls, data: Any) -> Any:
        if isinstance(data, str):
            if not names.is_name(ENV_NAME, data):
                # The text is not echoed: a value pasted here by mistake must not reach the output.
                raise ValueError(
                    "a plain build secret must be a secret-store name (letters, digits and _, not "
                    "starting with a digit) such as NPM_TOKEN, or write {id: ..., secret|env|file: ...}"
                )
            return {"id": data, "secret": data}
        return data

    @model_validator(mode="after")
    def _one_source(self) -> BuildSecretSpec:
        if sum(x is not None for x in (self.env, self.file, self.secret)) != 1:
            raise ValueError("give exactly one of env, file or secret")
        return self


class BuildSpec(Section):
    context: FilePath = "."
    dockerfile: FilePath = "Dockerfile"
    target: BuildName | None = None
    args: dict[EnvName, Argument] = Field(default_factory=dict)
    secrets: list[BuildSecretSpec] = Field(default_factory=list)
    cache: bool = True
    docker: FilePath | None = Field(
        default=None, description="docker CLI with BuildKit, e.g. /usr/bin/docker"
    )
    scan: bool = True


class SecretsSpec(Section):
    provider: Literal["local", "aws-kms"] = "local"
    key_file: FilePath | None = None
    kms_key_id: Annotated[str, _matching(names.KMS_KEY_ID, "a KMS key id, ARN or alias/NAME")] | None = None
    kms_endpoint: Url | None = None
    region: Annotated[str, _matching(names.REGION, "a region such as us-east-1")] = "us-east-1"


class RolloutSpec(Section):
    max_parallel: str = "1"
    max_failed: Count = 0
    monitor: Seconds = 5.0
    auto_rollback: bool = True

    @field_validator("max_parallel", mode="before")
    @classmethod
    def _count_or_percent(cls, value: Any) -> Any:
        text = str(value)
        if not re.fullmatch(r"[1-9][0-9]{0,5}%?", text) or (text.endswith("%") and int(text[:-1]) > 100):
            raise ValueError("must be a count like 2 or a percentage like 50%")
        return text


class RequiresSpec(Section):
    """Versions a host must run for this release (PEP 440 specifiers, e.g. ">=2.6")."""

    docker: str | None = Field(default=None, max_length=64, description="Docker Engine version, e.g. '>=24'")
    haproxy: str | None = Field(default=None, max_length=64, description="haproxy version, e.g. '>=2.6'")

    @field_validator("docker", "haproxy")
    @classmethod
    def _specifier(cls, value: str | None) -> str | None:
        if value is not None:
            from shipyard.domain.versions import parse_specifier  # packaging: only when one is given

            parse_specifier(value)
        return value

    def as_dict(self) -> dict[str, str]:
        return {key: value for key, value in self.model_dump().items() if value is not None}


class PipelineSpec(Section):
    """A push to (or a merged pull request into) `branch` ships the commit to `environment`."""

    branch: str = Field(min_length=1, max_length=255)
    environment: str = Field(min_length=1, max_length=64)

    @field_validator("branch")
    @classmethod
    def _branch_name(cls, value: str) -> str:
        if (
            value.startswith(("-", "refs/"))
            or names.has_control(value)
            or any(c.isspace() or c in "~^:?*[\\" for c in value)
        ):
            raise ValueError("must be a plain branch name like main or release")
        return value

    @field_validator("environment")
    @classmethod
    def _environment_name(cls, value: str) -> str:
        if not names.is_name(names.FLEET_NAME, value):
            raise ValueError("must be an environment (host group) name like production")
        return value


WEB_PROCESS = "web"
DEFAULT_RUNNING_FOR = 5.0
# What web cannot set: it stops with deploy.stop_timeout, has 'healthcheck' and runs on every host.
WEB_DEFAULTS: tuple[tuple[str, object], ...] = (
    ("stop_signal", "TERM"),
    ("stop_timeout", None),
    ("health", None),
    ("hosts", None),
)


class ProcessHealthSpec(Section):
    """When a new worker counts as healthy: a command run inside it exits 0, or it keeps running
    (without a restart) for some seconds."""

    exec: list[Argument] | None = Field(default=None, min_length=1, description="argv run in the container")
    running_for: PositiveSeconds | None = Field(default=None, description="seconds running without a restart")
    timeout: PositiveSeconds = Field(default=30.0, description="seconds the exec check has to pass")
    # After the start: a worker the engine restarts this often within the window is crash-looping,
    # and its host reports the app unhealthy (the agent's crash-loop watch).
    max_restarts: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=DEFAULT_MAX_RESTARTS, description="restarts within restart_window that make it unhealthy"
    )
    restart_window: PositiveSeconds = Field(
        default=DEFAULT_RESTART_WINDOW, description="seconds over which restarts are counted"
    )

    @model_validator(mode="after")
    def _one_check(self) -> ProcessHealthSpec:
        if (self.exec is None) == (self.running_for is None):
            raise ValueError("give exactly one of exec (a command) or running_for (seconds)")
        return self


class ProcessSpec(Section):
    """One process of the app besides (or for) web: its command, how it stops, its health, its hosts."""

    command: list[Argument] | None = Field(default=None, min_length=1)
    stop_signal: str = Field(default="TERM", description="signal that asks the process to finish")
    stop_timeout: Annotated[int, Field(ge=0, le=MAX_SECONDS)] | None = Field(
        default=None, description="seconds between the stop signal and SIGKILL (deploy.stop_timeout)"
    )
    health: ProcessHealthSpec | None = None
    hosts: (
        dict[
            Annotated[str, _matching(names.LABEL_KEY, "a label key of letters, digits and ._/-")],
            Annotated[str, Field(max_length=MAX_TEXT), AfterValidator(_plain_text)],
        ]
        | None
    ) = Field(default=None, description="host labels a fleet host must have to run this process")

    @field_validator("stop_signal", mode="before")
    @classmethod
    def _signal(cls, value: Any) -> Any:
        text = str(value).upper()
        text = text[3:] if text.startswith("SIG") else text
        if not names.is_name(names.SIGNAL_NAME, text) or text in ("KILL", "STOP"):
            raise ValueError(
                "must be a signal name such as TERM, INT, QUIT or TSTP "
                "(KILL and STOP leave no time to finish)"
            )
        return text

    def runs_on(self, host_labels: Mapping[str, str] | None) -> bool:
        """Whether a host with these labels runs the process; None (a host deployed to directly,
        without fleet labels) runs every process."""
        if host_labels is None or not self.hosts:
            return True
        return all(host_labels.get(key) == value for key, value in self.hosts.items())


PREVIEW_TTL = re.compile(r"([1-9][0-9]{0,5})([smhd])")
PREVIEW_TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
MAX_PREVIEW_TTL = 30 * 86_400
# `APP-pr-N` must still be an app name (40 characters) for PR numbers up to 8 digits.
MAX_PREVIEW_APP_NAME = 28


class PreviewPostgresSpec(Section):
    """A preview's database cloned from a template: CREATE DATABASE <name> TEMPLATE <template>."""

    template: Annotated[str, _matching(names.SQL_IDENTIFIER, "a PostgreSQL identifier such as app_template")]
    admin_url_secret: EnvName = Field(
        description="name, in the preview environment's secret store, of the admin connection URL"
    )


class PreviewDatabaseHooksSpec(Section):
    """Commands the controller runs to create and drop a preview's database (PREVIEW_APP, PREVIEW_PR set).

    `create` prints the preview's DATABASE_URL on its last line of stdout."""

    create: list[Argument] = Field(min_length=1)
    destroy: list[Argument] = Field(min_length=1)


class PreviewDatabaseSpec(Section):
    postgres: PreviewPostgresSpec | None = None
    hooks: PreviewDatabaseHooksSpec | None = None

    @model_validator(mode="after")
    def _one_strategy(self) -> PreviewDatabaseSpec:
        if (self.postgres is None) == (self.hooks is None):
            raise ValueError(
                "give exactly one of postgres (a template to clone) or hooks (create/destroy commands)"
            )
        return self


class PreviewsSpec(Section):
    """`previews:` a preview `pr-N` of the app for each open pull request, on the hosts of one group."""

    group: Annotated[str, _matching(names.FLEET_NAME, "a host group name")] = "preview"
    domain: Annotated[str, _matching(names.HOST, "a DNS domain such as preview.example.com")]
    environment: Annotated[str, _matching(names.FLEET_NAME, "an environment name")] = Field(
        default="preview", description="the environment whose secrets previews read"
    )
    ttl: str = Field(default="72h", description="a preview not pushed to for this long is removed")
    max: Annotated[int, Field(ge=1, le=1000)] = Field(default=3, description="live previews per app")
    when_full: Literal["replace-oldest", "refuse"] = "replace-oldest"
    resources: ResourcesSpec = Field(
        default_factory=lambda: ResourcesSpec(memory="256m", cpus=0.5),
        description="limits of each preview container",
    )
    database: PreviewDatabaseSpec | None = None

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, value: str) -> str:
        found = PREVIEW_TTL.fullmatch(value)
        if found is None or int(found[1]) * PREVIEW_TTL_UNITS[found[2]] > MAX_PREVIEW_TTL:
            raise ValueError("must be a duration like 30m, 72h or 7d, at most 30d")
        return value

    @property
    def ttl_seconds(self) -> int:
        found = PREVIEW_TTL.fullmatch(self.ttl)
        assert found is not None  # validated
        return int(found[1]) * PREVIEW_TTL_UNITS[found[2]]


class PreviewPlacement(Section):
    """Set by the controller on a preview's release: which PR it is and the host name it answers."""

    repository: Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_plain_text)]
    pr: Annotated[int, Field(ge=1, le=99_999_999)]
    host_name: Annotated[str, _matching(names.HOST, "a host name")]


class AppSpec(Section):
    app: str
    image: str
    registry: RegistrySpec = Field(default_factory=RegistrySpec)
    port: Port = 3000
    network: Literal["host", "bridge"] = "host"
    bind: Annotated[str, _matching(names.HOST, "a host name or IPv4 address such as 127.0.0.1")] = Field(
        default="127.0.0.1", description="host address the app listens on"
    )
    proxy: ProxySpec = Field(default_factory=ProxySpec)
    healthcheck: HealthcheckSpec = Field(default_factory=HealthcheckSpec)
    env: EnvSpec = Field(default_factory=EnvSpec)
    deploy: DeploySpec = Field(default_factory=DeploySpec)
    hooks: HooksSpec = Field(default_factory=HooksSpec)
    volumes: list[str] = Field(default_factory=list)
    labels: dict[
        Annotated[str, _matching(names.LABEL_KEY, "a label key of letters, digits and ._/-")],
        Annotated[str, Field(max_length=MAX_TEXT), AfterValidator(_plain_text)],
    ] = Field(default_factory=dict)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    command: list[Argument] | None = None
    release: list[Argument] | None = Field(
        default=None,
        description="argv run once per deployment, before any host changes, in a container of the new image",
    )
    build: BuildSpec = Field(default_factory=BuildSpec)
    secrets: SecretsSpec = Field(default_factory=SecretsSpec)
    controller: Url | None = None
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)
    requires: RequiresSpec = Field(default_factory=RequiresSpec)
    repository: str | None = Field(default=None, description="git URL: ssh, https:// or file://")
    pipelines: list[PipelineSpec] = Field(default_factory=list)
    processes: dict[str, ProcessSpec] = Field(
        default_factory=dict, description="web (the default) and any number of workers"
    )
    previews: PreviewsSpec | None = Field(default=None, description="a preview per open pull request")
    preview: PreviewPlacement | None = Field(
        default=None, description="set by the controller on a preview's release; not written by hand"
    )

    @field_validator("processes")
    @classmethod
    def _process_names(cls, value: dict[str, ProcessSpec]) -> dict[str, ProcessSpec]:
        for name, process in value.items():
            if not names.is_name(names.PROCESS_NAME, name):
                raise ValueError(
                    f"{name!r} is not a process name: use 1 to 30 lowercase letters, digits and dashes, "
                    "starting with a letter"
                )
            if name == WEB_PROCESS:
                extra = [key for key, default in WEB_DEFAULTS if getattr(process, key) != default]
                if extra:
                    raise ValueError(
                        f"web takes only 'command' ({', '.join(extra)} given): it stops with "
                        "deploy.stop_timeout, is checked by 'healthcheck' and runs on every host"
                    )
            elif process.command is None:
                raise ValueError(
                    f"the {name} process needs a command (an argv list such as [bundle, exec, sidekiq])"
                )
        return value

    @model_validator(mode="after")
    def _previews_need_a_short_name(self) -> AppSpec:
        if self.previews is not None and len(self.app) > MAX_PREVIEW_APP_NAME:
            raise ValueError(
                f"previews need an app name of at most {MAX_PREVIEW_APP_NAME} characters, so that "
                f"'{self.app}-pr-N' is still an app name: shorten 'app'"
            )
        return self

    @model_validator(mode="after")
    def _one_web_command(self) -> AppSpec:
        web = self.processes.get(WEB_PROCESS)
        if web is not None and web.command is not None and self.command is not None:
            raise ValueError("give web's command once: either 'command' or 'processes.web.command'")
        return self

    @property
    def web_command(self) -> list[str] | None:
        web = self.processes.get(WEB_PROCESS)
        return web.command if web is not None and web.command is not None else self.command

    @property
    def workers(self) -> dict[str, ProcessSpec]:
        """The processes other than web, by name, in the order written."""
        return {name: process for name, process in self.processes.items() if name != WEB_PROCESS}

    @staticmethod
    def worker_health(process: ProcessSpec) -> ProcessHealthSpec:
        """A worker without a health check must keep running for 5 s."""
        return process.health or ProcessHealthSpec(running_for=DEFAULT_RUNNING_FOR)

    def worker_stop_timeout(self, process: ProcessSpec) -> int:
        return process.stop_timeout if process.stop_timeout is not None else self.deploy.stop_timeout

    @field_validator("release")
    @classmethod
    def _release_command(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not (value and value[0]):
            raise ValueError("must be a command as a list like [bin/rails, db:migrate]; remove it to skip it")
        return value

    @field_validator("repository")
    @classmethod
    def _no_credentials_in_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not names.is_name(names.GIT_URL, value):
            raise ValueError(
                "must be a git URL (ssh, https:// or file://) without spaces or control characters"
            )
        if re.match(r"[a-z+]+://[^/@]*:[^/@]*@", value):
            raise ValueError("must not hold credentials; the controller fetches with a deploy key")
        return value

    @field_validator("pipelines")
    @classmethod
    def _one_environment_per_branch(cls, value: list[PipelineSpec]) -> list[PipelineSpec]:
        branches = [pipeline.branch for pipeline in value]
        repeated = sorted({branch for branch in branches if branches.count(branch) > 1})
        if repeated:
            raise ValueError(f"branch {repeated[0]!r} is listed twice; ship each branch to one environment")
        return value

    @field_validator("app")
    @classmethod
    def _app_name(cls, value: str) -> str:
        if not names.is_name(APP_NAME, value):
            raise ValueError(
                "must be 1 to 40 lowercase letters, digits and dashes, starting with a letter, "
                "without spaces or control characters"
            )
        return value

    @field_validator("image")
    @classmethod
    def _image_repository(cls, value: str) -> str:
        if ":" in value.rsplit("/", 1)[-1] or "@" in value:
            raise ValueError("must be a repository without tag or digest, for example registry:5000/web")
        if len(value) > 255 or not names.is_name(names.IMAGE_REPOSITORY, value):
            raise ValueError(
                "must be a repository such as registry:5000/web (lowercase path of letters, digits "
                "and ._-/), without spaces or control characters"
            )
        return value

    @field_validator("volumes")
    @classmethod
    def _volume_syntax(cls, value: list[str]) -> list[str]:
        for volume in value:
            if not names.is_name(names.VOLUME, volume):
                raise ValueError(
                    f"{volume!r} must be source:target[:ro], with an absolute target path or a volume name "
                    "as source, without commas or control characters"
                )
        return value

    @property
    def slot_ports(self) -> dict[str, int]:
        """Host port of each slot: blue on `port`, green on the next one."""
        return {"blue": self.port, "green": self.port + 1}

    @property
    def listen_port(self) -> int:
        return int(self.proxy.listen.rpartition(":")[2])

    @property
    def listen_host(self) -> str:
        return self.proxy.listen.rpartition(":")[0]


def _key_path(location: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in location if p not in ("function-after", "function-before")]
    # A key holding a newline or another control character is shown escaped, on the one line.
    return ".".join(repr(p) if names.has_control(p) else p for p in parts) or "(top level)"


def _message(error: dict[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key (remove it, or prefix it with x- to keep it as a note)"
    if kind == "missing":
        return "is required"
    if kind == "int_parsing_size":
        return "is too large a number"
    text = str(error["msg"])
    for prefix in ("Value error, ", "Input should be "):
        if text.startswith(prefix):
            text = ("must be " if prefix.startswith("Input") else "") + text[len(prefix) :]
    return text


def validation_messages(exc: ValidationError) -> list[str]:
    return [f"{_key_path(tuple(e['loc']))}: {_message(dict(e))}" for e in exc.errors()]


Document = TypeVar("Document", bound=BaseModel)


def validated_document(model: type[Document], data: Any, *, source: str, keys: str) -> Document:
    """`data` (parsed YAML) as `model`, or one ConfigError listing every problem with its key path."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must be a mapping of keys like {keys}.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        messages = validation_messages(exc)
        raise ConfigError(
            f"{source} is invalid ({len(messages)} problem{'s' if len(messages) > 1 else ''}): "
            + "; ".join(messages),
            details=messages,
        ) from exc


def parse_spec(data: Any, *, source: str = "shipyard.yml") -> AppSpec:
    """Validate already-parsed YAML; every problem is reported with its key path."""
    return validated_document(AppSpec, data, source=source, keys="'app:' and 'image:'")


def load_spec(path: Path, env: str | None = None) -> AppSpec:
    """shipyard.yml, with `shipyard.<env>.yml` deep-merged over it when `env` is given and it exists."""
    merged = load_config(path, env)
    sources = " + ".join(dict.fromkeys(merged.origins.values())) or path.name
    return parse_spec(merged.data, source=sources)


def load_config(path: Path, env: str | None = None) -> Merged:
    """The raw merged document of shipyard.yml and its overlay for `env`, with each key's origin."""
    if not path.is_file():
        raise ConfigError(f"{path} not found; run 'shipyard init' to write one, or pass --config PATH.")
    layers = [Layer(path.name, _read_mapping(path))]
    if env is not None:
        if not names.FLEET_NAME.fullmatch(env):
            raise ConfigError(
                f"--env {env!r} is not a valid name; use up to 64 letters, digits, '.', '_' and '-', "
                "starting with a letter or digit."
            )
        overlay = path.with_name(overlay_name(path.name, env))
        if overlay.is_file():
            layers.append(Layer(overlay.name, _read_mapping(overlay)))
    return merge_layers(layers)


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path} is not valid YAML{where}; fix the syntax and try again.") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} could not be read ({exc}); check the file and its permissions.") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path.name} must be a mapping of keys like 'app:' and 'image:'.")
    return data


def spec_snapshot(spec: AppSpec) -> dict[str, Any]:
    """The spec as stored with a release: secret names only, never values.

    `requires` and `processes` appear only when they say something, so a release without them stays
    readable by an agent that predates them."""
    snapshot = spec.model_dump(mode="json", by_alias=True)
    requires = spec.requires.as_dict()
    if requires:
        snapshot["requires"] = requires
    else:
        snapshot.pop("requires", None)
    if not spec.processes:  # a single-process app's release reads exactly as before processes existed
        snapshot.pop("processes", None)
    return snapshot


def spec_from_snapshot(snapshot: dict[str, Any]) -> AppSpec:
    return parse_spec(snapshot, source="release snapshot")
