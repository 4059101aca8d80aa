"""The ``aws-kms`` key provider: the data key is wrapped by a key that never leaves AWS KMS.

botocore's exceptions are translated into SecretError here, in one place.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)

from shipyard.errors import SecretError
from shipyard.secrets.provider import DecryptionError

# Codes meaning "this key does not open this blob", as opposed to KMS being unusable.
_WRONG_KEY_CODES = {"InvalidCiphertextException", "IncorrectKeyException"}
_CLIENT_CONFIG = Config(connect_timeout=5, read_timeout=15, retries={"max_attempts": 3, "mode": "standard"})


class KmsKeyProvider:
    name = "aws-kms"

    def __init__(
        self, kms_key_id: str, *, region: str | None, endpoint_url: str | None = None, client: Any = None
    ) -> None:
        self._kms_key_id = kms_key_id
        self._endpoint_url = endpoint_url
        self._client = client or self._new_client(region, endpoint_url)

    @staticmethod
    def _new_client(region: str | None, endpoint_url: str | None) -> Any:
        try:
            return boto3.client("kms", region_name=region, endpoint_url=endpoint_url, config=_CLIENT_CONFIG)
        except (BotoCoreError, ValueError) as exc:
            raise SecretError(
                f"cannot set up AWS KMS for region {region!r} and endpoint {endpoint_url!r}; "
                "check secrets.region and secrets.kms_endpoint."
            ) from exc

    @property
    def key_id(self) -> str:
        return self._kms_key_id

    def wrap(self, data_key: bytes) -> bytes:
        with self._translated_errors("encrypt the data key"):
            answer = self._client.encrypt(KeyId=self._kms_key_id, Plaintext=data_key)
        return bytes(answer["CiphertextBlob"])

    def unwrap(self, blob: bytes) -> bytes:
        with self._translated_errors("decrypt the data key"):
            answer = self._client.decrypt(KeyId=self._kms_key_id, CiphertextBlob=blob)
        return bytes(answer["Plaintext"])

    @contextmanager
    def _translated_errors(self, action: str) -> Iterator[None]:
        where = f" at {self._endpoint_url}" if self._endpoint_url else ""
        try:
            yield
        except ClientError as exc:
            raise self._client_error(exc, action, where) from exc
        except NoCredentialsError as exc:
            raise SecretError(
                f"AWS KMS{where} needs credentials to {action}: set AWS_PROFILE or AWS_ACCESS_KEY_ID "
                "and AWS_SECRET_ACCESS_KEY."
            ) from exc
        except NoRegionError as exc:
            raise SecretError(
                "AWS KMS needs a region: set secrets.region in shipyard.yml (AWS_REGION on a fleet host)."
            ) from exc
        except EndpointConnectionError as exc:
            raise SecretError(
                f"cannot reach AWS KMS{where} to {action}; check secrets.kms_endpoint and the network."
            ) from exc
        except BotoCoreError as exc:
            raise SecretError(f"AWS KMS{where} could not {action}: {str(exc).rstrip('.')}.") from exc

    def _client_error(self, exc: ClientError, action: str, where: str) -> SecretError:
        code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
        if code in _WRONG_KEY_CODES:
            return DecryptionError(
                f"AWS KMS key {self._kms_key_id} cannot {action}: wrong KMS key or the file was modified."
            )
        if code == "NotFoundException":
            return SecretError(
                f"AWS KMS key {self._kms_key_id} does not exist{where}; check secrets.kms_key_id."
            )
        if code == "AccessDeniedException":
            return SecretError(
                f"AWS KMS refused to {action} with key {self._kms_key_id} (access denied): the file was "
                "sealed with another key, or these credentials may not use this key."
            )
        if code in {"DisabledException", "KMSInvalidStateException"}:
            return SecretError(f"AWS KMS key {self._kms_key_id} is disabled or pending deletion; enable it.")
        return SecretError(f"AWS KMS{where} could not {action} with key {self._kms_key_id} ({code}).")

    def __repr__(self) -> str:
        return f"KmsKeyProvider(key_id={self._kms_key_id!r})"
