"""The model registry side: the approval event, the version it names, and the newest approved version.

`parse_event` turns an EventBridge "SageMaker Model Package State Change" event into an `ApprovalEvent` or
raises `Ignored` with the reason (wrong source or detail-type, missing fields, another group).
`describe_version` reads what a deployment needs from DescribeModelPackage; `newest_approved` lists the
group's Approved versions (newest first) for roll-forward and roll-back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lambdas.common.decisions import Ignored
from lambdas.common.events import APPROVED
from lambdas.common.events import MODEL_PACKAGE_STATE_CHANGE as EVENT_DETAIL_TYPE
from lambdas.common.events import REJECTED as REJECTED  # the handler and ab_test read the statuses here
from lambdas.common.events import SAGEMAKER_SOURCE as EVENT_SOURCE


@dataclass(frozen=True)
class ApprovalEvent:
    """The fields of a model package state change event this function acts on."""

    group: str
    version: int
    arn: str
    status: str  # ModelApprovalStatus in the event


@dataclass(frozen=True)
class DataQualityBaseline:
    """The statistics and constraints a version was registered with (its drift baselines)."""

    statistics_s3_uri: str
    constraints_s3_uri: str


@dataclass(frozen=True)
class ModelVersion:
    """A registered version with what serving needs; `model_data_url` is None when it has no artifacts."""

    group: str
    version: int
    arn: str
    approval_status: str
    image: str | None
    model_data_url: str | None
    baseline: DataQualityBaseline | None


def parse_event(event: Any, group: str) -> ApprovalEvent:
    """Validate the envelope and the detail fields this function relies on."""
    if not isinstance(event, dict):
        raise Ignored(f"event is not an object: {type(event).__name__}")
    if event.get("source") != EVENT_SOURCE or event.get("detail-type") != EVENT_DETAIL_TYPE:
        raise Ignored(f"unexpected source/detail-type {event.get('source')!r}/{event.get('detail-type')!r}")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise Ignored("event has no detail object")
    missing = [
        key
        for key in ("ModelPackageGroupName", "ModelPackageVersion", "ModelPackageArn", "ModelApprovalStatus")
        if detail.get(key) in (None, "")
    ]
    if missing:
        raise Ignored(f"detail lacks {', '.join(missing)}")
    if detail["ModelPackageGroupName"] != group:
        raise Ignored(f"event is for group {detail['ModelPackageGroupName']!r}, not {group!r}")
    try:
        version = int(detail["ModelPackageVersion"])
    except (TypeError, ValueError):
        raise Ignored(f"ModelPackageVersion is not a number: {detail['ModelPackageVersion']!r}") from None
    arn = str(detail["ModelPackageArn"])
    if not arn.endswith(f"model-package/{group}/{version}"):
        raise Ignored(f"ModelPackageArn {arn!r} does not name version {version} of {group!r}")
    return ApprovalEvent(group=group, version=version, arn=arn, status=str(detail["ModelApprovalStatus"]))


def _baseline(package: dict[str, Any]) -> DataQualityBaseline | None:
    quality = package.get("DriftCheckBaselines", {}).get("ModelDataQuality", {})
    statistics = quality.get("Statistics", {}).get("S3Uri")
    constraints = quality.get("Constraints", {}).get("S3Uri")
    if not statistics or not constraints:
        return None
    return DataQualityBaseline(statistics_s3_uri=statistics, constraints_s3_uri=constraints)


def describe_version(sagemaker: Any, arn: str) -> ModelVersion:
    """Describe the model package `arn` as a `ModelVersion`."""
    package = sagemaker.describe_model_package(ModelPackageName=arn)
    containers = package.get("InferenceSpecification", {}).get("Containers", [])
    first = containers[0] if containers else {}
    return ModelVersion(
        group=package["ModelPackageGroupName"],
        version=int(package["ModelPackageVersion"]),
        arn=package["ModelPackageArn"],
        approval_status=package.get("ModelApprovalStatus", ""),
        image=first.get("Image"),
        # Only a single-container package with a model.tar.gz can be served and copied to the champion prefix.
        model_data_url=first.get("ModelDataUrl") if len(containers) == 1 else None,
        baseline=_baseline(package),
    )


def approved_versions(sagemaker: Any, group: str, exclude_arn: str | None = None) -> list[tuple[int, str]]:
    """(version, arn) of every Approved version of the group, newest first, without `exclude_arn`."""
    found: list[tuple[int, str]] = []
    paginator = sagemaker.get_paginator("list_model_packages")
    pages = paginator.paginate(
        ModelPackageGroupName=group,
        ModelApprovalStatus=APPROVED,
        SortBy="CreationTime",
        SortOrder="Descending",
    )
    for page in pages:
        for summary in page.get("ModelPackageSummaryList", []):
            if summary["ModelPackageArn"] != exclude_arn:
                found.append((int(summary["ModelPackageVersion"]), summary["ModelPackageArn"]))
    # Versions are numbered in creation order; sorting by number also settles equal creation times.
    return sorted(found, reverse=True)
