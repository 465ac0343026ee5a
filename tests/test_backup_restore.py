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
        restore.recreate_requests(
            {"CreatedAt": "t", "Registry": {"ModelPackageGroupName": GROUP, "Absent": True}}
        )


def test_recreate_requests_are_valid_and_ordered_oldest_first():
    requests = restore.recreate_requests(DOCUMENT)
    create, update = "create_model_package", "update_model_package"
    assert [op for op, _ in requests] == [
        "create_model_package_group",
        create,
        update,
        create,
        update,
        create,
    ]
    versions = [r["CustomerMetadataProperties"]["DataVersion"] for op, r in requests if op == create]
    assert versions == ["d1", "d2", "d3"]
    client = boto3.client(
        "sagemaker", region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stubber:
        stubber.add_response(
            "create_model_package_group", {"ModelPackageGroupArn": f"{ARN}-group"}, requests[0][1]
        )
        version = 0
        for operation, request in requests[1:]:
            if operation == create:
                version += 1
                stubber.add_response(create, {"ModelPackageArn": f"{ARN}/{version}"}, request)
            else:
                expected = {"ModelPackageArn": f"{ARN}/{version}", **request}
                stubber.add_response(update, {"ModelPackageArn": f"{ARN}/{version}"}, expected)
        assert restore.apply(client, requests) == [f"{ARN}/1", f"{ARN}/2", f"{ARN}/3"]
        stubber.assert_no_pending_responses()
    assert requests[2][1] == {"ModelApprovalStatus": "Approved", "ApprovalDescription": "ok"}


def test_cli_prints_the_event_and_names_a_bad_file(tmp_path, capsys):
    path = tmp_path / "backup.json"
    path.write_text(json.dumps(DOCUMENT))
    assert restore.main([str(path), "event"]) == 0
    assert json.loads(capsys.readouterr().out)["detail"]["ModelPackageVersion"] == 2
    assert restore.main([str(tmp_path / "absent.json"), "recreate"]) == 1
    assert "absent.json" in capsys.readouterr().err
