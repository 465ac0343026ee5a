"""Recovery from a backup document (``backup.json``): the requests that rebuild what was lost.

* :func:`redeploy_event` — the "SageMaker Model Package State Change" event of the newest approved version
  in the backup: invoke the deploy function with it to rebuild a lost endpoint (the function converges
  serving on the newest approved version of the live group and creates what is missing).
* :func:`recreate_requests` — CreateModelPackageGroup and one CreateModelPackage per version, oldest first,
  with the inference specification, metrics, baselines, metadata and approval status of the backup: a
  deleted group comes back with the same versions in the same order (SageMaker numbers them again from 1).
  CreateModelPackage takes no approval description, so a version that had one is followed by an
  UpdateModelPackage of the version just created (its ARN filled in by :func:`apply`).

``python -m lambdas.backup_registry.restore BACKUP_JSON event|recreate [--apply]`` prints the event or the
requests as JSON; ``recreate --apply`` sends them with the caller's credentials (an approver's, since the
requests carry approval statuses). Nothing here runs in the Lambda function.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lambdas.common.events import APPROVED, SAGEMAKER_SOURCE
from lambdas.common.events import MODEL_PACKAGE_STATE_CHANGE as PACKAGE_STATE_CHANGE

# DescribeModelPackage members that CreateModelPackage accepts unchanged.
COPIED_MEMBERS = (
    "InferenceSpecification",
    "ModelMetrics",
    "DriftCheckBaselines",
    "CustomerMetadataProperties",
    "MetadataProperties",
    "ModelApprovalStatus",
    "ModelPackageDescription",
    "Domain",
    "Task",
)


class RestoreError(ValueError):
    """The backup cannot give what was asked (no registry, no approved version); says which backup."""


def _packages(document: dict[str, Any]) -> list[dict[str, Any]]:
    registry = document.get("Registry") or {}
    if registry.get("Absent") or "ModelPackages" not in registry:
        raise RestoreError(f"the backup of {document.get('CreatedAt')} holds no model package group")
    return list(registry["ModelPackages"])


def redeploy_event(document: dict[str, Any]) -> dict[str, Any]:
    """The approval event of the newest approved version in the backup (for the deploy function)."""
    approved = [p for p in _packages(document) if p.get("ModelApprovalStatus") == APPROVED]
    if not approved:
        raise RestoreError(f"the backup of {document.get('CreatedAt')} has no approved model version")
    newest = max(approved, key=lambda package: int(package["ModelPackageVersion"]))
    return {
        "source": SAGEMAKER_SOURCE,
        "detail-type": PACKAGE_STATE_CHANGE,
        "resources": [newest["ModelPackageArn"]],
        "detail": newest,
    }


def recreate_requests(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(operation, request) pairs that rebuild the group and its versions, oldest first."""
    packages = sorted(_packages(document), key=lambda package: int(package["ModelPackageVersion"]))
    group = document["Registry"]["ModelPackageGroupName"]
    described = document["Registry"].get("ModelPackageGroup") or {}
    group_request: dict[str, Any] = {"ModelPackageGroupName": group}
    if described.get("ModelPackageGroupDescription"):
        group_request["ModelPackageGroupDescription"] = described["ModelPackageGroupDescription"]
    requests: list[tuple[str, dict[str, Any]]] = [("create_model_package_group", group_request)]
    for package in packages:
        request = {"ModelPackageGroupName": group}
        request.update({key: package[key] for key in COPIED_MEMBERS if package.get(key) is not None})
        requests.append(("create_model_package", request))
        if package.get("ApprovalDescription"):
            status, reason = package["ModelApprovalStatus"], package["ApprovalDescription"]
            requests.append(
                ("update_model_package", {"ModelApprovalStatus": status, "ApprovalDescription": reason})
            )
    return requests


def apply(sagemaker: Any, requests: Sequence[tuple[str, dict[str, Any]]]) -> list[str]:
    """Send the requests in order (an update goes to the version created just before); the created ARNs."""
    created: list[str] = []
    for operation, request in requests:
        if operation == "update_model_package":
            request = {"ModelPackageArn": created[-1], **request}
        response = getattr(sagemaker, operation)(**request)
        if operation == "create_model_package":
            created.append(response["ModelPackageArn"])
    return created


def main(argv: Sequence[str] | None = None) -> int:
    """Print the redeploy event or the re-creation requests of a backup; `--apply` sends the requests."""
    parser = argparse.ArgumentParser(prog="python -m lambdas.backup_registry.restore", description=__doc__)
    parser.add_argument("backup", type=Path, help="a backup.json downloaded from the backup prefix")
    parser.add_argument("what", choices=("event", "recreate"))
    parser.add_argument("--apply", action="store_true", help="recreate: send the requests (default: print)")
    args = parser.parse_args(argv)
    try:
        document = json.loads(args.backup.read_text())
        if args.what == "event":
            print(json.dumps(redeploy_event(document), indent=1, default=str))
            return 0
        requests = recreate_requests(document)
    except (OSError, ValueError, KeyError) as error:
        print(f"error: {args.backup}: {error}", file=sys.stderr)
        return 1
    if not args.apply:
        print(json.dumps([{"operation": op, "request": req} for op, req in requests], indent=1, default=str))
        return 0
    import boto3

    for arn in apply(boto3.client("sagemaker"), requests):
        print(f"created {arn}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
