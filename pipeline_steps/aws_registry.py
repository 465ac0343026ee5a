"""`approve` and `reject`: set a registered model version's approval status, as the approver role.

A version is named by its number in the project's model package group or by its ARN. The package is read
first (DescribeModelPackage) and the change is refused (`Refused`) when it is not in the project's group
or already has the requested status; then UpdateModelPackage sets `ModelApprovalStatus` with the
`ApprovalDescription` (a reason is required to reject). The deploy function serves the newest Approved
version of the group, so after approving, the command says which version that is (the approved one, or a
newer approved one that stays in service); after rejecting, which version serving would roll back to if
the rejected one is in service.
"""

from __future__ import annotations

from typing import Any, TextIO

from pipeline_steps.aws_target import Target

APPROVED = "Approved"
REJECTED = "Rejected"
DEFAULT_APPROVAL_DESCRIPTION = "approved with python -m pipeline_steps approve"


class Refused(Exception):
    """The change would be wrong (another group, status already set); nothing was changed."""


class BadReference(ValueError):
    """The version argument is neither a version number nor a model package ARN."""


def package_arn(target: Target, reference: str) -> str:
    """A version number of the project's group, or a model package ARN, as the package ARN."""
    if reference.isdigit() and int(reference) > 0:
        return target.model_package_arn(int(reference))
    if reference.startswith("arn:") and ":model-package/" in reference:
        return reference
    raise BadReference(f"{reference!r} is neither a version number nor a model package ARN")


def checked_package(client: Any, target: Target, reference: str, status: str) -> dict[str, Any]:
    """The package named by `reference`; refused outside the project's group or when already `status`."""
    package = client.describe_model_package(ModelPackageName=package_arn(target, reference))
    group = package.get("ModelPackageGroupName")
    if group != target.names.model_package_group:
        raise Refused(
            f"{package['ModelPackageArn']} is in group {group!r}, "
            f"not the project's group {target.names.model_package_group!r}"
        )
    if package.get("ModelApprovalStatus") == status:
        raise Refused(f"v{package['ModelPackageVersion']} of {group} is already {status}")
    return package


def approved_versions(client: Any, group: str) -> list[int]:
    """Version numbers of the group's Approved packages, newest first."""
    pages = client.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=group,
        ModelApprovalStatus=APPROVED,
        ModelPackageType="Versioned",
        SortBy="CreationTime",
        SortOrder="Descending",
    )
    versions = {
        int(summary["ModelPackageVersion"])
        for page in pages
        for summary in page.get("ModelPackageSummaryList", [])
        if "ModelPackageVersion" in summary
    }
    return sorted(versions, reverse=True)


def _update(client: Any, package: dict[str, Any], status: str, description: str) -> None:
    client.update_model_package(
        ModelPackageArn=package["ModelPackageArn"],
        ModelApprovalStatus=status,
        ApprovalDescription=description,
    )


def approve(client: Any, target: Target, reference: str, reason: str | None, out: TextIO) -> int:
    """Approve the version and say which version the deploy function will serve."""
    group = target.names.model_package_group
    package = checked_package(client, target, reference, APPROVED)
    others = approved_versions(client, group)
    _update(client, package, APPROVED, reason or DEFAULT_APPROVAL_DESCRIPTION)
    version = int(package["ModelPackageVersion"])
    newest = max([version, *others])
    print(f"approved v{version} of {group} (was {package.get('ModelApprovalStatus', 'unknown')})", file=out)
    if newest == version:
        print(f"will deploy: v{version}, now the newest approved version of {group}", file=out)
    else:
        print(
            f"will deploy: v{newest} stays in service, the newest approved version; v{version} is not "
            "deployed unless every newer approved version is rejected",
            file=out,
        )
    return 0


def reject(client: Any, target: Target, reference: str, reason: str, out: TextIO) -> int:
    """Reject the version and say what serving falls back to if it is in service."""
    group = target.names.model_package_group
    package = checked_package(client, target, reference, REJECTED)
    _update(client, package, REJECTED, reason)
    version = int(package["ModelPackageVersion"])
    was = package.get("ModelApprovalStatus", "unknown")
    print(f"rejected v{version} of {group} (was {was}): {reason}", file=out)
    fallback = [other for other in approved_versions(client, group) if other != version]
    if fallback:
        print(f"if v{version} is in service, serving rolls back to v{fallback[0]}", file=out)
    else:
        print(f"no other approved version: if v{version} is in service, the endpoint is left as is", file=out)
    return 0
