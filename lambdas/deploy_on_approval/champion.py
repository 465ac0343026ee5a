"""The champion prefix on S3: what the pipeline's EvaluateModel step compares each challenger with.

Same layout as `local_runner/champion.py`: `<prefix>model.tar.gz` + `<prefix>champion.json` ({version,
model_package_arn, group}), or only the placeholder `NO_CHAMPION_YET.txt` when no version is approved (a
processing input may not be an empty prefix). Objects are written SSE-KMS with the project key. The model
is copied with one CopyObject, which S3 limits to 5 GB (far above this project's models).
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from .config import DeployConfig
from .registry import ModelVersion

PLACEHOLDER = "NO_CHAMPION_YET.txt"
MODEL_KEY = "model.tar.gz"
POINTER_KEY = "champion.json"


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    if not bucket or not key:
        raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
    return bucket, key


def current_version(s3: Any, config: DeployConfig) -> int | None:
    """The version named by champion.json, or None when there is none (or it is unreadable)."""
    try:
        body = s3.get_object(Bucket=config.artifacts_bucket, Key=config.champion_prefix + POINTER_KEY)["Body"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    try:
        return int(json.loads(body.read())["version"])
    except (ValueError, KeyError, TypeError):
        return None


def _kms(config: DeployConfig) -> dict[str, str]:
    return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": config.kms_key_arn}


def publish(s3: Any, config: DeployConfig, version: ModelVersion) -> None:
    """Copy the version's model.tar.gz to the prefix, then write the pointer, then drop the placeholder."""
    assert version.model_data_url is not None  # checked by the caller
    source_bucket, source_key = split_s3_uri(version.model_data_url)
    bucket, prefix = config.artifacts_bucket, config.champion_prefix
    s3.copy_object(
        Bucket=bucket,
        Key=prefix + MODEL_KEY,
        CopySource={"Bucket": source_bucket, "Key": source_key},
        **_kms(config),
    )
    pointer = {"version": version.version, "model_package_arn": version.arn, "group": version.group}
    s3.put_object(
        Bucket=bucket,
        Key=prefix + POINTER_KEY,
        Body=json.dumps(pointer).encode(),
        ContentType="application/json",
        **_kms(config),
    )
    s3.delete_object(Bucket=bucket, Key=prefix + PLACEHOLDER)


def clear(s3: Any, config: DeployConfig) -> None:
    """No approved version left: remove model and pointer, leave the placeholder."""
    bucket, prefix = config.artifacts_bucket, config.champion_prefix
    s3.put_object(
        Bucket=bucket,
        Key=prefix + PLACEHOLDER,
        Body=b"No model has been approved yet.\n",
        ContentType="text/plain",
        **_kms(config),
    )
    s3.delete_object(Bucket=bucket, Key=prefix + POINTER_KEY)
    s3.delete_object(Bucket=bucket, Key=prefix + MODEL_KEY)
