"""The champion prefix on S3: what the pipeline's EvaluateModel step compares each challenger with.

Same layout as `local_runner/champion.py`: `<prefix>model.tar.gz` + `<prefix>champion.json` ({version,
model_package_arn, group}), or only the placeholder `NO_CHAMPION_YET.txt` when no version is approved (a
processing input may not be an empty prefix). Under `baselines/` it holds the statistics.json and
constraints.json the version registered as `DriftCheckBaselines.ModelDataQuality` (under the durable
`registry/` prefix): the fixed baseline input of the monitoring pipeline's drift step. A version without
them leaves `baselines/` empty, so the drift step fails loudly (the "monitoring silent" alarm reports it)
rather than judging the new model by its predecessor's data. Objects are written SSE-KMS with the project
key. Files are copied with one CopyObject each, which S3 limits to 5 GB (far above this project's).
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from lambdas.common.s3uri import parse_s3_uri

from .config import DeployConfig
from .registry import ModelVersion

PLACEHOLDER = "NO_CHAMPION_YET.txt"
MODEL_KEY = "model.tar.gz"
POINTER_KEY = "champion.json"
# The monitoring pipeline's names (pipeline_steps.monitoring_names), which the function cannot import; a
# test checks that both sides agree.
BASELINES_FOLDER = "baselines/"
STATISTICS_FILE = "statistics.json"
CONSTRAINTS_FILE = "constraints.json"


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


def _copy(s3: Any, config: DeployConfig, source_uri: str, key: str) -> None:
    source = parse_s3_uri(source_uri, require_key=True)
    s3.copy_object(
        Bucket=config.artifacts_bucket,
        Key=key,
        CopySource={"Bucket": source.bucket, "Key": source.key},
        **_kms(config),
    )


def baseline_keys(config: DeployConfig) -> dict[str, str]:
    """{file name: key} of the champion's baselines in the artifacts bucket."""
    folder = config.champion_prefix + BASELINES_FOLDER
    return {name: folder + name for name in (STATISTICS_FILE, CONSTRAINTS_FILE)}


def _present_baselines(s3: Any, config: DeployConfig) -> set[str]:
    folder = config.champion_prefix + BASELINES_FOLDER
    listing = s3.list_objects_v2(Bucket=config.artifacts_bucket, Prefix=folder)
    return {item["Key"] for item in listing.get("Contents", [])} & set(baseline_keys(config).values())


def converge_baselines(s3: Any, config: DeployConfig, version: ModelVersion, *, replace: bool) -> str:
    """Make `baselines/` hold the version's baselines (copied again when `replace`), or nothing.

    Returns "published", "unchanged", or "deleted: ..." / "skipped: ..." with the reason when the
    version registered no baselines (the caller logs that as a warning).
    """
    keys = baseline_keys(config)
    present = _present_baselines(s3, config)
    if version.baseline is None:
        for key in sorted(present):
            s3.delete_object(Bucket=config.artifacts_bucket, Key=key)
        reason = (
            f"v{version.version} registered no DriftCheckBaselines.ModelDataQuality: {BASELINES_FOLDER} is "
            "left empty and the monitoring pipeline's drift step fails until a version with baselines is "
            "approved"
        )
        return f"deleted: {reason}" if present else f"skipped: {reason}"
    if not replace and present == set(keys.values()):
        return "unchanged"
    _copy(s3, config, version.baseline.statistics_s3_uri, keys[STATISTICS_FILE])
    _copy(s3, config, version.baseline.constraints_s3_uri, keys[CONSTRAINTS_FILE])
    return "published"


def publish(s3: Any, config: DeployConfig, version: ModelVersion) -> str:
    """Copy the version's model.tar.gz and baselines, then write the pointer, then drop the placeholder.

    The pointer goes last: a run that fails before it leaves the old version named, so the retry
    publishes everything again. Returns what `converge_baselines` did.
    """
    assert version.model_data_url is not None  # checked by the caller
    bucket, prefix = config.artifacts_bucket, config.champion_prefix
    _copy(s3, config, version.model_data_url, prefix + MODEL_KEY)
    baselines = converge_baselines(s3, config, version, replace=True)
    pointer = {"version": version.version, "model_package_arn": version.arn, "group": version.group}
    s3.put_object(
        Bucket=bucket,
        Key=prefix + POINTER_KEY,
        Body=json.dumps(pointer).encode(),
        ContentType="application/json",
        **_kms(config),
    )
    s3.delete_object(Bucket=bucket, Key=prefix + PLACEHOLDER)
    return baselines


def clear(s3: Any, config: DeployConfig) -> None:
    """No approved version left: remove model, pointer and baselines, leave the placeholder."""
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
    for key in baseline_keys(config).values():
        s3.delete_object(Bucket=bucket, Key=key)
