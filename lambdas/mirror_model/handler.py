"""Lambda entry point: an approved version of the project's group is mirrored to the S3-compatible store.

Triggered by the EventBridge rule for `SageMaker Model Package State Change` events of the project's group
with status Approved. The function describes the version (it must still be Approved), reads the store's
keys from its one Secrets Manager secret, copies the model archive, evaluation report and data manifest
from the artifacts bucket and writes the index (`mirror.mirror_package`; identical objects are skipped, so
a retried event writes nothing twice). Ignored events return {"action": "ignored"}; a configuration,
store or secret failure is logged as the "error" decision by the shared `run_logged` wrapper and raised,
so Lambda's asynchronous retries run the event again and its failure queue keeps it. Every outcome is one
JSON log line; keys are never logged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lambdas.common.clients import make_client
from lambdas.common.decisions import DecisionLog, Ignored
from lambdas.common.events import APPROVED
from lambdas.common.events import MODEL_PACKAGE_STATE_CHANGE as EVENT_DETAIL_TYPE
from lambdas.common.events import SAGEMAKER_SOURCE as EVENT_SOURCE
from lambdas.common.handler import run_logged
from lambdas.common.s3uri import S3UriError, parse_s3_uri

from .config import MirrorConfig, load_config
from .mirror import mirror_package
from .store import Destination, MirrorError, open_destination

DECISIONS = DecisionLog("mirror_model")
decide = DECISIONS.decide
SECRET_FIELDS = ("access_key_id", "secret_access_key")


@dataclass(frozen=True)
class Clients:
    """The AWS clients of one invocation."""

    sagemaker: Any
    s3: Any
    secrets: Any


def make_clients() -> Clients:
    """AWS clients, created per invocation (never at import time)."""
    return Clients(
        sagemaker=make_client("sagemaker"), s3=make_client("s3"), secrets=make_client("secretsmanager")
    )


class S3Source:
    """Reads the registered artifacts from S3 (the artifacts bucket)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    @staticmethod
    def _split(uri: str) -> tuple[str, str]:
        try:
            location = parse_s3_uri(uri)
        except S3UriError:
            raise MirrorError(f"{uri!r} is not an s3:// URI") from None
        return location.bucket, location.key

    def read(self, uri: str) -> bytes:
        """The bytes of the object at an s3:// `uri`; `MirrorError` when it is no S3 URI or unreadable."""
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = self._split(uri)
        try:
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as error:
            raise MirrorError(f"cannot read the registered artifact {uri}: {error}") from None

    def list(self, prefix_uri: str) -> list[str]:
        """The s3:// URIs of the objects under `prefix_uri` in key order, folder markers left out."""
        bucket, prefix = self._split(prefix_uri.rstrip("/") + "/")
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
        return [f"s3://{bucket}/{key}" for key in sorted(keys) if not key.endswith("/")]


def approval_arn(event: Any, group: str) -> str:
    """The package ARN of an approval event of `group`; `Ignored` for anything else."""
    if not isinstance(event, Mapping) or event.get("source") != EVENT_SOURCE:
        raise Ignored("not a SageMaker event")
    detail = event.get("detail")
    if event.get("detail-type") != EVENT_DETAIL_TYPE or not isinstance(detail, Mapping):
        raise Ignored(f"unexpected detail-type {event.get('detail-type')!r}")
    if detail.get("ModelPackageGroupName") != group:
        raise Ignored(f"event is for group {detail.get('ModelPackageGroupName')!r}, not {group!r}")
    if detail.get("ModelApprovalStatus") != APPROVED:
        raise Ignored(f"status {detail.get('ModelApprovalStatus')!r} is not {APPROVED}")
    arn = detail.get("ModelPackageArn")
    if not isinstance(arn, str) or f":model-package/{group}/" not in arn:
        raise Ignored(f"ModelPackageArn {arn!r} is not a version of {group!r}")
    return arn


def read_keys(secrets: Any, secret_arn: str) -> tuple[str, str]:
    """(access key id, secret access key) from the secret's JSON; the error names fields, not values."""
    text = secrets.get_secret_value(SecretId=secret_arn).get("SecretString") or ""
    try:
        values = json.loads(text)
    except json.JSONDecodeError:
        raise MirrorError(f"secret {secret_arn} is not a JSON object") from None
    missing = [name for name in SECRET_FIELDS if not isinstance(values, dict) or not values.get(name)]
    if missing:
        raise MirrorError(f"secret {secret_arn} lacks {', '.join(missing)}")
    return values["access_key_id"], values["secret_access_key"]


OpenStore = Callable[[MirrorConfig, str, str], Destination]


def handler(
    event: Any,
    context: Any = None,
    clients: Clients | None = None,
    environ: Mapping[str, str] | None = None,
    open_store: OpenStore = open_destination,
) -> dict[str, Any]:
    """Lambda handler: validate the environment, then `run`; failures are logged, then raised.

    `clients`, `environ` and `open_store` (the store's client from the config and keys) are the tests'.
    """
    env = os.environ if environ is None else environ
    return run_logged(DECISIONS, lambda: run(event, load_config(env), clients, open_store))


def run(event: Any, config: MirrorConfig, clients: Clients | None, open_store: OpenStore) -> dict[str, Any]:
    """Mirror the approved version the event names; see the module docstring."""
    try:
        arn = approval_arn(event, config.group)
    except Ignored as reason:
        return decide("ignored", str(reason))
    clients = clients or make_clients()
    description = clients.sagemaker.describe_model_package(ModelPackageName=arn)
    if description.get("ModelApprovalStatus") != APPROVED:
        return decide("ignored", f"{arn} is {description.get('ModelApprovalStatus')} now", arn=arn)
    target = open_store(config, *read_keys(clients.secrets, config.secret_arn))
    result = mirror_package(description, S3Source(clients.s3), target)
    return decide(
        "mirrored",
        f"{result.uploaded} of {len(result.objects)} objects uploaded, the rest already identical",
        arn=arn,
        folder=result.folder,
        objects=result.objects,
    )
