"""Recovery from a backup document (``backup.json``): the requests that rebuild what was lost.

* :func:`redeploy_event` — the "SageMaker Model Package State Change" event of the newest approved version
  in the backup: invoke the deploy function with it to rebuild a lost endpoint (the function converges
  serving on the newest approved version of the live group and creates what is missing).
* Re-creating a deleted group takes two people, as registering and approving do:

  1. :func:`register_requests`, sent by the **operator** (``register --apply``): CreateModelPackageGroup and
     one CreateModelPackage per version, oldest first, with the inference specification, metrics,
     baselines and metadata of the backup, every one as ``PendingManualApproval`` (the operator role may
     create only pending versions, and never approve). SageMaker numbers them again from 1, so each new
     version carries its old ARN in ``CustomerMetadataProperties[RestoredFrom]``.
  2. :func:`decision_requests`, sent by the **approver** (``decide --apply``): one UpdateModelPackage per
     version that was Approved or Rejected, with its approval description, found by ``RestoredFrom``.
     Newest first, so the first approval event already deploys the version that serves and the older
     approvals change nothing. The approver role is the only one that may approve.

``python -m lambdas.backup_registry.restore BACKUP_JSON event|register|decide [--apply]`` prints the event
or the requests as JSON; ``--apply`` sends them with the caller's credentials (``decide`` always reads the
live group to match the versions). Nothing here runs in the Lambda function.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lambdas.common.events import APPROVED, REJECTED, SAGEMAKER_SOURCE
from lambdas.common.events import MODEL_PACKAGE_STATE_CHANGE as PACKAGE_STATE_CHANGE

# DescribeModelPackage members that CreateModelPackage accepts unchanged.
COPIED_MEMBERS = (
    "InferenceSpecification",
    "ModelMetrics",
    "DriftCheckBaselines",
    "CustomerMetadataProperties",
    "MetadataProperties",
    "ModelPackageDescription",
    "Domain",
    "Task",
)
PENDING = "PendingManualApproval"
DECISIONS = (APPROVED, REJECTED)  # the statuses only the approver may set
RESTORED_FROM = "RestoredFrom"  # CustomerMetadataProperties key: the ARN the version had in the backup


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


def register_requests(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The operator's (operation, request) pairs: the group, then every version as pending, oldest first."""
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
        metadata = dict(package.get("CustomerMetadataProperties") or {})
        metadata[RESTORED_FROM] = package["ModelPackageArn"]
        request.update(CustomerMetadataProperties=metadata, ModelApprovalStatus=PENDING)
        requests.append(("create_model_package", request))
    return requests


def register(sagemaker: Any, requests: Sequence[tuple[str, dict[str, Any]]]) -> list[str]:
    """Send the operator's requests in order; an existing group (re-created by the ML stack) is kept."""
    from botocore.exceptions import ClientError

    created: list[str] = []
    for operation, request in requests:
        try:
            response = getattr(sagemaker, operation)(**request)
        except ClientError as error:
            if operation == "create_model_package_group" and "already exists" in str(error):
                continue
            raise
        if operation == "create_model_package":
            created.append(response["ModelPackageArn"])
    return created


def restored_versions(sagemaker: Any, group: str) -> dict[str, tuple[str, str]]:
    """{old ARN: (new ARN, current approval status)} of the live group's versions marked `RestoredFrom`."""
    restored: dict[str, tuple[str, str]] = {}
    pages = sagemaker.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group)
    for summary in (item for page in pages for item in page.get("ModelPackageSummaryList", [])):
        package = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        old = (package.get("CustomerMetadataProperties") or {}).get(RESTORED_FROM)
        if old:
            restored[old] = (package["ModelPackageArn"], package.get("ModelApprovalStatus", ""))
    return restored


def decision_requests(
    document: dict[str, Any], restored: Mapping[str, tuple[str, str]]
) -> list[tuple[str, dict[str, Any]]]:
    """The approver's UpdateModelPackage requests, newest version first; a decided version is skipped."""
    decided = [p for p in _packages(document) if p.get("ModelApprovalStatus") in DECISIONS]
    missing = [p["ModelPackageArn"] for p in decided if p["ModelPackageArn"] not in restored]
    if missing:
        raise RestoreError(f"not registered again yet (run `register --apply` first): {', '.join(missing)}")
    requests: list[tuple[str, dict[str, Any]]] = []
    for package in sorted(decided, key=lambda p: int(p["ModelPackageVersion"]), reverse=True):
        new_arn, current = restored[package["ModelPackageArn"]]
        if current == package["ModelApprovalStatus"]:
            continue
        request = {"ModelPackageArn": new_arn, "ModelApprovalStatus": package["ModelApprovalStatus"]}
        if package.get("ApprovalDescription"):
            request["ApprovalDescription"] = package["ApprovalDescription"]
        requests.append(("update_model_package", request))
    return requests


def decide(sagemaker: Any, requests: Sequence[tuple[str, dict[str, Any]]]) -> list[str]:
    """Send the approver's requests in order; the ARNs they decided."""
    for operation, request in requests:
        getattr(sagemaker, operation)(**request)
    return [request["ModelPackageArn"] for _, request in requests]


def main(argv: Sequence[str] | None = None, sagemaker: Any = None) -> int:
    """Print the redeploy event or a phase's requests; `--apply` sends them (`sagemaker`: a test's client)."""
    from botocore.exceptions import BotoCoreError, ClientError

    args = _parser().parse_args(argv)
    try:
        document = json.loads(args.backup.read_text())
        if args.what == "event":
            print(json.dumps(redeploy_event(document), indent=1, default=str))
            return 0
        if sagemaker is None and (args.apply or args.what == "decide"):
            import boto3

            sagemaker = boto3.client("sagemaker")
        if args.what == "register":
            requests, send, verb = register_requests(document), register, "registered (pending)"
        else:
            restored = restored_versions(sagemaker, document["Registry"]["ModelPackageGroupName"])
            requests, send, verb = decision_requests(document, restored), decide, "decided"
        if not args.apply:
            print(json.dumps([{"operation": op, "request": r} for op, r in requests], indent=1, default=str))
            return 0
        for arn in send(sagemaker, requests):
            print(f"{verb} {arn}")
    except (OSError, ValueError, KeyError, ClientError, BotoCoreError) as error:
        print(f"error: {args.backup}: {error}", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lambdas.backup_registry.restore", description=__doc__)
    parser.add_argument("backup", type=Path, help="a backup.json downloaded from the backup prefix")
    parser.add_argument("what", choices=("event", "register", "decide"))
    parser.add_argument("--apply", action="store_true", help="send the requests (default: print them)")
    return parser


if __name__ == "__main__":
    sys.exit(main())
