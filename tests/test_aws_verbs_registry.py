"""The approval verbs of `python -m pipeline_steps`: approve and reject a registered model version.

Stubber checks the requests (DescribeModelPackage first, the Approved versions of the group, then
UpdateModelPackage with ModelApprovalStatus and ApprovalDescription), the refusals (another group, a
status already set) that change nothing, what the command says will be deployed or rolled back to, and
the one-line AccessDenied message naming the approver role; moto runs an approval round trip.
"""

from __future__ import annotations

from aws_stubs import (  # noqa: F401 - fixtures
    ACCOUNT,
    CREATED,
    GROUP,
    NAMES,
    REGION,
    moto_fixture,
    no_cdk_context_fixture,
    run,
    stubbed_fixture,
)
from botocore.stub import ANY, Stubber

# --- approve, reject --------------------------------------------------------------------------------------


def package_arn(version: int, group: str = GROUP) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{group}/{version}"


def stub_package(stubber: Stubber, version: int, status: str, group: str = GROUP) -> None:
    stubber.add_response(
        "describe_model_package",
        {
            "ModelPackageName": group,
            "ModelPackageGroupName": group,
            "ModelPackageVersion": version,
            "ModelPackageArn": package_arn(version, group),
            "ModelPackageStatus": "Completed",
            "ModelPackageStatusDetails": {"ValidationStatuses": []},
            "ModelApprovalStatus": status,
            "CreationTime": CREATED,
        },
        {"ModelPackageName": package_arn(version, group)},
    )


def stub_approved(stubber: Stubber, versions: list[int]) -> None:
    summaries = [
        {
            "ModelPackageArn": package_arn(version),
            "ModelPackageGroupName": GROUP,
            "ModelPackageVersion": version,
            "CreationTime": CREATED,
            "ModelPackageStatus": "Completed",
            "ModelApprovalStatus": "Approved",
        }
        for version in versions
    ]
    stubber.add_response(
        "list_model_packages",
        {"ModelPackageSummaryList": summaries},
        {
            "ModelPackageGroupName": GROUP,
            "ModelApprovalStatus": "Approved",
            "ModelPackageType": "Versioned",
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
        },
    )


def stub_update(stubber: Stubber, version: int, status: str, description) -> None:
    stubber.add_response(
        "update_model_package",
        {"ModelPackageArn": package_arn(version)},
        {
            "ModelPackageArn": package_arn(version),
            "ModelApprovalStatus": status,
            "ApprovalDescription": description,
        },
    )


def test_approve_the_newest_says_it_will_deploy(stubbed):
    client, stubber = stubbed
    stub_package(stubber, 7, "PendingManualApproval")
    stub_approved(stubber, [5, 3])
    stub_update(stubber, 7, "Approved", "RMSE 14.1, better than v5")
    code, out, _ = run(client, "approve", "7", "--reason", "RMSE 14.1, better than v5")
    assert code == 0
    assert f"will deploy: v7, now the newest approved version of {GROUP}" in out


def test_approve_an_older_version_says_the_newer_one_stays_in_service(stubbed):
    client, stubber = stubbed
    stub_package(stubber, 4, "Rejected")
    stub_approved(stubber, [6])
    stub_update(stubber, 4, "Approved", ANY)
    code, out, _ = run(client, "approve", package_arn(4))
    assert code == 0
    assert "approved v4" in out and "(was Rejected)" in out
    assert "will deploy: v6 stays in service" in out and "v4 is not deployed" in out


def test_approve_refuses_a_version_that_is_already_approved(stubbed):
    client, stubber = stubbed
    stub_package(stubber, 7, "Approved")  # no update stubbed: an update would fail the test
    code, _, err = run(client, "approve", "7")
    assert code == 1 and f"error: v7 of {GROUP} is already Approved" in err


def test_approve_refuses_a_package_of_another_group(stubbed):
    client, stubber = stubbed
    stub_package(stubber, 2, "PendingManualApproval", group="someone-elses-models")
    code, _, err = run(client, "approve", package_arn(2, "someone-elses-models"))
    assert code == 1 and f"not the project's group '{GROUP}'" in err


def test_approve_rejects_a_reference_that_is_not_a_version(stubbed):
    code, _, err = run(stubbed[0], "approve", "latest")
    assert code == 2 and "'latest' is neither a version number nor a model package ARN" in err


def test_reject_sends_the_reason_and_names_the_rollback_target(stubbed):
    client, stubber = stubbed
    stub_package(stubber, 7, "Approved")
    stub_update(stubber, 7, "Rejected", "bias on FD004 units")
    stub_approved(stubber, [7, 5])
    code, out, _ = run(client, "reject", "7", "--reason", "bias on FD004 units")
    assert code == 0
    assert "rejected v7" in out and "serving rolls back to v5" in out


def test_access_denied_on_approval_names_the_approver_role(stubbed):
    client, stubber = stubbed
    stub_package(stubber, 7, "PendingManualApproval")
    stub_approved(stubber, [])
    stubber.add_client_error(
        "update_model_package", "AccessDeniedException", "not authorized to perform UpdateModelPackage"
    )
    code, out, err = run(client, "approve", "7")
    approver = f"arn:aws:iam::{ACCOUNT}:role/{NAMES.approver_role}"
    assert code == 1 and "will deploy" not in out
    assert err.strip() == (
        f"access denied: sagemaker:UpdateModelPackage (approve) is allowed only to the approver role "
        f"{approver}; assume it (e.g. --profile) and retry"
    )


def test_moto_approve_sets_status_and_description(moto):
    moto.create_model_package_group(ModelPackageGroupName=GROUP)
    arn = moto.create_model_package(ModelPackageGroupName=GROUP, ModelApprovalStatus="PendingManualApproval")[
        "ModelPackageArn"
    ]
    code, out, _ = run(moto, "approve", "1", "--reason", "checked the report")
    assert code == 0 and "will deploy: v1" in out
    package = moto.describe_model_package(ModelPackageName=arn)
    assert (package["ModelApprovalStatus"], package["ApprovalDescription"]) == (
        "Approved",
        "checked the report",
    )
    assert run(moto, "approve", "1")[0] == 1  # already Approved
