"""The data version of the newest registered model: the starter's `RegisteredDataVersion` parameter.

The pipeline writes the `DataVersion` it ran with into each registered package's
CustomerMetadataProperties; when a run's `DataVersion` equals the newest package's, the run registers
nothing. "Newest" is by creation time, whatever the approval status: a rejected model trained on the same
data would be trained again to the same result. A group with no package, or whose newest package predates
the metadata key, gives "" (never equal to a version), so the run goes ahead.
"""

from __future__ import annotations

from typing import Any

from lambdas.common.pipeline_names import DATA_VERSION_METADATA_KEY


def registered_data_version(sagemaker: Any, group: str) -> str:
    """`DataVersion` of the newest package of `group`, "" when there is none or it carries none."""
    response = sagemaker.list_model_packages(
        ModelPackageGroupName=group,
        # Without it the service lists unversioned packages only (its documented default).
        ModelPackageType="Versioned",
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=1,
    )
    summaries = response.get("ModelPackageSummaryList", [])
    if not summaries:
        return ""
    package = sagemaker.describe_model_package(ModelPackageName=summaries[0]["ModelPackageArn"])
    return package.get("CustomerMetadataProperties", {}).get(DATA_VERSION_METADATA_KEY, "")
