"""What a backup holds: endpoint configurations, the model packages of the group, their artifacts' versions.

* :func:`endpoint_backup` — DescribeEndpoint, then DescribeEndpointConfig of its configuration (and of a
  pending blue/green deployment's), then DescribeModel of every model their variants use. An endpoint that
  does not exist is recorded as absent: that is what a backup taken after losing it should say.
* :func:`registry_backup` — DescribeModelPackageGroup and DescribeModelPackage of every version
  (ListModelPackages, paginated): approval status and description, metrics, baselines, metadata.
* :func:`artifact_versions` — for every ``s3://`` URI those describe (ModelDataUrl, metric and baseline
  ``S3Uri``), HeadObject's VersionId, ETag and size. The buckets are versioned, so a version id pins the
  exact bytes without a second copy (and without a second KMS-encrypted store to keep in step); a deleted or
  overwritten artifact stays restorable by that id for ``storage.noncurrent_version_expiry_days``, and the
  optional cross-region replication keeps a copy of every version elsewhere.

Responses are returned without ``ResponseMetadata``; timestamps stay datetimes (the writer renders them).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from botocore.exceptions import ClientError

from lambdas.common.s3uri import is_s3_uri, parse_s3_uri

URI_KEYS = ("ModelDataUrl", "S3Uri")
MISSING_CODES = ("404", "NoSuchKey", "NotFound")


def _clean(response: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in response.items() if key != "ResponseMetadata"}


def _not_found(error: ClientError, words: str) -> bool:
    """SageMaker answers a missing endpoint, config or group with ValidationException "Could not find ..."."""
    details = error.response.get("Error", {})
    return details.get("Code") in ("ValidationException", "ResourceNotFound") and words in str(
        details.get("Message", "")
    )


def _model_names(endpoint_config: dict[str, Any]) -> list[str]:
    variants = [
        *endpoint_config.get("ProductionVariants", []),
        *endpoint_config.get("ShadowProductionVariants", []),
    ]
    return list(dict.fromkeys(v["ModelName"] for v in variants if v.get("ModelName")))


def endpoint_backup(sagemaker: Any, endpoint_name: str) -> dict[str, Any]:
    """The endpoint, its configuration(s) and their models; ``{"EndpointName", "Absent": True}`` if gone."""
    try:
        endpoint = _clean(sagemaker.describe_endpoint(EndpointName=endpoint_name))
    except ClientError as error:
        if _not_found(error, "Could not find endpoint"):
            return {"EndpointName": endpoint_name, "Absent": True}
        raise
    config_names = [endpoint["EndpointConfigName"]]
    pending = endpoint.get("PendingDeploymentSummary", {}).get("EndpointConfigName")
    if pending and pending not in config_names:
        config_names.append(pending)
    configs = [_clean(sagemaker.describe_endpoint_config(EndpointConfigName=name)) for name in config_names]
    model_names = list(dict.fromkeys(name for config in configs for name in _model_names(config)))
    models = [_clean(sagemaker.describe_model(ModelName=name)) for name in model_names]
    return {"EndpointName": endpoint_name, "Endpoint": endpoint, "EndpointConfigs": configs, "Models": models}


def _package_arns(sagemaker: Any, group: str) -> list[str]:
    paginator = sagemaker.get_paginator("list_model_packages")
    pages = paginator.paginate(ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Ascending")
    return [summary["ModelPackageArn"] for page in pages for summary in page["ModelPackageSummaryList"]]


def registry_backup(sagemaker: Any, group: str) -> dict[str, Any]:
    """The group and every version of it, oldest first; ``{"ModelPackageGroupName", "Absent": True}``
    when the group does not exist (deleted: the backups taken before it are the ones to restore)."""
    try:
        described = _clean(sagemaker.describe_model_package_group(ModelPackageGroupName=group))
    except ClientError as error:
        if _not_found(error, "does not exist") or _not_found(error, "Could not find"):
            return {"ModelPackageGroupName": group, "Absent": True}
        raise
    packages = [
        _clean(sagemaker.describe_model_package(ModelPackageName=arn))
        for arn in _package_arns(sagemaker, group)
    ]
    return {"ModelPackageGroupName": group, "ModelPackageGroup": described, "ModelPackages": packages}


def _walk_uris(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in URI_KEYS and isinstance(item, str) and item.startswith("s3://"):
                yield item
            else:
                yield from _walk_uris(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk_uris(item)


def artifact_uris(*documents: Any) -> list[str]:
    """Every distinct ``s3://`` URI under a ModelDataUrl or S3Uri key, in first-seen order."""
    return list(dict.fromkeys(uri for document in documents for uri in _walk_uris(document)))


def artifact_versions(
    s3: Any, uris: Iterable[str], bucket: str, prefixes: tuple[str, ...]
) -> list[dict[str, Any]]:
    """The current version of each artifact in `bucket` under `prefixes`; others are listed unchecked."""
    records: list[dict[str, Any]] = []
    for uri in uris:
        location = parse_s3_uri(uri) if is_s3_uri(uri) else None
        if location is None or location.bucket != bucket or not location.key.startswith(prefixes):
            where = f"s3://{bucket}/{{{','.join(prefixes)}}}"
            records.append({"Uri": uri, "Checked": False, "Reason": f"outside {where}"})
            continue
        try:
            head = s3.head_object(Bucket=bucket, Key=location.key)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code not in MISSING_CODES:
                raise
            records.append({"Uri": uri, "Checked": True, "Missing": True})
            continue
        records.append(
            {
                "Uri": uri,
                "Checked": True,
                "Missing": False,
                "VersionId": head.get("VersionId"),
                "ETag": head.get("ETag"),
                "ContentLength": head.get("ContentLength"),
                "LastModified": head.get("LastModified"),
            }
        )
    return records
