"""Recovery from a backup document (`lambdas.backup_registry.restore`): the redeploy event is one the deploy
function accepts, and the re-creation requests pass botocore's validation in order."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber

from lambdas.backup_registry import restore
from lambdas.deploy_on_approval.registry import parse_event

GROUP = "turbofan-rul-test-models"
ARN = f"arn:aws:sagemaker:eu-west-1:123456789012:model-package/{GROUP}"
SPEC = {
    "Containers": [
        {"Image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/rul:1", "ModelDataUrl": "s3://b/m.tgz"}
    ],
    "SupportedContentTypes": ["text/csv"],
    "SupportedResponseMIMETypes": ["application/json"],
}


def described(version: int, status: str) -> dict:
    return {
        "ModelPackageName": GROUP,
        "ModelPackageGroupName": GROUP,
        "ModelPackageVersion": version,
        "ModelPackageArn": f"{ARN}/{version}",
        "CreationTime": "2026-12-03 20:00:05+00:00",  # as backup.json renders datetimes
        "ModelPackageStatus": "Completed",
        "ModelApprovalStatus": status,
        "InferenceSpecification": SPEC,
        "CustomerMetadataProperties": {"DataVersion": f"d{version}"},
        **({"ApprovalDescription": "ok"} if status == "Approved" else {}),
    }


DOCUMENT = json.loads(
    json.dumps(
        {
            "CreatedAt": "2026-12-03T20:00:05+00:00",
            "Registry": {
                "ModelPackageGroupName": GROUP,
                "ModelPackageGroup": {"ModelPackageGroupDescription": "RUL models"},
                "ModelPackages": [
                    described(3, "Rejected"),
                    described(1, "Approved"),
                    described(2, "Approved"),
                ],
            },
        }
    )
)


def test_redeploy_event_is_accepted_by_the_deploy_function():
    event = restore.redeploy_event(DOCUMENT)
    approval = parse_event(event, GROUP)
    assert (approval.version, approval.status, approval.arn) == (2, "Approved", f"{ARN}/2")


def test_no_approved_version_or_no_group_is_an_error():
    rejected = json.loads(json.dumps(DOCUMENT))
    rejected["Registry"]["ModelPackages"] = [described(1, "Rejected")]
    with pytest.raises(restore.RestoreError, match="no approved model version"):
        restore.redeploy_event(rejected)
    with pytest.raises(restore.RestoreError, match="holds no model package group"):
        restore.register_requests(
            {"CreatedAt": "t", "Registry": {"ModelPackageGroupName": GROUP, "Absent": True}}
        )


def sagemaker_client():
    keys = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    return boto3.client("sagemaker", region_name="eu-west-1", **keys)


def test_the_operator_registers_every_version_as_pending_oldest_first():
    requests = restore.register_requests(DOCUMENT)
    create = "create_model_package"
    assert [op for op, _ in requests] == ["create_model_package_group", create, create, create]
    packages = [request for op, request in requests if op == create]
    # The operator role may create pending versions only; the approver decides them afterwards.
    assert {p["ModelApprovalStatus"] for p in packages} == {"PendingManualApproval"}
    assert [p["CustomerMetadataProperties"] for p in packages] == [
        {"DataVersion": f"d{n}", "RestoredFrom": f"{ARN}/{n}"} for n in (1, 2, 3)
    ]
    client = sagemaker_client()
    with Stubber(client) as stubber:  # validates each request against the SageMaker model, in order
        stubber.add_client_error(
            "create_model_package_group",
            "ValidationException",
            f"Model Package Group already exists: {ARN}-group",  # re-created by the ML stack: kept
            expected_params=requests[0][1],
        )
        for version, request in enumerate(packages, start=1):
            stubber.add_response(create, {"ModelPackageArn": f"{ARN}/{version + 10}"}, request)
        assert restore.register(client, requests) == [f"{ARN}/11", f"{ARN}/12", f"{ARN}/13"]
        stubber.assert_no_pending_responses()


def stub_live_group(stubber: Stubber, statuses: dict[int, str]) -> None:
    """The re-registered group: new version n + 10 restored from old version n, with its status now."""
    summaries = [
        {
            "ModelPackageGroupName": GROUP,
            "ModelPackageVersion": new,
            "ModelPackageArn": f"{ARN}/{new}",
            "CreationTime": "2026-12-04T08:00:00Z",
            "ModelPackageStatus": "Completed",
        }
        for new in (11, 12, 13)
    ]
    stubber.add_response(
        "list_model_packages", {"ModelPackageSummaryList": summaries}, {"ModelPackageGroupName": GROUP}
    )
    for new in (11, 12, 13):
        answer = {
            **{k: v for k, v in described(new - 10, statuses[new]).items() if k != "ApprovalDescription"},
            "ModelPackageVersion": new,
            "ModelPackageArn": f"{ARN}/{new}",
            "CustomerMetadataProperties": {"RestoredFrom": f"{ARN}/{new - 10}"},
            "CreationTime": "2026-12-04T08:00:00Z",
            "ModelPackageStatusDetails": {"ValidationStatuses": []},
        }
        stubber.add_response("describe_model_package", answer, {"ModelPackageName": f"{ARN}/{new}"})


def test_the_approver_decides_the_restored_versions_newest_first(tmp_path, capsys):
    path = tmp_path / "backup.json"
    path.write_text(json.dumps(DOCUMENT))
    client = sagemaker_client()
    update = "update_model_package"
    pending = dict.fromkeys((11, 12, 13), "PendingManualApproval")
    with Stubber(client) as stubber:
        stub_live_group(stubber, {**pending, 11: "Approved"})  # v1 decided by an earlier, interrupted run
        reject = {"ModelPackageArn": f"{ARN}/13", "ModelApprovalStatus": "Rejected"}
        approve = {
            "ModelPackageArn": f"{ARN}/12",
            "ModelApprovalStatus": "Approved",
            "ApprovalDescription": "ok",
        }
        stubber.add_response(update, {"ModelPackageArn": f"{ARN}/13"}, reject)
        stubber.add_response(update, {"ModelPackageArn": f"{ARN}/12"}, approve)
        assert restore.main([str(path), "decide", "--apply"], sagemaker=client) == 0
        stubber.assert_no_pending_responses()
    assert capsys.readouterr().out.split() == ["decided", f"{ARN}/13", "decided", f"{ARN}/12"]


def test_deciding_before_registering_names_the_missing_versions():
    with pytest.raises(restore.RestoreError, match=r"register --apply.*model-package/.*/1"):
        restore.decision_requests(DOCUMENT, {})


def test_cli_prints_the_event_and_names_a_bad_file(tmp_path, capsys):
    path = tmp_path / "backup.json"
    path.write_text(json.dumps(DOCUMENT))
    assert restore.main([str(path), "event"]) == 0
    assert json.loads(capsys.readouterr().out)["detail"]["ModelPackageVersion"] == 2
    assert restore.main([str(tmp_path / "absent.json"), "register"]) == 1
    assert "absent.json" in capsys.readouterr().err
