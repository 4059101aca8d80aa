"""The one error hierarchy of shipyard.

Every error a user can meet is a ShipyardError whose message is one sentence saying what failed
and what to do. Adapters translate their library's exceptions into these, in one place each,
with ``raise ... from exc``; the CLI maps them to exit codes and the HTTP API to 4xx answers.

    ShipyardError                      exit 1
    ├── ConfigError                    exit 2   shipyard.yml or an argument is invalid
    ├── NotFoundError                  exit 3   an image, tag, release or record does not exist
    ├── LockedError                    exit 4   another deploy holds the app's lock
    ├── ExternalError                           a component outside shipyard failed
    │   ├── DockerError                exit 5   Docker Engine unreachable or refused
    │   ├── RegistryError              exit 6   registry down, auth refused, digest mismatch
    │   ├── ProxyError                 exit 7   haproxy could not start or answer
    │   ├── BuildError                 exit 8   an image build or a git checkout failed
    │   └── ControllerError            exit 10  the fleet controller refused or is unreachable
    │       └── ControllerAuthError    exit 10  the controller refused the token (401/403)
    │   └── CloudError                 exit 15  AWS (Auto Scaling, load balancer, metadata) refused or is away
    ├── DeployFailedError              exit 9   the new release never became healthy; old one still serves
    ├── SecretError                    exit 11  a secret is missing, or a secrets file cannot be decrypted
    ├── SecretLeakError                exit 12  a scan found a secret in an image layer
    ├── PolicyError                    exit 13  the host's policy refuses the release; nothing ran
    └── SignatureError                 exit 14  a release is unsigned or does not match its signature
"""

from __future__ import annotations


class ShipyardError(Exception):
    """Root of every error shipyard reports to a user."""

    exit_code = 1

    def __init__(self, message: str, *, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []

    def __str__(self) -> str:
        return self.message


class ConfigError(ShipyardError):
    exit_code = 2


class NotFoundError(ShipyardError):
    exit_code = 3


class LockedError(ShipyardError):
    exit_code = 4


class ExternalError(ShipyardError):
    pass


class DockerError(ExternalError):
    exit_code = 5


class RegistryError(ExternalError):
    exit_code = 6


class ProxyError(ExternalError):
    exit_code = 7


class BuildError(ExternalError):
    exit_code = 8


class ControllerError(ExternalError):
    exit_code = 10


class ControllerAuthError(ControllerError):
    """The controller answered but refused the token (HTTP 401 or 403), as opposed to being unreachable."""


class CloudError(ExternalError):
    """AWS (Auto Scaling, Elastic Load Balancing, instance metadata) refused a call or did not answer."""

    exit_code = 15


class DeployFailedError(ShipyardError):
    exit_code = 9


class SecretError(ShipyardError):
    exit_code = 11


class SecretLeakError(ShipyardError):
    exit_code = 12


class PolicyError(ShipyardError):
    """The host's own policy (agent-policy.yml) refuses what a release asks for; nothing ran."""

    exit_code = 13


class SignatureError(ShipyardError):
    """A release is unsigned, signed by an untrusted key, or altered after it was signed."""

    exit_code = 14
