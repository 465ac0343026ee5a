"""Helpers shared by the endpoint and monitoring modules: bounded names, digests, tags, create-or-reuse.

SageMaker names are at most 63 characters; `bounded_name` keeps the version/digest suffix intact. The
create-or-reuse helper describes first and treats an "already exists" answer to a concurrent create as
success, which makes repeated (or duplicated) EventBridge deliveries harmless.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from botocore.exceptions import ClientError

TAG_VERSION = "ModelPackageVersion"
TAG_ARN = "ModelPackageArn"
TAG_GROUP = "ModelPackageGroupName"
# On an A/B test's endpoint config (TAG_VERSION names the challenger there, the version converged on).
TAG_CHAMPION = "AbChampionVersion"
TAG_CHALLENGER = "AbChallengerVersion"


def bounded_name(base: str, suffix: str) -> str:
    """`<base>-<suffix>` within SageMaker's 63 characters, trimming the base (never the suffix)."""
    room = 63 - len(suffix) - 1
    return f"{base[:room].rstrip('-')}-{suffix}"


def digest(*parts: Any) -> str:
    """An 8-character SHA-256 digest of `parts` (as sorted JSON): names change when the content does."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:8]


def version_tags(version: Any) -> list[dict[str, str]]:
    """The tags that record which model version a resource serves."""
    return [
        {"Key": TAG_GROUP, "Value": version.group},
        {"Key": TAG_VERSION, "Value": str(version.version)},
        {"Key": TAG_ARN, "Value": version.arn},
    ]


def is_missing(error: ClientError) -> bool:
    """SageMaker's error says the resource does not exist."""
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", "")
    return code == "ResourceNotFound" or (code == "ValidationException" and "Could not find" in message)


def is_duplicate(error: ClientError) -> bool:
    """SageMaker's error says the resource already exists (or is in use)."""
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", "").lower()
    return code == "ResourceInUse" or (code == "ValidationException" and "already exist" in message)


def create_unless_exists(describe: Any, create: Any) -> bool:
    """Describe; create when missing. True when this call created it. A concurrent create counts as done."""
    try:
        describe()
        return False
    except ClientError as error:
        if not is_missing(error):
            raise
    try:
        create()
    except ClientError as error:
        if not is_duplicate(error):
            raise
        return False
    return True
